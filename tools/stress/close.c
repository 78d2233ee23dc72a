/*
 * close.c - close storms.
 *
 * Send-side storm: senders (each with its own cloned send handle) send a
 * random number of tokens and close at random moments while a churn
 * coroutine clones and closes extra send handles.  Every receiver must
 * reach end-of-channel (-EPIPE) and received = sent, each token once.
 *
 * Receive-side storm (finite capacity): receivers close their handles after
 * a random number of tokens; senders send until -EPIPE, which every one of
 * them must get.  No token is received twice or without its send having
 * succeeded, and the tokens dropped with the buffer (sent - received) are
 * at most the capacity.
 *
 * Closing a handle a coroutine is blocked on: the blocked receive, send or
 * select returns -EBADF (the select with that case's index), the element
 * of a send so interrupted is never delivered, and the channel still works
 * through its other handles.
 */
#include "stress.h"

#include <stdlib.h>

#define MAXS 8
#define MAXR 6
#define PER_SENDER 4096               /* token space per sender */

typedef struct round {
    bool rx_storm;
    size_t cap;
    unsigned ns, nr;
    st_bitmap sent, got;
    _Atomic uint64_t nsent, nrecv, eof;
    braid_wg wg;
} round;

typedef struct actor {
    round *rd;
    braid_tx *tx;
    braid_rx *rx;
    unsigned id;
    st_rng rng;
} actor;

static void sender(void *arg)
{
    actor *a = arg;
    round *rd = a->rd;
    uint64_t quota = rd->rx_storm ? PER_SENDER : st_below(&a->rng, 2000);
    int rc = 0;
    for (uint64_t s = 0; s < quota; s++) {
        uint64_t tok = a->id * (uint64_t)PER_SENDER + s;
        if ((rc = braid_send(a->tx, &tok, BRAID_FOREVER)) != 0) break;
        st_bitmap_set(&rd->sent, tok);
        atomic_fetch_add(&rd->nsent, 1);
        st_count(C_SENT, 1);
        if (st_below(&a->rng, 32) == 0) braid_yield();
    }
    if (rd->rx_storm ? rc != -EPIPE : rc != 0)
        st_fail("close: sender %u ended with %s (receive storm: %d)", a->id,
                braid_strerror(rc), rd->rx_storm);
    braid_tx_close(a->tx);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&rd->wg);
    free(a);
}

static void receiver(void *arg)
{
    actor *a = arg;
    round *rd = a->rd;
    uint64_t tok, quota = rd->rx_storm ? st_below(&a->rng, 500) : UINT64_MAX;
    int rc = 0;
    for (uint64_t n = 0; n < quota; n++) {
        if ((rc = braid_recv(a->rx, &tok, BRAID_FOREVER)) != 0) break;
        if (tok >= rd->ns * (uint64_t)PER_SENDER) {
            st_fail("close: corrupt token %llx", (unsigned long long)tok);
            break;
        }
        if (st_bitmap_set(&rd->got, tok)) {
            st_count(C_DUPLICATED, 1);
            st_fail("close: token %llx received twice", (unsigned long long)tok);
        }
        atomic_fetch_add(&rd->nrecv, 1);
        st_count(C_RECEIVED, 1);
    }
    if (rc == -EPIPE) atomic_fetch_add(&rd->eof, 1);
    else if (rc != 0) st_fail("close: receiver ended with %s", braid_strerror(rc));
    braid_rx_close(a->rx);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&rd->wg);
    free(a);
}

/* Clone and close send handles while the storm goes on. */
static void churn(void *arg)
{
    actor *a = arg;
    for (unsigned i = 0, n = (unsigned)st_below(&a->rng, 200); i < n; i++) {
        braid_tx *c;
        int rc = braid_tx_clone(a->tx, &c);
        if (rc != 0) {
            st_fail("close: braid_tx_clone %s", braid_strerror(rc));
            break;
        }
        if (st_below(&a->rng, 4) == 0) braid_yield();
        braid_tx_close(c);
        st_count(C_OPS, 1);
    }
    braid_tx_close(a->tx);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void start(round *rd, void (*fn)(void *), braid_tx *tx, braid_rx *rx,
                  unsigned id, st_rng *r)
{
    actor *a = malloc(sizeof *a);
    *a = (actor){ rd, NULL, NULL, id, st_rng_derive(st_next(r), id) };
    int rc = tx ? braid_tx_clone(tx, &a->tx) : braid_rx_clone(rx, &a->rx);
    braid_wg_add(&rd->wg, 1);
    if (rc == 0) rc = braid_go(fn, a);
    if (rc != 0) {
        st_fail("close: starting an actor: %s", braid_strerror(rc));
        braid_wg_done(&rd->wg);
        return;
    }
    st_count(C_SPAWNED, 1);
}

static void check(round *rd)
{
    uint64_t sent = rd->nsent, recv = rd->nrecv;
    if (!rd->rx_storm && rd->eof != rd->nr)
        st_fail("close: %llu of %u receivers reached EPIPE",
                (unsigned long long)rd->eof, rd->nr);
    for (size_t i = 0; i < rd->ns * (size_t)PER_SENDER; i++) {
        bool s = st_bitmap_get(&rd->sent, i), g = st_bitmap_get(&rd->got, i);
        if (g && !s) {
            st_fail("close: token %zx received but never sent", i);
            return;
        }
        if (s && !g && !rd->rx_storm) {
            st_count(C_LOST, 1);
            st_fail("close: token %zx sent but never received", i);
            return;
        }
    }
    if (!rd->rx_storm && sent != recv)
        st_fail("close: sent %llu, received %llu", (unsigned long long)sent,
                (unsigned long long)recv);
    if (rd->rx_storm && (recv > sent || sent - recv > rd->cap))
        st_fail("close: receive storm: sent %llu, received %llu, capacity %zu",
                (unsigned long long)sent, (unsigned long long)recv, rd->cap);
    if (rd->rx_storm && sent > recv) st_count(C_DROPPED, sent - recv);
}

static void storm(st_rng *r)
{
    static const size_t caps[] = { 0, 1, 7, 64, BRAID_UNBOUNDED };
    round *rd = calloc(1, sizeof *rd);
    rd->rx_storm = st_below(r, 2);
    rd->cap = caps[st_below(r, rd->rx_storm ? 4 : 5)];
    rd->ns = (unsigned)st_range(r, 1, MAXS);
    rd->nr = (unsigned)st_range(r, 1, MAXR);
    braid_tx *tx;
    braid_rx *rx;
    if (st_bitmap_init(&rd->sent, rd->ns * (size_t)PER_SENDER) < 0 ||
        st_bitmap_init(&rd->got, rd->ns * (size_t)PER_SENDER) < 0 ||
        braid_chan_open(&tx, &rx, sizeof(uint64_t), rd->cap) != 0) {
        st_fail("close: setup failed");
        return;
    }
    for (unsigned i = 0; i < rd->nr; i++) start(rd, receiver, NULL, rx, i, r);
    braid_rx_close(rx);
    for (unsigned i = 0; i < rd->ns; i++) start(rd, sender, tx, NULL, i, r);
    if (!rd->rx_storm) start(rd, churn, tx, NULL, 0, r);
    braid_tx_close(tx);
    if (braid_wg_wait(&rd->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("close: storm did not end (receive storm: %d)", rd->rx_storm);
        return;
    }
    check(rd);
    st_bitmap_free(&rd->sent);
    st_bitmap_free(&rd->got);
    free(rd);
}

/* ---- closing a handle under a blocked call ------------------------------------ */

typedef struct victim {
    int kind;                         /* 0 recv, 1 send, 2 select */
    braid_tx *tx;                     /* send: the handle to close */
    braid_rx *rx;                     /* recv, select: the handle to close */
    braid_rx *other;                  /* select: a second, idle channel */
    int rc, index;
    braid_wg wg;
} victim;

static void victim_main(void *arg)
{
    victim *v = arg;
    uint64_t x = 42;
    int64_t dl = braid_after(ST_PATIENCE);
    if (v->kind == 0) {
        v->rc = braid_recv(v->rx, &x, dl);
    } else if (v->kind == 1) {
        v->rc = braid_send(v->tx, &x, dl);
    } else {
        braid_case cs[2] = { { BRAID_RECV, v->other, &x, 0 },
                             { BRAID_RECV, v->rx, &x, 0 } };
        v->index = braid_select(cs, 2, dl);
        v->rc = v->index == 1 ? cs[1].result : v->index;
    }
    st_count(C_COMPLETED, 1);
    braid_wg_done(&v->wg);
}

/* Wait until the victim is blocked on the channel behind rx. */
static int wait_blocked(braid_rx *rx, int kind)
{
    int64_t until = braid_after(5 * ST_SEC);
    braid_chan_info in;
    while (braid_now() < until) {
        if (braid_chan_stats(rx, &in) != 0) return -1;
        if ((kind == 1 ? in.senders_waiting : in.receivers_waiting) == 1) return 0;
        braid_sleep(20 * ST_US);
    }
    return -1;
}

static void ebadf_check(victim *v, braid_tx *tx, braid_rx *rx)
{
    uint64_t x;
    if (v->rc != -EBADF || (v->kind == 2 && v->index != 1))
        st_fail("close: closing the handle under a blocked %s gave %s (index %d)",
                v->kind == 0 ? "recv" : v->kind == 1 ? "send" : "select",
                braid_strerror(v->rc), v->index);
    int rc = v->kind == 1 ? braid_recv(rx, &x, 0) : braid_send(tx, &x, 0);
    if (rc != -EAGAIN)
        st_fail("close: after -EBADF the channel answers %s, want -EAGAIN "
                "(kind %d)", braid_strerror(rc), v->kind);
    braid_tx_close(tx);
    if ((rc = braid_recv(rx, &x, 0)) != -EPIPE)
        st_fail("close: every send handle closed, recv gives %s",
                braid_strerror(rc));
    braid_rx_close(rx);
}

static void ebadf(st_rng *r)
{
    braid_tx *tx, *otx;
    braid_rx *rx, *orx;
    victim *v = calloc(1, sizeof *v);
    v->kind = (int)st_below(r, 3);
    v->index = -1;
    if (braid_chan_open(&tx, &rx, sizeof(uint64_t), 0) != 0 ||
        braid_chan_open(&otx, &orx, sizeof(uint64_t), 0) != 0 ||
        (v->kind == 1 ? braid_tx_clone(tx, &v->tx) : braid_rx_clone(rx, &v->rx)) != 0) {
        st_fail("close: setup failed");
        return;
    }
    v->other = orx;
    braid_wg_add(&v->wg, 1);
    if (braid_go(victim_main, v) != 0) st_fail("close: braid_go failed");
    st_count(C_SPAWNED, 1);
    if (wait_blocked(rx, v->kind) != 0) {
        st_fail("close: victim never blocked (kind %d)", v->kind);
        return;
    }
    if (v->kind == 1) braid_tx_close(v->tx);
    else braid_rx_close(v->rx);
    if (braid_wg_wait(&v->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("close: closing a handle did not wake its blocked user");
        return;
    }
    ebadf_check(v, tx, rx);
    braid_tx_close(otx);
    braid_rx_close(orx);
    free(v);
    st_count(C_OPS, 1);
}

void st_close_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0xc105e);
    do {
        storm(&r);
        if (!st_over()) ebadf(&r);
        st_count(C_ROUNDS, 1);
    } while (!st_over());
}
