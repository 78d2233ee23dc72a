/*
 * braid.h - M:N coroutines, channels and an I/O thread for C.
 *
 * This is the only public header of libbraid and the reference for its
 * contract (the project's API.md is the summary it grew from).
 *
 * Conventions that hold for every function below:
 *  - A function that can fail returns 0 (or a non-negative count) on success
 *    and a negative errno on failure.  errno is never the error channel.
 *    braid_strerror() names a code.
 *  - Time is int64_t nanoseconds on CLOCK_MONOTONIC (braid_now()).  Every
 *    blocking call takes an absolute deadline: BRAID_FOREVER (-1) means none;
 *    a deadline already past (0 included) means "try once": channel, select
 *    and sync calls return -EAGAIN, sleep and I/O calls -ETIMEDOUT, where they
 *    would have blocked.  A deadline that expires while the call is blocked
 *    returns -ETIMEDOUT.
 *  - Cancellation is sticky: a cancelled coroutine still completes calls that
 *    need not block, and gets -ECANCELED from calls that would block or are
 *    blocked.  A cancelled operation did not happen.
 *  - "Context": every call works both inside a coroutine (a blocking call
 *    parks the coroutine) and on a plain OS thread that is not a worker (it
 *    blocks the thread).  No call is coroutine-only: on a thread braid_yield
 *    is sched_yield, braid_self is NULL and braid_cancelled is 0.
 *  - Each coroutine's errno is saved and restored across switches and
 *    migrations between worker threads.  glibc declares __errno_location
 *    and pthread_self const, so a compiler may keep &errno or the thread
 *    id from before a switch point in a register: code that needs either
 *    after a braid call should read it through a non-inlined function (or
 *    behind an asm barrier).  Thread-local variables have the same hazard:
 *    never keep their address across a call that may switch.
 *  - The default stack is 64 KiB (BRAID_STACK_SIZE / braid_config).  Every
 *    stack gets a guard page where the kernel has guard regions (Linux >=
 *    6.13, madvise MADV_GUARD_INSTALL: no extra mapping; the first one is
 *    checked to fault, since an emulator such as qemu-user may accept the
 *    call and install nothing); elsewhere only the first
 *    BRAID_STACK_GUARDS (8192) do, through mprotect.
 *    BRAID_STACK_GUARDS=0 turns guards off.  Every stack also has a red
 *    zone checked at each switch: an overflow aborts with
 *    "coroutine <id> (<name>) overflowed its <N>-byte stack".
 *  - After fork() in a process whose runtime is running, every runtime call
 *    in the child returns -EPERM (or does nothing, for void functions).
 *
 * Where the implementation departs from the project's design map, and why:
 *  - Timers live in one 4-ary heap per worker (plus one spare), each behind
 *    its own lock, so deadline-taking calls on a hot path never serialise
 *    every worker; the I/O thread expires all heaps (runtime/timer.c).
 *    Workers also fire deadlines already past at every 16th switch, as
 *    Go's Ps do: the I/O thread alone could not be counted on when both
 *    CPUs were busy (it waited 3 ms for a CPU; bench sleep's p99 lateness
 *    was 2-6 ms while 10,000 sleepers were spawned, now 0.6-1.6 ms).
 *  - The I/O thread also runs a monitor (Go's sysmon): a worker that has not
 *    switched for one period (5 ms) while coroutines wait in its queues is
 *    stuck in a blocking call or a long computation, and its queue and
 *    next slot are moved to the global queue for the other workers.
 *  - Woken coroutines (timers, I/O) enter the global queue ahead of spawned
 *    ones, in order, as Go's runnext does for them.
 *  - A worker with nothing to run and nothing to steal looks at the
 *    sockets' epoll set itself (timeout 0) before it sleeps, and runs the
 *    coroutines whose fds are ready: no hop through the global queue and
 *    no futex wake for them (Go's findrunnable does the same).  While
 *    workers poll like this, the I/O thread stops watching the sockets
 *    (they sit in an epoll set nested in its own, disarmed): it watches
 *    them only when every worker sleeps or none has polled for 1 ms.  A
 *    wake-up of the I/O thread per event cost two context switches and a
 *    CPU taken from a worker (echo: 59,000 a second, 2 context switches
 *    per request, 0.64x Go; now 1.15-1.4x).  So a ready socket waits at
 *    most 1 ms while every worker is busy and none polls.  The I/O thread
 *    still owns timers, blocking waits, files and the monitor.
 *  - A worker takes from its own next slot and ring with plain moves; a
 *    thief takes a steal lock and issues a membarrier(2) first (an
 *    asymmetric Dekker, checked in tests/model/asym.pml).  A thief takes a
 *    short ring (under 32) or the next slot only from a worker that has
 *    run one coroutine for 50 us, so a producer/consumer group that keeps
 *    switching stays on one core.
 *  - A thief judges the spawns it steals: when a batch ran under 1 us a
 *    coroutine on average (from the steal until the thief is idle again),
 *    it leaves the spawns of workers that keep switching alone for 100 us,
 *    doubling to 1.6 ms while later probes come back as tiny.  Moving a
 *    coroutine that short to another core cost more than running it:
 *    bench spawn ran at 63 ns a spawn on one worker and 90-290 on two; now
 *    66-68 on two.  Spawn trees are unaffected (their oldest spawns, the
 *    ones stolen, are the biggest pieces), and a worker that sits on one
 *    coroutine for 50 us is stolen from as before.
 *  - braid_cancel issues a membarrier(2) (once the process registered for
 *    it, at the first braid_run), so that no blocking call pays an atomic
 *    instruction to stay cancellable; without membarrier both sides lock.
 *  - Besides its ck_ring run queue (FIFO, for every coroutine that has
 *    run before) and its next slot, each worker keeps a spawn deque
 *    (Chase-Lev, runtime/deque.h) for coroutines it spawned that have not
 *    run yet: the worker takes the newest first, thieves the oldest.  With
 *    a FIFO only, a fork-join program (fib, skynet, divide and conquer)
 *    is walked breadth first and tens of thousands of half-done
 *    coroutines hold stacks at once (fib(30): 230 MB resident, 57,000
 *    page faults); depth first it stays under 2 MB and ran 2-4x faster.
 *    Readied coroutines keep the FIFO ring, and every fourth pick takes
 *    the ring first, so wake-ups are never starved by spawns.
 *  - braid_go/braid_spawn hold the caller back when its spawn deque is
 *    three-quarters full, until the deque is down to a quarter (yield,
 *    for a three-quarters full run queue): a spawning loop then runs its
 *    own children instead of spilling them to the global queue.
 *  - Guard pages use the kernel's guard regions where available (no VMA
 *    split, so a million guarded stacks fit the 65,530-mapping limit);
 *    with mprotect they are budgeted (BRAID_STACK_GUARDS, default 8192
 *    stacks), since each would cost two mappings; the rest rely on the red
 *    zone checked at every switch and exit.
 *  - A forked child gets -EPERM from every call (not just runtime ones):
 *    a lock a vanished worker held would otherwise hang it.
 */
#ifndef BRAID_H
#define BRAID_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BRAID_BUILDING) && defined(__GNUC__)
#define BRAID_EXPORT __attribute__((visibility("default")))
#else
#define BRAID_EXPORT
#endif

#define BRAID_VERSION_MAJOR 0
#define BRAID_VERSION_MINOR 1
#define BRAID_VERSION_PATCH 0

/* Absolute deadline meaning "no deadline". */
#define BRAID_FOREVER ((int64_t)-1)

typedef struct braid_task braid_task;       /* a joinable coroutine */
typedef struct braid_tx braid_tx;           /* send handle of a channel */
typedef struct braid_rx braid_rx;           /* receive handle of a channel */
typedef struct braid_nursery braid_nursery;

/* ------------------------------------------------------------------------
 * Runtime
 * ---------------------------------------------------------------------- */

typedef struct braid_config {
    unsigned workers;           /* 0: env BRAID_WORKERS, else the CPUs this
                                   process may use (affinity mask, cgroup
                                   cpu.max quota) */
    size_t stack_size;          /* 0: env BRAID_STACK_SIZE, else 64 KiB */
    unsigned no_deadlock_check; /* 1: a thread braid cannot see may still
                                   wake a coroutine; never report -EDEADLK */
    unsigned reserved_[13];     /* zero */
} braid_config;

/* Per-spawn attributes; zero-initialised (or braid_attr_init) = defaults. */
typedef struct braid_attr {
    size_t stack_size;          /* 0 = the runtime's default; rounded up to
                                   a power of two, 16 KiB .. 1 GiB */
    const char *name;           /* shown by braid_dump; not copied: keep it
                                   alive as long as the coroutine */
    uintptr_t reserved_[6];
} braid_attr;

/* Set *a to the defaults.  Returns 0, or -EINVAL if a is NULL. */
BRAID_EXPORT int braid_attr_init(braid_attr *a);
/* Returns 0, or -EINVAL (a NULL, size not 0 and below 16 KiB or above
   1 GiB). */
BRAID_EXPORT int braid_attr_set_stack_size(braid_attr *a, size_t size);
/* Returns 0, or -EINVAL if a is NULL. */
BRAID_EXPORT int braid_attr_set_name(braid_attr *a, const char *name);

/*
 * Start the workers and the I/O thread, run main_fn(arg) as the first
 * coroutine, return when main_fn returns.  Coroutines still alive then are
 * abandoned (never resumed) and their stacks freed, as in Go.  A channel or
 * sync object that an abandoned coroutine was blocked on still lists that
 * coroutine's wait entry: do not use such an object after braid_run
 * returns (fds are cleaned up: they may be used again).
 *
 * Returns 0; -EDEADLK when every coroutine was blocked with nothing able to
 * wake one (no timer, no I/O, no blocking-pool call, no foreign thread
 * blocked in a braid call), after printing braid_dump() to stderr;
 * -EINVAL (main_fn NULL, cfg->workers > 1024, bad stack size); -EBUSY if a
 * runtime is already running in this process; -EPERM inside a coroutine or
 * in a forked child; -ENOMEM / -EAGAIN when threads or memory cannot be had.
 * May be called again after it returns.  Call from a plain thread.
 * The threads it starts are named for top -H, perf and gdb: braid-w0,
 * braid-w1, ... (workers), braid-io, and braid-blocking (the pool of
 * braid_blocking and the file fallback).
 */
BRAID_EXPORT int braid_run(const braid_config *cfg, void (*main_fn)(void *),
                           void *arg);

/*
 * Spawn a detached coroutine running fn(arg).  Callable from a coroutine or
 * from any thread while the runtime runs.  Returns 0, -EINVAL (fn NULL),
 * -ENOMEM (no stack), -EPERM (no runtime running).
 */
BRAID_EXPORT int braid_go(void (*fn)(void *), void *arg);

/*
 * Spawn a joinable coroutine running fn(arg); *t receives its handle, which
 * must be passed once to braid_join (or braid_detach).  attr may be NULL.
 * Callable like braid_go.  Returns 0, -EINVAL (t or fn NULL, bad attr),
 * -ENOMEM, -EPERM.
 */
BRAID_EXPORT int braid_spawn(braid_task **t, void *(*fn)(void *), void *arg,
                             const braid_attr *attr);

/*
 * Wait for t to finish and store its return value in *result (result may be
 * NULL).  0 frees the handle.  -ETIMEDOUT / -EAGAIN (deadline), -ECANCELED
 * (the caller was cancelled) keep it valid for another join.  -EINVAL (t
 * NULL, or t is the caller itself), -EPERM (no runtime).  Works from
 * coroutines and plain threads.  At most one joiner at a time per task
 * (a second concurrent join returns -EBUSY).
 */
BRAID_EXPORT int braid_join(braid_task *t, void **result, int64_t deadline);

/* Give up the handle: the task is freed when it finishes.  0 or -EINVAL. */
BRAID_EXPORT int braid_detach(braid_task *t);

/* Let other runnable coroutines run; the caller stays runnable.  Outside a
   coroutine it is sched_yield(). */
BRAID_EXPORT void braid_yield(void);

/*
 * Ask t to stop: sets its sticky cancel flag and makes its current or next
 * blocking call return -ECANCELED.  Returns 0 (also when t already
 * finished), -EINVAL (t NULL).  Callable from anywhere.
 */
BRAID_EXPORT int braid_cancel(braid_task *t);

/* 1 if the calling coroutine was cancelled, else 0 (0 outside coroutines). */
BRAID_EXPORT int braid_cancelled(void);

/* Handle of the calling coroutine, NULL outside a coroutine.  A detached
   coroutine's handle is valid only for braid_cancel from itself. */
BRAID_EXPORT braid_task *braid_self(void);

/* Monotonic time in nanoseconds; always > 0.  Never enters the kernel on
   platforms with a vDSO clock. */
BRAID_EXPORT int64_t braid_now(void);

/* braid_now() + ns, saturating. */
BRAID_EXPORT int64_t braid_after(int64_t ns);

/* Sleep ns nanoseconds (<= 0: just yield).  0, or -ECANCELED.  Works on
   plain threads too.  Never wakes early.  A lone deadline fires on time
   (give or take the OS's wake-up latency); when many fall due together
   the I/O thread batches them, firing each up to 250 us late, so that it
   does not keep taking a CPU from the workers (see netio/poller.c). */
BRAID_EXPORT int braid_sleep(int64_t ns);

/* Sleep until deadline.  0, or -ECANCELED. */
BRAID_EXPORT int braid_sleep_until(int64_t deadline);

/*
 * Run fn(arg) on a helper thread of a bounded pool while the calling
 * coroutine parks; store its return value in *result (result may be
 * NULL).  The pool keeps as many threads busy as there are CPUs (at least
 * 2): a call that finds them all busy waits for one to come free; a call
 * that has run for 50 us counts as blocked, and the pool then starts
 * more threads (a few every 50 us; up to 1 ms late after a long spell of
 * short calls).  So short calls share a few hot threads, and calls that
 * block, even ones that wait on each other, still get a thread each, up
 * to env BRAID_BLOCKING_THREADS (default 64); threads idle for 10 s
 * retire.  Returns 0, -EINVAL (fn NULL), -EAGAIN (no helper thread could
 * be started).  fn runs to completion even if the caller is cancelled (a
 * blocking call cannot be interrupted); the caller still waits for it,
 * then returns -ECANCELED if it was cancelled.  On a plain thread it
 * calls fn directly.  A call still running when main_fn returns delays
 * braid_run's return until it finishes.
 */
BRAID_EXPORT int braid_blocking(void *(*fn)(void *), void *arg, void **result);

typedef struct braid_stats {
    uint64_t spawned;   /* coroutines created */
    uint64_t switches;  /* coroutine context switches */
    uint64_t steals;    /* coroutines moved by work stealing */
    uint64_t parks;     /* worker threads parked on their futex */
    uint64_t polls;     /* epoll_wait calls of the I/O thread */
    uint64_t completed; /* coroutines that returned */
    uint64_t live;      /* coroutines alive now */
    uint64_t workers;   /* worker threads of the running runtime */
    uint64_t global_pushes; /* coroutines pushed to the global queue */
    uint64_t reserved_[7];
} braid_stats;

/* Snapshot of the counters of the current (or last) runtime.  The counts
   are summed without stopping the workers.  s NULL: nothing. */
BRAID_EXPORT void braid_stats_get(braid_stats *s);

/* Print every live coroutine (id, name, state, what it waits on, since
   when) and every worker to out (NULL: stderr).  Callable from anywhere,
   also from a debugger; the snapshot is racy but memory-safe. */
BRAID_EXPORT void braid_dump(FILE *out);

/* Text for a negative (or positive) errno returned by braid; never NULL. */
BRAID_EXPORT const char *braid_strerror(int err);

/* ------------------------------------------------------------------------
 * Channels: trio's open_memory_channel, in C
 * ---------------------------------------------------------------------- */

#define BRAID_UNBOUNDED SIZE_MAX

/*
 * Open a channel carrying elements of elem_size bytes (0 allowed: pure
 * signalling; at most 1 MiB) with capacity 0 (rendezvous: braid_send
 * returns once a receiver took the element), N (send blocks while N are
 * buffered) or BRAID_UNBOUNDED (send never blocks).  Buffers grow as
 * needed: no capacity is reserved up front.  Returns 0, -EINVAL (tx or rx
 * NULL, elem_size too large, capacity * elem_size overflows), -ENOMEM.
 */
BRAID_EXPORT int braid_chan_open(braid_tx **tx, braid_rx **rx,
                                 size_t elem_size, size_t capacity);

/*
 * Send the elem_size bytes at elem.  Returns 0 once the element is buffered
 * (or taken, capacity 0); -EPIPE when every receive handle is closed;
 * -EBADF when this handle is closed by another coroutine while blocked;
 * -EAGAIN / -ETIMEDOUT (deadline); -ECANCELED; -EINVAL (tx NULL, elem NULL
 * with elem_size > 0).  On any error the element was not sent.
 */
BRAID_EXPORT int braid_send(braid_tx *tx, const void *elem, int64_t deadline);

/*
 * Receive one element into elem (may be NULL to discard).  Returns 0;
 * -EPIPE once every send handle is closed and the buffer is drained;
 * -EBADF, -EAGAIN, -ETIMEDOUT, -ECANCELED, -EINVAL as braid_send.  On any
 * error nothing was taken.
 */
BRAID_EXPORT int braid_recv(braid_rx *rx, void *elem, int64_t deadline);

/* A new handle on the same side.  0, -EINVAL, -EBADF (tx closed), -ENOMEM */
BRAID_EXPORT int braid_tx_clone(braid_tx *tx, braid_tx **out);
BRAID_EXPORT int braid_rx_clone(braid_rx *rx, braid_rx **out);

/* Close and free this handle; calls blocked on it return -EBADF.  When the
   last handle of a side closes, the other side sees -EPIPE as described
   above; the channel is freed with its last handle.  0 or -EINVAL. */
BRAID_EXPORT int braid_tx_close(braid_tx *tx);
BRAID_EXPORT int braid_rx_close(braid_rx *rx);

typedef struct braid_chan_info {
    size_t buffered, capacity, tx_open, rx_open;
    size_t senders_waiting, receivers_waiting;
} braid_chan_info;

/* Snapshot of the channel behind rx.  0 or -EINVAL. */
BRAID_EXPORT int braid_chan_stats(braid_rx *rx, braid_chan_info *info);

/* The same for a send handle (an addition to API.md). */
BRAID_EXPORT int braid_chan_stats_tx(braid_tx *tx, braid_chan_info *info);

/* ------------------------------------------------------------------------
 * Select
 * ---------------------------------------------------------------------- */

enum { BRAID_SEND = 1, BRAID_RECV = 2 };

typedef struct braid_case {
    int op;       /* BRAID_SEND or BRAID_RECV */
    void *chan;   /* braid_tx * or braid_rx *; NULL: case ignored */
    void *elem;   /* value to send / buffer to fill (may be NULL on recv) */
    int result;   /* set by braid_select for the case that completed */
} braid_case;

/*
 * Wait until one case can complete, complete exactly that one and return
 * its index; its result is 0, -EPIPE (the other side is gone) or -EBADF
 * (the handle was closed while waiting).  When several cases are ready one
 * is chosen uniformly at random.  Otherwise returns -EAGAIN (past
 * deadline), -ETIMEDOUT, -ECANCELED, -EINVAL (cases NULL with n > 0, a bad
 * op, n > 65536).  All NULL cases, or n == 0: waits for the deadline.
 */
BRAID_EXPORT int braid_select(braid_case *cases, size_t n, int64_t deadline);

/* ------------------------------------------------------------------------
 * Synchronisation: coroutine-aware, also usable from plain threads.  Each
 * type is valid zero-initialised or set with its _INIT macro; the layout is
 * private.  None may be copied or moved while in use.
 * ---------------------------------------------------------------------- */

typedef struct braid_mutex { uint64_t opaque_[4]; } braid_mutex;
typedef struct braid_cond  { uint64_t opaque_[4]; } braid_cond;
typedef struct braid_wg    { uint64_t opaque_[4]; } braid_wg;
typedef struct braid_sem   { uint64_t opaque_[4]; } braid_sem;
typedef struct braid_once  { uint64_t opaque_[4]; } braid_once;

#define BRAID_MUTEX_INIT {{0, 0, 0, 0}}
#define BRAID_COND_INIT  {{0, 0, 0, 0}}
#define BRAID_WG_INIT    {{0, 0, 0, 0}}
#define BRAID_SEM_INIT(n) {{(uint64_t)(n), 0, 0, 0}}
#define BRAID_ONCE_INIT  {{0, 0, 0, 0}}

/* Lock m.  Hand-off with a starvation guard as Go's sync.Mutex: a waiter
   that waited over 1 ms gets the lock handed to it directly.  Returns 0,
   -EAGAIN / -ETIMEDOUT (deadline), -ECANCELED, -EINVAL (m NULL).  Not
   recursive: relocking from the owner deadlocks (as Go). */
BRAID_EXPORT int braid_mutex_lock(braid_mutex *m, int64_t deadline);
/* 0 or -EBUSY (held), -EINVAL. */
BRAID_EXPORT int braid_mutex_trylock(braid_mutex *m);
/* 0, -EPERM (not locked), -EINVAL.  Any coroutine or thread may unlock. */
BRAID_EXPORT int braid_mutex_unlock(braid_mutex *m);

/* Atomically unlock m and wait for a signal, then relock m (also on error,
   except -EINVAL / -EPERM; the relock itself is not cancellable).  Returns
   0, -ETIMEDOUT / -EAGAIN, -ECANCELED, -EINVAL, -EPERM (m not locked). */
BRAID_EXPORT int braid_cond_wait(braid_cond *c, braid_mutex *m,
                                 int64_t deadline);
/* Wake one / all waiters.  0 or -EINVAL. */
BRAID_EXPORT int braid_cond_signal(braid_cond *c);
BRAID_EXPORT int braid_cond_broadcast(braid_cond *c);

/* Add delta (may be negative) to the counter; reaching 0 wakes waiters.
   Returns 0, -EINVAL (w NULL, counter would go below zero: unchanged). */
BRAID_EXPORT int braid_wg_add(braid_wg *w, int64_t delta);
/* braid_wg_add(w, -1). */
BRAID_EXPORT int braid_wg_done(braid_wg *w);
/* Wait for the counter to be 0.  0, -EAGAIN / -ETIMEDOUT, -ECANCELED,
   -EINVAL. */
BRAID_EXPORT int braid_wg_wait(braid_wg *w, int64_t deadline);

/* Set the count (not while in use).  0 or -EINVAL. */
BRAID_EXPORT int braid_sem_init(braid_sem *s, uint64_t count);
/* Take one unit, waiting FIFO.  0, -EAGAIN / -ETIMEDOUT, -ECANCELED,
   -EINVAL. */
BRAID_EXPORT int braid_sem_acquire(braid_sem *s, int64_t deadline);
/* Give one unit back.  0, -EOVERFLOW, -EINVAL. */
BRAID_EXPORT int braid_sem_release(braid_sem *s);

/* Run fn exactly once across all callers; the others wait until it has
   returned.  0, -EINVAL. */
BRAID_EXPORT int braid_once_do(braid_once *o, void (*fn)(void));

/* ------------------------------------------------------------------------
 * I/O, served by the dedicated I/O thread.  Sockets and pipes are set
 * non-blocking and polled; regular files go through io_uring or a thread
 * pool.  One reader and one writer may use an fd at the same time.  All
 * calls work on plain threads too (they block the thread).  EINTR is
 * retried; SIGPIPE is never raised.
 * ---------------------------------------------------------------------- */

enum { BRAID_READ = 1, BRAID_WRITE = 2 };

/* Wait until fd is readable / writable (events: BRAID_READ|BRAID_WRITE).
   Returns the ready events (> 0), -ETIMEDOUT, -ECANCELED, -EBADF (fd
   closed through braid_close meanwhile, or not open), -EINVAL. */
BRAID_EXPORT int braid_fd_wait(int fd, int events, int64_t deadline);

/* Read up to n bytes.  Returns the count (0 = EOF) or -errno.  After a
   short read of a stream socket, the next call parks at once (no read
   that would only say EAGAIN) unless the I/O thread has seen data, end
   of stream or urgent data on the fd since: the bytes still to come
   wake it.  So a request/response server makes one read per request. */
BRAID_EXPORT ssize_t braid_read(int fd, void *buf, size_t n, int64_t deadline);

/* Write all n bytes (partial writes and EAGAIN handled).  Returns n, or
   -errno (-EPIPE / -ECONNRESET when the peer is gone; bytes before the
   error may have been written). */
BRAID_EXPORT ssize_t braid_write(int fd, const void *buf, size_t n,
                                 int64_t deadline);

/* accept4(SOCK_NONBLOCK|SOCK_CLOEXEC).  The new fd, or -errno (-EMFILE is
   returned to the caller, never spun on). */
BRAID_EXPORT int braid_accept(int lfd, struct sockaddr *sa, socklen_t *len,
                              int64_t deadline);

/* Connect fd (made non-blocking).  0 or -errno. */
BRAID_EXPORT int braid_connect(int fd, const struct sockaddr *sa,
                               socklen_t len, int64_t deadline);

/* A listening TCP socket (IPv4 or IPv6; host NULL = all addresses,
   port "0" = any free port; SO_REUSEADDR; backlog <= 0 = SOMAXCONN).  The
   fd, or -errno (-ENOENT: unknown host or service). */
BRAID_EXPORT int braid_tcp_listen(const char *host, const char *port,
                                  int backlog);

/* Same, with SO_REUSEPORT when reuseport is 1 (an addition to API.md). */
BRAID_EXPORT int braid_tcp_listen_ex(const char *host, const char *port,
                                     int backlog, int reuseport);

/* Resolve host (on the blocking pool, off the workers; NULL = loopback)
   and connect, trying each address.  The fd, or -errno (-ENOENT: unknown
   host or service). */
BRAID_EXPORT int braid_tcp_dial(const char *host, const char *port,
                                int64_t deadline);

/* Positional file I/O that never blocks a worker: a page-cache hit is one
   preadv2(RWF_NOWAIT); otherwise io_uring (a ring owned by the I/O
   thread) or, where the kernel refuses it or env BRAID_IO_URING=0, a
   thread pool.  A deadline or cancel withdraws an operation that has not
   started; one already started returns its real result.  Count or
   -errno. */
BRAID_EXPORT ssize_t braid_pread(int fd, void *buf, size_t n, off_t off,
                                 int64_t deadline);
BRAID_EXPORT ssize_t braid_pwrite(int fd, const void *buf, size_t n,
                                  off_t off, int64_t deadline);

/* Close fd; coroutines blocked on it get -EBADF, and no readiness of the
   old fd reaches a later fd with the same number.  Fds used with braid I/O
   should be closed here, not with close(2).  0 or -errno (-EBADF for fds
   >= 2^22 or not open). */
BRAID_EXPORT int braid_close(int fd);

/* ------------------------------------------------------------------------
 * Structured concurrency
 * ---------------------------------------------------------------------- */

/* Open a nursery whose children are cancelled at deadline (a watchdog
   coroutine, "nursery watchdog" in dumps, enforces it even before close).
   0, -EINVAL, -ENOMEM, -EPERM (a finite deadline and no runtime running). */
BRAID_EXPORT int braid_nursery_open(braid_nursery **n, int64_t deadline);
/* Start fn(arg) as a child; it returns 0 or a negative errno.  0, -EINVAL,
   -ENOMEM, -ECANCELED (the nursery was cancelled).  Children may call it
   while braid_nursery_close waits; other parties must not call it
   concurrently with close. */
BRAID_EXPORT int braid_nursery_go(braid_nursery *n, int (*fn)(void *),
                                  void *arg);
/* Cancel every child.  0 or -EINVAL. */
BRAID_EXPORT int braid_nursery_cancel(braid_nursery *n);
/* Wait for every child (cancelling them at the deadline), free n, return 0
   or the first child failure. */
BRAID_EXPORT int braid_nursery_close(braid_nursery *n);

#ifdef __cplusplus
}
#endif

#endif /* BRAID_H */
