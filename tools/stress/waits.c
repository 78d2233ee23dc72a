/*
 * waits.c - the waiting half of the sync profile: wait groups, semaphores
 * and once (sync.c runs these rounds among its own).
 *
 * Invariants:
 *  - wait group: braid_wg_wait returns only after every done (also with
 *    short deadlines retried); several waiters all wake; a done or add
 *    below zero is refused with -EINVAL and leaves the counter at zero;
 *  - semaphore with k units: never more than k holders, and exactly k
 *    units left at the end;
 *  - once: the function runs exactly once, and every caller returns after
 *    it completed.
 */
#include "stress.h"

#include <stdlib.h>

/* ---- wait groups ----------------------------------------------------------------- */

typedef struct wgr {
    braid_wg wg, waiters;
    _Atomic unsigned done;
    unsigned n;
} wgr;

typedef struct wgkid { wgr *g; st_rng rng; } wgkid;

static void wg_child(void *arg)
{
    wgkid *k = arg;
    if (st_below(&k->rng, 2)) st_sleep_checked(&k->rng, 300 * ST_US);
    atomic_fetch_add(&k->g->done, 1);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&k->g->wg);
    free(k);
}

static void wg_wait_all(wgr *g, st_rng *r)
{
    int rc;
    for (;;) {
        int64_t dl = st_below(r, 2) ? BRAID_FOREVER
                     : braid_after((int64_t)st_below(r, 200 * ST_US));
        rc = braid_wg_wait(&g->wg, dl);
        if (rc != -ETIMEDOUT && rc != -EAGAIN) break;
        st_count(C_TIMEOUTS, 1);
    }
    if (rc != 0) st_fail("sync: braid_wg_wait %s", braid_strerror(rc));
    else if (g->done != g->n)
        st_fail("sync: braid_wg_wait returned after %u of %u dones", g->done, g->n);
}

static void wg_waiter(void *arg)
{
    wgkid *k = arg;
    wg_wait_all(k->g, &k->rng);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&k->g->waiters);
    free(k);
}

static void *go_kid(wgr *g, st_rng *r, void (*fn)(void *))
{
    wgkid *k = malloc(sizeof *k);
    *k = (wgkid){ g, st_rng_derive(st_next(r), 7) };
    if (braid_go(fn, k) != 0) st_fail("sync: braid_go failed");
    st_count(C_SPAWNED, 1);
    return k;
}

void st_wg_round(st_rng *r)
{
    wgr *g = calloc(1, sizeof *g);
    g->n = (unsigned)st_range(r, 1, 200);
    unsigned nw = (unsigned)st_below(r, 4);
    bool one_by_one = st_below(r, 2);
    /* One by one, a guard unit keeps the counter above zero until every
       child was added: a wait that found it at zero could return early. */
    braid_wg_add(&g->wg, one_by_one ? 1 : g->n);
    braid_wg_add(&g->waiters, nw);
    for (unsigned i = 0; i < nw; i++) go_kid(g, r, wg_waiter);
    for (unsigned i = 0; i < g->n; i++) {
        if (one_by_one) braid_wg_add(&g->wg, 1);
        go_kid(g, r, wg_child);
    }
    if (one_by_one) braid_wg_done(&g->wg);
    wg_wait_all(g, r);
    if (braid_wg_wait(&g->waiters, braid_after(ST_PATIENCE)) != 0) {
        st_fail("sync: wait-group waiters did not all wake");
        return;
    }
    if (braid_wg_done(&g->wg) != -EINVAL || braid_wg_add(&g->wg, -3) != -EINVAL ||
        braid_wg_wait(&g->wg, 0) != 0)
        st_fail("sync: a wait group below zero was not refused");
    free(g);
}

/* ---- semaphores ---------------------------------------------------------------------- */

typedef struct semr { braid_sem s; _Atomic unsigned holders; unsigned k, iters; braid_wg wg; } semr;
typedef struct semw { semr *g; st_rng rng; } semw;

static void sem_worker(void *arg)
{
    semw *w = arg;
    semr *g = w->g;
    for (unsigned i = 0; i < g->iters; i++) {
        int64_t dl = st_random_deadline(&w->rng);
        int rc = braid_sem_acquire(&g->s, dl);
        st_count(C_OPS, 1);
        if (rc == -EAGAIN || rc == -ETIMEDOUT) {
            if (rc == -ETIMEDOUT && braid_now() < dl) st_fail("sync: sem timed out early");
            continue;
        }
        if (rc != 0) {
            st_fail("sync: braid_sem_acquire %s", braid_strerror(rc));
            break;
        }
        if (atomic_fetch_add(&g->holders, 1) >= g->k)
            st_fail("sync: more than %u semaphore holders", g->k);
        if (st_below(&w->rng, 4) == 0) braid_yield();
        atomic_fetch_sub(&g->holders, 1);
        if ((rc = braid_sem_release(&g->s)) != 0)
            st_fail("sync: braid_sem_release %s", braid_strerror(rc));
    }
    st_count(C_COMPLETED, 1);
    braid_wg_done(&g->wg);
    free(w);
}

void st_sem_round(st_rng *r)
{
    semr *g = calloc(1, sizeof *g);
    g->k = (unsigned)st_range(r, 1, 4);
    g->iters = (unsigned)st_range(r, 10, 500);
    braid_sem_init(&g->s, g->k);
    unsigned n = (unsigned)st_range(r, 2, 32);
    braid_wg_add(&g->wg, n);
    for (unsigned i = 0; i < n; i++) {
        semw *w = malloc(sizeof *w);
        *w = (semw){ g, st_rng_derive(st_next(r), i) };
        if (braid_go(sem_worker, w) != 0) st_fail("sync: braid_go failed");
        st_count(C_SPAWNED, 1);
    }
    if (braid_wg_wait(&g->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("sync: semaphore round did not finish");
        return;
    }
    for (unsigned i = 0; i < g->k; i++)
        if (braid_sem_acquire(&g->s, 0) != 0) st_fail("sync: a semaphore unit was lost");
    if (braid_sem_acquire(&g->s, 0) != -EAGAIN) st_fail("sync: a semaphore unit appeared");
    free(g);
}

/* ---- once ----------------------------------------------------------------------------- */

static _Atomic unsigned once_calls, once_done;

static void once_fn(void)
{
    atomic_fetch_add(&once_calls, 1);
    braid_sleep(50 * ST_US);         /* the others must wait meanwhile */
    atomic_store(&once_done, 1);
}

typedef struct oncer { braid_once *o; braid_wg *wg; } oncer;

static void once_caller(void *arg)
{
    oncer *c = arg;
    int rc = braid_once_do(c->o, once_fn);
    if (rc != 0 || !atomic_load(&once_done))
        st_fail("sync: braid_once_do returned %d before the function completed", rc);
    st_count(C_COMPLETED, 1);
    braid_wg_done(c->wg);
}

void st_once_round(st_rng *r)
{
    braid_once o = BRAID_ONCE_INIT;
    braid_wg wg = BRAID_WG_INIT;
    oncer c = { &o, &wg };
    unsigned n = (unsigned)st_range(r, 2, 16);
    atomic_store(&once_calls, 0);
    atomic_store(&once_done, 0);
    braid_wg_add(&wg, n);
    for (unsigned i = 0; i < n; i++)
        if (braid_go(once_caller, &c) != 0) st_fail("sync: braid_go failed");
        else st_count(C_SPAWNED, 1);
    if (braid_wg_wait(&wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("sync: once callers did not finish");
        return;
    }
    if (once_calls != 1) st_fail("sync: once function ran %u times", once_calls);
}
