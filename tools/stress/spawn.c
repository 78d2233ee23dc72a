/*
 * spawn.c - spawn trees of random depth and fan-out.
 *
 * A round grows a tree of depth D and fan-out F: every node below depth D
 * starts F children, each at random joinable (braid_spawn, later joined,
 * sometimes with short join deadlines that must time out cleanly) or
 * detached (braid_go, reporting its subtree size through a channel of
 * capacity F owned by the parent).  In cancel rounds a parent cancels some
 * joinable children right after spawning them; a cancelled node starts no
 * more children, cancels and detaches the joinable ones it has, and stops
 * listening to its channel (closing it sends EPIPE to late reporters).
 *
 * Invariants, after the round's wait group drained:
 *  - spawned = completed + cancelled, and every node ran (nodes = spawned);
 *  - no cancellation: nodes = sum F^i and depth sum = sum i F^i for
 *    i = 0..D (the closed forms), cancelled = 0, and the subtree sizes
 *    returned through joins and channels add up to the same total;
 *  - a send into a parent's channel never meets a full buffer (-EAGAIN).
 *
 * Each node's argument block is owned by the node (freed first thing);
 * the tree record lives on the round's stack until the wait group drained,
 * and no node touches it after its braid_wg_done.
 */
#include "stress.h"

#include <stdlib.h>

typedef struct tree {
    unsigned depth, fanout;
    bool cancel;                  /* cancel rounds */
    braid_wg wg;                  /* one per node still running */
    _Atomic uint64_t nodes, depth_sum, spawned, completed, cancelled;
} tree;

typedef struct node_arg {
    tree *t;
    unsigned depth;
    braid_tx *up;                 /* detached nodes: the parent's channel */
    st_rng rng;
} node_arg;

static void *node_main(void *arg);

static void go_main(void *arg)
{
    node_main(arg);
}

/* Start one child; returns its task handle (joinable) or NULL. */
static braid_task *start_child(tree *t, unsigned depth, st_rng *r,
                               braid_tx *tx, int *err)
{
    node_arg *a = malloc(sizeof *a);
    if (!a) { *err = -ENOMEM; return NULL; }
    *a = (node_arg){ t, depth, NULL, st_rng_derive(st_next(r), depth) };
    braid_wg_add(&t->wg, 1);
    braid_task *task = NULL;
    if (tx && st_below(r, 2)) {
        *err = braid_tx_clone(tx, &a->up);
        if (*err == 0) *err = braid_go(go_main, a);
    } else {
        braid_attr at;
        braid_attr_init(&at);
        if (st_below(r, 4) == 0)    /* few distinct sizes: see the report */
            braid_attr_set_stack_size(&at, st_below(r, 6) ? (size_t)16384 << st_below(r, 5)
                                                          : 20000);
        braid_attr_set_name(&at, "spawn-node");
        *err = braid_spawn(&task, node_main, a, &at);
    }
    if (*err != 0) {
        braid_wg_done(&t->wg);
        if (a->up) braid_tx_close(a->up);
        free(a);
        return NULL;
    }
    atomic_fetch_add(&t->spawned, 1);
    st_count(C_SPAWNED, 1);
    return task;
}

/* Join the joinable children; on our own cancellation give the rest up. */
static uint64_t join_children(braid_task **tasks, unsigned n, st_rng *r)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        void *res = NULL;
        int rc;
        while ((rc = braid_join(tasks[i], &res, st_below(r, 4) ? BRAID_FOREVER
                                : braid_after((int64_t)st_below(r, 50 * ST_US))))
               == -ETIMEDOUT || rc == -EAGAIN)
            st_count(C_TIMEOUTS, 1);
        if (rc == 0) {
            sum += (uintptr_t)res;
            continue;
        }
        if (rc != -ECANCELED || !braid_cancelled())
            st_fail("braid_join of a spawn-tree node: %s", braid_strerror(rc));
        for (; i < n; i++) {
            braid_cancel(tasks[i]);
            braid_detach(tasks[i]);
        }
    }
    return sum;
}

/* Collect the subtree sizes of the detached children. */
static uint64_t collect(braid_rx *rx, unsigned ngo)
{
    uint64_t sum = 0, v;
    unsigned got = 0;
    int rc;
    while ((rc = braid_recv(rx, &v, BRAID_FOREVER)) == 0) {
        sum += v;
        got++;
    }
    if (rc == -ECANCELED && braid_cancelled()) return sum;
    if (rc != -EPIPE)
        st_fail("receiving a subtree size: %s", braid_strerror(rc));
    else if (got != ngo)
        st_fail("%u detached children reported, %u were started", got, ngo);
    return sum;
}

static uint64_t children(tree *t, unsigned depth, st_rng *r)
{
    braid_tx *tx;
    braid_rx *rx;
    int rc = braid_chan_open(&tx, &rx, sizeof(uint64_t), t->fanout);
    braid_task **tasks = malloc(t->fanout * sizeof *tasks);
    if (rc != 0 || !tasks) {
        st_fail("spawn: braid_chan_open: %s", braid_strerror(rc));
        free(tasks);
        return 0;
    }
    unsigned nj = 0, ngo = 0;
    for (unsigned i = 0; i < t->fanout && !braid_cancelled(); i++) {
        braid_task *task = start_child(t, depth + 1, r, tx, &rc);
        if (rc != 0) {
            st_fail("spawning a tree node: %s", braid_strerror(rc));
            break;
        }
        if (!task) { ngo++; continue; }
        tasks[nj++] = task;
        if (t->cancel && st_below(r, 3) == 0) {
            if (st_below(r, 2)) braid_yield();
            braid_cancel(task);
        }
    }
    braid_tx_close(tx);
    uint64_t sum = join_children(tasks, nj, r);
    sum += collect(rx, ngo);
    braid_rx_close(rx);
    free(tasks);
    return sum;
}

static void *node_main(void *arg)
{
    node_arg a = *(node_arg *)arg;
    free(arg);
    tree *t = a.t;
    atomic_fetch_add(&t->nodes, 1);
    atomic_fetch_add(&t->depth_sum, a.depth);
    switch (st_below(&a.rng, t->cancel ? 3 : 6)) {
    case 0: st_sleep_checked(&a.rng, 200 * ST_US); break;
    case 1: braid_yield(); break;
    default: break;
    }
    uint64_t sub = 1;
    if (a.depth < t->depth && !braid_cancelled())
        sub += children(t, a.depth, &a.rng);
    if (a.up) {
        int rc = braid_send(a.up, &sub, 0);
        if (rc != 0 && rc != -EPIPE)
            st_fail("reporting to a parent's channel: %s", braid_strerror(rc));
        braid_tx_close(a.up);
    }
    if (braid_cancelled()) {
        atomic_fetch_add(&t->cancelled, 1);
        st_count(C_CANCELLED, 1);
    } else {
        atomic_fetch_add(&t->completed, 1);
        st_count(C_COMPLETED, 1);
    }
    braid_wg_done(&t->wg);          /* last touch of t */
    return (void *)(uintptr_t)sub;
}

static void closed_form(unsigned d, unsigned f, uint64_t *nodes, uint64_t *dsum)
{
    uint64_t pw = 1;
    *nodes = *dsum = 0;
    for (unsigned i = 0; i <= d; i++, pw *= f) {
        *nodes += pw;
        *dsum += i * pw;
    }
}

static void check(tree *t, uint64_t root_sub)
{
    uint64_t sp = t->spawned, co = t->completed, ca = t->cancelled;
    uint64_t want_nodes, want_dsum;
    if (sp != co + ca)
        st_fail("spawn: spawned %llu != completed %llu + cancelled %llu",
                (unsigned long long)sp, (unsigned long long)co,
                (unsigned long long)ca);
    if (t->nodes != sp)
        st_fail("spawn: %llu nodes ran, %llu spawned",
                (unsigned long long)t->nodes, (unsigned long long)sp);
    if (t->cancel) return;
    closed_form(t->depth, t->fanout, &want_nodes, &want_dsum);
    if (sp != want_nodes || t->depth_sum != want_dsum || root_sub != want_nodes ||
        ca != 0)
        st_fail("spawn tree D=%u F=%u: %llu nodes (want %llu), depth sum %llu "
                "(want %llu), root reports %llu, %llu cancelled", t->depth,
                t->fanout, (unsigned long long)sp, (unsigned long long)want_nodes,
                (unsigned long long)t->depth_sum, (unsigned long long)want_dsum,
                (unsigned long long)root_sub, (unsigned long long)ca);
}

/* The tree is on the heap so that a failed round can leave it to nodes
   still running (leaked: the profile ends right after a failure). */
static void round_once(st_rng *r)
{
    tree *t = calloc(1, sizeof *t);
    if (!t) { st_fail("spawn: out of memory"); return; }
    t->cancel = st_below(r, 3) == 0;
    uint64_t cap = st_range(r, 50, 3000), n, ds;
    do {
        t->depth = (unsigned)st_range(r, 0, 7);
        t->fanout = (unsigned)(st_below(r, 5) ? st_range(r, 1, 6) : st_range(r, 8, 64));
        closed_form(t->depth, t->fanout, &n, &ds);
    } while (n > cap);
    int rc;
    st_rng rr = st_rng_derive(st_next(r), 1);
    braid_task *root = start_child(t, 0, &rr, NULL, &rc);
    if (!root) {
        st_fail("spawning the root: %s", braid_strerror(rc));
        return;
    }
    void *res = NULL;
    if (st_join(root, &res, "spawn root") != 0) return;
    rc = braid_wg_wait(&t->wg, braid_after(ST_PATIENCE));
    if (rc != 0) {
        st_fail("spawn tree did not finish: braid_wg_wait %s", braid_strerror(rc));
        braid_dump(stderr);
        return;
    }
    check(t, (uint64_t)(uintptr_t)res);
    free(t);
    st_count(C_ROUNDS, 1);
}

void st_spawn_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0x5a11);
    do round_once(&r);
    while (!st_over());
}
