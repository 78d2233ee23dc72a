/*
 * cancel.c - deadlines and cancellation racing hand-offs.
 *
 * Joinable senders and receivers move tokens over one channel (capacity
 * 0, 1 or 7) with random deadlines, half of them through braid_select,
 * while the round's coroutine cancels random ones and starts replacements.
 * A send that returned 0 is marked sent; a received token is marked got.
 *
 * Invariants per round (after cancelling and joining everyone and draining
 * the buffer): got = sent for every token, nothing received twice (a
 * cancelled or timed-out operation did not happen; a successful one
 * happened exactly once); -ECANCELED only for a coroutine whose
 * cancellation was requested, and then braid_cancelled() = 1; -ETIMEDOUT
 * never before the deadline; cancelled tasks finish and join.
 *
 * Nurseries: children sleeping past the nursery's deadline or its cancel
 * are cancelled and awaited; close returns 0 or a child's -ECANCELED and
 * only after every child returned.
 */
#include "stress.h"

#include <stdlib.h>

#define MAXT 96
#define MAXSEQ 4096

typedef struct round round;

typedef struct task {
    round *rd;
    braid_task *t;
    unsigned id;
    bool sender;
    _Atomic int cancel_req;
    st_rng rng;
} task;

struct round {
    braid_tx *tx;
    braid_rx *rx;
    task tasks[MAXT];
    unsigned n;
    _Atomic int stop;
    st_bitmap sent, got;
};

/* Classify an error; returns 1 to retry, 0 to stop. */
static int on_error(task *k, int rc, int64_t dl, const char *op)
{
    if (rc == -EAGAIN) return 1;
    if (rc == -ETIMEDOUT) {
        int64_t now = braid_now();
        if (dl < 0 || now < dl)
            st_fail("cancel: %s -ETIMEDOUT %lld ns early", op, (long long)(dl - now));
        st_count(C_TIMEOUTS, 1);
        return 1;
    }
    if (rc == -ECANCELED) {
        if (!atomic_load(&k->cancel_req) || !braid_cancelled())
            st_fail("cancel: %s -ECANCELED without a cancel (braid_cancelled %d)",
                    op, braid_cancelled());
        return 0;
    }
    st_fail("cancel: %s returned %s", op, braid_strerror(rc));
    return 0;
}

static int do_op(task *k, uint64_t *v, int64_t dl)
{
    round *rd = k->rd;
    if (st_below(&k->rng, 2)) {
        return k->sender ? braid_send(rd->tx, v, dl) : braid_recv(rd->rx, v, dl);
    }
    braid_case cs[2] = {
        { k->sender ? BRAID_SEND : BRAID_RECV,
          k->sender ? (void *)rd->tx : (void *)rd->rx, v, 0 },
        { BRAID_RECV, NULL, NULL, 0 },
    };
    int rc = braid_select(cs, 1 + st_below(&k->rng, 2), dl);
    if (rc == 0) return cs[0].result;
    if (rc > 0) st_fail("cancel: select chose the NULL case");
    return rc;
}

static void got(round *rd, uint64_t tok)
{
    if (tok >= MAXT * (uint64_t)MAXSEQ) {
        st_fail("cancel: corrupt token %llx", (unsigned long long)tok);
        return;
    }
    if (st_bitmap_set(&rd->got, tok)) {
        st_count(C_DUPLICATED, 1);
        st_fail("cancel: token %llx received twice", (unsigned long long)tok);
    }
    st_count(C_RECEIVED, 1);
}

static void *task_main(void *arg)
{
    task *k = arg;
    round *rd = k->rd;
    uint64_t seq = 0;
    while (!atomic_load(&rd->stop) && seq < MAXSEQ) {
        uint64_t v = k->id * (uint64_t)MAXSEQ + seq;
        int64_t dl = st_random_deadline(&k->rng);
        int rc = do_op(k, &v, dl);
        st_count(C_OPS, 1);
        if (rc == 0 && k->sender) {
            st_bitmap_set(&rd->sent, v);
            st_count(C_SENT, 1);
            seq++;
        } else if (rc == 0) {
            got(rd, v);
        } else if (!on_error(k, rc, dl, k->sender ? "send" : "recv")) {
            break;
        }
        if (braid_cancelled() && st_below(&k->rng, 4) == 0) break;
    }
    st_count(braid_cancelled() ? C_CANCELLED : C_COMPLETED, 1);
    return NULL;
}

static void start(round *rd, bool sender, st_rng *r)
{
    if (rd->n == MAXT) return;
    task *k = &rd->tasks[rd->n];
    k->rd = rd;
    k->id = rd->n;
    k->sender = sender;
    k->rng = st_rng_derive(st_next(r), rd->n);
    int rc = braid_spawn(&k->t, task_main, k, NULL);
    if (rc != 0) {
        st_fail("cancel: braid_spawn %s", braid_strerror(rc));
        return;
    }
    rd->n++;
    st_count(C_SPAWNED, 1);
}

static void cancel_task(task *k)
{
    atomic_store(&k->cancel_req, 1);
    int rc = braid_cancel(k->t);
    if (rc != 0) st_fail("cancel: braid_cancel %s", braid_strerror(rc));
}

static void finish(round *rd)
{
    atomic_store(&rd->stop, 1);
    for (unsigned i = 0; i < rd->n; i++) cancel_task(&rd->tasks[i]);
    for (unsigned i = 0; i < rd->n; i++)
        if (st_join(rd->tasks[i].t, NULL, "cancel: a cancelled task") != 0) return;
    uint64_t v;
    int rc;
    while ((rc = braid_recv(rd->rx, &v, 0)) == 0) got(rd, v);
    if (rc != -EAGAIN) st_fail("cancel: drain ended with %s", braid_strerror(rc));
    for (size_t i = 0; i < MAXT * (size_t)MAXSEQ; i++) {
        bool s = st_bitmap_get(&rd->sent, i), g = st_bitmap_get(&rd->got, i);
        if (s == g) continue;
        if (s) st_count(C_LOST, 1);
        st_fail("cancel: token %zx %s", i, s ? "sent but never received"
                : "received but its send did not succeed");
        break;
    }
}

static void round_once(st_rng *r)
{
    static const size_t caps[] = { 0, 0, 1, 7 };
    round *rd = calloc(1, sizeof *rd);
    if (!rd || st_bitmap_init(&rd->sent, MAXT * (size_t)MAXSEQ) < 0 ||
        st_bitmap_init(&rd->got, MAXT * (size_t)MAXSEQ) < 0 ||
        braid_chan_open(&rd->tx, &rd->rx, sizeof(uint64_t), caps[st_below(r, 4)]) != 0) {
        st_fail("cancel: setup failed");
        return;
    }
    for (unsigned i = 0, n = (unsigned)st_range(r, 2, 12); i < n; i++)
        start(rd, i % 2 == 0, r);
    int64_t end = braid_after((int64_t)st_range(r, 5, 60) * ST_MS);
    while (braid_now() < end && !st_over()) {
        st_sleep_checked(r, 300 * ST_US);
        task *k = &rd->tasks[st_below(r, rd->n)];
        if (atomic_load(&k->cancel_req)) continue;
        cancel_task(k);
        start(rd, k->sender, r);
    }
    finish(rd);
    if (atomic_load(&st_current->failures)) return;    /* tasks may run: leak rd */
    braid_tx_close(rd->tx);
    braid_rx_close(rd->rx);
    st_bitmap_free(&rd->sent);
    st_bitmap_free(&rd->got);
    free(rd);
    st_count(C_ROUNDS, 1);
}

/* ---- nurseries ----------------------------------------------------------------- */

typedef struct nkid { _Atomic unsigned *exited; int64_t sleep; } nkid;

static int nursery_child(void *arg)
{
    nkid *k = arg;
    int rc = braid_sleep(k->sleep);
    st_count(rc == -ECANCELED ? C_CANCELLED : C_COMPLETED, 1);
    atomic_fetch_add(k->exited, 1);
    return rc;
}

static void nursery_round(st_rng *r)
{
    braid_nursery *n;
    _Atomic unsigned exited = 0;
    nkid kids[16];
    unsigned nk = (unsigned)st_range(r, 1, 16);
    int rc = braid_nursery_open(&n, braid_after((int64_t)st_below(r, 2 * ST_MS)));
    if (rc != 0) {
        st_fail("cancel: braid_nursery_open %s", braid_strerror(rc));
        return;
    }
    unsigned started = 0;
    for (unsigned i = 0; i < nk; i++) {
        kids[i] = (nkid){ &exited, st_below(r, 2) ? 0 : 3600 * ST_SEC };
        rc = braid_nursery_go(n, nursery_child, &kids[i]);
        if (rc == 0) started++, st_count(C_SPAWNED, 1);
        else if (rc != -ECANCELED)
            st_fail("cancel: braid_nursery_go %s", braid_strerror(rc));
    }
    if (st_below(r, 2)) braid_nursery_cancel(n);
    rc = braid_nursery_close(n);
    if (rc != 0 && rc != -ECANCELED)
        st_fail("cancel: braid_nursery_close %s", braid_strerror(rc));
    if (atomic_load(&exited) != started)
        st_fail("cancel: nursery closed with %u of %u children finished",
                atomic_load(&exited), started);
    st_count(C_OPS, 1);
}

void st_cancel_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0xca9ce1);
    do {
        round_once(&r);
        if (!st_over()) nursery_round(&r);
    } while (!st_over());
}
