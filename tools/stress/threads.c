/*
 * threads.c - plain pthreads and coroutines on the same channels.
 *
 * Producers and consumers are a random mix of pthreads (blocking their
 * thread in braid calls) and coroutines (parking); half of the rounds
 * start the coroutine consumers from a pthread (braid_go from a foreign
 * thread).  Operations use random deadlines and, now and then, a
 * one-case select.  Plain threads also sleep through braid_sleep_until,
 * which must not wake early.  The runtime runs with no_deadlock_check: a
 * pthread between two braid calls is invisible to it.
 *
 * Invariants per round: messages intact, lost = 0, duplicated = 0,
 * received = sent, every consumer reached EPIPE, FIFO per producer as seen
 * by each consumer.
 */
#include "stress.h"

#include <pthread.h>
#include <stdlib.h>

#define MAXACT 8

static const size_t capacities[] = { 0, 1, 7, BRAID_UNBOUNDED };

typedef struct round {
    uint64_t salt, per_prod;
    unsigned nprod, ncons;
    braid_tx *tx;
    braid_rx *rx;
    st_bitmap seen;
    _Atomic uint64_t sent, received;
    braid_wg wg;
} round;

typedef struct actor {
    round *rd;
    unsigned id;
    bool thread;
    braid_tx *tx;
    braid_rx *rx;
    st_rng rng;
} actor;

static int op(actor *a, st_msg *m, int64_t dl)
{
    bool send = a->tx != NULL;
    if (st_below(&a->rng, 4)) return send ? braid_send(a->tx, m, dl) : braid_recv(a->rx, m, dl);
    braid_case c = { send ? BRAID_SEND : BRAID_RECV,
                     send ? (void *)a->tx : (void *)a->rx, m, 0 };
    int rc = braid_select(&c, 1, dl);
    return rc == 0 ? c.result : rc;
}

static int64_t deadline(actor *a)
{
    return st_below(&a->rng, 3) ? BRAID_FOREVER : st_random_deadline(&a->rng);
}

static bool retry(int rc)
{
    if (rc != -EAGAIN && rc != -ETIMEDOUT) return false;
    st_count(C_TIMEOUTS, 1);
    return true;
}

static void produce(actor *a)
{
    round *rd = a->rd;
    for (uint64_t seq = 0; seq < rd->per_prod; seq++) {
        st_msg m;
        st_msg_make(&m, rd->salt, a->id, seq);
        int rc;
        while (retry(rc = op(a, &m, deadline(a))))
            ;
        if (rc != 0) {
            st_fail("threads: %s producer: send %s", a->thread ? "pthread" :
                    "coroutine", braid_strerror(rc));
            break;
        }
        atomic_fetch_add(&rd->sent, 1);
        st_count(C_SENT, 1);
        if (a->thread && st_below(&a->rng, 512) == 0) st_sleep_checked(&a->rng, 100 * ST_US);
    }
    braid_tx_close(a->tx);
}

static void consume(actor *a)
{
    round *rd = a->rd;
    int64_t last[MAXACT];
    for (unsigned i = 0; i < MAXACT; i++) last[i] = -1;
    st_msg m;
    int rc;
    while ((rc = op(a, &m, deadline(a))) == 0 || retry(rc)) {
        if (rc != 0) continue;
        if (st_msg_check(&m, rd->salt, rd->nprod, rd->per_prod, "threads") < 0) break;
        if (st_bitmap_set(&rd->seen, m.prod * rd->per_prod + m.seq)) {
            st_count(C_DUPLICATED, 1);
            st_fail("threads: producer %u seq %llu received twice", m.prod,
                    (unsigned long long)m.seq);
        }
        if ((int64_t)m.seq <= last[m.prod])
            st_fail("threads: FIFO broken for producer %u", m.prod);
        last[m.prod] = (int64_t)m.seq;
        atomic_fetch_add(&rd->received, 1);
        st_count(C_RECEIVED, 1);
    }
    if (rc != -EPIPE)
        st_fail("threads: %s consumer: recv %s", a->thread ? "pthread" : "coroutine",
                braid_strerror(rc));
    braid_rx_close(a->rx);
}

static void actor_run(actor *a)
{
    if (a->tx) produce(a);
    else consume(a);
    if (!a->thread) st_count(C_COMPLETED, 1);
    braid_wg_done(&a->rd->wg);
    free(a);
}

static void co_main(void *arg) { actor_run(arg); }
static void *thread_main(void *arg) { actor_run(arg); return NULL; }

typedef struct spawner { actor *list[MAXACT]; unsigned n; } spawner;

/* A pthread that starts coroutines (braid_go from a foreign thread). */
static void *spawner_main(void *arg)
{
    spawner *s = arg;
    for (unsigned i = 0; i < s->n; i++)
        if (braid_go(co_main, s->list[i]) != 0) st_fail("threads: braid_go from a pthread");
    return NULL;
}

static void *join_thread(void *arg)
{
    return (void *)(intptr_t)pthread_join(*(pthread_t *)arg, NULL);
}

static actor *make(round *rd, unsigned id, bool prod, bool thread, st_rng *r)
{
    actor *a = calloc(1, sizeof *a);
    a->rd = rd;
    a->id = id;
    a->thread = thread;
    a->rng = st_rng_derive(st_next(r), id * 2 + prod);
    int rc = prod ? braid_tx_clone(rd->tx, &a->tx) : braid_rx_clone(rd->rx, &a->rx);
    if (rc != 0) st_fail("threads: clone %s", braid_strerror(rc));
    braid_wg_add(&rd->wg, 1);
    if (!thread) st_count(C_SPAWNED, 1);
    return a;
}

static void launch(actor *a, pthread_t *th, unsigned *nth, spawner *sp)
{
    if (a->thread) {
        if (pthread_create(&th[(*nth)++], NULL, thread_main, a) != 0) {
            (*nth)--;
            st_fail("threads: pthread_create failed");
            braid_wg_done(&a->rd->wg);
        }
    } else if (sp) {
        sp->list[sp->n++] = a;
    } else if (braid_go(co_main, a) != 0) {
        st_fail("threads: braid_go failed");
        braid_wg_done(&a->rd->wg);
    }
}

static void check(round *rd)
{
    uint64_t total = rd->nprod * rd->per_prod, got = st_bitmap_count(&rd->seen);
    if (got != total) st_count(C_LOST, total - got);
    if (got != total || rd->sent != total || rd->received != total)
        st_fail("threads: %llu messages, sent %llu, received %llu, distinct %llu",
                (unsigned long long)total, (unsigned long long)rd->sent,
                (unsigned long long)rd->received, (unsigned long long)got);
}

static void round_once(st_rng *r)
{
    round *rd = calloc(1, sizeof *rd);
    rd->salt = st_next(r);
    rd->nprod = (unsigned)st_range(r, 1, 6);
    rd->ncons = (unsigned)st_range(r, 1, 4);
    rd->per_prod = st_range(r, 200, 8000) / rd->nprod;
    if (st_bitmap_init(&rd->seen, rd->nprod * rd->per_prod) < 0 ||
        braid_chan_open(&rd->tx, &rd->rx, sizeof(st_msg), capacities[st_below(r, 4)]) != 0) {
        st_fail("threads: setup failed");
        return;
    }
    pthread_t th[2 * MAXACT + 1];
    unsigned nth = 0;
    spawner sp = { .n = 0 };
    bool via_thread = st_below(r, 2);
    for (unsigned i = 0; i < rd->nprod; i++)
        launch(make(rd, i, true, st_below(r, 2), r), th, &nth, NULL);
    for (unsigned i = 0; i < rd->ncons; i++)
        launch(make(rd, i, false, st_below(r, 3) == 0, r), th, &nth,
               via_thread ? &sp : NULL);
    if (sp.n && pthread_create(&th[nth++], NULL, spawner_main, &sp) != 0) {
        st_fail("threads: pthread_create failed");
        return;
    }
    braid_tx_close(rd->tx);
    braid_rx_close(rd->rx);
    if (braid_wg_wait(&rd->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("threads: round did not finish");
        return;
    }
    for (unsigned i = 0; i < nth; i++) braid_blocking(join_thread, &th[i], NULL);
    check(rd);
    st_bitmap_free(&rd->seen);
    free(rd);
    st_count(C_ROUNDS, 1);
}

void st_threads_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0x7417ead);
    do round_once(&r);
    while (!st_over());
}
