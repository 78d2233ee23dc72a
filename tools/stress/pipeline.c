/*
 * pipeline.c - producers -> [relays ->] consumers over channels of
 * capacity 0, 1, 7 and unbounded (the first stage cycles through them;
 * the relay stage draws one at random).
 *
 * Each producer sends (producer, sequence, hash) for sequence 0..N-1 with
 * random deadlines, resending after a timeout (a timed-out send did not
 * happen), then closes its send handle; relays forward until EPIPE;
 * consumers receive until EPIPE and set the message's bit in a
 * per-producer bitmap.
 *
 * Invariants per round: every message intact (hash), lost = 0 and
 * duplicated = 0 (bitmap), received = sent, every consumer reached EPIPE,
 * and sequences strictly increase per producer as seen by each consumer
 * whenever at most one relay sits on the path (FIFO per sender; several
 * relays may legitimately reorder).
 */
#include "stress.h"

#include <stdlib.h>
#include <string.h>

static const size_t capacities[] = { 0, 1, 7, BRAID_UNBOUNDED };

typedef struct round {
    uint64_t salt;
    unsigned nprod, ncons, nrelay;
    uint64_t per_prod;
    bool fifo;
    st_bitmap seen;
    braid_wg wg;
    _Atomic uint64_t sent, received, dup;
} round;

typedef struct actor {
    round *rd;
    braid_tx *tx;
    braid_rx *rx;
    uint32_t id;
    st_rng rng;
} actor;

static int64_t deadline(st_rng *r)
{
    return st_below(r, 4) ? BRAID_FOREVER : st_random_deadline(r);
}

static bool timed_out(int rc)
{
    if (rc != -EAGAIN && rc != -ETIMEDOUT) return false;
    st_count(C_TIMEOUTS, 1);
    return true;
}

static void producer(void *arg)
{
    actor *a = arg;
    round *rd = a->rd;
    for (uint64_t seq = 0; seq < rd->per_prod; seq++) {
        st_msg m;
        st_msg_make(&m, rd->salt, a->id, seq);
        int rc;
        while (timed_out(rc = braid_send(a->tx, &m, deadline(&a->rng))))
            ;
        if (rc != 0) {
            st_fail("pipeline producer %u: braid_send %s", a->id, braid_strerror(rc));
            break;
        }
        atomic_fetch_add(&rd->sent, 1);
        st_count(C_SENT, 1);
        if (st_below(&a->rng, 64) == 0) braid_yield();
    }
    braid_tx_close(a->tx);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&rd->wg);
    free(a);
}

static void relay(void *arg)
{
    actor *a = arg;
    round *rd = a->rd;
    st_msg m;
    int rc;
    while ((rc = braid_recv(a->rx, &m, BRAID_FOREVER)) == 0) {
        if (st_msg_check(&m, rd->salt, rd->nprod, rd->per_prod, "relay") < 0)
            break;
        if ((rc = braid_send(a->tx, &m, BRAID_FOREVER)) != 0) {
            st_fail("pipeline relay: braid_send %s", braid_strerror(rc));
            break;
        }
        st_count(C_OPS, 1);
    }
    if (rc != -EPIPE && rc != 0)
        st_fail("pipeline relay: braid_recv %s", braid_strerror(rc));
    braid_rx_close(a->rx);
    braid_tx_close(a->tx);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&rd->wg);
    free(a);
}

static void consume_one(actor *a, const st_msg *m, int64_t *last)
{
    round *rd = a->rd;
    if (st_msg_check(m, rd->salt, rd->nprod, rd->per_prod, "consumer") < 0)
        return;
    if (st_bitmap_set(&rd->seen, m->prod * rd->per_prod + m->seq)) {
        atomic_fetch_add(&rd->dup, 1);
        st_fail("pipeline: producer %u seq %llu received twice", m->prod,
                (unsigned long long)m->seq);
    }
    if (rd->fifo && (int64_t)m->seq <= last[m->prod])
        st_fail("pipeline: FIFO broken for producer %u: seq %llu after %lld",
                m->prod, (unsigned long long)m->seq, (long long)last[m->prod]);
    last[m->prod] = (int64_t)m->seq;
    atomic_fetch_add(&rd->received, 1);
    st_count(C_RECEIVED, 1);
}

static void consumer(void *arg)
{
    actor *a = arg;
    round *rd = a->rd;
    int64_t *last = malloc(rd->nprod * sizeof *last);
    for (unsigned i = 0; last && i < rd->nprod; i++) last[i] = -1;
    st_msg m;
    int rc = 0;
    while (last) {
        rc = braid_recv(a->rx, &m, deadline(&a->rng));
        if (rc == 0) consume_one(a, &m, last);
        else if (!timed_out(rc)) break;
    }
    if (!last) st_fail("pipeline: out of memory");
    else if (rc != -EPIPE)
        st_fail("pipeline consumer: braid_recv %s", braid_strerror(rc));
    free(last);
    braid_rx_close(a->rx);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&rd->wg);
    free(a);
}

static void start(round *rd, void (*fn)(void *), braid_tx *tx, braid_rx *rx,
                  uint32_t id, st_rng *r)
{
    actor *a = malloc(sizeof *a);
    int rc = a ? 0 : -ENOMEM;
    if (a) *a = (actor){ rd, NULL, NULL, id, st_rng_derive(st_next(r), id) };
    if (rc == 0 && tx) rc = braid_tx_clone(tx, &a->tx);
    if (rc == 0 && rx) rc = braid_rx_clone(rx, &a->rx);
    braid_wg_add(&rd->wg, 1);
    if (rc == 0) rc = braid_go(fn, a);
    if (rc == 0) {
        st_count(C_SPAWNED, 1);
        return;
    }
    st_fail("pipeline: starting an actor: %s", braid_strerror(rc));
    braid_wg_done(&rd->wg);
}

/* Producers on stage A, relays from A to B, consumers on the last stage. */
static int build(round *rd, size_t cap, st_rng *r)
{
    braid_tx *atx, *btx;
    braid_rx *arx, *brx;
    int rc = braid_chan_open(&atx, &arx, sizeof(st_msg), cap);
    if (rc != 0) return rc;
    for (unsigned i = 0; i < rd->nprod; i++) start(rd, producer, atx, NULL, i, r);
    braid_tx_close(atx);
    if (rd->nrelay) {
        rc = braid_chan_open(&btx, &brx, sizeof(st_msg),
                             capacities[st_below(r, 4)]);
        if (rc != 0) return rc;
        for (unsigned i = 0; i < rd->nrelay; i++) start(rd, relay, btx, arx, i, r);
        braid_tx_close(btx);
        braid_rx_close(arx);
        arx = brx;
    }
    for (unsigned i = 0; i < rd->ncons; i++) start(rd, consumer, NULL, arx, i, r);
    braid_rx_close(arx);
    return 0;
}

static void check(round *rd)
{
    uint64_t total = rd->nprod * rd->per_prod;
    uint64_t got = st_bitmap_count(&rd->seen);
    if (got != total) {
        st_count(C_LOST, total - got);
        st_fail("pipeline: %llu of %llu messages lost",
                (unsigned long long)(total - got), (unsigned long long)total);
    }
    st_count(C_DUPLICATED, rd->dup);
    if (rd->sent != total || rd->received != total)
        st_fail("pipeline: sent %llu, received %llu, want %llu",
                (unsigned long long)rd->sent, (unsigned long long)rd->received,
                (unsigned long long)total);
}

static void round_once(st_rng *r, unsigned n)
{
    round *rd = calloc(1, sizeof *rd);
    if (!rd) { st_fail("pipeline: out of memory"); return; }
    rd->salt = st_next(r);
    rd->nprod = (unsigned)st_range(r, 1, 8);
    rd->ncons = (unsigned)st_range(r, 1, 4);
    rd->nrelay = st_below(r, 2) ? 0 : (unsigned)st_range(r, 1, 4);
    rd->per_prod = st_range(r, 500, 20000) / rd->nprod;
    rd->fifo = rd->nrelay <= 1;
    if (st_bitmap_init(&rd->seen, rd->nprod * rd->per_prod) < 0) {
        st_fail("pipeline: out of memory");
        return;
    }
    int rc = build(rd, capacities[n % 4], r);
    if (rc != 0) {
        st_fail("pipeline: braid_chan_open %s", braid_strerror(rc));
        return;
    }
    rc = braid_wg_wait(&rd->wg, braid_after(ST_PATIENCE));
    if (rc != 0) {                  /* leave rd to the actors still running */
        st_fail("pipeline did not drain: braid_wg_wait %s", braid_strerror(rc));
        return;
    }
    check(rd);
    st_bitmap_free(&rd->seen);
    free(rd);
    st_count(C_ROUNDS, 1);
}

void st_pipeline_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0x919e);
    unsigned n = 0;
    do round_once(&r, n++);
    while (!st_over());
}
