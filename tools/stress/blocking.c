/*
 * blocking.c - latency while calls block.
 *
 * Each round, one coroutine is stuck 100 ms in braid_blocking(nanosleep)
 * and another 100 ms in a raw nanosleep on its worker thread, while ticker
 * coroutines sleep 0.2-2 ms at a time, busy coroutines burn CPU between
 * yields, and a crowd of coroutines each sleeps once for up to 20 ms.
 *
 * Invariants: no sleep wakes before its deadline; braid_blocking returns
 * 0 with fn's result after at least 100 ms; every ticker wake-up is within
 * 1 s of its deadline (a generous bound: CI boxes are noisy; the observed
 * maximum is reported, and the raw nanosleep alone may delay a ticker
 * queued on its worker by up to 100 ms).
 *
 * Yield fairness: first (when the slice allows) and every eighth round,
 * workers + 1 coroutines spin 50 us, poke a receiver through a channel
 * (which readies it on the poker's worker) and braid_yield, for 1.5 s.
 * braid_yield must let the receiver run however the yielders keep the run
 * queues busy: no gap between two receipts over the 1 s bound, and at
 * least 15 receipts (a fair scheduler gives thousands).
 */
#include "stress.h"

#include <stdlib.h>
#include <time.h>

#define BOUND_NS ST_SEC

typedef struct round {
    int64_t end;
    _Atomic int64_t max_late;
    braid_wg wg;
} round;

typedef struct actor { round *rd; st_rng rng; } actor;

static void note_late(round *rd, int64_t late)
{
    int64_t m = atomic_load(&rd->max_late);
    while (late > m && !atomic_compare_exchange_weak(&rd->max_late, &m, late))
        ;
}

static void ticker(void *arg)
{
    actor *a = arg;
    while (braid_now() < a->rd->end) {
        int64_t dl = braid_after((int64_t)st_range(&a->rng, 200 * ST_US, 2 * ST_MS));
        int rc = braid_sleep_until(dl);
        int64_t now = braid_now();
        if (rc != 0) st_fail("blocking: braid_sleep_until %s", braid_strerror(rc));
        if (now < dl) st_fail("blocking: a ticker woke %lld ns early", (long long)(dl - now));
        st_lateness(now - dl);
        note_late(a->rd, now - dl);
        st_count(C_OPS, 1);
    }
    st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void *sleep_100ms(void *arg)
{
    struct timespec ts = { 0, 100 * 1000 * 1000 };
    while (nanosleep(&ts, &ts) != 0)
        ;
    return arg;
}

static void pool_blocker(void *arg)
{
    actor *a = arg;
    void *res = NULL;
    int64_t t0 = braid_now();
    int rc = braid_blocking(sleep_100ms, a, &res);
    int64_t took = braid_now() - t0;
    if (rc != 0 || res != a || took < 100 * ST_MS)
        st_fail("blocking: braid_blocking gave %s, result %p (want %p), after %lld ms",
                braid_strerror(rc), res, (void *)a, (long long)(took / ST_MS));
    st_count(C_OPS, 1);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void raw_blocker(void *arg)
{
    actor *a = arg;
    sleep_100ms(NULL);              /* holds its worker thread */
    st_count(C_OPS, 1);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void busy(void *arg)
{
    actor *a = arg;
    volatile uint64_t x = 0;
    while (braid_now() < a->rd->end) {
        int64_t until = braid_after(50 * ST_US);
        while (braid_now() < until) x++;
        braid_yield();
    }
    st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void sleeper(void *arg)
{
    actor *a = arg;
    if (st_sleep_checked(&a->rng, 20 * ST_MS) != 0) st_fail("blocking: sleep failed");
    st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void go(round *rd, void (*fn)(void *), st_rng *r)
{
    actor *a = malloc(sizeof *a);
    *a = (actor){ rd, st_rng_derive(st_next(r), 3) };
    braid_wg_add(&rd->wg, 1);
    if (braid_go(fn, a) != 0) {
        st_fail("blocking: braid_go failed");
        braid_wg_done(&rd->wg);
    }
    st_count(C_SPAWNED, 1);
}

static void round_once(st_prof *p, st_rng *r)
{
    round *rd = calloc(1, sizeof *rd);
    rd->end = braid_after((int64_t)st_range(r, 150, 400) * ST_MS);
    for (unsigned i = 0, n = (unsigned)st_range(r, 4, 16); i < n; i++) go(rd, ticker, r);
    for (unsigned i = 0, n = (unsigned)st_range(r, 0, 2); i < n; i++) go(rd, busy, r);
    go(rd, pool_blocker, r);
    go(rd, raw_blocker, r);
    for (unsigned i = 0, n = (unsigned)st_range(r, 100, 1000); i < n; i++) go(rd, sleeper, r);
    if (braid_wg_wait(&rd->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("blocking: round did not finish");
        return;
    }
    if (rd->max_late > p->max_latency) p->max_latency = rd->max_late;
    if (rd->max_late > BOUND_NS)
        st_fail("blocking: a ticker woke %.1f ms late (bound %lld ms)",
                (double)rd->max_late / 1e6, (long long)(BOUND_NS / ST_MS));
    free(rd);
    st_count(C_ROUNDS, 1);
}

/* ---- yield fairness ---------------------------------------------------------------- */

typedef struct fair {
    braid_tx *tx;
    braid_rx *rx;
    int64_t end, max_gap;
    unsigned got;
    braid_wg wg;
} fair;

static void poker(void *arg)
{
    fair *f = arg;
    char x = 0;
    volatile uint64_t spin = 0;
    while (braid_now() < f->end) {
        int64_t until = braid_after(50 * ST_US);
        while (braid_now() < until) spin++;
        braid_send(f->tx, &x, 0);           /* -EAGAIN when full: fine */
        braid_yield();
    }
    st_count(C_COMPLETED, 1);
    braid_wg_done(&f->wg);
}

static void poked(void *arg)
{
    fair *f = arg;
    char x;
    int64_t last = braid_now();
    while (braid_recv(f->rx, &x, f->end) == 0) {
        int64_t now = braid_now();
        if (now - last > f->max_gap) f->max_gap = now - last;
        last = now;
        f->got++;
    }
    st_count(C_COMPLETED, 1);
    braid_wg_done(&f->wg);
}

static void fairness_round(st_prof *p)
{
    fair *f = calloc(1, sizeof *f);
    braid_stats s;
    braid_stats_get(&s);
    unsigned n = (unsigned)s.workers + 1;
    if (!f || braid_chan_open(&f->tx, &f->rx, 1, 1) != 0) {
        st_fail("blocking: setup failed");
        return;
    }
    f->end = braid_after(1500 * ST_MS);
    braid_wg_add(&f->wg, n + 1);
    if (braid_go(poked, f) != 0) st_fail("blocking: braid_go failed");
    for (unsigned i = 0; i < n; i++)
        if (braid_go(poker, f) != 0) st_fail("blocking: braid_go failed");
    st_count(C_SPAWNED, n + 1);
    if (braid_wg_wait(&f->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("blocking: yield-fairness round did not finish");
        return;
    }
    st_count(C_OPS, f->got);
    if (f->max_gap > p->max_latency) p->max_latency = f->max_gap;
    if (f->max_gap > BOUND_NS || f->got < 15)
        st_fail("blocking: a coroutine readied by %u coroutines that spin and "
                "braid_yield ran %u times in 1.5 s, longest wait %.1f ms (starved)",
                n, f->got, (double)f->max_gap / 1e6);
    braid_tx_close(f->tx);
    braid_rx_close(f->rx);
    free(f);
}

void st_blocking_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0xb10c);
    unsigned n = 0;
    do {
        if (n++ % 8 == 0 && braid_now() + 1600 * ST_MS < p->end) fairness_round(p);
        else round_once(p, &r);
    } while (!st_over());
}
