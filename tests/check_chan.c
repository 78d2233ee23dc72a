/*
 * check_chan.c - channels and select (sync/chan.c, sync/select.c).
 *
 * Every test starts its own runtime (Check forks each test) unless it is
 * about plain threads without one.  Elements are int64_t unless a test is
 * about element sizes.  Waits on other parties poll braid_chan_stats, never
 * a fixed sleep, so that a slow box only makes a test slower.
 */
#define _GNU_SOURCE 1

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "braid.h"

/* Check's ck_assert_* report every passing assertion to the parent
   process with a system call; these report only failures, so loops of a
   million checks stay cheap. */
#define REQUIRE(c) do { \
    if (!(c)) \
        ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #c); \
} while (0)
#define REQUIRE_EQ(a, b) do { \
    long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) \
        ck_abort_msg("%s:%d: %s == %lld, expected %s == %lld", \
                     __FILE__, __LINE__, #a, a_, #b, b_); \
} while (0)

#define MS 1000000LL
#define US 1000LL
#define FOREVER BRAID_FOREVER

/* ---- helpers ------------------------------------------------------------ */

static void run_cfg(void (*fn)(void *), void *arg, unsigned no_deadlock)
{
    braid_config cfg = { .workers = 2, .no_deadlock_check = no_deadlock };
    REQUIRE_EQ(braid_run(&cfg, fn, arg), 0);
}

static void run(void (*fn)(void *), void *arg)
{
    run_cfg(fn, arg, 0);
}

static braid_task *spawn(void *(*fn)(void *), void *arg)
{
    braid_task *t;
    REQUIRE_EQ(braid_spawn(&t, fn, arg, NULL), 0);
    return t;
}

static intptr_t join(braid_task *t)
{
    void *res = NULL;
    REQUIRE_EQ(braid_join(t, &res, FOREVER), 0);
    return (intptr_t)res;
}

static pthread_t thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    REQUIRE_EQ(pthread_create(&th, NULL, fn, arg), 0);
    return th;
}

static void open_chan(braid_tx **tx, braid_rx **rx, size_t esz, size_t cap)
{
    REQUIRE_EQ(braid_chan_open(tx, rx, esz, cap), 0);
    ck_assert_ptr_nonnull(*tx);
    ck_assert_ptr_nonnull(*rx);
}

static braid_chan_info info_rx(braid_rx *rx)
{
    braid_chan_info i;
    REQUIRE_EQ(braid_chan_stats(rx, &i), 0);
    return i;
}

static braid_chan_info info_tx(braid_tx *tx)
{
    braid_chan_info i;
    REQUIRE_EQ(braid_chan_stats_tx(tx, &i), 0);
    return i;
}

/* Wait (up to 10 s) until the channel shows s blocked senders and r
   blocked receivers.  Works in coroutines and threads. */
static void await_waiting(braid_tx *tx, size_t s, size_t r)
{
    for (int i = 0; i < 10000; i++) {
        braid_chan_info in = info_tx(tx);
        if (in.senders_waiting == s && in.receivers_waiting == r)
            return;
        braid_sleep(MS);
    }
    ck_abort_msg("channel never showed %zu senders, %zu receivers waiting",
                 s, r);
}

/* A blocking call run by a coroutine or thread (op.r is its result). */
typedef struct op {
    braid_tx *tx;
    braid_rx *rx;
    int64_t v;
    int64_t deadline;
    int r;
} op;

static void *do_send(void *a)
{
    op *o = a;
    o->r = braid_send(o->tx, &o->v, o->deadline);
    return (void *)(intptr_t)o->r;
}

static void *do_recv(void *a)
{
    op *o = a;
    o->r = braid_recv(o->rx, &o->v, o->deadline);
    return (void *)(intptr_t)o->r;
}

static uint32_t rnd(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void spin_ns(int64_t ns)
{
    int64_t end = braid_now() + ns;
    while (braid_now() < end)
        ;
}

static long vmrss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    ck_assert_int_gt(kb, 0);
    return kb;
}

/* ---- FIFO and rendezvous ------------------------------------------------ */

static const size_t fifo_caps[] = { 0, 1, 7, 64, BRAID_UNBOUNDED };
#define FIFO_N 20000

static void *send_seq(void *a)
{
    braid_tx *tx = a;
    for (int64_t i = 0; i < FIFO_N; i++)
        REQUIRE_EQ(braid_send(tx, &i, FOREVER), 0);
    REQUIRE_EQ(braid_tx_close(tx), 0);
    return NULL;
}

static void fifo_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v, want = 0;
    int r;

    open_chan(&tx, &rx, sizeof v, fifo_caps[*(int *)arg]);
    braid_task *t = spawn(send_seq, tx);
    while ((r = braid_recv(rx, &v, FOREVER)) == 0)
        REQUIRE_EQ(v, want++);
    REQUIRE_EQ(r, -EPIPE);
    REQUIRE_EQ(want, FIFO_N);
    join(t);
    REQUIRE_EQ(braid_rx_close(rx), 0);
}

START_TEST(test_fifo)
{
    int i = _i;
    run(fifo_main, &i);
}
END_TEST

static atomic_int sent_flag;

static void *send_then_flag(void *a)
{
    int64_t v = 7;
    int r = braid_send(a, &v, FOREVER);
    atomic_store(&sent_flag, 1);
    return (void *)(intptr_t)r;
}

static void rendezvous_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v = 0;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 0);
    braid_task *t = spawn(send_then_flag, tx);
    await_waiting(tx, 1, 0);
    braid_sleep(10 * MS);
    REQUIRE_EQ(atomic_load(&sent_flag), 0);   /* nobody took it */
    REQUIRE_EQ(info_rx(rx).buffered, 0);
    REQUIRE_EQ(braid_recv(rx, &v, FOREVER), 0);
    REQUIRE_EQ(v, 7);
    REQUIRE_EQ(join(t), 0);
    REQUIRE_EQ(atomic_load(&sent_flag), 1);
    braid_tx_close(tx);
    braid_rx_close(rx);
}

START_TEST(test_rendezvous_waits_for_receiver)
{
    run(rendezvous_main, NULL);
}
END_TEST

#define CHAIN 10

typedef struct link { braid_rx *in; braid_tx *out; } link;

static void *chain_link(void *a)
{
    link *l = a;
    int64_t v;
    int r;

    while ((r = braid_recv(l->in, &v, FOREVER)) == 0) {
        v++;
        REQUIRE_EQ(braid_send(l->out, &v, FOREVER), 0);
    }
    REQUIRE_EQ(r, -EPIPE);
    braid_rx_close(l->in);
    braid_tx_close(l->out);
    return NULL;
}

static void chain_main(void *arg)
{
    braid_tx *tx[CHAIN + 1];
    braid_rx *rx[CHAIN + 1];
    link links[CHAIN];
    braid_task *t[CHAIN];
    int64_t v;

    (void)arg;
    for (int i = 0; i <= CHAIN; i++)
        open_chan(&tx[i], &rx[i], sizeof v, 0);
    for (int i = 0; i < CHAIN; i++) {
        links[i] = (link){ rx[i], tx[i + 1] };
        t[i] = spawn(chain_link, &links[i]);
    }
    for (int64_t i = 0; i < 2000; i++) {
        REQUIRE_EQ(braid_send(tx[0], &i, FOREVER), 0);
        REQUIRE_EQ(braid_recv(rx[CHAIN], &v, FOREVER), 0);
        REQUIRE_EQ(v, i + CHAIN);
    }
    braid_tx_close(tx[0]);              /* EOF ripples down the chain */
    REQUIRE_EQ(braid_recv(rx[CHAIN], &v, FOREVER), -EPIPE);
    for (int i = 0; i < CHAIN; i++)
        join(t[i]);
    braid_rx_close(rx[CHAIN]);
}

START_TEST(test_daisy_chain)
{
    run(chain_main, NULL);
}
END_TEST

/* ---- blocking rules and deadlines --------------------------------------- */

static void check_deadline_forms(int (*call)(void *, int64_t), void *arg)
{
    REQUIRE_EQ(call(arg, 0), -EAGAIN);
    REQUIRE_EQ(call(arg, braid_now() - 1), -EAGAIN);
    REQUIRE_EQ(call(arg, braid_now()), -EAGAIN);
    int64_t t0 = braid_now();
    REQUIRE_EQ(call(arg, t0 + 30 * MS), -ETIMEDOUT);
    int64_t dt = braid_now() - t0;
    ck_assert_int_ge(dt, 30 * MS);
    ck_assert_int_lt(dt, 530 * MS);
}

static int send99(void *tx, int64_t deadline)
{
    int64_t v = 99;
    return braid_send(tx, &v, deadline);
}

static int recv_any(void *rx, int64_t deadline)
{
    int64_t v = -5;
    int r = braid_recv(rx, &v, deadline);
    if (r)
        REQUIRE_EQ(v, -5);        /* nothing written on failure */
    return r;
}

static void blocking_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v;

    (void)arg;
    /* unbuffered send, no receiver */
    open_chan(&tx, &rx, sizeof v, 0);
    check_deadline_forms(send99, tx);
    REQUIRE_EQ(info_tx(tx).senders_waiting, 0);
    /* receive on empty, unbuffered and buffered */
    check_deadline_forms(recv_any, rx);
    REQUIRE_EQ(info_rx(rx).receivers_waiting, 0);
    braid_tx_close(tx);
    braid_rx_close(rx);

    open_chan(&tx, &rx, sizeof v, 2);
    check_deadline_forms(recv_any, rx);
    /* send on full */
    for (v = 1; v <= 2; v++)
        REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    check_deadline_forms(send99, tx);
    braid_chan_info in = info_tx(tx);
    REQUIRE_EQ(in.buffered, 2);
    REQUIRE_EQ(in.senders_waiting, 0);
    for (int64_t want = 1; want <= 2; want++) {
        REQUIRE_EQ(braid_recv(rx, &v, 0), 0);
        REQUIRE_EQ(v, want);
    }
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EAGAIN);
    braid_tx_close(tx);
    braid_rx_close(rx);

    /* unbounded: send never blocks */
    open_chan(&tx, &rx, sizeof v, BRAID_UNBOUNDED);
    for (v = 0; v < 1000; v++)
        REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    REQUIRE_EQ(info_rx(rx).buffered, 1000);
    REQUIRE_EQ(info_rx(rx).capacity, BRAID_UNBOUNDED);
    braid_tx_close(tx);
    braid_rx_close(rx);
}

START_TEST(test_blocking_rules)
{
    run(blocking_main, NULL);
}
END_TEST

static void timed_out_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v = -1;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 1);
    REQUIRE_EQ(braid_recv(rx, &v, braid_after(20 * MS)), -ETIMEDOUT);
    v = 42;
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    REQUIRE_EQ(info_rx(rx).buffered, 1);      /* no ghost took it */
    v = 0;
    REQUIRE_EQ(braid_recv(rx, &v, 0), 0);
    REQUIRE_EQ(v, 42);
    braid_tx_close(tx);
    braid_rx_close(rx);

    open_chan(&tx, &rx, sizeof v, 0);
    REQUIRE_EQ(braid_recv(rx, &v, braid_after(20 * MS)), -ETIMEDOUT);
    REQUIRE_EQ(braid_send(tx, &v, 0), -EAGAIN); /* nobody waits */
    REQUIRE_EQ(braid_send(tx, &v, braid_after(20 * MS)), -ETIMEDOUT);
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EAGAIN);
    braid_tx_close(tx);
    braid_rx_close(rx);
}

START_TEST(test_timed_out_recv_takes_nothing)
{
    run(timed_out_main, NULL);
}
END_TEST

#define RACE_ROUNDS 10000

typedef struct race {
    braid_tx *tx;
    braid_rx *rx;
    long ok;
    int64_t sum;
} race;

static void *race_sender(void *a)
{
    race *s = a;
    uint32_t seed = 1;

    for (int64_t i = 1; i <= RACE_ROUNDS; i++) {
        spin_ns((rnd(&seed) % 40) * US);
        int64_t dl = (i & 1) ? FOREVER : braid_after((rnd(&seed) % 40) * US);
        int r = braid_send(s->tx, &i, dl);
        if (r == 0) {
            s->ok++;
            s->sum += i;
        } else {
            REQUIRE(r == -ETIMEDOUT || r == -EAGAIN);
        }
    }
    braid_tx_close(s->tx);
    return NULL;
}

static void *race_receiver(void *a)
{
    race *s = a;
    uint32_t seed = 2;
    int64_t v;

    for (;;) {
        v = 0;
        int r = braid_recv(s->rx, &v, braid_after((5 + rnd(&seed) % 40) * US));
        if (r == -EPIPE)
            break;
        if (r == 0) {
            REQUIRE(v > 0);
            s->ok++;
            s->sum += v;
        } else {
            REQUIRE(r == -ETIMEDOUT || r == -EAGAIN);
            REQUIRE_EQ(v, 0);
        }
    }
    braid_rx_close(s->rx);
    return NULL;
}

static void race_main(void *arg)
{
    race snd = { 0 }, rcv = { 0 };

    (void)arg;
    open_chan(&snd.tx, &rcv.rx, sizeof(int64_t), 0);
    braid_task *a = spawn(race_receiver, &rcv);
    braid_task *b = spawn(race_sender, &snd);
    join(b);
    join(a);
    ck_assert_int_gt(snd.ok, 0);
    REQUIRE_EQ(snd.ok, rcv.ok);
    REQUIRE_EQ(snd.sum, rcv.sum);
}

START_TEST(test_send_races_recv_deadline)
{
    run(race_main, NULL);
}
END_TEST

/* ---- close, clone, -EPIPE, -EBADF --------------------------------------- */

static void close_drain_main(void *arg)
{
    static const size_t caps[] = { 8, BRAID_UNBOUNDED };
    braid_tx *tx;
    braid_rx *rx;
    int64_t v;

    (void)arg;
    for (int c = 0; c < 2; c++) {
        open_chan(&tx, &rx, sizeof v, caps[c]);
        for (v = 0; v < 5; v++)
            REQUIRE_EQ(braid_send(tx, &v, 0), 0);
        REQUIRE_EQ(braid_tx_close(tx), 0);
        REQUIRE_EQ(info_rx(rx).tx_open, 0);
        for (int64_t want = 0; want < 5; want++) {
            REQUIRE_EQ(braid_recv(rx, &v, FOREVER), 0);
            REQUIRE_EQ(v, want);
        }
        int64_t t0 = braid_now();
        for (int i = 0; i < 3; i++)
            REQUIRE_EQ(braid_recv(rx, &v, FOREVER), -EPIPE);
        REQUIRE_EQ(braid_recv(rx, &v, 0), -EPIPE);
        REQUIRE_EQ(braid_recv(rx, &v, braid_after(MS)), -EPIPE);
        ck_assert_int_lt(braid_now() - t0, 500 * MS);       /* at once */
        REQUIRE_EQ(braid_rx_close(rx), 0);
    }
}

START_TEST(test_close_drain_eof)
{
    run(close_drain_main, NULL);
}
END_TEST

static void clone_tx_main(void *arg)
{
    braid_tx *tx, *tx2;
    braid_rx *rx;
    int64_t v = 1;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 4);
    REQUIRE_EQ(braid_tx_clone(tx, &tx2), 0);
    ck_assert_ptr_ne(tx2, tx);
    REQUIRE_EQ(info_rx(rx).tx_open, 2);
    REQUIRE_EQ(braid_tx_close(tx), 0);
    REQUIRE_EQ(info_rx(rx).tx_open, 1);
    /* still open: empty, not end of channel */
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EAGAIN);
    v = 5;
    REQUIRE_EQ(braid_send(tx2, &v, 0), 0);
    REQUIRE_EQ(braid_recv(rx, &v, 0), 0);
    REQUIRE_EQ(v, 5);
    REQUIRE_EQ(braid_send(tx2, &v, 0), 0);
    REQUIRE_EQ(braid_tx_close(tx2), 0);
    REQUIRE_EQ(braid_recv(rx, &v, 0), 0);       /* drains first */
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EPIPE);
    REQUIRE_EQ(braid_rx_close(rx), 0);
}

START_TEST(test_clone_tx_keeps_open)
{
    run(clone_tx_main, NULL);
}
END_TEST

static void clone_rx_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx, *rx2, *rx3;
    int64_t v = 3;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 1);
    REQUIRE_EQ(braid_rx_clone(rx, &rx2), 0);
    REQUIRE_EQ(braid_rx_clone(rx2, &rx3), 0);
    REQUIRE_EQ(info_tx(tx).rx_open, 3);
    REQUIRE_EQ(braid_rx_close(rx), 0);
    REQUIRE_EQ(braid_rx_close(rx3), 0);
    REQUIRE_EQ(info_tx(tx).rx_open, 1);
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);         /* still heard */
    REQUIRE_EQ(braid_recv(rx2, &v, 0), 0);
    REQUIRE_EQ(v, 3);
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    REQUIRE_EQ(braid_rx_close(rx2), 0);
    braid_chan_info in = info_tx(tx);
    REQUIRE_EQ(in.buffered, 0);                   /* dropped */
    REQUIRE_EQ(in.rx_open, 0);
    REQUIRE_EQ(braid_send(tx, &v, 0), -EPIPE);
    REQUIRE_EQ(braid_send(tx, &v, FOREVER), -EPIPE);
    REQUIRE_EQ(braid_tx_close(tx), 0);
}

START_TEST(test_clone_rx_keeps_open)
{
    run(clone_rx_main, NULL);
}
END_TEST

/* Blocked senders (full buffer and rendezvous) get -EPIPE when the last
   receive handle closes; blocked receivers when the last send handle
   closes.  Handles other than the one blocked on are closed. */
static void epipe_main(void *arg)
{
    braid_tx *tx, *tx2;
    braid_rx *rx, *rx2;
    int64_t v = 1;

    (void)arg;
    for (size_t cap = 0; cap < 2; cap++) {
        open_chan(&tx, &rx, sizeof v, cap);
        REQUIRE_EQ(braid_rx_clone(rx, &rx2), 0);
        if (cap)
            REQUIRE_EQ(braid_send(tx, &v, 0), 0);
        op a = { .tx = tx, .v = 10, .deadline = FOREVER };
        op b = { .tx = tx, .v = 11, .deadline = FOREVER };
        braid_task *ta = spawn(do_send, &a), *tb = spawn(do_send, &b);
        await_waiting(tx, 2, 0);
        REQUIRE_EQ(braid_rx_close(rx), 0);
        braid_sleep(5 * MS);
        REQUIRE_EQ(info_tx(tx).senders_waiting, 2);   /* unmoved */
        REQUIRE_EQ(braid_rx_close(rx2), 0);
        REQUIRE_EQ(join(ta), -EPIPE);
        REQUIRE_EQ(join(tb), -EPIPE);
        REQUIRE_EQ(info_tx(tx).buffered, 0);
        REQUIRE_EQ(braid_tx_close(tx), 0);
    }

    open_chan(&tx, &rx, sizeof v, 3);
    REQUIRE_EQ(braid_tx_clone(tx, &tx2), 0);
    op a = { .rx = rx, .deadline = FOREVER };
    op b = { .rx = rx, .deadline = FOREVER };
    braid_task *ta = spawn(do_recv, &a), *tb = spawn(do_recv, &b);
    await_waiting(tx, 0, 2);
    REQUIRE_EQ(braid_tx_close(tx), 0);
    braid_sleep(5 * MS);
    REQUIRE_EQ(info_rx(rx).receivers_waiting, 2);
    REQUIRE_EQ(braid_tx_close(tx2), 0);
    REQUIRE_EQ(join(ta), -EPIPE);
    REQUIRE_EQ(join(tb), -EPIPE);
    REQUIRE_EQ(braid_rx_close(rx), 0);
}

START_TEST(test_epipe_wakes_blocked)
{
    run(epipe_main, NULL);
}
END_TEST

/* A call blocked on a handle that another coroutine closes returns
   -EBADF and takes / sends nothing; calls on other handles go on. */
static void ebadf_main(void *arg)
{
    braid_tx *tx, *tx2;
    braid_rx *rx, *rx2;
    int64_t v = 1;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 1);
    REQUIRE_EQ(braid_rx_clone(rx, &rx2), 0);
    op a = { .rx = rx2, .v = -3, .deadline = FOREVER };
    op b = { .rx = rx, .v = -3, .deadline = FOREVER };
    braid_task *ta = spawn(do_recv, &a), *tb = spawn(do_recv, &b);
    await_waiting(tx, 0, 2);
    REQUIRE_EQ(braid_rx_close(rx2), 0);
    REQUIRE_EQ(join(ta), -EBADF);
    REQUIRE_EQ(a.v, -3);
    await_waiting(tx, 0, 1);                    /* b still waits */
    v = 8;
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    REQUIRE_EQ(join(tb), 0);
    REQUIRE_EQ(b.v, 8);

    /* a sender blocked on a full buffer through tx2 */
    REQUIRE_EQ(braid_tx_clone(tx, &tx2), 0);
    v = 20;
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    a = (op){ .tx = tx2, .v = 21, .deadline = FOREVER };
    ta = spawn(do_send, &a);
    await_waiting(tx, 1, 0);
    REQUIRE_EQ(braid_tx_close(tx2), 0);
    REQUIRE_EQ(join(ta), -EBADF);
    braid_chan_info in = info_tx(tx);
    REQUIRE_EQ(in.buffered, 1);
    REQUIRE_EQ(in.tx_open, 1);
    REQUIRE_EQ(braid_recv(rx, &v, 0), 0);
    REQUIRE_EQ(v, 20);
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EAGAIN);     /* 21 never sent */

    /* blocked on the last receive handle: -EBADF, not -EPIPE */
    a = (op){ .rx = rx, .deadline = FOREVER };
    ta = spawn(do_recv, &a);
    await_waiting(tx, 0, 1);
    REQUIRE_EQ(braid_rx_close(rx), 0);
    REQUIRE_EQ(join(ta), -EBADF);
    REQUIRE_EQ(braid_send(tx, &v, 0), -EPIPE);
    REQUIRE_EQ(braid_tx_close(tx), 0);

    /* blocked on the last send handle (rendezvous) */
    open_chan(&tx, &rx, sizeof v, 0);
    a = (op){ .tx = tx, .v = 5, .deadline = FOREVER };
    ta = spawn(do_send, &a);
    await_waiting(tx, 1, 0);
    REQUIRE_EQ(braid_tx_close(tx), 0);
    REQUIRE_EQ(join(ta), -EBADF);
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EPIPE);
    REQUIRE_EQ(braid_rx_close(rx), 0);
}

START_TEST(test_ebadf_blocked_handle_closed)
{
    run(ebadf_main, NULL);
}
END_TEST

/* Both close orders, with and without buffered elements, free the channel
   with its last handle (ASan / valgrind builds check the frees). */
static void close_orders_main(void *arg)
{
    braid_tx *tx, *tx2;
    braid_rx *rx;
    int64_t v = 1;

    (void)arg;
    for (int order = 0; order < 4; order++) {
        open_chan(&tx, &rx, sizeof v, order < 2 ? 3 : BRAID_UNBOUNDED);
        REQUIRE_EQ(braid_tx_clone(tx, &tx2), 0);
        REQUIRE_EQ(braid_send(tx2, &v, 0), 0);
        if (order & 1) {
            braid_rx_close(rx);
            braid_tx_close(tx);
            braid_tx_close(tx2);
        } else {
            braid_tx_close(tx);
            braid_tx_close(tx2);
            braid_rx_close(rx);
        }
    }
}

START_TEST(test_close_orders)
{
    run(close_orders_main, NULL);
}
END_TEST

static void stats_main(void *arg)
{
    braid_tx *tx, *tx2;
    braid_rx *rx, *rx2;
    int64_t v = 1;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 3);
    braid_chan_info in = info_rx(rx);
    REQUIRE_EQ(in.buffered, 0);
    REQUIRE_EQ(in.capacity, 3);
    REQUIRE_EQ(in.tx_open, 1);
    REQUIRE_EQ(in.rx_open, 1);
    REQUIRE_EQ(in.senders_waiting, 0);
    REQUIRE_EQ(in.receivers_waiting, 0);
    REQUIRE_EQ(braid_tx_clone(tx, &tx2), 0);
    REQUIRE_EQ(braid_rx_clone(rx, &rx2), 0);
    REQUIRE_EQ(braid_send(tx2, &v, 0), 0);
    REQUIRE_EQ(braid_send(tx2, &v, 0), 0);
    in = info_tx(tx);
    REQUIRE_EQ(in.buffered, 2);
    REQUIRE_EQ(in.tx_open, 2);
    REQUIRE_EQ(in.rx_open, 2);
    REQUIRE_EQ(braid_send(tx2, &v, 0), 0);
    op s = { .tx = tx, .v = 4, .deadline = FOREVER };
    braid_task *t = spawn(do_send, &s);
    await_waiting(tx, 1, 0);
    REQUIRE_EQ(info_rx(rx2).buffered, 3);
    for (int i = 0; i < 4; i++)
        REQUIRE_EQ(braid_recv(rx2, &v, FOREVER), 0);
    REQUIRE_EQ(v, 4);
    REQUIRE_EQ(join(t), 0);
    op r = { .rx = rx, .deadline = FOREVER };
    t = spawn(do_recv, &r);
    await_waiting(tx, 0, 1);
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    REQUIRE_EQ(join(t), 0);
    in = info_rx(rx);
    REQUIRE_EQ(in.buffered, 0);
    REQUIRE_EQ(in.receivers_waiting, 0);
    braid_tx_close(tx);
    braid_tx_close(tx2);
    braid_rx_close(rx);
    braid_rx_close(rx2);

    open_chan(&tx, &rx, 0, 0);
    REQUIRE_EQ(info_rx(rx).capacity, 0);
    braid_tx_close(tx);
    REQUIRE_EQ(info_rx(rx).tx_open, 0);
    braid_rx_close(rx);
}

START_TEST(test_stats)
{
    run(stats_main, NULL);
}
END_TEST

/* ---- many producers and consumers, coroutines and threads --------------- */

#define MP_PROD 4      /* even: coroutines, odd: threads */
#define MP_CONS 4
#define MP_N 10000
static const size_t mp_caps[] = { 0, 1, 10, BRAID_UNBOUNDED };

typedef struct item { int32_t pid, seq; } item;

typedef struct party {
    braid_tx *tx;           /* producers: data; consumers: unused */
    braid_rx *rx;           /* consumers: data */
    braid_tx *done;         /* threads: report here when finished */
    int pid;
    long count[MP_PROD];
    int64_t sum[MP_PROD];
} party;

static void *producer(void *a)
{
    party *p = a;
    for (int32_t s = 0; s < MP_N; s++) {
        item it = { p->pid, s };
        REQUIRE_EQ(braid_send(p->tx, &it, FOREVER), 0);
    }
    REQUIRE_EQ(braid_tx_close(p->tx), 0);
    return NULL;
}

static void *consumer(void *a)
{
    party *p = a;
    int32_t last[MP_PROD];
    item it;
    int r;

    for (int i = 0; i < MP_PROD; i++)
        last[i] = -1;
    while ((r = braid_recv(p->rx, &it, FOREVER)) == 0) {
        REQUIRE(it.pid >= 0 && it.pid < MP_PROD);
        REQUIRE(it.seq > last[it.pid]);     /* FIFO per sender */
        last[it.pid] = it.seq;
        p->count[it.pid]++;
        p->sum[it.pid] += it.seq;
    }
    REQUIRE_EQ(r, -EPIPE);
    REQUIRE_EQ(braid_rx_close(p->rx), 0);
    return NULL;
}

static void *as_thread(void *(*fn)(void *), party *p)
{
    fn(p);
    int64_t one = 1;
    REQUIRE_EQ(braid_send(p->done, &one, FOREVER), 0);
    braid_tx_close(p->done);
    return NULL;
}

static void *producer_thread(void *a) { return as_thread(producer, a); }
static void *consumer_thread(void *a) { return as_thread(consumer, a); }

static void mpmc_main(void *arg)
{
    braid_tx *tx, *dtx;
    braid_rx *rx, *drx;
    party prod[MP_PROD] = { 0 }, cons[MP_CONS] = { 0 };
    braid_task *tasks[MP_PROD + MP_CONS];
    pthread_t threads[MP_PROD + MP_CONS];
    int nt = 0, nth = 0;

    open_chan(&tx, &rx, sizeof(item), mp_caps[*(int *)arg]);
    open_chan(&dtx, &drx, sizeof(int64_t), BRAID_UNBOUNDED);
    for (int i = 0; i < MP_CONS; i++) {
        REQUIRE_EQ(braid_rx_clone(rx, &cons[i].rx), 0);
        if (i & 1)              /* threads report on done */
            REQUIRE_EQ(braid_tx_clone(dtx, &cons[i].done), 0);
    }
    for (int i = 0; i < MP_PROD; i++) {
        prod[i].pid = i;
        REQUIRE_EQ(braid_tx_clone(tx, &prod[i].tx), 0);
        if (i & 1)
            REQUIRE_EQ(braid_tx_clone(dtx, &prod[i].done), 0);
    }
    braid_tx_close(tx);
    braid_rx_close(rx);
    braid_tx_close(dtx);
    for (int i = 0; i < MP_CONS; i++) {
        if (i & 1)
            threads[nth++] = thread(consumer_thread, &cons[i]);
        else
            tasks[nt++] = spawn(consumer, &cons[i]);
    }
    for (int i = 0; i < MP_PROD; i++) {
        if (i & 1)
            threads[nth++] = thread(producer_thread, &prod[i]);
        else
            tasks[nt++] = spawn(producer, &prod[i]);
    }
    for (int i = 0; i < nt; i++)
        join(tasks[i]);
    for (int i = 0; i < nth; i++) {
        int64_t one;
        REQUIRE_EQ(braid_recv(drx, &one, FOREVER), 0);
    }
    for (int i = 0; i < nth; i++)
        pthread_join(threads[i], NULL);
    braid_rx_close(drx);
    for (int p = 0; p < MP_PROD; p++) {
        long n = 0;
        int64_t sum = 0;
        for (int c = 0; c < MP_CONS; c++) {
            n += cons[c].count[p];
            sum += cons[c].sum[p];
        }
        REQUIRE_EQ(n, MP_N);
        REQUIRE_EQ(sum, (int64_t)MP_N * (MP_N - 1) / 2);
    }
}

START_TEST(test_mpmc_conservation)
{
    int i = _i;
    run_cfg(mpmc_main, &i, 1);
}
END_TEST

/* A pthread feeds coroutines and coroutines feed a pthread; the pthread
   blocked in braid_recv wakes with -EPIPE when the last sender closes. */
typedef struct relay { braid_tx *tx; braid_rx *rx; long got; int eof; } relay;

static void *thread_side(void *a)
{
    relay *r = a;
    int64_t v;
    for (int64_t i = 0; i < 1000; i++) {
        REQUIRE_EQ(braid_send(r->tx, &i, FOREVER), 0);
        REQUIRE_EQ(braid_recv(r->rx, &v, FOREVER), 0);
        REQUIRE_EQ(v, 2 * i);
        r->got++;
    }
    braid_tx_close(r->tx);
    r->eof = braid_recv(r->rx, &v, FOREVER);   /* blocks until close */
    braid_rx_close(r->rx);
    return NULL;
}

static void *coro_side(void *a)
{
    relay *r = a;
    int64_t v;
    int rc;
    while ((rc = braid_recv(r->rx, &v, FOREVER)) == 0) {
        v *= 2;
        REQUIRE_EQ(braid_send(r->tx, &v, FOREVER), 0);
    }
    REQUIRE_EQ(rc, -EPIPE);
    braid_rx_close(r->rx);
    braid_sleep(20 * MS);           /* let the thread block in recv */
    braid_tx_close(r->tx);
    return NULL;
}

static void thread_relay_main(void *arg)
{
    relay th = { 0 }, co = { 0 };

    (void)arg;
    open_chan(&th.tx, &co.rx, sizeof(int64_t), 0);
    open_chan(&co.tx, &th.rx, sizeof(int64_t), 0);
    pthread_t t = thread(thread_side, &th);
    join(spawn(coro_side, &co));
    pthread_join(t, NULL);
    REQUIRE_EQ(th.got, 1000);
    REQUIRE_EQ(th.eof, -EPIPE);
}

START_TEST(test_pthread_and_coroutines)
{
    run_cfg(thread_relay_main, NULL, 1);
}
END_TEST

/* No runtime at all: two plain threads. */
static void *plain_sender(void *a)
{
    braid_tx *tx = a;
    for (int64_t i = 0; i < 20000; i++)
        REQUIRE_EQ(braid_send(tx, &i, FOREVER), 0);
    braid_tx_close(tx);
    return NULL;
}

START_TEST(test_plain_threads_no_runtime)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v, want = 0;
    int r;

    open_chan(&tx, &rx, sizeof v, _i == 0 ? 0 : 3);
    pthread_t t = thread(plain_sender, tx);
    while ((r = braid_recv(rx, &v, FOREVER)) == 0)
        REQUIRE_EQ(v, want++);
    REQUIRE_EQ(r, -EPIPE);
    REQUIRE_EQ(want, 20000);
    pthread_join(t, NULL);
    braid_rx_close(rx);
}
END_TEST

START_TEST(test_plain_thread_deadline_no_runtime)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v;

    open_chan(&tx, &rx, sizeof v, 0);
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EAGAIN);
    check_deadline_forms(recv_any, rx);
    check_deadline_forms(send99, tx);
    braid_tx_close(tx);
    braid_rx_close(rx);
}
END_TEST

/* ---- element sizes ------------------------------------------------------ */

static void *send_nulls(void *a)
{
    for (int i = 0; i < 100; i++)
        REQUIRE_EQ(braid_send(a, NULL, FOREVER), 0);
    braid_tx_close(a);
    return NULL;
}

static void zero_size_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t sentinel = 77;

    (void)arg;
    open_chan(&tx, &rx, 0, 0);
    braid_task *t = spawn(send_nulls, tx);
    for (int i = 0; i < 100; i++)
        REQUIRE_EQ(braid_recv(rx, i & 1 ? NULL : &sentinel, FOREVER), 0);
    REQUIRE_EQ(braid_recv(rx, NULL, FOREVER), -EPIPE);
    REQUIRE_EQ(sentinel, 77);             /* 0 bytes written */
    join(t);
    braid_rx_close(rx);

    open_chan(&tx, &rx, 0, 3);
    for (int i = 0; i < 3; i++)
        REQUIRE_EQ(braid_send(tx, NULL, 0), 0);
    REQUIRE_EQ(braid_send(tx, &sentinel, 0), -EAGAIN);
    REQUIRE_EQ(info_rx(rx).buffered, 3);
    for (int i = 0; i < 3; i++)
        REQUIRE_EQ(braid_recv(rx, NULL, 0), 0);
    REQUIRE_EQ(braid_recv(rx, NULL, 0), -EAGAIN);
    braid_tx_close(tx);
    braid_rx_close(rx);

    open_chan(&tx, &rx, 0, BRAID_UNBOUNDED);
    for (int i = 0; i < 1000000; i++)
        REQUIRE_EQ(braid_send(tx, NULL, 0), 0);
    REQUIRE_EQ(info_rx(rx).buffered, 1000000);
    braid_tx_close(tx);
    for (int i = 0; i < 1000000; i++)
        REQUIRE_EQ(braid_recv(rx, NULL, 0), 0);
    REQUIRE_EQ(braid_recv(rx, NULL, 0), -EPIPE);
    braid_rx_close(rx);
}

START_TEST(test_zero_size_elements)
{
    run(zero_size_main, NULL);
}
END_TEST

#define BIG (64 * 1024)
#define BIG_N 64

static void fill(unsigned char *p, size_t n, int k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + k);
}

static void *send_big(void *a)
{
    unsigned char *buf = malloc(BIG);
    for (int k = 0; k < BIG_N; k++) {
        fill(buf, BIG, k);
        REQUIRE_EQ(braid_send(a, buf, FOREVER), 0);
    }
    free(buf);
    braid_tx_close(a);
    return NULL;
}

static void big_main(void *arg)
{
    static const size_t caps[] = { 0, 2, BRAID_UNBOUNDED };
    unsigned char *got = malloc(BIG), *want = malloc(BIG);
    braid_tx *tx;
    braid_rx *rx;

    (void)arg;
    for (int c = 0; c < 3; c++) {
        open_chan(&tx, &rx, BIG, caps[c]);
        braid_task *t = spawn(send_big, tx);
        for (int k = 0; k < BIG_N; k++) {
            if (k % 8 == 0)
                braid_sleep(MS);        /* let the buffer fill up */
            REQUIRE_EQ(braid_recv(rx, got, FOREVER), 0);
            fill(want, BIG, k);
            REQUIRE(memcmp(got, want, BIG) == 0);
        }
        REQUIRE_EQ(braid_recv(rx, got, FOREVER), -EPIPE);
        join(t);
        braid_rx_close(rx);
    }
    /* the documented maximum, 1 MiB */
    unsigned char *mb = calloc(1, 1 << 20);
    open_chan(&tx, &rx, 1 << 20, BRAID_UNBOUNDED);
    mb[12345] = 9;
    REQUIRE_EQ(braid_send(tx, mb, 0), 0);
    mb[12345] = 0;
    REQUIRE_EQ(braid_recv(rx, mb, 0), 0);
    REQUIRE_EQ(mb[12345], 9);
    braid_tx_close(tx);
    braid_rx_close(rx);
    free(mb);
    free(got);
    free(want);
}

START_TEST(test_64k_elements)
{
    run(big_main, NULL);
}
END_TEST

/* ---- bad arguments ------------------------------------------------------ */

START_TEST(test_bad_arguments)
{
    braid_tx *tx, *out;
    braid_rx *rx, *rout;
    braid_chan_info in;
    int64_t v = 0;

    REQUIRE_EQ(braid_chan_open(NULL, &rx, 8, 1), -EINVAL);
    REQUIRE_EQ(braid_chan_open(&tx, NULL, 8, 1), -EINVAL);
    REQUIRE_EQ(braid_chan_open(&tx, &rx, (1 << 20) + 1, 1), -EINVAL);
    REQUIRE_EQ(braid_chan_open(&tx, &rx, 16, SIZE_MAX / 8), -EINVAL);
    REQUIRE_EQ(braid_chan_open(&tx, &rx, 2, SIZE_MAX - 1), -EINVAL);
    /* no overflow: accepted, nothing reserved up front */
    long rss0 = vmrss_kb();
    open_chan(&tx, &rx, 1024, (size_t)1 << 40);
    for (int i = 0; i < 100; i++)
        REQUIRE_EQ(braid_send(tx, &(char[1024]){ 0 }, 0), 0);
    ck_assert_int_lt(vmrss_kb() - rss0, 16 * 1024);
    braid_tx_close(tx);
    braid_rx_close(rx);

    open_chan(&tx, &rx, sizeof v, 1);
    REQUIRE_EQ(braid_send(NULL, &v, 0), -EINVAL);
    REQUIRE_EQ(braid_send(tx, NULL, 0), -EINVAL);
    REQUIRE_EQ(braid_recv(NULL, &v, 0), -EINVAL);
    REQUIRE_EQ(braid_tx_clone(NULL, &out), -EINVAL);
    REQUIRE_EQ(braid_tx_clone(tx, NULL), -EINVAL);
    REQUIRE_EQ(braid_rx_clone(NULL, &rout), -EINVAL);
    REQUIRE_EQ(braid_rx_clone(rx, NULL), -EINVAL);
    REQUIRE_EQ(braid_tx_close(NULL), -EINVAL);
    REQUIRE_EQ(braid_rx_close(NULL), -EINVAL);
    REQUIRE_EQ(braid_chan_stats(NULL, &in), -EINVAL);
    REQUIRE_EQ(braid_chan_stats(rx, NULL), -EINVAL);
    REQUIRE_EQ(braid_chan_stats_tx(NULL, &in), -EINVAL);
    REQUIRE_EQ(braid_chan_stats_tx(tx, NULL), -EINVAL);
    REQUIRE_EQ(info_rx(rx).buffered, 0);      /* nothing happened */

    braid_case c[2] = { { BRAID_RECV, rx, &v, 0 }, { 7, tx, &v, 0 } };
    REQUIRE_EQ(braid_select(NULL, 1, 0), -EINVAL);
    REQUIRE_EQ(braid_select(c, 2, 0), -EINVAL);            /* bad op */
    c[1] = (braid_case){ BRAID_SEND, tx, NULL, 0 };
    REQUIRE_EQ(braid_select(c, 2, 0), -EINVAL);   /* no value to send */
    REQUIRE_EQ(braid_select(c, 65537, 0), -EINVAL);
    REQUIRE_EQ(info_rx(rx).buffered, 0);
    braid_tx_close(tx);
    braid_rx_close(rx);
}
END_TEST

/* ---- cancellation ------------------------------------------------------- */

static void cancel_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v;

    (void)arg;
    /* send blocked on a full buffer */
    open_chan(&tx, &rx, sizeof v, 1);
    v = 1;
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    op s = { .tx = tx, .v = 2, .deadline = FOREVER };
    braid_task *t = spawn(do_send, &s);
    await_waiting(tx, 1, 0);
    REQUIRE_EQ(braid_cancel(t), 0);
    REQUIRE_EQ(join(t), -ECANCELED);
    REQUIRE_EQ(info_tx(tx).buffered, 1);
    REQUIRE_EQ(info_tx(tx).senders_waiting, 0);
    REQUIRE_EQ(braid_recv(rx, &v, 0), 0);
    REQUIRE_EQ(v, 1);
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EAGAIN);   /* 2 not delivered */

    /* receive blocked on empty: the next element is not lost */
    op r = { .rx = rx, .v = -1, .deadline = FOREVER };
    t = spawn(do_recv, &r);
    await_waiting(tx, 0, 1);
    braid_cancel(t);
    REQUIRE_EQ(join(t), -ECANCELED);
    REQUIRE_EQ(r.v, -1);
    v = 3;
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);
    REQUIRE_EQ(braid_recv(rx, &v, 0), 0);
    REQUIRE_EQ(v, 3);
    braid_tx_close(tx);
    braid_rx_close(rx);

    /* rendezvous send and receive */
    open_chan(&tx, &rx, sizeof v, 0);
    s = (op){ .tx = tx, .v = 4, .deadline = braid_after(10000 * MS) };
    t = spawn(do_send, &s);
    await_waiting(tx, 1, 0);
    braid_cancel(t);
    REQUIRE_EQ(join(t), -ECANCELED);
    REQUIRE_EQ(braid_recv(rx, &v, 0), -EAGAIN);
    r = (op){ .rx = rx, .v = -1, .deadline = FOREVER };
    t = spawn(do_recv, &r);
    await_waiting(tx, 0, 1);
    braid_cancel(t);
    REQUIRE_EQ(join(t), -ECANCELED);
    REQUIRE_EQ(braid_send(tx, &v, 0), -EAGAIN);
    braid_tx_close(tx);
    braid_rx_close(rx);
}

START_TEST(test_cancel_send_recv)
{
    run(cancel_main, NULL);
}
END_TEST

/* Cancellation is sticky but a call that need not block still completes. */
static void *cancelled_self(void *a)
{
    op *o = a;
    int64_t v = 5;

    braid_cancel(braid_self());
    REQUIRE_EQ(braid_send(o->tx, &v, FOREVER), 0);       /* room */
    REQUIRE_EQ(braid_send(o->tx, &v, FOREVER), -ECANCELED); /* full */
    REQUIRE_EQ(braid_send(o->tx, &v, 0), -EAGAIN);
    REQUIRE_EQ(braid_recv(o->rx, &v, FOREVER), 0);
    REQUIRE_EQ(braid_recv(o->rx, &v, FOREVER), -ECANCELED);
    return NULL;
}

static void sticky_main(void *arg)
{
    op o;

    (void)arg;
    open_chan(&o.tx, &o.rx, sizeof(int64_t), 1);
    join(spawn(cancelled_self, &o));
    REQUIRE_EQ(info_tx(o.tx).buffered, 0);
    braid_tx_close(o.tx);
    braid_rx_close(o.rx);
}

START_TEST(test_cancel_sticky)
{
    run(sticky_main, NULL);
}
END_TEST

/* ---- unbounded memory --------------------------------------------------- */

/* Sanitizer allocators quarantine freed memory: RSS says nothing there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHAN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHAN_SANITIZED 1
#endif
#endif

#define MEM_N 1000000
typedef struct rec { int64_t a, b; } rec;

static void memory_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    long full[10], empty[10];

    (void)arg;
    open_chan(&tx, &rx, sizeof(rec), BRAID_UNBOUNDED);
    long base = vmrss_kb();
    for (int c = 0; c < 10; c++) {
        for (int64_t i = 0; i < MEM_N; i++)
            REQUIRE_EQ(braid_send(tx, &(rec){ i, -i }, 0), 0);
        full[c] = vmrss_kb();
        REQUIRE_EQ(info_rx(rx).buffered, MEM_N);
        for (int64_t i = 0; i < MEM_N; i++) {
            rec r;
            REQUIRE_EQ(braid_recv(rx, &r, 0), 0);
            REQUIRE(r.a == i && r.b == -i);
        }
        empty[c] = vmrss_kb();
    }
    if (getenv("CHAN_MEM_VERBOSE"))
        for (int c = 0; c < 10; c++)
            fprintf(stderr, "cycle %d: base %ld full %ld empty %ld kB\n",
                    c, base, full[c], empty[c]);
#ifndef CHAN_SANITIZED
    long data = (long)(MEM_N * sizeof(rec) / 1024);
    ck_assert_int_ge(full[0] - base, data / 2);         /* it did grow */
    for (int c = 0; c < 10; c++) {
        ck_assert_int_le(full[c], full[0] + full[0] / 10);  /* no creep */
        ck_assert_int_le(empty[c], full[c] - data / 2);     /* given back */
    }
#endif
    braid_tx_close(tx);
    braid_rx_close(rx);
}

START_TEST(test_unbounded_memory_returns)
{
    run(memory_main, NULL);
}
END_TEST

/* ---- select ------------------------------------------------------------- */

#define SRC 4
#define SEL_N 100000

typedef struct src { braid_tx *tx; int id; long ok; } src;

static void *source(void *a)
{
    src *s = a;
    for (int64_t seq = 0;; seq++) {
        int64_t v = ((int64_t)s->id << 32) | seq;
        int r = braid_send(s->tx, &v, FOREVER);
        if (r == -EPIPE)
            break;
        REQUIRE_EQ(r, 0);
        s->ok++;
    }
    braid_tx_close(s->tx);
    return NULL;
}

typedef struct sink { braid_rx *rx; long got; } sink;

static void *sink_fn(void *a)
{
    sink *s = a;
    int64_t v;
    int r;
    while ((r = braid_recv(s->rx, &v, FOREVER)) == 0)
        s->got++;
    REQUIRE_EQ(r, -EPIPE);
    braid_rx_close(s->rx);
    return NULL;
}

/* Four rendezvous sources muxed by select into two sinks (select on two
   send cases): every select fires exactly one case, so the senders'
   successes, the selects and the sinks' receipts all agree. */
static void mux_main(void *arg)
{
    src s[SRC];
    sink k[2];
    braid_rx *rx[SRC];
    braid_tx *out[2];
    braid_task *ts[SRC], *tk[2];
    int64_t vals[SRC], next[SRC] = { 0 }, fwd;
    braid_case in[SRC], outc[2];

    (void)arg;
    for (int i = 0; i < SRC; i++) {
        s[i] = (src){ .id = i };
        open_chan(&s[i].tx, &rx[i], sizeof(int64_t), 0);
        in[i] = (braid_case){ BRAID_RECV, rx[i], &vals[i], 99 };
        ts[i] = spawn(source, &s[i]);
    }
    for (int i = 0; i < 2; i++) {
        k[i] = (sink){ 0 };
        open_chan(&out[i], &k[i].rx, sizeof(int64_t), 0);
        outc[i] = (braid_case){ BRAID_SEND, out[i], &fwd, 99 };
        tk[i] = spawn(sink_fn, &k[i]);
    }
    for (long n = 0; n < SEL_N; n++) {
        int i = braid_select(in, SRC, FOREVER);
        REQUIRE(i >= 0 && i < SRC);
        REQUIRE_EQ(in[i].result, 0);
        REQUIRE_EQ(vals[i] >> 32, i);
        REQUIRE_EQ(vals[i] & 0xffffffff, next[i]++);
        fwd = vals[i];
        int j = braid_select(outc, 2, FOREVER);
        REQUIRE(j == 0 || j == 1);
        REQUIRE_EQ(outc[j].result, 0);
    }
    long total = 0;
    for (int i = 0; i < SRC; i++) {
        braid_rx_close(rx[i]);
        join(ts[i]);
        REQUIRE_EQ(s[i].ok, next[i]);
        total += s[i].ok;
    }
    REQUIRE_EQ(total, SEL_N);
    for (int i = 0; i < 2; i++) {
        braid_tx_close(out[i]);
        join(tk[i]);
    }
    REQUIRE_EQ(k[0].got + k[1].got, SEL_N);
    ck_assert_int_gt(k[0].got, 0);
    ck_assert_int_gt(k[1].got, 0);
}

START_TEST(test_select_fires_once)
{
    run(mux_main, NULL);
}
END_TEST

static void select_deadline_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    int64_t v = 0, w = 0;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 1);
    REQUIRE_EQ(braid_send(tx, &v, 0), 0);      /* full: send blocks */
    braid_case c[3] = {
        { BRAID_SEND, tx, &v, 99 },
        { BRAID_RECV, NULL, &w, 99 },               /* ignored */
        { BRAID_SEND, tx, &v, 99 },
    };
    REQUIRE_EQ(braid_select(c, 3, 0), -EAGAIN);
    int64_t t0 = braid_now();
    REQUIRE_EQ(braid_select(c, 3, t0 + 30 * MS), -ETIMEDOUT);
    int64_t dt = braid_now() - t0;
    ck_assert_int_ge(dt, 30 * MS);
    ck_assert_int_lt(dt, 530 * MS);
    for (int i = 0; i < 3; i++)
        REQUIRE_EQ(c[i].result, 99);
    braid_chan_info in = info_tx(tx);
    REQUIRE_EQ(in.buffered, 1);
    REQUIRE_EQ(in.senders_waiting, 0);

    /* n == 0 and all-NULL: wait for the deadline */
    REQUIRE_EQ(braid_select(NULL, 0, 0), -EAGAIN);
    REQUIRE_EQ(braid_select(c, 0, braid_after(10 * MS)), -ETIMEDOUT);
    braid_case nul[2] = { { BRAID_RECV, NULL, NULL, 0 },
                          { 0, NULL, NULL, 0 } };
    REQUIRE_EQ(braid_select(nul, 2, 0), -EAGAIN);
    t0 = braid_now();
    REQUIRE_EQ(braid_select(nul, 2, t0 + 20 * MS), -ETIMEDOUT);
    ck_assert_int_ge(braid_now() - t0, 20 * MS);

    /* a NULL case next to a ready one */
    c[0] = (braid_case){ BRAID_RECV, NULL, &w, 99 };
    c[1] = (braid_case){ BRAID_RECV, rx, &w, 99 };
    REQUIRE_EQ(braid_select(c, 2, 0), 1);
    REQUIRE_EQ(c[1].result, 0);
    REQUIRE_EQ(c[0].result, 99);
    braid_tx_close(tx);
    braid_rx_close(rx);
}

START_TEST(test_select_deadline_and_null)
{
    run(select_deadline_main, NULL);
}
END_TEST

#define FAIR_N 10000

static void fairness_main(void *arg)
{
    braid_tx *tx[2];
    braid_rx *rx[2];
    int64_t v[2];
    long hits[2] = { 0 };

    (void)arg;
    for (int i = 0; i < 2; i++) {
        open_chan(&tx[i], &rx[i], sizeof(int64_t), BRAID_UNBOUNDED);
        for (int64_t k = 0; k < FAIR_N; k++)
            REQUIRE_EQ(braid_send(tx[i], &k, 0), 0);
    }
    braid_case c[2] = { { BRAID_RECV, rx[0], &v[0], 0 },
                        { BRAID_RECV, rx[1], &v[1], 0 } };
    for (int n = 0; n < FAIR_N; n++) {
        int i = braid_select(c, 2, 0);
        REQUIRE(i == 0 || i == 1);
        REQUIRE_EQ(v[i], hits[i]);    /* FIFO within each channel */
        hits[i]++;
    }
    ck_assert_int_ge(hits[0], FAIR_N * 45 / 100);
    ck_assert_int_le(hits[0], FAIR_N * 55 / 100);

    /* always ready with -EPIPE, and two ready send cases */
    braid_case s[2] = { { BRAID_SEND, tx[0], &v[0], 0 },
                        { BRAID_SEND, tx[1], &v[1], 0 } };
    long sends[2] = { 0 };
    for (int n = 0; n < FAIR_N; n++)
        sends[braid_select(s, 2, 0)]++;
    ck_assert_int_ge(sends[0], FAIR_N * 45 / 100);
    ck_assert_int_le(sends[0], FAIR_N * 55 / 100);
    hits[0] = hits[1] = 0;
    for (int i = 0; i < 2; i++)
        braid_tx_close(tx[i]);
    for (int i = 0; i < 2; i++) {      /* drain, then EOF is always ready */
        size_t left = info_rx(rx[i]).buffered;
        while (left--)
            REQUIRE_EQ(braid_recv(rx[i], NULL, 0), 0);
    }
    for (int n = 0; n < FAIR_N; n++) {
        int i = braid_select(c, 2, FOREVER);
        REQUIRE(i == 0 || i == 1);
        REQUIRE_EQ(c[i].result, -EPIPE);
        hits[i]++;
    }
    ck_assert_int_ge(hits[0], FAIR_N * 45 / 100);
    ck_assert_int_le(hits[0], FAIR_N * 55 / 100);
    for (int i = 0; i < 2; i++)
        braid_rx_close(rx[i]);
}

START_TEST(test_select_fairness)
{
    run(fairness_main, NULL);
}
END_TEST

/* Two coroutines each select {send ch, recv ch} on one rendezvous channel:
   they pair up every round, one sending and one receiving. */
typedef struct pair { braid_tx *tx; braid_rx *rx; long sent, got; } pair;

static void *pair_fn(void *a)
{
    pair *p = a;
    int64_t out = 1, in = 0;
    for (int n = 0; n < 10000; n++) {
        braid_case c[2] = { { BRAID_SEND, p->tx, &out, 9 },
                            { BRAID_RECV, p->rx, &in, 9 } };
        int i = braid_select(c, 2, FOREVER);
        REQUIRE(i == 0 || i == 1);
        REQUIRE_EQ(c[i].result, 0);
        REQUIRE_EQ(c[1 - i].result, 9);
        if (i == 0)
            p->sent++;
        else
            p->got++;
    }
    return NULL;
}

static void same_chan_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx;
    pair a, b;

    (void)arg;
    open_chan(&tx, &rx, sizeof(int64_t), 0);
    a = (pair){ tx, rx, 0, 0 };
    b = a;
    braid_task *ta = spawn(pair_fn, &a), *tb = spawn(pair_fn, &b);
    join(ta);
    join(tb);
    REQUIRE_EQ(a.sent, b.got);
    REQUIRE_EQ(a.got, b.sent);
    REQUIRE_EQ(a.sent + a.got, 10000);
    braid_tx_close(tx);
    braid_rx_close(rx);
}

START_TEST(test_select_send_recv_same_chan)
{
    run(same_chan_main, NULL);
}
END_TEST

/* One channel twice in one select; -EPIPE and -EBADF through select. */
typedef struct selop { braid_case c[3]; size_t n; int r; } selop;

static void *do_select(void *a)
{
    selop *s = a;
    s->r = braid_select(s->c, s->n, FOREVER);
    return NULL;
}

static void select_close_main(void *arg)
{
    braid_tx *tx;
    braid_rx *rx, *rx2;
    int64_t v = 5, a = 0, b = 0;

    (void)arg;
    open_chan(&tx, &rx, sizeof v, 0);
    selop s = { .c = { { BRAID_RECV, rx, &a, 9 }, { BRAID_RECV, rx, &b, 9 } },
                .n = 2 };
    braid_task *t = spawn(do_select, &s);
    await_waiting(tx, 0, 2);            /* one node per case */
    REQUIRE_EQ(braid_send(tx, &v, FOREVER), 0);
    join(t);
    REQUIRE(s.r == 0 || s.r == 1);
    REQUIRE_EQ(s.c[s.r].result, 0);
    REQUIRE_EQ(s.c[1 - s.r].result, 9);
    REQUIRE_EQ(s.r == 0 ? a : b, 5);
    REQUIRE_EQ(s.r == 0 ? b : a, 0);
    REQUIRE_EQ(info_rx(rx).receivers_waiting, 0);
    REQUIRE_EQ(braid_send(tx, &v, 0), -EAGAIN);  /* fired once */

    /* -EBADF: the handle a case waits on is closed */
    REQUIRE_EQ(braid_rx_clone(rx, &rx2), 0);
    s = (selop){ .c = { { BRAID_RECV, rx, &a, 9 },
                        { BRAID_RECV, rx2, &b, 9 } }, .n = 2 };
    t = spawn(do_select, &s);
    await_waiting(tx, 0, 2);
    braid_rx_close(rx2);
    join(t);
    REQUIRE_EQ(s.r, 1);
    REQUIRE_EQ(s.c[1].result, -EBADF);
    REQUIRE_EQ(s.c[0].result, 9);
    REQUIRE_EQ(info_rx(rx).receivers_waiting, 0);

    /* -EPIPE: the last sender closes while the select waits */
    s = (selop){ .c = { { BRAID_RECV, rx, &a, 9 } }, .n = 1 };
    t = spawn(do_select, &s);
    await_waiting(tx, 0, 1);
    braid_tx_close(tx);
    join(t);
    REQUIRE_EQ(s.r, 0);
    REQUIRE_EQ(s.c[0].result, -EPIPE);
    /* ... and at once afterwards */
    REQUIRE_EQ(braid_select(s.c, 1, 0), 0);
    REQUIRE_EQ(s.c[0].result, -EPIPE);
    braid_rx_close(rx);

    /* send case on a channel without receivers */
    open_chan(&tx, &rx, sizeof v, 4);
    braid_rx_close(rx);
    braid_case c = { BRAID_SEND, tx, &v, 9 };
    REQUIRE_EQ(braid_select(&c, 1, FOREVER), 0);
    REQUIRE_EQ(c.result, -EPIPE);
    braid_tx_close(tx);
}

START_TEST(test_select_same_chan_twice_and_close)
{
    run(select_close_main, NULL);
}
END_TEST

#define WIDE 40

static void wide_main(void *arg)
{
    braid_tx *tx[WIDE];
    braid_rx *rx[WIDE];
    braid_case c[WIDE];
    int64_t v[WIDE];
    uint32_t seed = 3;

    (void)arg;
    for (int i = 0; i < WIDE; i++) {
        open_chan(&tx[i], &rx[i], sizeof(int64_t), 1);
        c[i] = (braid_case){ BRAID_RECV, i % 5 == 4 ? NULL : rx[i], &v[i], 0 };
    }
    for (int64_t n = 0; n < 2000; n++) {
        int j;
        do
            j = (int)(rnd(&seed) % WIDE);
        while (j % 5 == 4);
        REQUIRE_EQ(braid_send(tx[j], &n, 0), 0);
        REQUIRE_EQ(braid_select(c, WIDE, FOREVER), j);
        REQUIRE_EQ(v[j], n);
    }
    /* the largest select: all NULL, past deadline */
    braid_case *big = calloc(65536, sizeof *big);
    REQUIRE_EQ(braid_select(big, 65536, 0), -EAGAIN);
    big[65535] = (braid_case){ BRAID_RECV, rx[0], &v[0], 9 };
    int64_t one = 1;
    REQUIRE_EQ(braid_send(tx[0], &one, 0), 0);
    REQUIRE_EQ(braid_select(big, 65536, FOREVER), 65535);
    REQUIRE_EQ(big[65535].result, 0);
    free(big);
    for (int i = 0; i < WIDE; i++) {
        braid_tx_close(tx[i]);
        braid_rx_close(rx[i]);
    }
}

START_TEST(test_select_wide)
{
    run(wide_main, NULL);
}
END_TEST

/* A select in a plain thread, fed by coroutines; a blocked select woken
   from a coroutine. */
typedef struct tsel { braid_rx *rx[2]; long got[2]; } tsel;

static void *thread_selector(void *a)
{
    tsel *t = a;
    int64_t v[2];
    braid_case c[2] = { { BRAID_RECV, t->rx[0], &v[0], 0 },
                        { BRAID_RECV, t->rx[1], &v[1], 0 } };
    int open = 2;
    while (open) {
        int i = braid_select(c, 2, FOREVER);
        REQUIRE(i == 0 || i == 1);
        if (c[i].result == -EPIPE) {
            c[i].chan = NULL;
            open--;
            continue;
        }
        REQUIRE_EQ(c[i].result, 0);
        REQUIRE_EQ(v[i], t->got[i]++);
    }
    return NULL;
}

static void *send_1000(void *a)
{
    for (int64_t i = 0; i < 1000; i++)
        REQUIRE_EQ(braid_send(a, &i, FOREVER), 0);
    braid_tx_close(a);
    return NULL;
}

static void thread_select_main(void *arg)
{
    braid_tx *tx[2];
    tsel t = { 0 };

    (void)arg;
    for (int i = 0; i < 2; i++)
        open_chan(&tx[i], &t.rx[i], sizeof(int64_t), i);
    pthread_t th = thread(thread_selector, &t);
    braid_task *a = spawn(send_1000, tx[0]), *b = spawn(send_1000, tx[1]);
    join(a);
    join(b);
    pthread_join(th, NULL);
    REQUIRE_EQ(t.got[0], 1000);
    REQUIRE_EQ(t.got[1], 1000);
    braid_rx_close(t.rx[0]);
    braid_rx_close(t.rx[1]);
}

START_TEST(test_select_plain_thread)
{
    run_cfg(thread_select_main, NULL, 1);
}
END_TEST

static void select_cancel_main(void *arg)
{
    braid_tx *tx1, *tx2;
    braid_rx *rx1, *rx2;
    int64_t v = 1, w = -1;

    (void)arg;
    open_chan(&tx1, &rx1, sizeof v, 0);
    open_chan(&tx2, &rx2, sizeof v, 1);
    REQUIRE_EQ(braid_send(tx2, &v, 0), 0);     /* full */
    v = 2;
    selop s = { .c = { { BRAID_RECV, rx1, &w, 9 },
                       { BRAID_SEND, tx2, &v, 9 } }, .n = 2 };
    braid_task *t = spawn(do_select, &s);
    await_waiting(tx1, 0, 1);
    await_waiting(tx2, 1, 0);
    braid_cancel(t);
    join(t);
    REQUIRE_EQ(s.r, -ECANCELED);
    REQUIRE_EQ(s.c[0].result, 9);
    REQUIRE_EQ(s.c[1].result, 9);
    REQUIRE_EQ(w, -1);
    REQUIRE_EQ(info_tx(tx1).receivers_waiting, 0);
    REQUIRE_EQ(braid_send(tx1, &v, 0), -EAGAIN);   /* not received */
    braid_chan_info in = info_tx(tx2);
    REQUIRE_EQ(in.senders_waiting, 0);
    REQUIRE_EQ(in.buffered, 1);
    REQUIRE_EQ(braid_recv(rx2, &v, 0), 0);
    REQUIRE_EQ(v, 1);
    REQUIRE_EQ(braid_recv(rx2, &v, 0), -EAGAIN);   /* 2 not sent */
    braid_tx_close(tx1);
    braid_rx_close(rx1);
    braid_tx_close(tx2);
    braid_rx_close(rx2);
}

START_TEST(test_select_cancel)
{
    run(select_cancel_main, NULL);
}
END_TEST

/* ---- prime sieve -------------------------------------------------------- */

#define PRIMES 100

static void *generate(void *a)
{
    for (int64_t i = 2;; i++)
        if (braid_send(a, &i, FOREVER) != 0)
            break;
    braid_tx_close(a);
    return NULL;
}

typedef struct filt { braid_rx *in; braid_tx *out; int64_t p; } filt;

static void *filter(void *a)
{
    filt *f = a;
    int64_t v;
    while (braid_recv(f->in, &v, FOREVER) == 0)
        if (v % f->p && braid_send(f->out, &v, FOREVER) != 0)
            break;
    braid_rx_close(f->in);
    braid_tx_close(f->out);
    return NULL;
}

static bool is_prime(int64_t n)
{
    for (int64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return n >= 2;
}

static void sieve_main(void *arg)
{
    static filt f[PRIMES];
    braid_task *t[PRIMES + 1];
    braid_tx *tx;
    braid_rx *in;
    int64_t p, want = 1;

    (void)arg;
    open_chan(&tx, &in, sizeof p, 0);
    t[PRIMES] = spawn(generate, tx);
    for (int k = 0; k < PRIMES; k++) {
        REQUIRE_EQ(braid_recv(in, &p, FOREVER), 0);
        do
            want++;
        while (!is_prime(want));
        REQUIRE_EQ(p, want);
        f[k] = (filt){ .in = in, .p = p };
        open_chan(&f[k].out, &in, sizeof p, 0);
        t[k] = spawn(filter, &f[k]);
    }
    braid_rx_close(in);                 /* tears the pipeline down */
    for (int k = 0; k <= PRIMES; k++)
        join(t[k]);
}

START_TEST(test_prime_sieve)
{
    run(sieve_main, NULL);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *chan_suite(void)
{
    Suite *s = suite_create("chan");
    TCase *tc;

    tc = tcase(s, "order");
    tcase_add_loop_test(tc, test_fifo, 0, 5);
    tcase_add_test(tc, test_rendezvous_waits_for_receiver);
    tcase_add_test(tc, test_daisy_chain);
    tcase_add_test(tc, test_prime_sieve);

    tc = tcase(s, "blocking");
    tcase_add_test(tc, test_blocking_rules);
    tcase_add_test(tc, test_timed_out_recv_takes_nothing);
    tcase_add_test(tc, test_send_races_recv_deadline);

    tc = tcase(s, "close");
    tcase_add_test(tc, test_close_drain_eof);
    tcase_add_test(tc, test_clone_tx_keeps_open);
    tcase_add_test(tc, test_clone_rx_keeps_open);
    tcase_add_test(tc, test_epipe_wakes_blocked);
    tcase_add_test(tc, test_ebadf_blocked_handle_closed);
    tcase_add_test(tc, test_close_orders);
    tcase_add_test(tc, test_stats);

    tc = tcase(s, "threads");
    tcase_add_loop_test(tc, test_mpmc_conservation, 0, 4);
    tcase_add_test(tc, test_pthread_and_coroutines);
    tcase_add_loop_test(tc, test_plain_threads_no_runtime, 0, 2);
    tcase_add_test(tc, test_plain_thread_deadline_no_runtime);

    tc = tcase(s, "elements");
    tcase_add_test(tc, test_zero_size_elements);
    tcase_add_test(tc, test_64k_elements);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_unbounded_memory_returns);

    tc = tcase(s, "cancel");
    tcase_add_test(tc, test_cancel_send_recv);
    tcase_add_test(tc, test_cancel_sticky);
    tcase_add_test(tc, test_select_cancel);

    tc = tcase(s, "select");
    tcase_add_test(tc, test_select_fires_once);
    tcase_add_test(tc, test_select_deadline_and_null);
    tcase_add_test(tc, test_select_fairness);
    tcase_add_test(tc, test_select_send_recv_same_chan);
    tcase_add_test(tc, test_select_same_chan_twice_and_close);
    tcase_add_test(tc, test_select_wide);
    tcase_add_test(tc, test_select_plain_thread);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chan_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
