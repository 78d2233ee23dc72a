/*
 * check_faults.c - braid's fault table, executable.  One test per row; the
 * test named in the right-hand column asserts the required behaviour end
 * to end (some rows restate, compactly, a scenario another suite covers in
 * depth: this file is the table's executable form).
 *
 * | fault or bad input                        | required behaviour                               | test                       |
 * |-------------------------------------------|--------------------------------------------------|----------------------------|
 * | send on a closed handle / after every     | -EBADF / -EPIPE; nothing enqueued; blocked       | send_closed_ebadf_epipe    |
 * |   receiver closed                         |   senders woken with -EPIPE                      |                            |
 * | receive on a drained channel whose        | -EPIPE at once, every time                       | recv_drained_closed_epipe  |
 * |   senders all closed                      |                                                  |                            |
 * | closing a clone                           | the channel stays open until the last handle of  | close_clone_keeps_open     |
 * |                                           |   that side closes                               |                            |
 * | NULL or invalid arguments anywhere in the | -EINVAL, no crash (every public function; the    | null_invalid_args          |
 * |   API                                     |   documented NULL meanings checked too)          |                            |
 * | capacity * elem_size overflow; huge       | -EINVAL; or lazy growth, never a huge upfront    | capacity_overflow_lazy     |
 * |   capacity                                |   allocation                                     |                            |
 * | unbounded channel under a slow consumer   | memory grows linearly and returns after the      | unbounded_slow_consumer    |
 * |                                           |   drain                                          |                            |
 * | mmap/malloc failure on spawn (hooks,      | -ENOMEM, nothing leaked or half-built; spawning  | spawn_enomem               |
 * |   RLIMIT_AS)                              |   works again afterwards                         |                            |
 * | coroutine stack overflow                  | abort with "coroutine <id> (<name>) overflowed   | stack_overflow_message     |
 * |                                           |   its <N>-byte stack"                            |                            |
 * | guard regions accepted but not installed  | mprotect guards instead (the overflow above      | stack_guards_fault         |
 * |   (an emulator)                           |   still faults)                                  |                            |
 * | EMFILE on accept                          | error returned, no CPU spin, serving resumes     | accept_emfile_no_spin      |
 * |                                           |   when fds free up                               |                            |
 * | peer reset mid-write; write to a closed   | -ECONNRESET/-EPIPE, no SIGPIPE, fds released     | peer_reset_no_sigpipe      |
 * |   peer                                    |                                                  |                            |
 * | partial writes, tiny socket buffers       | all bytes delivered in order                     | partial_writes_in_order    |
 * | fd closed while a coroutine waits on it   | waiter gets -EBADF; no stale wake-up for a       | fd_closed_while_waiting    |
 * |                                           |   reused fd number                               |                            |
 * | EINTR from a signal storm                 | retried; no spurious error                       | eintr_signal_storm         |
 * | deadline expiry while blocked             | -ETIMEDOUT/-EAGAIN within deadline + 5 ms;       | deadline_expiry_lateness   |
 * |                                           |   channel state intact afterwards                |                            |
 * | cancel while blocked in send, recv,       | -ECANCELED; the operation did not happen; waiter | cancel_while_blocked       |
 * |   select, sleep, mutex, join, I/O         |   unlinked everywhere                            |                            |
 * | a coroutine blocking its worker           | the rest of that worker's queue, next slot       | blocked_worker_queue_moves |
 * |   (nanosleep 500 ms), 2 workers           |   included, runs elsewhere within 50 ms          |                            |
 * | every coroutine blocked forever           | braid_run returns -EDEADLK after printing the    | deadlock_dump              |
 * |                                           |   dump                                           |                            |
 * | braid_run returning with coroutines still | stacks freed, no leak; braid_run works again     | run_returns_blocked_freed  |
 * |   blocked                                 |                                                  |                            |
 * | fork() while the runtime runs             | no deadlock in the child; runtime calls in the   | fork_child_eperm           |
 * |                                           |   child return -EPERM until exec                 |                            |
 * | runtime calls from a foreign pthread      | channels, select and sync work by blocking the   | foreign_thread_calls       |
 * |                                           |   thread; no call is coroutine-only (none        |                            |
 * |                                           |   returns -EPERM there)                          |                            |
 * | errno read after a migration              | the coroutine's own errno                        | errno_after_migration      |
 *
 * Conventions: every test starts its own runtime (Check forks each test);
 * tests that must watch a crash, a deadlock report or a fork child fork a
 * child of their own and read its stderr or exit code.  Waits on other
 * parties poll braid_chan_stats or braid_dump, never a fixed sleep.  The
 * only tight timing bounds are the two the table asks for (deadline + 5 ms,
 * best of 3 attempts; requeue within 50 ms); everything else is generous.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "braid.h"
#include "emulated.h"
#include "../runtime/stack.h"         /* braid__stack_guard_kind */

/* Fault-injection hooks of the core library (runtime/stack.c, coro.c). */
void braid__stack_fail_next(int n);
void braid__coro_fail_next(int n);

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || \
    __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* Under valgrind (threads serialised, ~50x slower) a few counts shrink, a
   few time bounds widen, most VmRSS and /proc/self/maps bounds are only
   printed (both count valgrind's own memory: shadow memory, translations,
   the queue of freed blocks its allocator keeps out of reuse), and what
   valgrind's emulation makes impossible is skipped: the RLIMIT_AS half of
   spawn_enomem, and accept_emfile_no_spin.  Each place says why. */
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define MS ((int64_t)1000000)
#define NOINLINE __attribute__((noinline))

static const braid_config two = { .workers = 2 };

/* ---- helpers ------------------------------------------------------------- */

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t k = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':') {
            kb = atol(line + k + 1);
            break;
        }
    if (f)
        fclose(f);
    return kb;
}

static long rss_kb(void) { return status_kb("VmRSS"); }

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *de;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* TSan's runtime opens fds of its own whenever it likes. */
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
static int count_fds(void) { return 0; }
#else
#define UNDER_TSAN 0
static int count_fds(void) { return count_dir("/proc/self/fd"); }
#endif

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void run(void (*fn)(void *), void *arg)
{
    ck_assert_int_eq(braid_run(&two, fn, arg), 0);
}

/* Run fn and check that no fd leaked. */
static void run_fds_checked(void (*fn)(void *), void *arg)
{
    int base = count_fds();
    run(fn, arg);
    ck_assert_int_eq(count_fds(), base);
}

static intptr_t join_val(braid_task *t)
{
    void *r = (void *)(intptr_t)12345;
    ck_assert_int_eq(braid_join(t, &r, BRAID_FOREVER), 0);
    return (intptr_t)r;
}

static braid_task *spawn(void *(*fn)(void *), void *arg)
{
    braid_task *t = NULL;
    ck_assert_int_eq(braid_spawn(&t, fn, arg, NULL), 0);
    return t;
}

static braid_task *spawn_named(void *(*fn)(void *), void *arg, const char *name)
{
    braid_attr a;
    braid_task *t = NULL;
    braid_attr_init(&a);
    braid_attr_set_name(&a, name);
    ck_assert_int_eq(braid_spawn(&t, fn, arg, &a), 0);
    return t;
}

static braid_chan_info chan_info(braid_tx *tx)
{
    braid_chan_info i;
    ck_assert_int_eq(braid_chan_stats_tx(tx, &i), 0);
    return i;
}

static size_t chan_info_rx_buffered(braid_rx *rx)
{
    braid_chan_info i;
    ck_assert_int_eq(braid_chan_stats(rx, &i), 0);
    return i.buffered;
}

/* Wait (coroutine or thread) until tx's channel has exactly these waiting
   counts; fails after 5 s. */
static void wait_waiting(braid_tx *tx, size_t senders, size_t receivers)
{
    int64_t end = braid_after(5000 * MS);
    braid_chan_info i;
    for (;;) {
        i = chan_info(tx);
        if (i.senders_waiting == senders && i.receivers_waiting == receivers)
            return;
        ck_assert_msg(braid_now() < end, "waiting %zu/%zu, want %zu/%zu",
                      i.senders_waiting, i.receivers_waiting, senders,
                      receivers);
        braid_sleep(MS / 4);
    }
}

/* Coroutines braid_dump shows "blocked in <what> on". */
static int count_blocked(const char *what)
{
    char *buf = NULL, pat[64];
    size_t len = 0;
    int n = 0;
    FILE *f = open_memstream(&buf, &len);
    braid_dump(f);
    fclose(f);
    snprintf(pat, sizeof pat, "blocked in %s on", what);
    for (char *p = buf; (p = strstr(p, pat)); p++)
        n++;
    free(buf);
    return n;
}

static void wait_blocked(const char *what, int n)
{
    int64_t end = braid_after(5000 * MS);
    while (count_blocked(what) < n) {
        ck_assert_msg(braid_now() < end, "never %d blocked in %s", n, what);
        braid_sleep(MS / 4);
    }
}

/* A plain thread running fn(arg). */
typedef struct thr {
    pthread_t th;
    void *(*fn)(void *);
    void *arg;
    void *ret;
} thr;

static void *thr_tramp(void *p)
{
    thr *t = p;
    t->ret = t->fn(t->arg);
    return NULL;
}

static void thr_start(thr *t, void *(*fn)(void *), void *arg)
{
    t->fn = fn;
    t->arg = arg;
    ck_assert_int_eq(pthread_create(&t->th, NULL, thr_tramp, t), 0);
}

static intptr_t thr_join(thr *t)
{
    pthread_join(t->th, NULL);
    return (intptr_t)t->ret;
}

/* Fork a child that runs fn(arg) with its stderr on a pipe; collect what
   it wrote and its wait status (killed after timeout_s). */
typedef struct capture {
    int status;
    bool timed_out;
    size_t len;
    char out[1 << 16];
} capture;

static void capture_child(capture *c, void (*fn)(void *), void *arg,
                          int timeout_s)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        signal(SIGALRM, SIG_DFL);   /* Check's handler would kill our group */
        alarm((unsigned)timeout_s + 5);     /* a hang must not outlive us */
        fn(arg);
        _exit(0);
    }
    close(p[1]);
    c->len = 0;
    c->timed_out = false;
    int64_t end = braid_now() + timeout_s * 1000 * MS;
    for (;;) {
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        int left = (int)((end - braid_now()) / MS);
        if (left <= 0 || poll(&pf, 1, left) == 0) {
            c->timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        char buf[4096];
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t room = sizeof c->out - 1 - c->len;
        size_t k = (size_t)n < room ? (size_t)n : room;
        memcpy(c->out + c->len, buf, k);
        c->len += k;
    }
    c->out[c->len] = 0;
    close(p[0]);
    while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR)
        ;
}

/* A coroutine or thread blocked in one call; its outcome. */
typedef struct op {
    braid_tx *tx;
    braid_rx *rx;
    int64_t v;
    int64_t got;
    int idx, res;
} op;

static void *send_forever(void *p)
{
    op *o = p;
    return (void *)(intptr_t)braid_send(o->tx, &o->v, BRAID_FOREVER);
}

static void *recv_forever(void *p)
{
    op *o = p;
    return (void *)(intptr_t)braid_recv(o->rx, &o->got, BRAID_FOREVER);
}

/* select over an ignored NULL case and one real case: index 1 wins. */
static void *select_send_forever(void *p)
{
    op *o = p;
    braid_case c[2] = { { BRAID_SEND, NULL, NULL, 99 },
                        { BRAID_SEND, o->tx, &o->v, 99 } };
    o->idx = braid_select(c, 2, BRAID_FOREVER);
    o->res = o->idx >= 0 ? c[o->idx].result : 0;
    return NULL;
}

static void *select_recv_forever(void *p)
{
    op *o = p;
    braid_case c[2] = { { BRAID_RECV, NULL, NULL, 99 },
                        { BRAID_RECV, o->rx, &o->got, 99 } };
    o->idx = braid_select(c, 2, BRAID_FOREVER);
    o->res = o->idx >= 0 ? c[o->idx].result : 0;
    return NULL;
}

/* ==== row: send on a closed handle / after every receiver closed ========== */

static void send_closed_main(void *unused)
{
    braid_tx *tx, *tx2;
    braid_rx *rx, *rx2;
    braid_chan_info i;
    int64_t v;

    /* The handle a sender waits on is closed: -EBADF, nothing enqueued. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 1), 0);
    v = 1;
    ck_assert_int_eq(braid_send(tx, &v, 0), 0);
    ck_assert_int_eq(braid_tx_clone(tx, &tx2), 0);
    op a = { .tx = tx2, .v = 2 };
    braid_task *t = spawn(send_forever, &a);
    wait_waiting(tx, 1, 0);
    ck_assert_int_eq(braid_tx_close(tx2), 0);
    ck_assert_int_eq(join_val(t), -EBADF);
    i = chan_info(tx);
    ck_assert_uint_eq(i.buffered, 1);
    ck_assert_uint_eq(i.tx_open, 1);
    ck_assert_uint_eq(i.senders_waiting, 0);
    ck_assert_int_eq(braid_recv(rx, &v, 0), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(braid_recv(rx, &v, 0), -EAGAIN);   /* 2 never got in */

    /* The same through select on a rendezvous channel's clone. */
    braid_tx *r0tx, *r0c;
    braid_rx *r0rx;
    ck_assert_int_eq(braid_chan_open(&r0tx, &r0rx, sizeof v, 0), 0);
    ck_assert_int_eq(braid_tx_clone(r0tx, &r0c), 0);
    op s = { .tx = r0c, .v = 3 };
    t = spawn(select_send_forever, &s);
    wait_waiting(r0tx, 1, 0);
    ck_assert_int_eq(braid_tx_close(r0c), 0);
    join_val(t);
    ck_assert_int_eq(s.idx, 1);
    ck_assert_int_eq(s.res, -EBADF);
    ck_assert_int_eq(braid_recv(r0rx, &v, 0), -EAGAIN);
    braid_tx_close(r0tx);
    braid_rx_close(r0rx);

    /* Every receiver closed: blocked senders (coroutines, select, a plain
       thread, through two handles) get -EPIPE, the buffer is dropped,
       later sends fail at once whatever the deadline. */
    ck_assert_int_eq(braid_rx_clone(rx, &rx2), 0);
    ck_assert_int_eq(braid_rx_close(rx), 0);
    v = 10;
    ck_assert_int_eq(braid_send(tx, &v, 0), 0);         /* rx2 still open */
    ck_assert_int_eq(braid_tx_clone(tx, &tx2), 0);
    op b[3] = { { .tx = tx, .v = 11 }, { .tx = tx2, .v = 12 },
                { .tx = tx, .v = 13 } };
    braid_task *ts[2] = { spawn(send_forever, &b[0]), spawn(send_forever, &b[1]) };
    op sel = { .tx = tx2, .v = 14 };
    braid_task *tsel = spawn(select_send_forever, &sel);
    thr th;
    thr_start(&th, send_forever, &b[2]);
    wait_waiting(tx, 4, 0);
    ck_assert_int_eq(braid_rx_close(rx2), 0);
    ck_assert_int_eq(join_val(ts[0]), -EPIPE);
    ck_assert_int_eq(join_val(ts[1]), -EPIPE);
    join_val(tsel);
    ck_assert_int_eq(sel.idx, 1);
    ck_assert_int_eq(sel.res, -EPIPE);
    ck_assert_int_eq(thr_join(&th), -EPIPE);
    i = chan_info(tx);
    ck_assert_uint_eq(i.rx_open, 0);
    ck_assert_uint_eq(i.buffered, 0);
    ck_assert_uint_eq(i.senders_waiting, 0);
    ck_assert_int_eq(braid_send(tx, &v, BRAID_FOREVER), -EPIPE);
    ck_assert_int_eq(braid_send(tx2, &v, 0), -EPIPE);
    ck_assert_int_eq(braid_send(tx, &v, braid_after(50 * MS)), -EPIPE);
    braid_case c = { BRAID_SEND, tx, &v, 99 };
    ck_assert_int_eq(braid_select(&c, 1, BRAID_FOREVER), 0);
    ck_assert_int_eq(c.result, -EPIPE);
    ck_assert_uint_eq(chan_info(tx).buffered, 0);       /* nothing enqueued */
    braid_tx_close(tx2);
    braid_tx_close(tx);

    /* Rendezvous: the blocked sender too. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 0), 0);
    a = (op){ .tx = tx, .v = 5 };
    t = spawn(send_forever, &a);
    wait_waiting(tx, 1, 0);
    ck_assert_int_eq(braid_rx_close(rx), 0);
    ck_assert_int_eq(join_val(t), -EPIPE);
    ck_assert_int_eq(braid_send(tx, &v, BRAID_FOREVER), -EPIPE);
    braid_tx_close(tx);
}

START_TEST(send_closed_ebadf_epipe)
{
    run(send_closed_main, NULL);
}
END_TEST

/* ==== row: receive on a drained channel whose senders all closed ========== */

static void *recv_loop_epipe(void *p)
{
    op *o = p;
    int64_t v;
    int r = braid_recv(o->rx, &v, BRAID_FOREVER);
    for (int k = 0; k < 10 && r == -EPIPE; k++)
        r = braid_recv(o->rx, &v, BRAID_FOREVER);       /* every time */
    return (void *)(intptr_t)r;
}

static void drained_checks(braid_rx *rx)
{
    int64_t v, worst = 0;
    braid_case c = { BRAID_RECV, rx, &v, 99 };
    for (int k = 0; k < 1000; k++) {
        int64_t t0 = braid_now();
        ck_assert_int_eq(braid_recv(rx, &v, BRAID_FOREVER), -EPIPE);
        ck_assert_int_eq(braid_recv(rx, &v, 0), -EPIPE);
        ck_assert_int_eq(braid_recv(rx, NULL, braid_after(500 * MS)), -EPIPE);
        c.result = 99;
        ck_assert_int_eq(braid_select(&c, 1, braid_after(500 * MS)), 0);
        ck_assert_int_eq(c.result, -EPIPE);
        int64_t dt = braid_now() - t0;
        worst = dt > worst ? dt : worst;
    }
    /* "at once": four calls never took anything like a deadline */
    ck_assert_msg(worst < 200 * MS, "a -EPIPE recv took %lld ns", (long long)worst);
}

static void recv_drained_main(void *unused)
{
    braid_tx *tx, *tx2;
    braid_rx *rx, *rx2;
    int64_t v;

    /* Buffered elements are drained first, in order, then -EPIPE. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 8), 0);
    ck_assert_int_eq(braid_tx_clone(tx, &tx2), 0);
    for (v = 0; v < 5; v++)
        ck_assert_int_eq(braid_send(v % 2 ? tx : tx2, &v, 0), 0);
    ck_assert_int_eq(braid_tx_close(tx), 0);
    ck_assert_int_eq(braid_tx_close(tx2), 0);
    for (int64_t k = 0; k < 5; k++) {
        ck_assert_int_eq(braid_recv(rx, &v, BRAID_FOREVER), 0);
        ck_assert_int_eq(v, k);
    }
    drained_checks(rx);
    braid_rx_close(rx);

    /* Receivers already blocked (coroutines, select, a plain thread, two
       handles) all get -EPIPE when the last sender closes, and again on
       every later call. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 0), 0);
    ck_assert_int_eq(braid_rx_clone(rx, &rx2), 0);
    ck_assert_int_eq(braid_tx_clone(tx, &tx2), 0);
    op r[3] = { { .rx = rx }, { .rx = rx2 }, { .rx = rx } };
    braid_task *t0 = spawn(recv_loop_epipe, &r[0]);
    braid_task *t1 = spawn(recv_loop_epipe, &r[1]);
    op sel = { .rx = rx2 };
    braid_task *ts = spawn(select_recv_forever, &sel);
    thr th;
    thr_start(&th, recv_loop_epipe, &r[2]);
    wait_waiting(tx, 0, 4);
    ck_assert_int_eq(braid_tx_close(tx), 0);
    braid_sleep(10 * MS);
    ck_assert_uint_eq(chan_info(tx2).receivers_waiting, 4);   /* tx2 open */
    ck_assert_int_eq(braid_tx_close(tx2), 0);
    ck_assert_int_eq(join_val(t0), -EPIPE);
    ck_assert_int_eq(join_val(t1), -EPIPE);
    join_val(ts);
    ck_assert_int_eq(sel.idx, 1);
    ck_assert_int_eq(sel.res, -EPIPE);
    ck_assert_int_eq(thr_join(&th), -EPIPE);
    drained_checks(rx2);
    braid_rx_close(rx);
    braid_rx_close(rx2);

    /* Zero-size elements: the count is the buffer. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, 0, BRAID_UNBOUNDED), 0);
    ck_assert_int_eq(braid_send(tx, NULL, 0), 0);
    ck_assert_int_eq(braid_send(tx, NULL, 0), 0);
    braid_tx_close(tx);
    ck_assert_int_eq(braid_recv(rx, NULL, 0), 0);
    ck_assert_int_eq(braid_recv(rx, NULL, BRAID_FOREVER), 0);
    drained_checks(rx);
    braid_rx_close(rx);
}

START_TEST(recv_drained_closed_epipe)
{
    run(recv_drained_main, NULL);
}
END_TEST

/* ==== row: closing a clone ================================================ */

static void close_clone_main(void *unused)
{
    braid_tx *tx, *tx2, *tx3;
    braid_rx *rx, *rx2;
    braid_chan_info i;
    int64_t v;

    /* Send side: tx -> tx2 -> tx3 (a clone of a clone). */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 0), 0);
    ck_assert_int_eq(braid_tx_clone(tx, &tx2), 0);
    ck_assert_int_eq(braid_tx_clone(tx2, &tx3), 0);
    ck_assert_uint_eq(chan_info(tx).tx_open, 3);
    op r = { .rx = rx };
    braid_task *t = spawn(recv_forever, &r);
    wait_waiting(tx, 0, 1);
    ck_assert_int_eq(braid_tx_close(tx), 0);
    ck_assert_int_eq(braid_tx_close(tx3), 0);
    ck_assert_int_eq(braid_recv(rx, &v, braid_after(20 * MS)), -ETIMEDOUT);
    i = chan_info(tx2);
    ck_assert_uint_eq(i.tx_open, 1);
    ck_assert_uint_eq(i.receivers_waiting, 1);          /* still blocked */
    v = 42;
    ck_assert_int_eq(braid_send(tx2, &v, BRAID_FOREVER), 0);
    ck_assert_int_eq(join_val(t), 0);
    ck_assert_int_eq(r.got, 42);
    t = spawn(recv_forever, &r);
    wait_waiting(tx2, 0, 1);
    ck_assert_int_eq(braid_tx_close(tx2), 0);           /* the last one */
    ck_assert_int_eq(join_val(t), -EPIPE);
    ck_assert_int_eq(braid_recv(rx, &v, 0), -EPIPE);
    braid_rx_close(rx);

    /* Receive side, with a sender blocked on a full buffer meanwhile. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 1), 0);
    ck_assert_int_eq(braid_rx_clone(rx, &rx2), 0);
    v = 1;
    ck_assert_int_eq(braid_send(tx, &v, 0), 0);
    op s = { .tx = tx, .v = 2 };
    t = spawn(send_forever, &s);
    wait_waiting(tx, 1, 0);
    ck_assert_int_eq(braid_rx_close(rx), 0);
    braid_sleep(10 * MS);
    i = chan_info(tx);
    ck_assert_uint_eq(i.rx_open, 1);
    ck_assert_uint_eq(i.senders_waiting, 1);            /* not -EPIPE'd */
    ck_assert_uint_eq(i.buffered, 1);
    ck_assert_int_eq(braid_recv(rx2, &v, 0), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(join_val(t), 0);
    ck_assert_int_eq(braid_recv(rx2, &v, 0), 0);
    ck_assert_int_eq(v, 2);
    v = 3;
    ck_assert_int_eq(braid_send(tx, &v, 0), 0);
    ck_assert_int_eq(braid_rx_close(rx2), 0);           /* the last one */
    ck_assert_int_eq(braid_send(tx, &v, BRAID_FOREVER), -EPIPE);
    ck_assert_uint_eq(chan_info(tx).buffered, 0);
    braid_tx_close(tx);
}

START_TEST(close_clone_keeps_open)
{
    run(close_clone_main, NULL);
}
END_TEST

/* ==== row: NULL or invalid arguments anywhere in the API ================== */

static void nop(void *p) { (void)p; }
static void *nop_ret(void *p) { return p; }
static void nop_void(void) {}
static int nop_child(void *p) { (void)p; return 0; }

/* braid_dump(NULL) prints to stderr: catch it in a temporary file. */
static void dump_null_goes_to_stderr(void)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    dup2(fileno(tmp), 2);
    braid_dump(NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[4096] = { 0 };
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    fclose(tmp);
    ck_assert_msg(n > 0 && strstr(buf, "braid dump") != NULL,
                  "braid_dump(NULL) wrote to stderr: '%s'", buf);
}

static void bad_args_runtime(bool in_coro)
{
    braid_config big = { .workers = 1025 };
    braid_config tiny = { .workers = 1, .stack_size = 100 };
    braid_config huge = { .workers = 1, .stack_size = (size_t)2 << 30 };
    ck_assert_int_eq(braid_run(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(braid_run(&two, NULL, NULL), -EINVAL);
    if (in_coro) {
        ck_assert_int_eq(braid_run(NULL, nop, NULL), -EPERM);
    } else {
        ck_assert_int_eq(braid_run(&big, nop, NULL), -EINVAL);
        ck_assert_int_eq(braid_run(&tiny, nop, NULL), -EINVAL);
        ck_assert_int_eq(braid_run(&huge, nop, NULL), -EINVAL);
    }
    braid_attr a;
    ck_assert_int_eq(braid_attr_init(NULL), -EINVAL);
    ck_assert_int_eq(braid_attr_init(&a), 0);
    ck_assert_int_eq(braid_attr_set_stack_size(NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_attr_set_stack_size(&a, 1), -EINVAL);
    ck_assert_int_eq(braid_attr_set_stack_size(&a, (16 << 10) - 1), -EINVAL);
    ck_assert_int_eq(braid_attr_set_stack_size(&a, (1u << 30) + 1), -EINVAL);
    ck_assert_int_eq(braid_attr_set_stack_size(&a, 0), 0);
    ck_assert_int_eq(braid_attr_set_name(NULL, "x"), -EINVAL);
    ck_assert_int_eq(braid_attr_set_name(&a, NULL), 0);

    braid_task *t = NULL;
    ck_assert_int_eq(braid_go(NULL, NULL), -EINVAL);
    ck_assert_int_eq(braid_spawn(NULL, nop_ret, NULL, NULL), -EINVAL);
    ck_assert_int_eq(braid_spawn(&t, NULL, NULL, NULL), -EINVAL);
    braid_attr bad = { .stack_size = 100 };             /* bypassing the setter */
    ck_assert_int_eq(braid_spawn(&t, nop_ret, NULL, &bad), -EINVAL);
    bad.stack_size = (size_t)4 << 30;
    ck_assert_int_eq(braid_spawn(&t, nop_ret, NULL, &bad), -EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(braid_join(NULL, NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_join(NULL, NULL, BRAID_FOREVER), -EINVAL);
    if (in_coro)
        ck_assert_int_eq(braid_join(braid_self(), NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_detach(NULL), -EINVAL);
    ck_assert_int_eq(braid_cancel(NULL), -EINVAL);
    ck_assert_int_eq(braid_blocking(NULL, NULL, NULL), -EINVAL);
    if (!in_coro) {
        ck_assert_int_eq(braid_go(nop, NULL), -EPERM);          /* no runtime */
        ck_assert_int_eq(braid_spawn(&t, nop_ret, NULL, NULL), -EPERM);
        ck_assert_int_eq(braid_cancelled(), 0);
        ck_assert_ptr_null(braid_self());
    }
    braid_yield();                                      /* harmless anywhere */

    /* Time: negative durations and saturation. */
    int64_t now = braid_now();
    ck_assert_int_gt(now, 0);
    ck_assert_int_ge(braid_after(-5), now);
    ck_assert_int_eq(braid_after(INT64_MAX), INT64_MAX);
    ck_assert_int_eq(braid_sleep(0), 0);
    ck_assert_int_eq(braid_sleep(INT64_MIN), 0);
    ck_assert_int_eq(braid_sleep_until(INT64_MIN), 0);
    ck_assert_int_eq(braid_sleep_until(0), 0);

    /* Void functions with a documented NULL meaning. */
    braid_stats_get(NULL);                              /* does nothing */
    dump_null_goes_to_stderr();
    const int errs[] = { 0, -EPIPE, EPIPE, -EINVAL, 4095, -4095, INT_MAX,
                         INT_MIN, INT_MIN + 1 };
    for (size_t k = 0; k < sizeof errs / sizeof errs[0]; k++)
        ck_assert_ptr_nonnull(braid_strerror(errs[k]));
}

static void bad_args_chan(void)
{
    braid_tx *tx, *o;
    braid_rx *rx, *orx;
    braid_chan_info info;
    int64_t v = 0;
    ck_assert_int_eq(braid_chan_open(NULL, &rx, 8, 1), -EINVAL);
    ck_assert_int_eq(braid_chan_open(&tx, NULL, 8, 1), -EINVAL);
    ck_assert_int_eq(braid_chan_open(NULL, NULL, 8, 1), -EINVAL);
    ck_assert_int_eq(braid_chan_open(&tx, &rx, ((size_t)1 << 20) + 1, 1), -EINVAL);
    ck_assert_int_eq(braid_chan_open(&tx, &rx, SIZE_MAX, 0), -EINVAL);
    ck_assert_int_eq(braid_chan_open(&tx, &rx, 16, SIZE_MAX / 8), -EINVAL);
    ck_assert_int_eq(braid_chan_open(&tx, &rx, 8, 1), 0);
    ck_assert_int_eq(braid_send(NULL, &v, 0), -EINVAL);
    ck_assert_int_eq(braid_send(tx, NULL, 0), -EINVAL);   /* elem_size 8 */
    ck_assert_int_eq(braid_recv(NULL, &v, 0), -EINVAL);
    ck_assert_int_eq(braid_recv(rx, NULL, 0), -EAGAIN);   /* NULL: discard */
    ck_assert_int_eq(braid_tx_clone(NULL, &o), -EINVAL);
    ck_assert_int_eq(braid_tx_clone(tx, NULL), -EINVAL);
    ck_assert_int_eq(braid_rx_clone(NULL, &orx), -EINVAL);
    ck_assert_int_eq(braid_rx_clone(rx, NULL), -EINVAL);
    ck_assert_int_eq(braid_tx_close(NULL), -EINVAL);
    ck_assert_int_eq(braid_rx_close(NULL), -EINVAL);
    ck_assert_int_eq(braid_chan_stats(NULL, &info), -EINVAL);
    ck_assert_int_eq(braid_chan_stats(rx, NULL), -EINVAL);
    ck_assert_int_eq(braid_chan_stats_tx(NULL, &info), -EINVAL);
    ck_assert_int_eq(braid_chan_stats_tx(tx, NULL), -EINVAL);

    /* select */
    braid_case c[2] = { { BRAID_RECV, rx, &v, 0 }, { 0, tx, &v, 0 } };
    ck_assert_int_eq(braid_select(NULL, 1, 0), -EINVAL);
    ck_assert_int_eq(braid_select(c, 2, 0), -EINVAL);        /* op 0 */
    c[1].op = 3;
    ck_assert_int_eq(braid_select(c, 2, BRAID_FOREVER), -EINVAL);
    c[1].op = -1;
    ck_assert_int_eq(braid_select(c, 2, BRAID_FOREVER), -EINVAL);
    braid_case *wide = calloc(65537, sizeof *wide);
    for (size_t k = 0; k < 65537; k++)
        wide[k].op = BRAID_RECV;
    ck_assert_int_eq(braid_select(wide, 65537, 0), -EINVAL);
    ck_assert_int_eq(braid_select(wide, 65536, 0), -EAGAIN);  /* all NULL */
    free(wide);
    ck_assert_int_eq(braid_select(NULL, 0, 0), -EAGAIN);
    ck_assert_int_eq(braid_select(c, 0, braid_after(5 * MS)), -ETIMEDOUT);
    ck_assert_uint_eq(chan_info(tx).receivers_waiting, 0);
    ck_assert_int_eq(braid_tx_close(tx), 0);
    ck_assert_int_eq(braid_rx_close(rx), 0);

    /* elem_size 0: a NULL element is fine. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, 0, 1), 0);
    ck_assert_int_eq(braid_send(tx, NULL, 0), 0);
    ck_assert_int_eq(braid_recv(rx, NULL, 0), 0);
    braid_tx_close(tx);
    braid_rx_close(rx);
}

static void bad_args_sync(bool in_coro)
{
    braid_mutex m = BRAID_MUTEX_INIT;
    braid_cond c = BRAID_COND_INIT;
    braid_wg w = BRAID_WG_INIT;
    braid_sem s = BRAID_SEM_INIT(0);
    braid_once o = BRAID_ONCE_INIT;
    ck_assert_int_eq(braid_mutex_lock(NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_mutex_trylock(NULL), -EINVAL);
    ck_assert_int_eq(braid_mutex_unlock(NULL), -EINVAL);
    ck_assert_int_eq(braid_mutex_unlock(&m), -EPERM);       /* not locked */
    ck_assert_int_eq(braid_cond_wait(NULL, &m, 0), -EINVAL);
    ck_assert_int_eq(braid_cond_wait(&c, NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_cond_wait(&c, &m, BRAID_FOREVER), -EPERM);
    ck_assert_int_eq(braid_cond_signal(NULL), -EINVAL);
    ck_assert_int_eq(braid_cond_broadcast(NULL), -EINVAL);
    ck_assert_int_eq(braid_wg_add(NULL, 1), -EINVAL);
    ck_assert_int_eq(braid_wg_add(&w, -1), -EINVAL);          /* below zero */
    ck_assert_int_eq(braid_wg_add(&w, INT64_MIN), -EINVAL);
    ck_assert_int_eq(braid_wg_done(NULL), -EINVAL);
    ck_assert_int_eq(braid_wg_done(&w), -EINVAL);
    ck_assert_int_eq(braid_wg_wait(NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_wg_wait(&w, 0), 0);                /* unchanged */
    ck_assert_int_eq(braid_sem_init(NULL, 1), -EINVAL);
    ck_assert_int_eq(braid_sem_init(&s, UINT64_MAX), -EINVAL);
    ck_assert_int_eq(braid_sem_acquire(NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_sem_release(NULL), -EINVAL);
    ck_assert_int_eq(braid_sem_init(&s, ((uint64_t)1 << 63) - 1), 0);
    ck_assert_int_eq(braid_sem_release(&s), -EOVERFLOW);
    ck_assert_int_eq(braid_once_do(NULL, nop_void), -EINVAL);
    ck_assert_int_eq(braid_once_do(&o, NULL), -EINVAL);
    braid_nursery *n = NULL;
    ck_assert_int_eq(braid_nursery_open(NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_nursery_go(NULL, nop_child, NULL), -EINVAL);
    ck_assert_int_eq(braid_nursery_cancel(NULL), -EINVAL);
    ck_assert_int_eq(braid_nursery_close(NULL), -EINVAL);
    if (in_coro) {
        ck_assert_int_eq(braid_nursery_open(&n, BRAID_FOREVER), 0);
        ck_assert_int_eq(braid_nursery_go(n, NULL, NULL), -EINVAL);
        ck_assert_int_eq(braid_nursery_close(n), 0);
    } else {
        ck_assert_int_eq(braid_nursery_open(&n, braid_after(MS)), -EPERM);
    }
}

static void bad_args_io(void)
{
    char buf[8];
    int p[2];
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof sa;
    ck_assert_int_eq(pipe(p), 0);
    int lfd = braid_tcp_listen("127.0.0.1", "0", 4);
    ck_assert_int_ge(lfd, 0);
    const int unopened = 100000, toobig = 1 << 22;

    ck_assert_int_eq(braid_fd_wait(-1, BRAID_READ, 0), -EBADF);
    ck_assert_int_eq(braid_fd_wait(p[0], 0, 0), -EINVAL);
    ck_assert_int_eq(braid_fd_wait(p[0], 4, 0), -EINVAL);
    ck_assert_int_eq(braid_fd_wait(p[0], -1, 0), -EINVAL);
    ck_assert_int_eq(braid_fd_wait(unopened, BRAID_READ, 0), -EBADF);
    ck_assert_int_eq(braid_fd_wait(toobig, BRAID_READ, 0), -EBADF);
    ck_assert_int_eq(braid_read(-1, buf, 1, 0), -EBADF);
    ck_assert_int_eq(braid_read(p[0], NULL, 1, 0), -EINVAL);
    ck_assert_int_eq(braid_read(unopened, buf, 1, 0), -EBADF);
    ck_assert_int_eq(braid_read(toobig, buf, 1, 0), -EBADF);
    ck_assert_int_eq(braid_write(-1, buf, 1, 0), -EBADF);
    ck_assert_int_eq(braid_write(p[1], NULL, 1, 0), -EINVAL);
    ck_assert_int_eq(braid_write(p[1], buf, (size_t)SSIZE_MAX + 1, 0), -EINVAL);
    ck_assert_int_eq(braid_write(unopened, buf, 1, 0), -EBADF);
    ck_assert_int_eq(braid_write(toobig, buf, 1, 0), -EBADF);
    ck_assert_int_eq(braid_accept(-1, NULL, NULL, 0), -EBADF);
    ck_assert_int_eq(braid_accept(lfd, (struct sockaddr *)&sa, NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_accept(unopened, NULL, NULL, 0), -EBADF);
    ck_assert_int_lt(braid_accept(p[0], NULL, NULL, 0), 0);   /* not a socket */
    ck_assert_int_eq(braid_connect(-1, (struct sockaddr *)&sa, len, 0), -EBADF);
    ck_assert_int_eq(braid_connect(lfd, NULL, len, 0), -EINVAL);
    ck_assert_int_eq(braid_connect(lfd, (struct sockaddr *)&sa, 0, 0), -EINVAL);
    ck_assert_int_eq(braid_tcp_listen(NULL, NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_tcp_listen("127.0.0.1", "no-such-service-braid", 0),
                     -ENOENT);
    ck_assert_int_eq(braid_tcp_listen_ex("127.0.0.1", "0", 0, 2), -EINVAL);
    ck_assert_int_eq(braid_tcp_listen_ex("127.0.0.1", "0", 0, -1), -EINVAL);
    ck_assert_int_eq(braid_tcp_dial(NULL, NULL, 0), -EINVAL);
    ck_assert_int_eq(braid_tcp_dial("127.0.0.1", "no-such-service-braid",
                                    braid_after(1000 * MS)), -ENOENT);
    ck_assert_int_eq(braid_pread(-1, buf, 1, 0, 0), -EBADF);
    ck_assert_int_eq(braid_pwrite(-1, buf, 1, 0, 0), -EBADF);
    FILE *f = tmpfile();
    int ffd = fileno(f);
    ck_assert_int_eq(braid_pread(ffd, NULL, 1, 0, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_pwrite(ffd, NULL, 1, 0, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_pread(ffd, buf, 1, -1, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_pwrite(ffd, buf, 1, -1, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_pread(ffd, buf, 1, 0, BRAID_FOREVER), 0);  /* EOF */
    fclose(f);
    ck_assert_int_eq(braid_close(-1), -EBADF);
    ck_assert_int_eq(braid_close(toobig), -EBADF);
    ck_assert_int_eq(braid_close(unopened), -EBADF);
    ck_assert_int_eq(braid_close(p[0]), 0);
    ck_assert_int_eq(braid_close(p[0]), -EBADF);                /* twice */
    ck_assert_int_eq(braid_close(p[1]), 0);
    ck_assert_int_eq(braid_close(lfd), 0);
}

static void bad_args_all(bool in_coro)
{
    bad_args_runtime(in_coro);
    bad_args_chan();
    bad_args_sync(in_coro);
    bad_args_io();
}

static void bad_args_main(void *unused) { bad_args_all(true); }
static void *bad_args_thread(void *unused) { bad_args_all(false); return NULL; }

START_TEST(null_invalid_args)
{
    int base = count_fds();
    bad_args_all(false);                    /* no runtime: a plain thread */
    run(bad_args_main, NULL);
    thr th;                                 /* a plain thread, runtime gone */
    thr_start(&th, bad_args_thread, NULL);
    thr_join(&th);
    ck_assert_int_eq(count_fds(), base);
}
END_TEST

/* ==== row: capacity * elem_size overflow; huge capacity =================== */

static void capacity_main(void *unused)
{
    braid_tx *tx;
    braid_rx *rx;
    /* Overflow of capacity * elem_size is refused. */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, 1024, SIZE_MAX / 1024 + 1), -EINVAL);
    ck_assert_int_eq(braid_chan_open(&tx, &rx, 2, SIZE_MAX / 2 + 1), -EINVAL);
    ck_assert_int_eq(braid_chan_open(&tx, &rx, (size_t)1 << 20, SIZE_MAX - 1), -EINVAL);

    /* 2^40 slots of 1 KiB (1 PiB) opens without reserving anything. */
    long rss0 = rss_kb();
    ck_assert_int_eq(braid_chan_open(&tx, &rx, 1024, (size_t)1 << 40), 0);
    braid_tx *tx2;
    braid_rx *rx2;
    ck_assert_int_eq(braid_chan_open(&tx2, &rx2, (size_t)1 << 20, BRAID_UNBOUNDED), 0);
    long rss1 = rss_kb();
    fprintf(stderr, "capacity 2^40 x 1 KiB + unbounded x 1 MiB: VmRSS %+ld KiB\n",
            rss1 - rss0);
    ck_assert_int_lt(rss1 - rss0, 1024);
    braid_chan_info i = chan_info(tx);
    ck_assert_uint_eq(i.capacity, (size_t)1 << 40);

    /* It grows as filled (8 MiB of elements) and gives it back. */
    enum { N = 8192 };
    char elem[1024];
    for (int k = 0; k < N; k++) {
        memset(elem, (char)k, sizeof elem);
        ck_assert_int_eq(braid_send(tx, elem, 0), 0);
    }
    long rss2 = rss_kb();
    ck_assert_uint_eq(chan_info(tx).buffered, N);
    /* ~1 KiB each; sanitizers add shadow memory for what is touched */
    ck_assert_int_lt(rss2 - rss0, (SANITIZED ? 12 : 3) * N);
    for (int k = 0; k < N; k++) {
        ck_assert_int_eq(braid_recv(rx, elem, 0), 0);
        ck_assert_int_eq(elem[0], (char)k);
        ck_assert_int_eq(elem[1023], (char)k);
    }
    ck_assert_int_eq(braid_recv(rx, elem, 0), -EAGAIN);
    long rss3 = rss_kb();
    fprintf(stderr, "8192 x 1 KiB buffered: VmRSS %+ld KiB, after the drain %+ld KiB\n",
            rss2 - rss0, rss3 - rss0);
    /* valgrind keeps freed blocks out of reuse until 20 MB of them queue
       up, and each ck_assert frees a few small ones (Check's location
       message): over the drain loop that queue grows about as much as the
       segments give back */
    if (!SANITIZED && !RUNNING_ON_VALGRIND)
        ck_assert_int_lt(rss3 - rss0, 2048);
    braid_tx_close(tx);
    braid_rx_close(rx);
    braid_tx_close(tx2);
    braid_rx_close(rx2);
}

START_TEST(capacity_overflow_lazy)
{
    run(capacity_main, NULL);
}
END_TEST

/* ==== row: unbounded channel under a slow consumer ======================== */

/* valgrind: a tenth (the memory bounds are only printed there, and two
   million sends and receives take most of the test's timeout) */
#define UNB_N (RUNNING_ON_VALGRIND ? 200000 : 2000000)
typedef struct unb {
    braid_tx *tx;
    braid_rx *rx;
    _Atomic int go;             /* consumer: start draining */
    int64_t bad;
} unb;

/* Takes one element a millisecond until told to drain; checks FIFO. */
static void *slow_consumer(void *p)
{
    unb *u = p;
    int64_t v, next = 0;
    while (!atomic_load(&u->go)) {
        if (braid_recv(u->rx, &v, 0) == 0)
            u->bad += v != next++;
        braid_sleep(MS);
    }
    for (;;) {
        int r = braid_recv(u->rx, &v, BRAID_FOREVER);
        if (r == -EPIPE)
            break;
        u->bad += r != 0 || v != next++;
    }
    u->bad += next != UNB_N;
    return NULL;
}

static void unbounded_main(void *unused)
{
    unb u = { .bad = 0 };
    ck_assert_int_eq(braid_chan_open(&u.tx, &u.rx, sizeof(int64_t), BRAID_UNBOUNDED), 0);
    long rss0 = rss_kb();
    braid_task *c = spawn(slow_consumer, &u);
    double per[4];
    long rss_at[4];
    int m = 0;
    for (int64_t k = 0; k < UNB_N; k++) {
        ck_assert_int_eq(braid_send(u.tx, &k, 0), 0);   /* never blocks */
        if ((k + 1) % (UNB_N / 4) == 0) {
            size_t buffered = chan_info(u.tx).buffered;
            rss_at[m] = rss_kb();
            per[m] = (double)(rss_at[m] - rss0) * 1024 / (double)buffered;
            fprintf(stderr, "unbounded: %zu buffered, VmRSS %+ld KiB, %.1f B each\n",
                    buffered, rss_at[m] - rss0, per[m]);
            m++;
        }
    }
    /* Linear: the same cost per buffered element at every fill level, close
       to the element size (8 bytes).  (Sanitizers' allocators and shadow
       memory blur VmRSS, and so does valgrind's queue of freed blocks, out
       of reuse until 20 MB of them queue up: each ck_assert in the loop
       frees a few small ones, ~350 bytes of VmRSS per element there.  The
       numbers are only printed.) */
    bool rss_exact = !SANITIZED && !RUNNING_ON_VALGRIND;
    for (int k = 0; k < 4 && rss_exact; k++) {
        ck_assert_msg(per[k] > 4 && per[k] < 24, "%.1f bytes per element", per[k]);
        ck_assert_msg(per[k] < 1.5 * per[3] && per[k] > per[3] / 1.5,
                      "not linear: %.1f vs %.1f bytes per element", per[k], per[3]);
    }
    if (!SANITIZED)
        ck_assert_int_gt(rss_at[3], rss_at[1]);
    atomic_store(&u.go, 1);
    ck_assert_int_eq(braid_tx_close(u.tx), 0);
    join_val(c);
    ck_assert_int_eq(u.bad, 0);
    ck_assert_uint_eq(chan_info_rx_buffered(u.rx), 0);
    long rss_end = rss_kb();
    fprintf(stderr, "unbounded: after the drain VmRSS %+ld KiB (peak %+ld)\n",
            rss_end - rss0, rss_at[3] - rss0);
    if (rss_exact)
        ck_assert_int_lt(rss_end - rss0, (rss_at[3] - rss0) / 4);
    braid_rx_close(u.rx);
}

START_TEST(unbounded_slow_consumer)
{
    run(unbounded_main, NULL);
}
END_TEST

/* ==== row: mmap/malloc failure on spawn =================================== */

#define ENOMEM_MAX 50000
static _Atomic int go_parked_done;

static void *park_recv(void *p)
{
    int64_t v;
    return (void *)(intptr_t)braid_recv(p, &v, BRAID_FOREVER);
}

static void go_park_recv(void *p)
{
    int64_t v;
    if (braid_recv(p, &v, BRAID_FOREVER) == -EPIPE)
        atomic_fetch_add(&go_parked_done, 1);
}

static uint64_t spawned_now(void)
{
    braid_stats s;
    braid_stats_get(&s);
    return s.spawned;
}

/* Spawns that fail leave no trace: nothing counted, nothing running; and
   the very next spawn works. */
static void enomem_stack_slab(void)
{
    braid_attr a;
    braid_task *t = NULL;
    braid_tx *tx;
    braid_rx *rx;
    braid_attr_init(&a);
    braid_attr_set_stack_size(&a, 256 << 10);   /* no slab of this size yet */
    braid_attr_set_name(&a, "fresh-size");
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof(int64_t), 0), 0);
    uint64_t s0 = spawned_now();
    braid__stack_fail_next(2);
    ck_assert_int_eq(braid_spawn(&t, park_recv, rx, &a), -ENOMEM);
    ck_assert_int_eq(braid_spawn(&t, park_recv, rx, &a), -ENOMEM);
    ck_assert_ptr_null(t);
    ck_assert_uint_eq(spawned_now(), s0);
    ck_assert_uint_eq(chan_info(tx).receivers_waiting, 0);
    /* Nothing half-built: 100 of that size (several slabs) work now. */
    braid_task *ts[100];
    for (int k = 0; k < 100; k++)
        ck_assert_int_eq(braid_spawn(&ts[k], park_recv, rx, &a), 0);
    wait_waiting(tx, 0, 100);
    braid_tx_close(tx);
    for (int k = 0; k < 100; k++)
        ck_assert_int_eq(join_val(ts[k]), -EPIPE);
    braid_rx_close(rx);
}

/* Coroutine-object slabs: spawn parked coroutines until the next slab is
   needed and its mapping fails. */
static void enomem_coro_slab(void)
{
    braid_tx *tx;
    braid_rx *rx;
    braid_task **ts = malloc(sizeof *ts * (ENOMEM_MAX + 1));
    int n = 0, g = 0, r = 0;
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof(int64_t), 0), 0);
    braid__coro_fail_next(1);
    while (n < ENOMEM_MAX && (r = braid_spawn(&ts[n], park_recv, rx, NULL)) == 0)
        n++;
    ck_assert_int_eq(r, -ENOMEM);
    uint64_t s0 = spawned_now();
    ck_assert_int_eq(braid_spawn(&ts[n], park_recv, rx, NULL), 0);
    n++;
    ck_assert_uint_eq(spawned_now(), s0 + 1);
    braid__coro_fail_next(1);
    while (g < ENOMEM_MAX && (r = braid_go(go_park_recv, rx)) == 0)
        g++;
    ck_assert_int_eq(r, -ENOMEM);
    ck_assert_int_eq(braid_go(go_park_recv, rx), 0);
    g++;
    fprintf(stderr, "coroutine slab failure after %d spawns and %d gos\n", n, g);
    wait_waiting(tx, 0, (size_t)(n + g));
    braid_tx_close(tx);
    for (int k = 0; k < n; k++)
        ck_assert_int_eq(join_val(ts[k]), -EPIPE);
    int64_t end = braid_after(5000 * MS);
    while (atomic_load(&go_parked_done) < g && braid_now() < end)
        braid_sleep(MS);
    ck_assert_int_eq(atomic_load(&go_parked_done), g);
    braid_rx_close(rx);
    free(ts);
    braid_stats s;                      /* only main is left */
    do {
        braid_sleep(MS);
        braid_stats_get(&s);
    } while (s.live != 1 && braid_now() < end);
    ck_assert_uint_eq(s.live, 1);
}

/* RLIMIT_AS in a forked child: spawn until -ENOMEM; the process stays
   healthy and spawns again once the limit is raised.  Exit code: the step
   that failed (0: all good). */
static int rl_fail;
#define RL_CHECK(step, cond) do { bool ok_ = (cond); if (!ok_ && !rl_fail) { \
    rl_fail = (step); fprintf(stderr, "rlimit step %d: %s\n", step, #cond); } \
} while (0)
#define RL_MAX 400000

static void rlimit_main(void *unused)
{
    braid_tx *tx;
    braid_rx *rx;
    struct rlimit old, lim;
    braid_task **ts = malloc(sizeof *ts * (RL_MAX + 200));
    RL_CHECK(1, braid_chan_open(&tx, &rx, sizeof(int64_t), 0) == 0);
    RL_CHECK(2, getrlimit(RLIMIT_AS, &old) == 0);
    lim = old;
    lim.rlim_cur = (rlim_t)status_kb("VmSize") * 1024 + ((rlim_t)256 << 20);
    RL_CHECK(3, setrlimit(RLIMIT_AS, &lim) == 0);
    int n = 0, r = 0;
    while (n < RL_MAX && (r = braid_spawn(&ts[n], park_recv, rx, NULL)) == 0)
        n++;
    fprintf(stderr, "RLIMIT_AS: spawn %d returned %d\n", n, r);
    RL_CHECK(4, r == -ENOMEM);
    RL_CHECK(5, n > 100);
    /* Healthy at the limit: sleep, channel traffic, a stats snapshot. */
    RL_CHECK(6, braid_sleep(MS) == 0);
    braid_tx *btx;
    braid_rx *brx;
    int64_t v = 7;
    if (braid_chan_open(&btx, &brx, sizeof v, 4) == 0) {
        RL_CHECK(7, braid_send(btx, &v, 0) == 0);
        RL_CHECK(8, braid_recv(brx, &v, 0) == 0 && v == 7);
        braid_tx_close(btx);
        braid_rx_close(brx);
    }
    RL_CHECK(9, setrlimit(RLIMIT_AS, &old) == 0);
    int extra = 0;
    for (int k = 0; k < 200; k++)
        extra += braid_spawn(&ts[n + extra], park_recv, rx, NULL) == 0;
    RL_CHECK(10, extra == 200);
    n += extra;
    int64_t end = braid_after(10000 * MS);
    braid_chan_info i;
    do {
        braid_sleep(MS);
        braid_chan_stats_tx(tx, &i);
    } while (i.receivers_waiting != (size_t)n && braid_now() < end);
    RL_CHECK(11, i.receivers_waiting == (size_t)n);
    braid_tx_close(tx);
    for (int k = 0; k < n; k++) {
        void *res = NULL;
        RL_CHECK(12, braid_join(ts[k], &res, BRAID_FOREVER) == 0 &&
                     (intptr_t)res == -EPIPE);
    }
    braid_rx_close(rx);
    free(ts);
}

static void rlimit_child(void *unused)
{
    int r = braid_run(&two, rlimit_main, NULL);
    RL_CHECK(20, r == 0);
    RL_CHECK(21, braid_run(&two, nop, NULL) == 0);     /* and again */
    _exit(rl_fail);
}

static void enomem_main(void *unused)
{
    enomem_stack_slab();
    enomem_coro_slab();
}

START_TEST(spawn_enomem)
{
    run(enomem_main, NULL);
    if (SANITIZED)
        return;         /* sanitizers reserve terabytes: RLIMIT_AS is moot */
    /* valgrind's own memory (shadow memory, translations) counts against
       RLIMIT_AS too, and valgrind cannot fail an allocation: at the limit
       it aborts the process ("Valgrind's memory management: out of
       memory") right after braid's spawn has returned -ENOMEM.  The hook
       half above still runs there. */
    if (RUNNING_ON_VALGRIND || skip_emulated("spawn under RLIMIT_AS"))
        return;
    capture *c = malloc(sizeof *c);
    capture_child(c, rlimit_child, NULL, 60);
    fprintf(stderr, "%s", c->out);
    ck_assert_msg(!c->timed_out, "RLIMIT_AS child hung: %s", c->out);
    ck_assert_msg(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
                  "RLIMIT_AS child: status %#x: %s", c->status, c->out);
    free(c);
}
END_TEST

/* ==== row: coroutine stack overflow ======================================= */

typedef struct ovf {
    const char *name;       /* NULL: braid_go, unnamed */
    int redzone;            /* 1: stop in the red zone and switch */
} ovf;

static char *ov_top;
static const size_t ov_size = 64 << 10;

/* This coroutine's id, read from braid_dump (the id is not public). */
static unsigned long long my_dump_id(const char *name)
{
    char *buf = NULL, pat[64];
    size_t len = 0;
    unsigned long long id = 0;
    FILE *f = open_memstream(&buf, &len);
    braid_dump(f);
    fclose(f);
    snprintf(pat, sizeof pat, "(%s): running", name);
    for (char *line = buf; line && *line; line = strchr(line, '\n')) {
        while (*line == '\n')
            line++;
        char *eol = strchr(line, '\n');
        char *hit = strstr(line, pat);
        if (hit && (!eol || hit < eol) &&
            sscanf(line, " coroutine %llu", &id) == 1)
            break;
    }
    free(buf);
    return id;
}

static volatile int ov_sink;

NOINLINE static int dive(int n, int redzone)
{
    volatile char pad[400];
    pad[0] = (char)n;
    /* Red-zone mode: stop about 3 KiB from the bottom (inside the lowest,
       red page), then switch: the check at switch-out must fire. */
    if (redzone && (size_t)(ov_top - (char *)pad) > ov_size - 3072) {
        /* long enough to really park: a sleep whose deadline passed before
           it parks returns without a switch (TSan is slow; valgrind also
           translates the park path on its first run here, which can take
           more than 1 ms) */
        braid_sleep(RUNNING_ON_VALGRIND ? 100 * MS : MS);
        return pad[0];
    }
    return dive(n + 1, redzone) + pad[0];
}

static void overflow_body(ovf *o, const char *name)
{
    char top;
    ov_top = &top;
    fprintf(stderr, "ID %llu\n", my_dump_id(name));
    ov_sink = dive(0, o->redzone);
    fprintf(stderr, "survived\n");
}

static void *overflow_named(void *p)
{
    ovf *o = p;
    overflow_body(o, o->name);
    return NULL;
}

static void overflow_go(void *p) { overflow_body(p, "unnamed"); }

static void overflow_main(void *p)
{
    ovf *o = p;
    if (!o->name) {
        ck_assert_int_eq(braid_go(overflow_go, o), 0);
        braid_sleep(10000 * MS);
        return;
    }
    braid_attr a;
    braid_task *t;
    braid_attr_init(&a);
    braid_attr_set_name(&a, o->name);
    braid_attr_set_stack_size(&a, ov_size);
    braid_spawn(&t, overflow_named, o, &a);
    braid_join(t, NULL, BRAID_FOREVER);
}

static void overflow_child(void *p)
{
    ovf *o = p;
    if (o->redzone)
        setenv("BRAID_STACK_GUARDS", "0", 1);           /* no guard pages */
    braid_config c = { .workers = 2, .stack_size = ov_size };
    braid_run(&c, overflow_main, o);
    _exit(0);
}

START_TEST(stack_overflow_message)
{
    ovf cases[] = { { "ov-guarded", 0 }, { "ov-redzone", 1 }, { NULL, 1 } };
    capture *c = malloc(sizeof *c);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        capture_child(c, overflow_child, &cases[k], 30);
        unsigned long long id = 0;
        char *idl = strstr(c->out, "ID ");
        ck_assert_msg(idl && sscanf(idl, "ID %llu", &id) == 1 && id > 0,
                      "no id: %s", c->out);
        char want[160];
        snprintf(want, sizeof want,
                 "coroutine %llu (%s) overflowed its %zu-byte stack\n", id,
                 cases[k].name ? cases[k].name : "unnamed", ov_size);
        fprintf(stderr, "case %zu: %s", k, strstr(c->out, "braid:") ?
                strstr(c->out, "braid:") : c->out);
        ck_assert_msg(!c->timed_out, "hung: %s", c->out);
        ck_assert_msg(strstr(c->out, want) != NULL, "want '%s', stderr: %s",
                      want, c->out);
        ck_assert_msg(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT,
                      "status %#x", c->status);
        ck_assert_ptr_null(strstr(c->out, "survived"));
    }
    free(c);
}
END_TEST


static void spawn_one(void *arg)
{
    braid_task *t;
    ck_assert_int_eq(braid_spawn(&t, nop_ret, arg, NULL), 0);
    ck_assert_int_eq(braid_join(t, NULL, BRAID_FOREVER), 0);
}

/* Guard regions are used exactly when they fault: the kernel must refuse
   to copy from one (EFAULT).  An emulator that accepts MADV_GUARD_INSTALL
   and installs nothing (qemu-user) must get mprotect guards instead, or
   the overflows above would run into the next stack unannounced. */
START_TEST(stack_guards_fault)
{
    if (getenv("BRAID_STACK_GUARDS") && atol(getenv("BRAID_STACK_GUARDS")) == 0)
        return;
    braid_config cfg = { .workers = 1 };
    ck_assert_int_eq(braid_run(&cfg, spawn_one, NULL), 0);
    int kind = braid__stack_guard_kind();

    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(m != MAP_FAILED);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    bool real = madvise(m, 4096, 102 /* MADV_GUARD_INSTALL */) == 0 &&
                write(p[1], m, 1) < 0 && errno == EFAULT;
    close(p[0]);
    close(p[1]);
    munmap(m, 8192);
    fprintf(stderr, "stack guards: %s (guard regions %s here)\n",
            kind == BRAID__GUARD_REGIONS ? "guard regions" :
            kind == BRAID__GUARD_MPROTECT ? "mprotect" : "unknown",
            real ? "fault" : "absent or fake");
    ck_assert_int_eq(kind, real ? BRAID__GUARD_REGIONS : BRAID__GUARD_MPROTECT);
}
END_TEST

/* ==== row: EMFILE on accept =============================================== */

static int listen_port(int lfd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

typedef struct emf {
    int lfd;
    _Atomic int emfile, served;
    int want;
} emf;

/* A server as a user writes it: on -EMFILE, back off a little and retry. */
static void *emfile_server(void *p)
{
    emf *e = p;
    while (atomic_load(&e->served) < e->want) {
        int s = braid_accept(e->lfd, NULL, NULL, BRAID_FOREVER);
        if (s == -EMFILE) {
            atomic_fetch_add(&e->emfile, 1);
            braid_sleep(10 * MS);
            continue;
        }
        ck_assert_int_ge(s, 0);
        char b;
        ck_assert_int_eq(braid_read(s, &b, 1, braid_after(5000 * MS)), 1);
        ck_assert_int_eq(braid_write(s, &b, 1, braid_after(5000 * MS)), 1);
        ck_assert_int_eq(braid_close(s), 0);
        atomic_fetch_add(&e->served, 1);
    }
    return NULL;
}

static void echo_once(int c, char b)
{
    char r = 0;
    ck_assert_int_eq(braid_write(c, &b, 1, braid_after(5000 * MS)), 1);
    ck_assert_int_eq(braid_read(c, &r, 1, braid_after(5000 * MS)), 1);
    ck_assert_int_eq(r, b);
}

static void emfile_main(void *unused)
{
    emf e = { .want = 3 };
    char port[16];
    e.lfd = braid_tcp_listen("127.0.0.1", "0", 16);
    ck_assert_int_ge(e.lfd, 0);
    snprintf(port, sizeof port, "%d", listen_port(e.lfd));
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)count_dir("/proc/self/fd") + 40;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    int dummies[64], nd = 0, fd;
    while (nd < 64 && (fd = dup(e.lfd)) >= 0)
        dummies[nd++] = fd;
    ck_assert_int_lt(nd, 64);                   /* the table is full */
    close(dummies[--nd]);                       /* room for two clients */
    close(dummies[--nd]);
    int c1 = braid_tcp_dial("127.0.0.1", port, braid_after(2000 * MS));
    int c2 = braid_tcp_dial("127.0.0.1", port, braid_after(2000 * MS));
    ck_assert_int_ge(c1, 0);
    ck_assert_int_ge(c2, 0);

    /* The error is returned at once, not waited out or spun on. */
    int64_t t0 = braid_now(), cpu0 = cpu_ns();
    ck_assert_int_eq(braid_accept(e.lfd, NULL, NULL, braid_after(2000 * MS)), -EMFILE);
    ck_assert_int_lt(braid_now() - t0, 500 * MS);

    /* A server retries every 10 ms while the table stays full: the
       process burns no CPU meanwhile (two connections stay pending, so the
       listening socket stays readable all along). */
    braid_task *srv = spawn(emfile_server, &e);
    braid_sleep(400 * MS);
    int64_t wall = braid_now() - t0, cpu = cpu_ns() - cpu0;
    fprintf(stderr, "EMFILE period: %.1f ms CPU over %.1f ms, %d retries\n",
            cpu / 1e6, wall / 1e6, atomic_load(&e.emfile));
    ck_assert_int_ge(atomic_load(&e.emfile), 5);
    ck_assert_int_eq(atomic_load(&e.served), 0);
    ck_assert_msg(cpu < wall / 4, "CPU %lld ns over %lld ns: spinning",
                  (long long)cpu, (long long)wall);

    /* fds free up: the pending clients and a new one are served. */
    close(dummies[--nd]);
    close(dummies[--nd]);
    echo_once(c1, 'a');
    echo_once(c2, 'b');
    while (nd)
        close(dummies[--nd]);
    int c3 = braid_tcp_dial("127.0.0.1", port, braid_after(2000 * MS));
    ck_assert_int_ge(c3, 0);
    echo_once(c3, 'c');
    join_val(srv);
    ck_assert_int_eq(atomic_load(&e.served), 3);
    braid_close(c1);
    braid_close(c2);
    braid_close(c3);
    braid_close(e.lfd);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}

START_TEST(accept_emfile_no_spin)
{
    /* valgrind emulates RLIMIT_NOFILE (the kernel's limit stays higher, its
       own fds live above ours): an accept over the lowered limit really
       happens, then valgrind closes the new fd and returns EMFILE.  The
       pending connection is gone, so the clients this row serves once fds
       free up cannot exist there. */
    if (RUNNING_ON_VALGRIND)
        return;
    run_fds_checked(emfile_main, NULL);
}
END_TEST

/* ==== row: peer reset mid-write; write to a closed peer =================== */

static void *write_until_error(void *p)
{
    int fd = (int)(intptr_t)p;
    static char buf[1 << 20];
    ssize_t r;
    memset(buf, 'w', sizeof buf);
    while ((r = braid_write(fd, buf, sizeof buf, braid_after(10000 * MS))) > 0)
        ;
    return (void *)(intptr_t)r;
}

static void reset_main(void *unused)
{
    static char buf[65536];
    char port[16];
    int lfd = braid_tcp_listen("127.0.0.1", "0", 4);
    ck_assert_int_ge(lfd, 0);
    snprintf(port, sizeof port, "%d", listen_port(lfd));

    /* TCP: the reader resets the connection while the writer is mid-way
       through a 1 MiB write. */
    int c = braid_tcp_dial("127.0.0.1", port, braid_after(2000 * MS));
    ck_assert_int_ge(c, 0);
    int s = braid_accept(lfd, NULL, NULL, braid_after(2000 * MS));
    ck_assert_int_ge(s, 0);
    braid_task *w = spawn(write_until_error, (void *)(intptr_t)c);
    size_t got = 0;
    while (got < 256 * 1024) {
        ssize_t n = braid_read(s, buf, sizeof buf, braid_after(5000 * MS));
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    struct linger lg = { 1, 0 };                        /* close = RST */
    ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    ck_assert_int_eq(braid_close(s), 0);
    intptr_t r = join_val(w);
    ck_assert_msg(r == -ECONNRESET || r == -EPIPE, "writer got %d", (int)r);
    ck_assert_int_eq(braid_close(c), 0);

    /* TCP: the peer closed normally; writes fail once its RST comes. */
    c = braid_tcp_dial("127.0.0.1", port, braid_after(2000 * MS));
    s = braid_accept(lfd, NULL, NULL, braid_after(2000 * MS));
    ck_assert_int_ge(c, 0);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(braid_close(s), 0);
    r = 0;
    for (int k = 0; k < 200 && r >= 0; k++) {
        r = braid_write(c, "x", 1, braid_after(1000 * MS));
        braid_sleep(MS);
    }
    ck_assert_msg(r == -ECONNRESET || r == -EPIPE, "write got %d", (int)r);
    ck_assert_int_eq(braid_close(c), 0);

    /* Unix socket and pipe whose peer end is closed: -EPIPE at once. */
    int sv[2], p[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(braid_close(sv[1]), 0);
    ck_assert_int_eq(braid_write(sv[0], "x", 1, BRAID_FOREVER), -EPIPE);
    ck_assert_int_eq(braid_write(sv[0], "x", 1, BRAID_FOREVER), -EPIPE);
    ck_assert_int_eq(braid_close(sv[0]), 0);
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(braid_close(p[0]), 0);
    ck_assert_int_eq(braid_write(p[1], "x", 1, BRAID_FOREVER), -EPIPE);
    ck_assert_int_eq(braid_close(p[1]), 0);

    /* Pipe: the reader goes away while the writer is blocked on a full
       pipe. */
    ck_assert_int_eq(pipe(p), 0);
    w = spawn(write_until_error, (void *)(intptr_t)p[1]);
    ck_assert_int_gt(braid_read(p[0], buf, 100, BRAID_FOREVER), 0);
    wait_blocked("fd write", 1);
    ck_assert_int_eq(braid_close(p[0]), 0);
    ck_assert_int_eq(join_val(w), -EPIPE);
    ck_assert_int_eq(braid_close(p[1]), 0);
    ck_assert_int_eq(braid_close(lfd), 0);
}

static void *pipe_epipe_thread(void *unused)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    intptr_t r = braid_write(p[1], "x", 1, BRAID_FOREVER);
    braid_close(p[1]);
    return (void *)r;
}

START_TEST(peer_reset_no_sigpipe)
{
    signal(SIGPIPE, SIG_DFL);                   /* a SIGPIPE kills the test */
    run_fds_checked(reset_main, NULL);
    int base = count_fds();
    thr th;                                     /* and from plain threads */
    thr_start(&th, pipe_epipe_thread, NULL);
    ck_assert_int_eq(thr_join(&th), -EPIPE);
    ck_assert_int_eq((intptr_t)pipe_epipe_thread(NULL), -EPIPE);
    ck_assert_int_eq(count_fds(), base);
}
END_TEST

/* ==== row: partial writes, tiny socket buffers ============================ */

typedef struct stream {
    int wfd, rfd;
    size_t total;
    int chunked;                /* writer: random chunks, else one call */
    unsigned seed;
    size_t got;
    int64_t bad;
} stream;

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 8) * 7 + (i >> 16));
}

static void *stream_writer(void *p)
{
    stream *s = p;
    unsigned char *buf = malloc(s->total);
    for (size_t i = 0; i < s->total; i++)
        buf[i] = pattern(i);
    unsigned seed = s->seed;
    if (!s->chunked) {
        ck_assert_int_eq(braid_write(s->wfd, buf, s->total, BRAID_FOREVER),
                         (ssize_t)s->total);
    } else {
        for (size_t off = 0; off < s->total;) {
            size_t n = 1 + (size_t)rand_r(&seed) % 20000;
            if (n > s->total - off)
                n = s->total - off;
            ck_assert_int_eq(braid_write(s->wfd, buf + off, n, BRAID_FOREVER),
                             (ssize_t)n);
            off += n;
        }
    }
    free(buf);
    ck_assert_int_eq(braid_close(s->wfd), 0);           /* EOF */
    return NULL;
}

static void *stream_reader(void *p)
{
    stream *s = p;
    unsigned char buf[8192];
    unsigned seed = s->seed * 7 + 1;
    for (;;) {
        size_t want = 1 + (size_t)rand_r(&seed) % sizeof buf;
        ssize_t n = braid_read(s->rfd, buf, want, BRAID_FOREVER);
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            s->bad += buf[i] != pattern(s->got + (size_t)i);
        s->got += (size_t)n;
    }
    ck_assert_int_eq(braid_close(s->rfd), 0);
    return NULL;
}

/* Send and receive buffers at the kernel's minimum (it rounds up). */
static void tiny_buffers(int fd)
{
    int sz = 1;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

/* TCP: a tiny send buffer; the receive window stays sane (a minimal one
   drives loopback TCP into zero-window probing, seconds per stall). */
static void tiny_tcp(int fd)
{
    int one = 1, sz = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void partial_main(void *unused)
{
    enum { NS = 6 };
    stream s[NS];
    int sv[2], p[2];
    memset(s, 0, sizeof s);
    for (int k = 0; k < 2; k++) {               /* unix sockets */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        tiny_buffers(sv[0]);
        tiny_buffers(sv[1]);
        s[k] = (stream){ sv[0], sv[1], 2u << 20, k, 11u + (unsigned)k, 0, 0 };
    }
    for (int k = 2; k < 4; k++) {               /* pipes of one page */
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_int_ge(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
        s[k] = (stream){ p[1], p[0], 1u << 20, k & 1, 21u + (unsigned)k, 0, 0 };
    }
    char port[16];
    int lfd = braid_tcp_listen("127.0.0.1", "0", 4);
    ck_assert_int_ge(lfd, 0);
    snprintf(port, sizeof port, "%d", listen_port(lfd));
    for (int k = 4; k < NS; k++) {              /* TCP loopback */
        int c = braid_tcp_dial("127.0.0.1", port, braid_after(2000 * MS));
        int a = braid_accept(lfd, NULL, NULL, braid_after(2000 * MS));
        ck_assert_int_ge(c, 0);
        ck_assert_int_ge(a, 0);
        tiny_tcp(c);
        tiny_tcp(a);
        s[k] = (stream){ c, a, 1u << 20, k & 1, 31u + (unsigned)k, 0, 0 };
    }
    braid_close(lfd);
    braid_task *w[NS], *r[NS];
    for (int k = 0; k < NS; k++) {
        w[k] = spawn(stream_writer, &s[k]);
        r[k] = spawn(stream_reader, &s[k]);
    }
    for (int k = 0; k < NS; k++) {
        join_val(w[k]);
        join_val(r[k]);
        ck_assert_uint_eq(s[k].got, s[k].total);
        ck_assert_int_eq(s[k].bad, 0);
    }
}

START_TEST(partial_writes_in_order)
{
    run_fds_checked(partial_main, NULL);
}
END_TEST

/* ==== row: fd closed while a coroutine waits on it ======================== */

static void *wait_read(void *p)
{
    char b;
    return (void *)(intptr_t)braid_read((int)(intptr_t)p, &b, 1, BRAID_FOREVER);
}

static void *wait_fd(void *p)
{
    return (void *)(intptr_t)braid_fd_wait((int)(intptr_t)p, BRAID_READ,
                                           BRAID_FOREVER);
}

static void *wait_write(void *p)
{
    static char big[1 << 16];
    return (void *)(intptr_t)braid_write((int)(intptr_t)p, big, sizeof big,
                                         BRAID_FOREVER);
}

static void *wait_accept(void *p)
{
    return (void *)(intptr_t)braid_accept((int)(intptr_t)p, NULL, NULL,
                                          BRAID_FOREVER);
}

static void fill_pipe(int wfd)
{
    char junk[4096] = { 0 };
    int fl = fcntl(wfd, F_GETFL);
    fcntl(wfd, F_SETFL, fl | O_NONBLOCK);
    while (write(wfd, junk, sizeof junk) > 0)
        ;
}

static void fd_closed_main(void *unused)
{
    int pr[2], pw[2], pf[2];
    ck_assert_int_eq(pipe(pr), 0);
    ck_assert_int_eq(pipe(pw), 0);
    ck_assert_int_eq(pipe(pf), 0);
    fill_pipe(pw[1]);
    int lfd = braid_tcp_listen("127.0.0.1", "0", 4);
    ck_assert_int_ge(lfd, 0);

    /* Waiters in read, write, fd_wait, accept, and a plain thread in read
       get -EBADF when braid_close takes their fd away. */
    int tp[2];
    ck_assert_int_eq(pipe(tp), 0);
    thr th;
    thr_start(&th, wait_read, (void *)(intptr_t)tp[0]);
    braid_task *t[4] = {
        spawn(wait_read, (void *)(intptr_t)pr[0]),
        spawn(wait_write, (void *)(intptr_t)pw[1]),
        spawn(wait_fd, (void *)(intptr_t)pf[0]),
        spawn(wait_accept, (void *)(intptr_t)lfd),
    };
    wait_blocked("fd read", 1);
    wait_blocked("fd write", 1);
    wait_blocked("fd wait", 1);
    wait_blocked("accept", 1);
    braid_sleep(20 * MS);                       /* the thread too, surely */
    int64_t t0 = braid_now();
    int reused = pr[0];
    int old_dup = dup(pr[0]);                   /* keeps the old pipe open */
    ck_assert_int_ge(old_dup, 0);
    ck_assert_int_eq(braid_close(pr[0]), 0);
    ck_assert_int_eq(braid_close(pw[1]), 0);
    ck_assert_int_eq(braid_close(pf[0]), 0);
    ck_assert_int_eq(braid_close(lfd), 0);
    ck_assert_int_eq(braid_close(tp[0]), 0);
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(join_val(t[k]), -EBADF);
    ck_assert_int_eq(thr_join(&th), -EBADF);
    ck_assert_int_lt(braid_now() - t0, 2000 * MS);
    ck_assert_int_eq(braid_fd_wait(pf[0], BRAID_READ, 0), -EBADF);

    /* The number comes back for another pipe, while the old pipe (still
       open through a dup) turns readable: no wake-up of the old file
       reaches a waiter of the new one, and the new one's own events do. */
    int q[2];
    ck_assert_int_eq(pipe(q), 0);
    if (q[0] != reused) {
        ck_assert_int_eq(dup2(q[0], reused), reused);
        close(q[0]);
    }
    braid_task *fw = spawn(wait_fd, (void *)(intptr_t)reused);
    wait_blocked("fd wait", 1);
    ck_assert_int_eq(write(pr[1], "old", 3), 3);    /* the old file stirs */
    braid_sleep(30 * MS);
    ck_assert_int_eq(count_blocked("fd wait"), 1);   /* still waiting */
    t0 = braid_now();
    char b[8];
    ck_assert_int_eq(braid_read(reused, b, sizeof b, braid_after(100 * MS)), -ETIMEDOUT);
    ck_assert_int_ge(braid_now() - t0, 100 * MS);
    ck_assert_int_eq(write(q[1], "new", 3), 3);
    ck_assert_int_eq(join_val(fw), BRAID_READ);
    ck_assert_int_eq(braid_read(reused, b, sizeof b, braid_after(2000 * MS)), 3);
    ck_assert_int_eq(memcmp(b, "new", 3), 0);
    braid_task *rd = spawn(wait_read, (void *)(intptr_t)reused);
    wait_blocked("fd read", 1);
    ck_assert_int_eq(write(q[1], "z", 1), 1);
    ck_assert_int_eq(join_val(rd), 1);
    braid_close(reused);
    braid_close(q[1]);
    braid_close(old_dup);
    braid_close(pr[1]);
    braid_close(pw[0]);
    braid_close(pf[1]);
    braid_close(tp[1]);
}

START_TEST(fd_closed_while_waiting)
{
    run_fds_checked(fd_closed_main, NULL);
}
END_TEST

/* ==== row: EINTR from a signal storm ====================================== */

static _Atomic long sigs_caught, eintr_seen, storm_errors;
static _Atomic int storm_stop;

static void on_usr1(int sig) { (void)sig; atomic_fetch_add(&sigs_caught, 1); }

/* A wrong result: counted, and said on stderr. */
static void __attribute__((format(printf, 1, 2))) storm_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("storm error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    atomic_fetch_add(&storm_errors, 1);
}

static void note(long r, const char *what)
{
    if (r == -EINTR) {
        atomic_fetch_add(&eintr_seen, 1);
        fprintf(stderr, "storm: %s returned -EINTR\n", what);
    }
}

/* Signals every thread of the process but itself, over and over. */
static void *storm_thread(void *unused)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pid_t me = (pid_t)syscall(SYS_gettid), pid = getpid();
    struct timespec gap = { 0, 50000 };
    while (!atomic_load(&storm_stop)) {
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        while (d && (de = readdir(d))) {
            pid_t tid = (pid_t)atoi(de->d_name);
            if (tid > 0 && tid != me)
                syscall(SYS_tgkill, pid, tid, SIGUSR1);
        }
        if (d)
            closedir(d);
        kill(pid, SIGUSR1);
        nanosleep(&gap, NULL);
    }
    return NULL;
}

typedef struct storm_io { int wfd, rfd; size_t total, got; int64_t bad; } storm_io;

static void *storm_writer(void *p)
{
    storm_io *s = p;
    unsigned char buf[3000];
    for (size_t off = 0; off < s->total; off += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = pattern(off + i);
        ssize_t r = braid_write(s->wfd, buf, sizeof buf, braid_after(20000 * MS));
        note(r, "braid_write");
        if (r != (ssize_t)sizeof buf)
            storm_error("braid_write returned %zd", r);
    }
    braid_close(s->wfd);
    return NULL;
}

static void *storm_reader(void *p)
{
    storm_io *s = p;
    unsigned char buf[1000];
    for (;;) {
        ssize_t n = braid_read(s->rfd, buf, sizeof buf, braid_after(20000 * MS));
        note(n, "braid_read");
        if (n <= 0) {
            if (n < 0)
                storm_error("braid_read returned %zd", n);
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            s->bad += buf[i] != pattern(s->got + (size_t)i);
        s->got += (size_t)n;
    }
    braid_close(s->rfd);
    return NULL;
}

static void *storm_sleeper(void *unused)
{
    for (int k = 0; k < 200; k++) {
        int64_t t0 = braid_now();
        int r = braid_sleep(MS);
        int64_t slept = braid_now() - t0;
        note(r, "braid_sleep");
        if (r != 0 || slept < MS)
            storm_error("braid_sleep(1 ms) returned %d after %lld ns", r,
                        (long long)slept);
    }
    return NULL;
}

typedef struct storm_chan { braid_tx *tx; braid_rx *rx; long n; long sum; } storm_chan;

static void *storm_sender(void *p)
{
    storm_chan *c = p;
    for (int64_t k = 1; k <= c->n; k++) {
        int r = braid_send(c->tx, &k, braid_after(20000 * MS));
        note(r, "braid_send");
        if (r)
            storm_error("braid_send returned %d", r);
    }
    return NULL;
}

static void *storm_receiver(void *p)
{
    storm_chan *c = p;
    for (long k = 0; k < c->n; k++) {
        int64_t v = 0;
        int r = braid_recv(c->rx, &v, braid_after(20000 * MS));
        note(r, "braid_recv");
        if (r)
            storm_error("braid_recv returned %d", r);
        c->sum += v;
    }
    return NULL;
}

/* Timed waits that must time out, never early, never -EINTR.  A worker
   preempted for 2 ms between braid_after and the call (TSan on a busy
   machine) starts the call past its deadline: that is "try once", -EAGAIN
   (API.md, Time). */
static void *storm_timed(void *p)
{
    storm_chan *c = p;
    for (int k = 0; k < 100; k++) {
        int64_t d = braid_after(2 * MS), v;
        int r = braid_recv(c->rx, &v, d);
        int64_t now = braid_now();
        note(r, "timed braid_recv");
        if ((r != -ETIMEDOUT && r != -EAGAIN) || now < d)
            storm_error("timed braid_recv returned %d, %lld ns after its "
                        "deadline", r, (long long)(now - d));
    }
    return NULL;
}

static braid_mutex storm_m = BRAID_MUTEX_INIT;
static long storm_counter;

static void *storm_locker(void *unused)
{
    for (int k = 0; k < 20000; k++) {
        int r = braid_mutex_lock(&storm_m, BRAID_FOREVER);
        note(r, "braid_mutex_lock");
        if (r) {
            storm_error("braid_mutex_lock returned %d", r);
            continue;
        }
        storm_counter++;
        if (k % 64 == 0)
            braid_yield();
        braid_mutex_unlock(&storm_m);
    }
    return NULL;
}

static void storm_main(void *unused)
{
    enum { NIO = 2, NCH = 2, NLOCK = 3 };
    storm_io io[NIO];
    storm_chan ch[NCH], idle;
    int sv[2], p[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    tiny_buffers(sv[0]);
    tiny_buffers(sv[1]);
    io[0] = (storm_io){ sv[0], sv[1], 3000 * 1000, 0, 0 };
    ck_assert_int_eq(pipe(p), 0);
    io[1] = (storm_io){ p[1], p[0], 3000 * 1000, 0, 0 };
    for (int k = 0; k < NCH; k++) {
        ch[k] = (storm_chan){ .n = 50000 };
        ck_assert_int_eq(braid_chan_open(&ch[k].tx, &ch[k].rx, sizeof(int64_t), 0), 0);
    }
    ck_assert_int_eq(braid_chan_open(&idle.tx, &idle.rx, sizeof(int64_t), 0), 0);

    pthread_t storm;
    ck_assert_int_eq(pthread_create(&storm, NULL, storm_thread, NULL), 0);
    int64_t t0 = braid_now();
    braid_task *ts[32];
    int nt = 0;
    thr th_recv, th_lock;
    for (int k = 0; k < NIO; k++) {
        ts[nt++] = spawn(storm_writer, &io[k]);
        ts[nt++] = spawn(storm_reader, &io[k]);
    }
    ts[nt++] = spawn(storm_sender, &ch[0]);
    ts[nt++] = spawn(storm_receiver, &ch[0]);
    ts[nt++] = spawn(storm_sender, &ch[1]);
    thr_start(&th_recv, storm_receiver, &ch[1]);      /* a futex waiter */
    thr_start(&th_lock, storm_locker, NULL);
    for (int k = 0; k < NLOCK; k++)
        ts[nt++] = spawn(storm_locker, NULL);
    for (int k = 0; k < 3; k++)
        ts[nt++] = spawn(storm_sleeper, NULL);
    ts[nt++] = spawn(storm_timed, &idle);
    for (int k = 0; k < nt; k++)
        join_val(ts[k]);
    thr_join(&th_recv);
    thr_join(&th_lock);
    int64_t dt = braid_now() - t0;
    atomic_store(&storm_stop, 1);
    pthread_join(storm, NULL);
    fprintf(stderr, "signal storm: %ld signals caught in %.0f ms\n",
            atomic_load(&sigs_caught), dt / 1e6);
    ck_assert_int_eq(atomic_load(&eintr_seen), 0);
    ck_assert_int_eq(atomic_load(&storm_errors), 0);
    for (int k = 0; k < NIO; k++) {
        ck_assert_uint_eq(io[k].got, io[k].total);
        ck_assert_int_eq(io[k].bad, 0);
    }
    for (int k = 0; k < NCH; k++)
        ck_assert_int_eq(ch[k].sum, ch[k].n * (ch[k].n + 1) / 2);
    ck_assert_int_eq(storm_counter, (NLOCK + 1) * 20000);
    ck_assert_int_gt(atomic_load(&sigs_caught), 200);
    for (int k = 0; k < NCH; k++) {
        braid_tx_close(ch[k].tx);
        braid_rx_close(ch[k].rx);
    }
    braid_tx_close(idle.tx);
    braid_rx_close(idle.rx);
}

START_TEST(eintr_signal_storm)
{
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = 0 };  /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    run_fds_checked(storm_main, NULL);
}
END_TEST

/* ==== row: deadline expiry while blocked ================================== */

typedef struct dl {
    braid_tx *tx_full, *tx_rdv, *tx_empty, *tx_rel;
    braid_rx *rx_full, *rx_rdv, *rx_empty, *rx_rel;
    braid_mutex m;                  /* held by the holder coroutine */
    braid_task *sleeper;            /* never finishes in time */
    int pr[2];                      /* an empty pipe */
} dl;

/* send: rendezvous without receiver; recv: empty; select: all three. */
static int dl_send(dl *d, int64_t t) { int64_t v = 9; return braid_send(d->tx_rdv, &v, t); }
static int dl_recv(dl *d, int64_t t) { int64_t v; return braid_recv(d->rx_empty, &v, t); }
static int dl_select(dl *d, int64_t t)
{
    int64_t v = 9, w;
    braid_case c[3] = { { BRAID_SEND, d->tx_full, &v, 0 },
                        { BRAID_RECV, d->rx_empty, &w, 0 },
                        { BRAID_SEND, d->tx_rdv, &v, 0 } };
    return braid_select(c, 3, t);
}
static int dl_mutex(dl *d, int64_t t) { return braid_mutex_lock(&d->m, t); }
static int dl_join(dl *d, int64_t t) { return braid_join(d->sleeper, NULL, t); }
static int dl_sleep(dl *d, int64_t t) { (void)d; return braid_sleep_until(t); }
static int dl_read(dl *d, int64_t t) { char b; return (int)braid_read(d->pr[0], &b, 1, t); }

static const struct dl_kind {
    const char *name;
    int (*fn)(dl *, int64_t);
    int expired, past;          /* result at a future / a past deadline */
} dl_kinds[] = {
    { "send", dl_send, -ETIMEDOUT, -EAGAIN },
    { "recv", dl_recv, -ETIMEDOUT, -EAGAIN },
    { "select", dl_select, -ETIMEDOUT, -EAGAIN },
    { "mutex", dl_mutex, -ETIMEDOUT, -EAGAIN },
    { "join", dl_join, -ETIMEDOUT, -EAGAIN },
    { "sleep", dl_sleep, 0, 0 },
    { "read", dl_read, -ETIMEDOUT, -ETIMEDOUT },
};

static void *dl_holder(void *p)
{
    dl *d = p;
    int64_t v;
    ck_assert_int_eq(braid_mutex_lock(&d->m, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_recv(d->rx_rel, &v, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_mutex_unlock(&d->m), 0);
    return NULL;
}

static void *dl_long_sleep(void *unused)
{
    return (void *)(intptr_t)braid_sleep(60000 * MS);
}

/* Channels as they were: nothing buffered or lost, nobody left waiting,
   still working. */
static void dl_intact(dl *d)
{
    braid_chan_info i = chan_info(d->tx_full);
    ck_assert_uint_eq(i.buffered, 1);
    ck_assert_uint_eq(i.senders_waiting + i.receivers_waiting, 0);
    i = chan_info(d->tx_rdv);
    ck_assert_uint_eq(i.buffered + i.senders_waiting + i.receivers_waiting, 0);
    i = chan_info(d->tx_empty);
    ck_assert_uint_eq(i.buffered + i.senders_waiting + i.receivers_waiting, 0);
    int64_t v = 77;
    ck_assert_int_eq(braid_send(d->tx_empty, &v, 0), 0);
    v = 0;
    ck_assert_int_eq(braid_recv(d->rx_empty, &v, 0), 0);
    ck_assert_int_eq(v, 77);
}

static void dl_open(dl *d)
{
    int64_t v = 1;
    memset(d, 0, sizeof *d);
    ck_assert_int_eq(braid_chan_open(&d->tx_full, &d->rx_full, sizeof v, 1), 0);
    ck_assert_int_eq(braid_chan_open(&d->tx_rdv, &d->rx_rdv, sizeof v, 0), 0);
    ck_assert_int_eq(braid_chan_open(&d->tx_empty, &d->rx_empty, sizeof v, 4), 0);
    ck_assert_int_eq(braid_chan_open(&d->tx_rel, &d->rx_rel, sizeof v, 0), 0);
    ck_assert_int_eq(braid_send(d->tx_full, &v, 0), 0);
    ck_assert_int_eq(pipe(d->pr), 0);
}

static void dl_close(dl *d)
{
    int64_t v = 0;
    ck_assert_int_eq(braid_recv(d->rx_full, &v, 0), 0);
    ck_assert_int_eq(v, 1);
    braid_tx_close(d->tx_full);
    braid_rx_close(d->rx_full);
    braid_tx_close(d->tx_rdv);
    braid_rx_close(d->rx_rdv);
    braid_tx_close(d->tx_empty);
    braid_rx_close(d->rx_empty);
    braid_tx_close(d->tx_rel);
    braid_rx_close(d->rx_rel);
    braid_close(d->pr[0]);
    braid_close(d->pr[1]);
}

static void deadline_main(void *unused)
{
    dl d;
    dl_open(&d);
    braid_task *holder = spawn(dl_holder, &d);
    d.sleeper = spawn(dl_long_sleep, NULL);
    wait_waiting(d.tx_rel, 0, 1);                  /* the holder has m */
    /* 5 ms is the requirement.  valgrind runs one thread at a time, so the
       timer's wake-up and the woken coroutine wait their turn (and each
       kind's path is translated on its first call): 50 ms there. */
    const int64_t late_max = RUNNING_ON_VALGRIND ? 50 * MS : 5 * MS;
    const int64_t past_max = RUNNING_ON_VALGRIND ? 500 * MS : 50 * MS;
    bool late = false;
    for (size_t k = 0; k < sizeof dl_kinds / sizeof dl_kinds[0]; k++) {
        const struct dl_kind *kd = &dl_kinds[k];
        int64_t t0 = braid_now();
        ck_assert_int_eq(kd->fn(&d, 0), kd->past);          /* try once */
        ck_assert_int_eq(kd->fn(&d, t0 - 1000), kd->past);
        ck_assert_int_lt(braid_now() - t0, past_max);
        int64_t best = INT64_MAX, seen[3];
        int tries = 0;
        while (tries < 3 && best >= late_max) {
            int64_t deadline = braid_after(20 * MS);
            int r = kd->fn(&d, deadline);
            int64_t lateness = braid_now() - deadline;
            ck_assert_msg(r == kd->expired, "%s: %d", kd->name, r);
            ck_assert_msg(lateness >= 0, "%s returned %lld ns before its deadline",
                          kd->name, (long long)-lateness);
            seen[tries++] = lateness;
            best = lateness < best ? lateness : best;
            dl_intact(&d);
        }
        fprintf(stderr, "deadline lateness %-6s:", kd->name);
        for (int j = 0; j < tries; j++)
            fprintf(stderr, " %.3f ms", seen[j] / 1e6);
        fprintf(stderr, "%s\n", best >= late_max ? "  TOO LATE" : "");
        late |= best >= late_max;
    }
    ck_assert_msg(!late, "a deadline fired more than %lld ms late (best of 3)",
                  (long long)(late_max / MS));
    int64_t v = 0;
    ck_assert_int_eq(braid_send(d.tx_rel, &v, BRAID_FOREVER), 0);
    join_val(holder);
    ck_assert_int_eq(braid_mutex_lock(&d.m, braid_after(1000 * MS)), 0);
    braid_mutex_unlock(&d.m);
    braid_cancel(d.sleeper);
    ck_assert_int_eq(join_val(d.sleeper), -ECANCELED);
    dl_close(&d);
}

START_TEST(deadline_expiry_lateness)
{
    run(deadline_main, NULL);
}
END_TEST

/* ==== row: cancel while blocked =========================================== */

/* Spawn fn(arg), wait until it is blocked in `what`, cancel it; it must
   return -ECANCELED promptly. */
static void cancel_blocked(void *(*fn)(void *), void *arg, const char *what,
                           const char *name)
{
    braid_task *t = spawn_named(fn, arg, name);
    wait_blocked(what, 1);
    int64_t t0 = braid_now();
    ck_assert_int_eq(braid_cancel(t), 0);
    intptr_t r = join_val(t);
    ck_assert_msg(r == -ECANCELED, "%s: %d", what, (int)r);
    ck_assert_int_lt(braid_now() - t0, 1000 * MS);
    ck_assert_int_eq(count_blocked(what), 0);
}

static void *cx_select(void *p)
{
    op *o = p;
    int64_t v = 5;
    braid_case c[2] = { { BRAID_RECV, o->rx, &o->got, 0 },
                        { BRAID_SEND, o->tx, &v, 0 } };
    return (void *)(intptr_t)braid_select(c, 2, BRAID_FOREVER);
}

static void *cx_sleep(void *p) { (void)p; return (void *)(intptr_t)braid_sleep(60000 * MS); }

static braid_mutex cx_m = BRAID_MUTEX_INIT;
static void *cx_lock(void *p)
{
    (void)p;
    int r = braid_mutex_lock(&cx_m, BRAID_FOREVER);
    if (r == 0)
        braid_mutex_unlock(&cx_m);
    return (void *)(intptr_t)r;
}

static void *cx_join(void *p) { return (void *)(intptr_t)braid_join(p, NULL, BRAID_FOREVER); }

static void *cx_read(void *p)
{
    char b[16];
    return (void *)(intptr_t)braid_read((int)(intptr_t)p, b, sizeof b, BRAID_FOREVER);
}

static void *cx_write(void *p)
{
    char v[4096];
    memset(v, 'V', sizeof v);
    return (void *)(intptr_t)braid_write((int)(intptr_t)p, v, sizeof v, BRAID_FOREVER);
}

static void *cx_accept(void *p)
{
    return (void *)(intptr_t)braid_accept((int)(intptr_t)p, NULL, NULL, BRAID_FOREVER);
}

static void *cx_target(void *p)
{
    int64_t v;
    ck_assert_int_eq(braid_recv(p, &v, BRAID_FOREVER), 0);
    return (void *)(intptr_t)v;
}

static void cancel_chan_ops(void)
{
    braid_tx *tx, *tx2;
    braid_rx *rx, *rx2;
    braid_chan_info i;
    int64_t v;

    /* send on a full buffer: the element stays out */
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 1), 0);
    v = 1;
    ck_assert_int_eq(braid_send(tx, &v, 0), 0);
    op o = { .tx = tx, .rx = rx, .v = 2 };
    cancel_blocked(send_forever, &o, "chan send", "cx-send");
    i = chan_info(tx);
    ck_assert_uint_eq(i.buffered, 1);
    ck_assert_uint_eq(i.senders_waiting + i.receivers_waiting, 0);
    ck_assert_int_eq(braid_recv(rx, &v, 0), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(braid_recv(rx, &v, 0), -EAGAIN);

    /* recv on an empty buffer: a later element is not taken by it */
    o.got = -1;
    cancel_blocked(recv_forever, &o, "chan recv", "cx-recv");
    ck_assert_int_eq(o.got, -1);
    ck_assert_uint_eq(chan_info(tx).receivers_waiting, 0);
    v = 3;
    ck_assert_int_eq(braid_send(tx, &v, 0), 0);
    ck_assert_uint_eq(chan_info(tx).buffered, 1);
    ck_assert_int_eq(braid_recv(rx, &v, 0), 0);
    ck_assert_int_eq(v, 3);

    /* rendezvous both ways: no stale partner is left to pair with */
    ck_assert_int_eq(braid_chan_open(&tx2, &rx2, sizeof v, 0), 0);
    op r = { .tx = tx2, .rx = rx2, .v = 4 };
    cancel_blocked(send_forever, &r, "chan send", "cx-send0");
    ck_assert_int_eq(braid_recv(rx2, &v, 0), -EAGAIN);
    cancel_blocked(recv_forever, &r, "chan recv", "cx-recv0");
    ck_assert_int_eq(braid_send(tx2, &v, 0), -EAGAIN);
    i = chan_info(tx2);
    ck_assert_uint_eq(i.senders_waiting + i.receivers_waiting, 0);

    /* select: recv on the empty channel, send on the full one */
    v = 6;
    ck_assert_int_eq(braid_send(tx, &v, 0), 0);         /* tx full again */
    ck_assert_int_eq(braid_recv(rx2, &v, 0), -EAGAIN);
    op s = { .tx = tx, .rx = rx2, .got = -1 };
    cancel_blocked(cx_select, &s, "select", "cx-select");
    ck_assert_int_eq(s.got, -1);
    i = chan_info(tx);
    ck_assert_uint_eq(i.buffered, 1);
    ck_assert_uint_eq(i.senders_waiting + i.receivers_waiting, 0);
    i = chan_info(tx2);
    ck_assert_uint_eq(i.senders_waiting + i.receivers_waiting, 0);
    ck_assert_int_eq(braid_recv(rx, &v, 0), 0);
    ck_assert_int_eq(v, 6);
    ck_assert_int_eq(braid_recv(rx, &v, 0), -EAGAIN);   /* 5 never went in */
    braid_tx_close(tx);
    braid_rx_close(rx);
    braid_tx_close(tx2);
    braid_rx_close(rx2);
}

static void cancel_other_ops(void)
{
    /* sleep */
    cancel_blocked(cx_sleep, NULL, "sleep", "cx-sleep");

    /* mutex: the cancelled waiter never got it */
    ck_assert_int_eq(braid_mutex_lock(&cx_m, 0), 0);
    cancel_blocked(cx_lock, NULL, "mutex lock", "cx-lock");
    ck_assert_int_eq(braid_mutex_unlock(&cx_m), 0);
    ck_assert_int_eq(braid_mutex_trylock(&cx_m), 0);
    ck_assert_int_eq(braid_mutex_unlock(&cx_m), 0);
    braid_task *t = spawn(cx_lock, NULL);               /* still works */
    ck_assert_int_eq(join_val(t), 0);

    /* join: the target stays joinable, by someone else */
    braid_tx *tx;
    braid_rx *rx;
    int64_t v = 88;
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof v, 0), 0);
    braid_task *target = spawn(cx_target, rx);
    cancel_blocked(cx_join, target, "join", "cx-join");
    ck_assert_int_eq(braid_send(tx, &v, BRAID_FOREVER), 0);
    ck_assert_int_eq(join_val(target), 88);
    braid_tx_close(tx);
    braid_rx_close(rx);

    /* read: the data written afterwards is still there */
    int p[2];
    char b[16];
    ck_assert_int_eq(pipe(p), 0);
    cancel_blocked(cx_read, (void *)(intptr_t)p[0], "fd read", "cx-read");
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(braid_read(p[0], b, sizeof b, braid_after(1000 * MS)), 1);
    ck_assert_int_eq(b[0], 'x');

    /* write on a full pipe: none of its bytes went in */
    fill_pipe(p[1]);
    cancel_blocked(cx_write, (void *)(intptr_t)p[1], "fd write", "cx-write");
    char junk[4096];
    ssize_t n;
    long vs = 0;
    while ((n = braid_read(p[0], junk, sizeof junk, 0)) > 0)
        for (ssize_t k = 0; k < n; k++)
            vs += junk[k] == 'V';
    ck_assert_int_eq(n, -ETIMEDOUT);
    ck_assert_int_eq(vs, 0);
    braid_close(p[0]);
    braid_close(p[1]);

    /* accept: the connection goes to the next acceptor */
    char port[16];
    int lfd = braid_tcp_listen("127.0.0.1", "0", 4);
    ck_assert_int_ge(lfd, 0);
    snprintf(port, sizeof port, "%d", listen_port(lfd));
    cancel_blocked(cx_accept, (void *)(intptr_t)lfd, "accept", "cx-accept");
    int c = braid_tcp_dial("127.0.0.1", port, braid_after(2000 * MS));
    ck_assert_int_ge(c, 0);
    int s = braid_accept(lfd, NULL, NULL, braid_after(2000 * MS));
    ck_assert_int_ge(s, 0);
    braid_close(s);
    braid_close(c);
    braid_close(lfd);
}

static void cancel_main(void *unused)
{
    cancel_chan_ops();
    cancel_other_ops();
}

START_TEST(cancel_while_blocked)
{
    run_fds_checked(cancel_main, NULL);
}
END_TEST

/* ==== row: a coroutine blocking its worker ================================ */

#define NREADY 6
typedef struct hogctx {
    int busy_other;             /* variant: the other worker runs a spinner */
    braid_tx *tx;               /* rendezvous: readies the receivers */
    braid_rx *rx;
    _Atomic int64_t started[NREADY];
    _Atomic int spin_on, stop_spin;
    pthread_t spin_thread;
    int64_t t0;
} hogctx;

static hogctx *hc;

NOINLINE static pthread_t thread_now(void)
{
    pthread_t t = pthread_self();
    __asm__ __volatile__("" ::: "memory");
    return t;
}

static void *ready_recv(void *p)
{
    int64_t v;
    ck_assert_int_eq(braid_recv(hc->rx, &v, BRAID_FOREVER), 0);
    atomic_store(&hc->started[v], braid_now());
    return NULL;
}

static void *ready_spawned(void *p)
{
    atomic_store(&hc->started[(intptr_t)p], braid_now());
    return NULL;
}

/* Keeps the other worker busy: braid_yield with nothing else queued there
   returns at once, so that worker never goes idle or steals. */
static void *spinner(void *p)
{
    hc->spin_thread = thread_now();
    atomic_store(&hc->spin_on, 1);
    int64_t end = braid_after(5000 * MS);
    while (!atomic_load(&hc->stop_spin) && braid_now() < end)
        braid_yield();
    return NULL;
}

static void *hog(void *p)
{
    braid_task **ts = p;
    if (hc->busy_other) {
        /* Not on the spinner's thread: sleep until placed elsewhere.  The
           spinner's worker takes a woken coroutine at its next yield, so
           each try is a race the other worker often loses; a sanitized
           run under load has lost 2000 in a row.  Try for 3 s (the
           spinner gives up after 5). */
        int64_t until = braid_after(3000 * MS);
        while (pthread_equal(thread_now(), hc->spin_thread) &&
               braid_now() < until)
            braid_sleep(100000);
        ck_assert(!pthread_equal(thread_now(), hc->spin_thread));
    }
    /* Ready three blocked receivers (hand-off: each goes to this worker's
       next slot, pushing the previous one to its ring), then spawn three
       (same path). */
    for (int64_t k = 0; k < 3; k++)
        ck_assert_int_eq(braid_send(hc->tx, &k, 0), 0);
    for (intptr_t k = 3; k < NREADY; k++)
        ck_assert_int_eq(braid_spawn(&ts[k], ready_spawned, (void *)k, NULL), 0);
    hc->t0 = braid_now();
    struct timespec ts500 = { 0, 500000000 };
    nanosleep(&ts500, NULL);                    /* blocks the thread */
    return NULL;
}

static void hog_main(void *p)
{
    hogctx *h = p;
    braid_task *ts[NREADY], *spin = NULL;
    hc = h;
    ck_assert_int_eq(braid_chan_open(&h->tx, &h->rx, sizeof(int64_t), 0), 0);
    for (int k = 0; k < 3; k++)
        ts[k] = spawn(ready_recv, NULL);
    wait_waiting(h->tx, 0, 3);
    if (h->busy_other) {
        spin = spawn(spinner, NULL);
        while (!atomic_load(&h->spin_on))
            braid_sleep(100000);
    }
    braid_task *hg = spawn(hog, ts);
    join_val(hg);
    atomic_store(&h->stop_spin, 1);
    if (spin)
        join_val(spin);
    for (int k = 0; k < NREADY; k++)
        join_val(ts[k]);
    braid_tx_close(h->tx);
    braid_rx_close(h->rx);
}

START_TEST(blocked_worker_queue_moves)
{
    for (int variant = 0; variant < 2; variant++) {
        hogctx *h = calloc(1, sizeof *h);
        h->busy_other = variant;
        run(hog_main, h);
        int64_t worst = 0;
        fprintf(stderr, "blocked worker (%s other worker): started after",
                variant ? "busy" : "idle");
        for (int k = 0; k < NREADY; k++) {
            int64_t d = atomic_load(&h->started[k]) - h->t0;
            fprintf(stderr, " %.1f", d / 1e6);
            worst = d > worst ? d : worst;
        }
        fprintf(stderr, " ms\n");
        for (int k = 0; k < NREADY; k++)
            ck_assert_int_gt(atomic_load(&h->started[k]), 0);
        /* 50 ms is the requirement; sanitizers run everything ~10x slower,
           and valgrind runs one thread at a time (the other worker and
           the monitor that moves the queue wait their turn).  Under TSan
           the whole process also stops now and then for ~200 ms (its
           runtime's own pauses: the I/O thread's 5 ms monitor was seen
           silent for 198 ms, after it had already moved the queue), so
           the sanitized bound is 450 ms: still short of the 500 ms the
           worker stays blocked, so a queue that never moves fails. */
        ck_assert_msg(worst < (SANITIZED || RUNNING_ON_VALGRIND ? 450 : 50) * MS,
                      "variant %d: a readied coroutine waited "
                      "%.1f ms for its blocked worker", variant, worst / 1e6);
        free(h);
    }
}
END_TEST

/* ==== row: every coroutine blocked forever ================================ */

static braid_mutex dd_m = BRAID_MUTEX_INIT;

static void *dd_recv(void *p) { int64_t v; return (void *)(intptr_t)braid_recv(p, &v, BRAID_FOREVER); }
static void *dd_lock(void *p) { (void)p; return (void *)(intptr_t)braid_mutex_lock(&dd_m, BRAID_FOREVER); }
static void *dd_join(void *p) { return (void *)(intptr_t)braid_join(p, NULL, BRAID_FOREVER); }
static void *dd_select(void *p)
{
    int64_t v;
    braid_case c = { BRAID_RECV, p, &v, 0 };
    return (void *)(intptr_t)braid_select(&c, 1, BRAID_FOREVER);
}

static _Atomic int dd_live;             /* variant: a timer will wake us */

static void *dd_closer(void *p)
{
    braid_sleep(50 * MS);
    braid_tx_close(p);
    return NULL;
}

/* The channel is in statics: braid_run returns with coroutines still
   blocked (on it, or with the timer on dd_m) and nobody closes rx; kept
   reachable, it is not reported as leaked (valgrind). */
static braid_tx *dd_tx;
static braid_rx *dd_rx;

static void deadlock_main(void *p)
{
    int64_t v;
    ck_assert_int_eq(braid_chan_open(&dd_tx, &dd_rx, sizeof v, 0), 0);
    braid_tx *tx = dd_tx;
    braid_rx *rx = dd_rx;
    ck_assert_int_eq(braid_mutex_lock(&dd_m, 0), 0);
    braid_task *r = spawn_named(dd_recv, rx, "dd-receiver");
    spawn_named(dd_lock, NULL, "dd-locker");
    spawn_named(dd_join, r, "dd-joiner");
    spawn_named(dd_select, rx, "dd-selector");
    if (atomic_load(&dd_live))
        spawn_named(dd_closer, tx, "dd-closer");
    int rc = braid_recv(rx, &v, BRAID_FOREVER);      /* main blocks too */
    fprintf(stderr, "main woke with %d\n", rc);
}

static void deadlock_child(void *p)
{
    atomic_store(&dd_live, p != NULL);
    int64_t t0 = braid_now();
    int r = braid_run(&two, deadlock_main, NULL);
    fprintf(stderr, "RESULT %d after %.0f ms\n", r, (braid_now() - t0) / 1e6);
    _exit(0);
}

START_TEST(deadlock_dump)
{
    capture *c = malloc(sizeof *c);
    capture_child(c, deadlock_child, NULL, 30);
    fprintf(stderr, "%s", c->out);
    ck_assert_msg(!c->timed_out, "braid_run never returned: %s", c->out);
    char want[64];
    snprintf(want, sizeof want, "RESULT %d ", -EDEADLK);
    char *res = strstr(c->out, want);
    ck_assert_msg(res != NULL, "no -EDEADLK: %s", c->out);
    char *dump = strstr(c->out, "braid dump");
    ck_assert_msg(dump && dump < res, "no dump before braid_run returned");
    const char *lines[] = {
        "(main): blocked in chan recv on", "(dd-receiver): blocked in chan recv on",
        "(dd-locker): blocked in mutex lock on", "(dd-joiner): blocked in join on",
        "(dd-selector): blocked in select on",
    };
    for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
        char *hit = strstr(dump, lines[k]);
        ck_assert_msg(hit && hit < res, "dump lacks '%s': %s", lines[k], c->out);
    }
    ck_assert_ptr_null(strstr(c->out, "main woke"));
    /* A pending timer that will wake them is no deadlock. */
    capture_child(c, deadlock_child, (void *)1, 30);
    ck_assert_msg(strstr(c->out, "RESULT 0 ") != NULL, "%s", c->out);
    ck_assert_ptr_null(strstr(c->out, "braid dump"));
    free(c);
}
END_TEST

/* ==== row: braid_run returning with coroutines still blocked ============== */

#define ABANDON 1000
/* Channels and mutexes with abandoned waiters are not touched again (their
   wait lists point into freed stacks): one of each per round, kept in
   statics (reachable: not reported as leaks). */
static braid_tx *ab_txs[3];
static braid_rx *ab_rxs[3];
static braid_mutex ab_ms[3];
static int ab_round;
static int ab_pipe[2];
#define ab_rx ab_rxs[ab_round]
#define ab_tx ab_txs[ab_round]
#define ab_m ab_ms[ab_round]

/* Touch 16 KiB of stack first, so that a stack not freed shows in VmRSS. */
static void touch_stack(void)
{
    volatile char page[16 << 10];
    for (size_t i = 0; i < sizeof page; i += 512)
        page[i] = (char)i;
}

static void ab_recv(void *p) { int64_t v; touch_stack(); braid_recv(ab_rx, &v, BRAID_FOREVER); }
static void ab_lock(void *p) { touch_stack(); braid_mutex_lock(&ab_m, BRAID_FOREVER); }
static void ab_read(void *p) { char b; touch_stack(); braid_read(ab_pipe[0], &b, 1, BRAID_FOREVER); }
static void ab_sleep(void *p) { touch_stack(); braid_sleep(3600000 * MS); }
static void ab_spawned(void *p) { (void)p; }

static void abandon_main(void *unused)
{
    ck_assert_int_eq(braid_chan_open(&ab_tx, &ab_rx, sizeof(int64_t), 0), 0);
    ck_assert_int_eq(braid_mutex_lock(&ab_m, 0), 0);
    for (int k = 0; k < ABANDON; k++)
        ck_assert_int_eq(braid_go(ab_recv, NULL), 0);
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(braid_go(ab_lock, NULL), 0);
        ck_assert_int_eq(braid_go(ab_sleep, NULL), 0);
    }
    ck_assert_int_eq(braid_go(ab_read, NULL), 0);
    for (int k = 0; k < 100; k++)                       /* never run, maybe */
        ck_assert_int_eq(braid_go(ab_spawned, NULL), 0);
    wait_waiting(ab_tx, 0, ABANDON);
    wait_blocked("mutex lock", 10);
    wait_blocked("sleep", 10);
    wait_blocked("fd read", 1);
}

/* The next run: the pipe abandoned readers waited on is usable and
   closable; coroutines come and go. */
static void after_main(void *unused)
{
    char b = 0;
    ck_assert_int_eq(braid_write(ab_pipe[1], "k", 1, BRAID_FOREVER), 1);
    ck_assert_int_eq(braid_read(ab_pipe[0], &b, 1, braid_after(1000 * MS)), 1);
    ck_assert_int_eq(b, 'k');
    braid_task *ts[1000];
    for (intptr_t k = 0; k < 1000; k++)
        ts[k] = spawn(nop_ret, (void *)k);
    for (intptr_t k = 0; k < 1000; k++)
        ck_assert_int_eq(join_val(ts[k]), k);
    braid_stats s;
    braid_stats_get(&s);
    ck_assert_uint_eq(s.live, 1);
}

static void warm_main(void *unused)
{
    braid_task *ts[2000];
    for (int k = 0; k < 2000; k++)
        ts[k] = spawn(nop_ret, NULL);
    for (int k = 0; k < 2000; k++)
        join_val(ts[k]);
}

START_TEST(run_returns_blocked_freed)
{
    ck_assert_int_eq(pipe(ab_pipe), 0);
    run(warm_main, NULL);               /* one-time allocations out of the way */
    long maps0 = count_maps(), rss0 = rss_kb();
    int fds0 = count_fds();
    long maps[3], rss[3];
    for (int round = 0; round < 3; round++) {
        int64_t t0 = braid_now();
        ab_round = round;
        run(abandon_main, NULL);
        ck_assert_int_lt(braid_now() - t0, 10000 * MS);
        maps[round] = count_maps();
        rss[round] = rss_kb();
        fprintf(stderr, "abandoned %d blocked coroutines: maps %+ld, VmRSS %+ld KiB\n",
                ABANDON + 21, maps[round] - maps0, rss[round] - rss0);
        ck_assert_int_eq(count_fds(), fds0);
        run(after_main, NULL);
    }
    /* Stacks and coroutine slabs are unmapped: 16 MiB of touched stack and
       a mapping per slab would show.  Sanitizers map memory (shadow,
       quarantine) of their own as they go: there only the mapping count
       must not grow from round to round, and LeakSanitizer does the rest
       at exit.  valgrind maps memory of its own as it goes (its arenas,
       translations: +5 to +10 mappings a round), and its queue of freed
       blocks (braid_dump's text for wait_blocked, Check's asserts) adds
       ~3 MiB of VmRSS a round until it holds 20 MB: there the mapping
       count says nothing, and VmRSS must grow by less than one round's
       16 MiB of touched stack over two rounds. */
    bool emu = skip_emulated("the resident-memory bounds");
    for (int round = 0; round < 3 && !SANITIZED && !RUNNING_ON_VALGRIND && !emu;
         round++) {
        ck_assert_int_le(maps[round], maps0 + 8);
        ck_assert_int_lt(rss[round], rss0 + 4096);
    }
    if (!UNDER_TSAN && !RUNNING_ON_VALGRIND)  /* TSan maps per-fiber state as it goes; */
        ck_assert_int_le(maps[2], maps[0] + (SANITIZED ? 64 : 8)); /* ASan some */
    if (!SANITIZED && !emu)
        ck_assert_int_lt(rss[2], rss[0] + (RUNNING_ON_VALGRIND ? 16384 : 2048));
    ck_assert_int_eq(braid_close(ab_pipe[0]), 0);
    ck_assert_int_eq(braid_close(ab_pipe[1]), 0);
}
END_TEST

/* ==== row: fork() while the runtime runs ================================== */

static braid_tx *fk_tx;
static braid_rx *fk_rx;
static braid_mutex fk_m = BRAID_MUTEX_INIT;
static braid_cond fk_c = BRAID_COND_INIT;
static braid_wg fk_wg = BRAID_WG_INIT;
static braid_sem fk_sem = BRAID_SEM_INIT(0);
static braid_once fk_once = BRAID_ONCE_INIT;
static braid_task *fk_task;
static int fk_pipe[2], fk_lfd;
static _Atomic int fk_stop;
static _Atomic long fk_traffic;

static void fk_pinger(void *p)
{
    for (int64_t k = 0; !atomic_load(&fk_stop); k++)
        if (braid_send(fk_tx, &k, braid_after(100 * MS)) == 0)
            atomic_fetch_add(&fk_traffic, 1);
}

static void fk_ponger(void *p)
{
    int64_t v;
    while (!atomic_load(&fk_stop))
        braid_recv(fk_rx, &v, braid_after(100 * MS));
}

static void fk_locker(void *p)
{
    while (!atomic_load(&fk_stop)) {
        if (braid_mutex_lock(&fk_m, braid_after(100 * MS)) == 0) {
            braid_yield();
            braid_mutex_unlock(&fk_m);
        }
        braid_sleep(10000);
    }
}

static void *fk_blocker(void *p)
{
    while (!atomic_load(&fk_stop))
        braid_sleep(MS);
    return NULL;
}

static void fk_nothing(void *p) { (void)p; }
static void fk_once_fn(void) {}
static void *fk_blocking_fn(void *p) { return p; }

/* Every runtime call in the child: -EPERM.  Returns the failure count and
   names each failure on stderr.  alarm() turns a hang into SIGALRM. */
static int fork_child_checks(void)
{
    int bad = 0;
    int64_t v = 1;
    char b = 0;
    braid_task *t;
    braid_tx *tx2;
    braid_rx *rx2;
    braid_chan_info ci;
    braid_case cs = { BRAID_RECV, fk_rx, &v, 0 };
    braid_nursery *n;
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int64_t soon = braid_after(20 * MS);
#define EXPECT_EPERM(call) do { long r_ = (long)(call); if (r_ != -EPERM) { \
        bad++; fprintf(stderr, "fork child: %s = %ld, want -EPERM\n", #call, r_); } \
    } while (0)
    EXPECT_EPERM(braid_go(fk_nothing, NULL));
    EXPECT_EPERM(braid_spawn(&t, fk_blocking_fn, NULL, NULL));
    EXPECT_EPERM(braid_join(fk_task, NULL, soon));
    EXPECT_EPERM(braid_sleep(1000));
    EXPECT_EPERM(braid_sleep(0));
    EXPECT_EPERM(braid_sleep_until(soon));
    EXPECT_EPERM(braid_send(fk_tx, &v, soon));
    EXPECT_EPERM(braid_send(fk_tx, &v, 0));
    EXPECT_EPERM(braid_recv(fk_rx, &v, soon));
    EXPECT_EPERM(braid_select(&cs, 1, soon));
    EXPECT_EPERM(braid_chan_open(&tx2, &rx2, 8, 1));
    EXPECT_EPERM(braid_tx_clone(fk_tx, &tx2));
    EXPECT_EPERM(braid_rx_clone(fk_rx, &rx2));
    EXPECT_EPERM(braid_chan_stats(fk_rx, &ci));
    EXPECT_EPERM(braid_chan_stats_tx(fk_tx, &ci));
    EXPECT_EPERM(braid_mutex_lock(&fk_m, soon));
    EXPECT_EPERM(braid_mutex_trylock(&fk_m));
    EXPECT_EPERM(braid_mutex_unlock(&fk_m));
    EXPECT_EPERM(braid_cond_wait(&fk_c, &fk_m, soon));
    EXPECT_EPERM(braid_cond_signal(&fk_c));
    EXPECT_EPERM(braid_cond_broadcast(&fk_c));
    EXPECT_EPERM(braid_wg_add(&fk_wg, 1));
    EXPECT_EPERM(braid_wg_wait(&fk_wg, soon));
    EXPECT_EPERM(braid_sem_init(&fk_sem, 1));
    EXPECT_EPERM(braid_sem_acquire(&fk_sem, soon));
    EXPECT_EPERM(braid_sem_release(&fk_sem));
    EXPECT_EPERM(braid_once_do(&fk_once, fk_once_fn));
    EXPECT_EPERM(braid_read(fk_pipe[0], &b, 1, soon));
    EXPECT_EPERM(braid_write(fk_pipe[1], &b, 1, soon));
    EXPECT_EPERM(braid_fd_wait(fk_pipe[0], BRAID_READ, soon));
    EXPECT_EPERM(braid_accept(fk_lfd, NULL, NULL, soon));
    EXPECT_EPERM(braid_connect(fk_lfd, (struct sockaddr *)&sa, sizeof sa, soon));
    EXPECT_EPERM(braid_tcp_listen("127.0.0.1", "0", 1));
    EXPECT_EPERM(braid_tcp_dial("127.0.0.1", "1", soon));
    EXPECT_EPERM(braid_pread(fk_pipe[0], &b, 1, 0, soon));
    EXPECT_EPERM(braid_pwrite(fk_pipe[1], &b, 1, 0, soon));
    EXPECT_EPERM(braid_blocking(fk_blocking_fn, NULL, NULL));
    EXPECT_EPERM(braid_nursery_open(&n, BRAID_FOREVER));
    EXPECT_EPERM(braid_run(&two, fk_nothing, NULL));
    EXPECT_EPERM(braid_cancel(fk_task));
    EXPECT_EPERM(braid_detach(fk_task));
    EXPECT_EPERM(braid_tx_close(fk_tx));
    EXPECT_EPERM(braid_rx_close(fk_rx));
    EXPECT_EPERM(braid_close(fk_pipe[0]));
#undef EXPECT_EPERM
    /* Void calls: return (do nothing), no hang. */
    braid_stats st;
    braid_stats_get(&st);
    FILE *devnull = fopen("/dev/null", "w");
    braid_dump(devnull);
    fclose(devnull);
    braid_yield();
    return bad;
}

static void fork_and_check(int *failures, int *crashes)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGALRM, SIG_DFL);   /* Check's handler would kill our group */
        /* a hang becomes SIGALRM (before the parent's 10 s are up);
           valgrind's leak check as the child exits takes over a second
           on its own */
        alarm(RUNNING_ON_VALGRIND ? 8 : 2);
        int bad = fork_child_checks();
        _exit(bad > 100 ? 100 : bad);
    }
    int st = 0;
    int64_t end = braid_after(10000 * MS);
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && braid_now() < end) {
        if (braid_self())
            braid_sleep(MS);
        else
            usleep(1000);
    }
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    if (WIFEXITED(st))
        *failures += WEXITSTATUS(st);
    else
        (*crashes)++;
    if (!WIFEXITED(st))
        fprintf(stderr, "fork child died: status %#x%s\n", st,
                WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? " (hung)" : "");
}

typedef struct fkres { int failures, crashes; } fkres;

/* valgrind runs a leak check in every child as it exits (over a second
   each, scanning the parent's stacks): fewer forks there, from both
   sides still. */
#define FORKS(n) (RUNNING_ON_VALGRIND ? ((n) + 3) / 4 : (n))

static void *fork_from_thread(void *p)
{
    fkres *r = p;
    for (int k = 0; k < FORKS(5) && !r->crashes; k++)
        fork_and_check(&r->failures, &r->crashes);
    return NULL;
}

static void fork_main(void *p)
{
    fkres *r = p;
    ck_assert_int_eq(braid_chan_open(&fk_tx, &fk_rx, sizeof(int64_t), 0), 0);
    ck_assert_int_eq(pipe(fk_pipe), 0);
    fk_lfd = braid_tcp_listen("127.0.0.1", "0", 1);
    ck_assert_int_ge(fk_lfd, 0);
    fk_task = spawn(fk_blocker, NULL);
    for (int k = 0; k < 2; k++) {
        braid_go(fk_pinger, NULL);
        braid_go(fk_ponger, NULL);
        braid_go(fk_locker, NULL);
    }
    while (atomic_load(&fk_traffic) < 100)
        braid_sleep(MS);
    /* Fork from a coroutine (a worker thread) and from a foreign thread,
       while the others keep channels and locks busy. */
    for (int k = 0; k < FORKS(10) && !r->crashes; k++) {
        fork_and_check(&r->failures, &r->crashes);
        braid_sleep(2 * MS);
    }
    thr th;
    fkres tr = { 0, 0 };
    thr_start(&th, fork_from_thread, &tr);
    while (pthread_tryjoin_np(th.th, NULL) == EBUSY)
        braid_sleep(MS);
    r->failures += tr.failures;
    r->crashes += tr.crashes;
    atomic_store(&fk_stop, 1);
    join_val(fk_task);
    braid_sleep(150 * MS);                      /* pingers and lockers end */
    braid_close(fk_pipe[0]);
    braid_close(fk_pipe[1]);
    braid_close(fk_lfd);
}

START_TEST(fork_child_eperm)
{
    fkres r = { 0, 0 };
    run(fork_main, &r);
    ck_assert_msg(r.crashes == 0 && r.failures == 0,
                  "fork children: %d calls without -EPERM, %d crashed or hung "
                  "(see stderr)", r.failures, r.crashes);
}
END_TEST

/* ==== row: runtime calls from a foreign pthread =========================== */

typedef struct ft {
    _Atomic int step;           /* the thread is about to block in step k */
    _Atomic int acted;          /* the partner coroutine did step k's part */
    braid_tx *tx, *tx2;
    braid_rx *rx, *rx2;
    braid_mutex m;
    braid_cond c;
    bool flag;                  /* m */
    braid_wg wg;
    braid_sem sem;
    braid_once once;
    braid_task *joinee, *cancellee;
    int p[2];
    int fails;
} ft;

static ft *ftc;
static _Atomic int once_runs;

/* The partner: wait for the thread to reach step k, let it block, act. */
static void partner_wait(int k)
{
    while (atomic_load(&ftc->step) < k)
        braid_sleep(100000);
    braid_sleep(10 * MS);
}

static void once_slow(void)
{
    atomic_fetch_add(&once_runs, 1);
    braid_sleep(30 * MS);
}

static void *ft_joinee(void *p)
{
    partner_wait(8);
    return (void *)(intptr_t)808;
}

static void *ft_cancellee(void *p)
{
    return (void *)(intptr_t)braid_sleep(60000 * MS);
}

static int ft_nursery_child(void *p)
{
    atomic_fetch_add((_Atomic int *)p, 1);
    return braid_sleep(MS);
}

static void *ft_partner(void *p)
{
    int64_t v = 0;
    partner_wait(1);                                /* 1: thread recv */
    v = 11;
    ck_assert_int_eq(braid_send(ftc->tx, &v, BRAID_FOREVER), 0);
    partner_wait(2);                                /* 2: thread send */
    ck_assert_int_eq(braid_recv(ftc->rx, &v, BRAID_FOREVER), 0);
    ck_assert_int_eq(v, 22);
    partner_wait(3);                                /* 3: thread select */
    v = 33;
    ck_assert_int_eq(braid_send(ftc->tx2, &v, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_mutex_lock(&ftc->m, BRAID_FOREVER), 0);
    atomic_store(&ftc->acted, 4);
    partner_wait(4);                                /* 4: thread lock */
    ck_assert_int_eq(braid_mutex_unlock(&ftc->m), 0);
    partner_wait(5);                                /* 5: thread cond */
    ck_assert_int_eq(braid_mutex_lock(&ftc->m, BRAID_FOREVER), 0);
    ftc->flag = true;
    ck_assert_int_eq(braid_cond_signal(&ftc->c), 0);
    ck_assert_int_eq(braid_mutex_unlock(&ftc->m), 0);
    partner_wait(6);                                /* 6: thread wg */
    ck_assert_int_eq(braid_wg_done(&ftc->wg), 0);
    partner_wait(7);                                /* 7: thread sem */
    ck_assert_int_eq(braid_sem_release(&ftc->sem), 0);
    partner_wait(9);                                /* 9: thread read */
    ck_assert_int_eq(braid_write(ftc->p[1], "t", 1, BRAID_FOREVER), 1);
    ck_assert_int_eq(braid_once_do(&ftc->once, once_slow), 0);  /* 10 */
    return NULL;
}

#define FT_CHECK(cond) do { if (!(cond)) { f->fails++; \
    fprintf(stderr, "foreign thread: %s failed\n", #cond); } } while (0)

static void *ft_thread(void *p)
{
    ft *f = p;
    int64_t v = 0;
    char b = 0;
    FT_CHECK(braid_self() == NULL);
    FT_CHECK(braid_cancelled() == 0);
    braid_yield();                                  /* sched_yield */
    atomic_store(&f->step, 1);
    FT_CHECK(braid_recv(f->rx, &v, BRAID_FOREVER) == 0 && v == 11);
    atomic_store(&f->step, 2);
    v = 22;
    FT_CHECK(braid_send(f->tx, &v, BRAID_FOREVER) == 0);
    atomic_store(&f->step, 3);
    braid_case c[2] = { { BRAID_RECV, f->rx, &v, 0 }, { BRAID_RECV, f->rx2, &v, 0 } };
    FT_CHECK(braid_select(c, 2, BRAID_FOREVER) == 1 && c[1].result == 0 && v == 33);
    while (atomic_load(&f->acted) < 4)
        usleep(100);
    FT_CHECK(braid_mutex_trylock(&f->m) == -EBUSY);
    FT_CHECK(braid_mutex_lock(&f->m, braid_after(5 * MS)) == -ETIMEDOUT);
    atomic_store(&f->step, 4);
    FT_CHECK(braid_mutex_lock(&f->m, BRAID_FOREVER) == 0);
    FT_CHECK(braid_mutex_unlock(&f->m) == 0);
    FT_CHECK(braid_mutex_lock(&f->m, BRAID_FOREVER) == 0);
    atomic_store(&f->step, 5);
    while (!f->flag)
        FT_CHECK(braid_cond_wait(&f->c, &f->m, braid_after(5000 * MS)) == 0);
    FT_CHECK(braid_mutex_unlock(&f->m) == 0);
    FT_CHECK(braid_wg_add(&f->wg, 1) == 0);
    atomic_store(&f->step, 6);
    FT_CHECK(braid_wg_wait(&f->wg, BRAID_FOREVER) == 0);
    atomic_store(&f->step, 7);
    FT_CHECK(braid_sem_acquire(&f->sem, BRAID_FOREVER) == 0);
    atomic_store(&f->step, 8);
    void *r = NULL;
    FT_CHECK(braid_join(f->joinee, &r, BRAID_FOREVER) == 0 && (intptr_t)r == 808);
    atomic_store(&f->step, 9);
    FT_CHECK(braid_read(f->p[0], &b, 1, BRAID_FOREVER) == 1 && b == 't');
    int64_t t0 = braid_now();                       /* 10: once, waiting */
    braid_sleep(5 * MS);
    FT_CHECK(braid_once_do(&f->once, once_slow) == 0);
    FT_CHECK(atomic_load(&once_runs) == 1);
    FT_CHECK(braid_now() - t0 >= 5 * MS);
    /* deadlines and sleep on a thread */
    int64_t d = braid_after(20 * MS);
    FT_CHECK(braid_recv(f->rx, &v, d) == -ETIMEDOUT && braid_now() >= d);
    FT_CHECK(braid_recv(f->rx, &v, 0) == -EAGAIN);
    d = braid_after(20 * MS);
    FT_CHECK(braid_sleep_until(d) == 0 && braid_now() >= d);
    FT_CHECK(braid_read(f->p[0], &b, 1, braid_after(5 * MS)) == -ETIMEDOUT);
    /* helpers: blocking runs inline, nursery, spawn, cancel */
    FT_CHECK(braid_blocking(nop_ret, (void *)7, &r) == 0 && (intptr_t)r == 7);
    braid_nursery *n;
    _Atomic int kids = 0;
    FT_CHECK(braid_nursery_open(&n, BRAID_FOREVER) == 0);
    for (int k = 0; k < 3; k++)
        FT_CHECK(braid_nursery_go(n, ft_nursery_child, &kids) == 0);
    FT_CHECK(braid_nursery_close(n) == 0 && atomic_load(&kids) == 3);
    FT_CHECK(braid_cancel(f->cancellee) == 0);
    FT_CHECK(braid_join(f->cancellee, &r, BRAID_FOREVER) == 0 &&
             (intptr_t)r == -ECANCELED);
    return NULL;
}

static void foreign_main(void *p)
{
    ft *f = p;
    ftc = f;
    ck_assert_int_eq(braid_chan_open(&f->tx, &f->rx, sizeof(int64_t), 0), 0);
    ck_assert_int_eq(braid_chan_open(&f->tx2, &f->rx2, sizeof(int64_t), 0), 0);
    ck_assert_int_eq(pipe(f->p), 0);
    f->joinee = spawn(ft_joinee, NULL);
    f->cancellee = spawn(ft_cancellee, NULL);
    braid_task *partner = spawn(ft_partner, NULL);
    thr th;
    thr_start(&th, ft_thread, f);
    join_val(partner);
    /* Wait for the thread without blocking this worker. */
    while (pthread_tryjoin_np(th.th, NULL) == EBUSY)
        braid_sleep(MS);
    braid_tx_close(f->tx);
    braid_rx_close(f->rx);
    braid_tx_close(f->tx2);
    braid_rx_close(f->rx2);
    braid_close(f->p[0]);
    braid_close(f->p[1]);
}

START_TEST(foreign_thread_calls)
{
    ft *f = calloc(1, sizeof *f);
    braid_sem_init(&f->sem, 0);
    /* Deadlock detection stays on: a thread blocked in braid counts as
       something that can wake the coroutines. */
    run(foreign_main, f);
    ck_assert_int_eq(f->fails, 0);
    free(f);
}
END_TEST

/* ==== row: errno read after a migration =================================== */

NOINLINE static void errno_set(int v) { errno = v; }
NOINLINE static int errno_get(void) { return errno; }
NOINLINE static int failing_close(void) { return close(-1); }

typedef struct em {
    braid_tx *tx;
    braid_rx *rx;
    braid_mutex *m;
    int id;
    int wrong, migrations;
} em;

static void *errno_worker(void *p)
{
    em *e = p;
    pthread_t last = thread_now();
    for (int k = 0; k < 3000; k++) {    /* same count: partners pair up */
        int want = e->id * 100000 + k;
        if (k % 5 == 4) {
            ck_assert_int_eq(failing_close(), -1);      /* libc sets it */
            want = EBADF;
        } else {
            errno_set(want);
        }
        int64_t v = k;
        switch (k % 4) {
        case 0: braid_yield(); break;
        case 1: braid_sleep(1000); break;
        case 2:                 /* ping-pong with the partner */
            if (e->id % 2)
                braid_send(e->tx, &v, BRAID_FOREVER);
            else
                braid_recv(e->rx, &v, BRAID_FOREVER);
            break;
        case 3:
            braid_mutex_lock(e->m, BRAID_FOREVER);
            braid_yield();
            braid_mutex_unlock(e->m);
            break;
        }
        e->wrong += errno_get() != want;
        if (!pthread_equal(last, thread_now()))
            e->migrations++;
        last = thread_now();
    }
    return NULL;
}

static void errno_main(void *unused)
{
    enum { NE = 8 };
    em e[NE];
    braid_tx *tx[NE / 2];
    braid_rx *rx[NE / 2];
    braid_mutex m = BRAID_MUTEX_INIT;
    braid_task *t[NE];
    for (int k = 0; k < NE / 2; k++)
        ck_assert_int_eq(braid_chan_open(&tx[k], &rx[k], sizeof(int64_t), 0), 0);
    for (int k = 0; k < NE; k++) {
        e[k] = (em){ tx[k / 2], rx[k / 2], &m, k, 0, 0 };
        t[k] = spawn(errno_worker, &e[k]);
    }
    int wrong = 0, migrations = 0;
    for (int k = 0; k < NE; k++) {
        join_val(t[k]);
        wrong += e[k].wrong;
        migrations += e[k].migrations;
    }
    fprintf(stderr, "errno: %d migrations, %d wrong\n", migrations, wrong);
    ck_assert_int_eq(wrong, 0);
    ck_assert_int_gt(migrations, 0);
    for (int k = 0; k < NE / 2; k++) {
        braid_tx_close(tx[k]);
        braid_rx_close(rx[k]);
    }
}

START_TEST(errno_after_migration)
{
    run(errno_main, NULL);
}
END_TEST

/* ==== the suite ============================================================ */

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    struct { const char *name; const TTest *tests[8]; } groups[] = {
        { "channels", { send_closed_ebadf_epipe, recv_drained_closed_epipe,
                        close_clone_keeps_open, capacity_overflow_lazy,
                        unbounded_slow_consumer } },
        { "arguments", { null_invalid_args } },
        { "memory", { spawn_enomem, stack_overflow_message,
                      stack_guards_fault, run_returns_blocked_freed } },
        { "io", { accept_emfile_no_spin, peer_reset_no_sigpipe,
                  partial_writes_in_order, fd_closed_while_waiting,
                  eintr_signal_storm } },
        { "waiting", { deadline_expiry_lateness, cancel_while_blocked,
                       blocked_worker_queue_moves, deadlock_dump } },
        { "process", { fork_child_eperm, foreign_thread_calls,
                       errno_after_migration } },
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_set_timeout(tc, 60);
        for (size_t k = 0; k < 8 && groups[g].tests[k]; k++)
            tcase_add_test(tc, groups[g].tests[k]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(faults_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
