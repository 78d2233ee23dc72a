/*
 * select.c - select mixes: send and receive cases over 1-4 channels of
 * random capacity, NULL cases, duplicate cases, empty selects, and
 * deadlines in the past, near and a little further.
 *
 * Each actor's sends carry a token (actor, sequence); the sequence moves on
 * only when a send case won.  Invariants per round, once every actor
 * stopped:
 *  - per channel: sends done = receives done + buffered, nobody waiting;
 *  - after draining the buffers: each token sent was received exactly once
 *    and no token was received whose send did not win (a select that
 *    returned a timeout or another case did not send);
 *  - results: the winning case names a channel and its result is 0;
 *    -EAGAIN only for a deadline already past, -ETIMEDOUT never before the
 *    deadline;
 *  - fairness: over 600 selects on two always-ready channels (plus a NULL
 *    and a duplicate case) each channel wins at least 15% of the time.
 */
#include "stress.h"

#include <stdlib.h>

#define MAXCH 4
#define MAXCASES 8
#define MAXSENDS 2048                /* per actor per round */

static const size_t capacities[] = { 0, 1, 7, BRAID_UNBOUNDED };

typedef struct round {
    unsigned nch, nact;
    braid_tx *tx[MAXCH];
    braid_rx *rx[MAXCH];
    _Atomic uint64_t sends[MAXCH], recvs[MAXCH];
    st_bitmap got;                   /* token = actor * MAXSENDS + seq */
    uint64_t nsent[64];              /* per actor; written by the actor */
    int64_t end;
    braid_wg wg;
} round;

typedef struct actor { round *rd; unsigned id; st_rng rng; } actor;

static void received(round *rd, uint64_t tok, const char *where)
{
    if (tok / MAXSENDS >= rd->nact) {
        st_fail("select: %s received a corrupt token %llx", where,
                (unsigned long long)tok);
        return;
    }
    if (st_bitmap_set(&rd->got, tok)) {
        st_count(C_DUPLICATED, 1);
        st_fail("select: token %llx received twice (%s)",
                (unsigned long long)tok, where);
    }
    st_count(C_RECEIVED, 1);
}

/* Fill cases[0..n) at random; kidx[i] is the channel of case i or -1. */
static size_t make_cases(actor *a, braid_case *cs, int *kidx, uint64_t *tok,
                         uint64_t *rbuf)
{
    round *rd = a->rd;
    size_t n = st_below(&a->rng, MAXCASES + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned kind = (unsigned)st_below(&a->rng, 8);
        if (kind == 1 && i > 0) {                /* duplicate an earlier case */
            size_t j = st_below(&a->rng, i);
            cs[i] = cs[j];
            kidx[i] = kidx[j];
            if (cs[i].op == BRAID_RECV) cs[i].elem = &rbuf[i];
            continue;
        }
        int k = (int)st_below(&a->rng, rd->nch);
        bool send = st_below(&a->rng, 2) && rd->nsent[a->id] < MAXSENDS;
        cs[i].op = send ? BRAID_SEND : BRAID_RECV;
        cs[i].elem = send ? (void *)tok : (void *)&rbuf[i];
        cs[i].chan = send ? (void *)rd->tx[k] : (void *)rd->rx[k];
        kidx[i] = k;
        if (kind == 0) { cs[i].chan = NULL; kidx[i] = -1; }
        cs[i].result = 12345;
    }
    return n;
}

static void won(actor *a, braid_case *c, int k)
{
    round *rd = a->rd;
    if (k < 0 || !c->chan || c->result != 0) {
        st_fail("select: winning case has channel %d, result %d", k, c->result);
        return;
    }
    if (c->op == BRAID_SEND) {
        atomic_fetch_add(&rd->sends[k], 1);
        rd->nsent[a->id]++;
        st_count(C_SENT, 1);
    } else {
        atomic_fetch_add(&rd->recvs[k], 1);
        received(rd, *(uint64_t *)c->elem, "a receive case");
    }
}

static int64_t pick_deadline(st_rng *r)
{
    switch (st_below(r, 4)) {
    case 0: return 0;
    case 1: return braid_after((int64_t)st_below(r, 200 * ST_US));
    default: return braid_after((int64_t)st_below(r, 3 * ST_MS));
    }
}

static void one_select(actor *a)
{
    braid_case cs[MAXCASES];
    int kidx[MAXCASES];
    uint64_t rbuf[MAXCASES];
    uint64_t tok = a->id * (uint64_t)MAXSENDS + a->rd->nsent[a->id];
    size_t n = make_cases(a, cs, kidx, &tok, rbuf);
    int64_t dl = pick_deadline(&a->rng);
    int rc = braid_select(cs, n, dl);
    int64_t now = braid_now();
    st_count(C_OPS, 1);
    if (rc >= 0 && (size_t)rc < n) {
        won(a, &cs[rc], kidx[rc]);
    } else if (rc == -EAGAIN) {
        if (dl != 0 && dl > now)
            st_fail("select: -EAGAIN with a deadline %lld ns ahead",
                    (long long)(dl - now));
    } else if (rc == -ETIMEDOUT) {
        if (dl == 0 || now < dl)
            st_fail("select: -ETIMEDOUT %lld ns before the deadline",
                    (long long)(dl - now));
        st_lateness(now - dl);
        st_count(C_TIMEOUTS, 1);
    } else {
        st_fail("select: returned %d (%s) for %zu cases", rc,
                braid_strerror(rc), n);
    }
}

static void actor_main(void *arg)
{
    actor *a = arg;
    while (braid_now() < a->rd->end && !st_over()) one_select(a);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void drain(round *rd, unsigned k)
{
    braid_chan_info info;
    int rc = braid_chan_stats(rd->rx[k], &info);
    if (rc != 0) {
        st_fail("select: braid_chan_stats %s", braid_strerror(rc));
        return;
    }
    if (rd->sends[k] != rd->recvs[k] + info.buffered)
        st_fail("select: channel %u (capacity %zu): sends %llu != receives "
                "%llu + buffered %zu", k, info.capacity,
                (unsigned long long)rd->sends[k],
                (unsigned long long)rd->recvs[k], info.buffered);
    if (info.senders_waiting || info.receivers_waiting)
        st_fail("select: %zu senders and %zu receivers still waiting",
                info.senders_waiting, info.receivers_waiting);
    uint64_t v;
    size_t n = 0;
    while ((rc = braid_recv(rd->rx[k], &v, 0)) == 0) {
        received(rd, v, "the drain");
        n++;
    }
    if (rc != -EAGAIN || n != info.buffered)
        st_fail("select: drained %zu of %zu buffered, then %s", n,
                info.buffered, braid_strerror(rc));
}

static void check_tokens(round *rd)
{
    for (unsigned a = 0; a < rd->nact; a++)
        for (uint64_t s = 0; s < MAXSENDS; s++) {
            bool got = st_bitmap_get(&rd->got, a * (uint64_t)MAXSENDS + s);
            if (got == (s < rd->nsent[a])) continue;
            if (!got) st_count(C_LOST, 1);
            st_fail("select: actor %u token %llu %s", a, (unsigned long long)s,
                    got ? "received but its send did not win" : "lost");
            return;
        }
}

/* Two always-ready channels, a NULL case and a duplicate: neither starves. */
static void fairness(void)
{
    braid_tx *tx[2];
    braid_rx *rx[2];
    unsigned wins[2] = { 0, 0 }, n = 600;
    for (int k = 0; k < 2; k++) {
        if (braid_chan_open(&tx[k], &rx[k], sizeof(uint64_t), 1000) != 0) {
            st_fail("select: braid_chan_open failed");
            return;
        }
        for (uint64_t v = 0; v < n; v++)
            if (braid_send(tx[k], &v, 0) != 0) st_fail("select: fill failed");
    }
    uint64_t buf;
    braid_case cs[4] = {
        { BRAID_RECV, rx[0], &buf, 0 }, { BRAID_RECV, NULL, &buf, 0 },
        { BRAID_RECV, rx[1], &buf, 0 }, { BRAID_RECV, rx[1], &buf, 0 },
    };
    for (unsigned i = 0; i < n; i++) {
        int rc = braid_select(cs, 4, 0);
        if (rc < 0 || rc == 1) {
            st_fail("select: a ready select returned %d", rc);
            break;
        }
        wins[rc != 0]++;
    }
    if (wins[0] < n * 15 / 100 || wins[1] < n * 15 / 100)
        st_fail("select: unfair choice between ready cases: %u vs %u",
                wins[0], wins[1]);
    for (int k = 0; k < 2; k++) {
        braid_tx_close(tx[k]);
        braid_rx_close(rx[k]);
    }
}

/* n = 0, all-NULL cases and bad input. */
static void degenerate(st_rng *r)
{
    braid_case cs[2] = { { BRAID_SEND, NULL, NULL, 0 }, { BRAID_RECV, NULL, NULL, 0 } };
    size_t n = st_below(r, 3);
    int rc = braid_select(n ? cs : NULL, n, 0);
    if (rc != -EAGAIN) st_fail("select: empty select, past deadline: %d", rc);
    int64_t dl = braid_after((int64_t)st_range(r, 10, 300) * ST_US);
    rc = braid_select(n ? cs : NULL, n, dl);
    int64_t now = braid_now();
    /* -EAGAIN is right too if the deadline had passed by the time the call
       looked at it (a preempted thread, valgrind): only waking early or
       another code is wrong. */
    if ((rc != -ETIMEDOUT && rc != -EAGAIN) || now < dl)
        st_fail("select: empty select returned %d, %lld ns after its deadline",
                rc, (long long)(now - dl));
    else st_lateness(now - dl);
    if (braid_select(NULL, 1, 0) != -EINVAL) st_fail("select: NULL cases accepted");
    cs[0].op = 7;
    cs[0].chan = (void *)cs;         /* never looked at: the op is bad */
    if (braid_select(cs, 1, 0) != -EINVAL) st_fail("select: bad op accepted");
}

static void round_once(st_rng *r)
{
    round *rd = calloc(1, sizeof *rd);
    if (!rd) { st_fail("select: out of memory"); return; }
    rd->nch = (unsigned)st_range(r, 1, MAXCH);
    rd->nact = (unsigned)st_range(r, 2, 8);
    for (unsigned k = 0; k < rd->nch; k++)
        if (braid_chan_open(&rd->tx[k], &rd->rx[k], sizeof(uint64_t),
                            capacities[st_below(r, 4)]) != 0) {
            st_fail("select: braid_chan_open failed");
            return;
        }
    if (st_bitmap_init(&rd->got, rd->nact * (size_t)MAXSENDS) < 0) {
        st_fail("select: out of memory");
        return;
    }
    rd->end = braid_after((int64_t)st_range(r, 5, 60) * ST_MS);
    for (unsigned i = 0; i < rd->nact; i++) {
        actor *a = malloc(sizeof *a);
        *a = (actor){ rd, i, st_rng_derive(st_next(r), i) };
        braid_wg_add(&rd->wg, 1);
        if (braid_go(actor_main, a) != 0) {
            st_fail("select: braid_go failed");
            braid_wg_done(&rd->wg);
        }
        st_count(C_SPAWNED, 1);
    }
    if (braid_wg_wait(&rd->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("select: actors did not stop");
        return;
    }
    for (unsigned k = 0; k < rd->nch; k++) drain(rd, k);
    check_tokens(rd);
    for (unsigned k = 0; k < rd->nch; k++) {
        braid_tx_close(rd->tx[k]);
        braid_rx_close(rd->rx[k]);
    }
    st_bitmap_free(&rd->got);
    free(rd);
    st_count(C_ROUNDS, 1);
}

void st_select_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0x5e1e);
    unsigned n = 0;
    do {
        if (n++ % 8 == 0) fairness();
        degenerate(&r);
        round_once(&r);
    } while (!st_over());
}
