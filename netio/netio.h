/*
 * netio.h - what the files of netio/ share: the per-fd table, the park
 * path for readiness waits, the I/O thread's hooks and the helper pool.
 *
 * Per-fd state (fdtab.c).  A table indexed by fd, two levels (a top array
 * of chunk pointers, each chunk FDTAB_CHUNK entries allocated on first use
 * and published by CAS), so an entry never moves and lookups take no lock.
 * Each entry:
 *   lk        spinlock protecting every field below except gen/nb/kind
 *   gen       generation: bumped (under lk) by braid_close and when a fresh
 *             fd takes the number; read without lk (relaxed) by a caller
 *             before its syscall and compared under lk before it parks, so
 *             a close between the two is seen.  Readiness events carry the
 *             gen of their registration and are dropped when it differs.
 *   epoch     poller epoch of the epoll registration (0: not registered);
 *             each braid__poller_start opens a new epoch, so a registration
 *             (and ready bits) of an older run is not trusted.
 *   ready     BRAID_READ|BRAID_WRITE edges seen while nobody waited: the
 *             next park returns at once (edge-triggered discipline).
 *   readers, writers  wait lists of braid__wnode (wnode->data: the events
 *             the waiter wants).
 *   nb, kind  atomics written once per fd life: O_NONBLOCK set; socket or
 *             not (send(MSG_NOSIGNAL) vs write).
 *   rseq      read events seen (any gen): bumped under lk by every event
 *             with a read bit, stored with release; read without lk with
 *             acquire (the drained-read rule, net.c).
 *   nodrain   set under lk (relaxed, before the rseq release) by an event
 *             that says a short read may leave something behind without a
 *             new edge: urgent data (EPOLLPRI), end of stream or error
 *             (EPOLLRDHUP, EPOLLHUP, EPOLLERR); cleared with a new gen.
 *   drained   (gen + 1) << 32 | rseq, stored relaxed by a reader whose
 *             read of a stream socket came back short, rseq read before
 *             that read; 0: none.
 *   stream    1 a SOCK_STREAM socket, 2 anything else, 0 not known yet;
 *             cleared with a new gen.
 * Lock order: entry lk < epfd lock (poller.c) < scheduler locks (waking).
 * The I/O thread completes waiters under lk; a waiter unlinks its nodes
 * under lk before it returns, so nobody touches a node after that.
 */
#ifndef BRAID_NETIO_H
#define BRAID_NETIO_H

#include "../runtime/common.h"
#include "../runtime/waiter.h"

typedef struct braid__fdent {
    braid__spin lk;
    _Atomic uint32_t gen;       /* written under lk, read relaxed */
    uint32_t epoch;             /* lk */
    uint8_t ready;              /* lk */
    _Atomic uint8_t nb;         /* 1: O_NONBLOCK set (or known) */
    _Atomic uint8_t kind;       /* FD_KIND_* */
    _Atomic uint8_t nodrain;    /* written under lk */
    _Atomic uint8_t stream;     /* 0 unknown, 1 SOCK_STREAM, 2 other */
    _Atomic uint32_t rseq;      /* written under lk */
    _Atomic uint64_t drained;   /* see above */
    braid__wlist readers;       /* lk */
    braid__wlist writers;       /* lk */
} braid__fdent;

enum { FD_KIND_UNKNOWN = 0, FD_KIND_SOCK = 1, FD_KIND_OTHER = 2 };

/* Entry of fd, allocated on demand; NULL for fd < 0, fd too large, or no
   memory.  Never moves. */
braid__fdent *braid__fd_get(int fd);
/* Entry of fd if it exists, else NULL.  Never allocates. */
braid__fdent *braid__fd_peek(int fd);
/* Make fd non-blocking once per fd life.  0 or -errno. */
int braid__fd_nonblock(braid__fdent *e, int fd);
/* A fresh fd (from accept/socket) took this number: wake stale waiters with
   -EBADF, forget the old registration, remember nb/kind. */
void braid__fd_fresh(braid__fdent *e, int nb, int kind);
/* Wait for events on fd after an EAGAIN seen at generation gen.  Returns
   the ready events (> 0), or -ETIMEDOUT, -ECANCELED, -EBADF, -errno. */
int braid__fd_park(braid__fdent *e, int fd, uint32_t gen, int events,
                   int64_t deadline, const char *what);
/* braid_close's part: bump gen, wake every waiter with -EBADF, drop the
   epoll registration.  Does not close fd. */
void braid__fd_retire(braid__fdent *e, int fd);
/* Plain poll() wait (no runtime): ready events, -ETIMEDOUT, -EBADF. */
int braid__poll_wait(int fd, int events, int64_t deadline);
/* I/O thread: readiness ev (EPOLL* bits) for fd registered at gen. */
void braid__fd_ready(int fd, uint32_t gen, uint32_t ev, braid__batch *b);
/* After the I/O thread stopped: wake plain-thread waiters (they fall back
   to poll()). */
void braid__fd_wake_threads(void);

/* poller.c.  Register fd (edge-triggered, data = gen:fd) in the running
   poller's epoll set; returns the epoch registered in (> 0), 0 if no poller
   runs, or -errno (-EPERM: fd cannot be polled, e.g. a regular file). */
long braid__poller_register(int fd, uint32_t gen);
void braid__poller_unregister(int fd, uint32_t epoch);
/* Wake the I/O thread (coalesced): new file submissions to drain. */
void braid__poller_wake(void);
/* Current epoch while a poller runs, else 0. */
uint32_t braid__poller_epoch(void);

/* file.c: regular files.  braid__file_start reads the environment
   (BRAID_IO_URING=0 forces the pool; BRAID_FILE_NOWAIT=0 skips the
   RWF_NOWAIT first try) and sets up an io_uring whose completions signal
   efd; braid__file_poll runs on the I/O thread each loop (drain
   submissions into the SQ, reap completions); braid__file_stop runs after
   the I/O thread has been joined and waits for in-flight operations. */
void braid__file_start(int efd);
void braid__file_poll(braid__batch *b);
void braid__file_stop(void);
/* Counters for tests: operations that went to io_uring / to the pool. */
uint64_t braid__file_uring_ops(void);
uint64_t braid__file_pool_ops(void);
/* 1 if the running poller has an io_uring, else 0. */
int braid__file_uses_uring(void);

/* blocking.c: the helper pool.  A job runs fn(arg) on a pool thread; the
   submitting coroutine parks until it is done. */
typedef struct braid__job {
    struct braid__job *next, *prev;   /* queue links; pool lock */
    void (*run)(struct braid__job *); /* what the pool thread calls */
    void *(*fn)(void *);              /* braid_blocking's call */
    void *arg, *result;
    int state;                        /* JOB_*; pool lock */
    braid__waiter *w;                 /* who to wake when done; pool lock */
    int64_t started_at;               /* braid_now() when a thread took it */
} braid__job;
enum { JOB_QUEUED = 1, JOB_RUNNING = 2, JOB_DONE = 3, JOB_WITHDRAWN = 4 };

/* Run j on the pool from a coroutine, park until done.  Returns 0 when it
   ran; -ETIMEDOUT / -ECANCELED when withdrawn before it started (it never
   runs); -EAGAIN when no thread could be started.  *late receives the early
   outcome (-ETIMEDOUT / -ECANCELED) when the wait was interrupted but the
   job had started and was then awaited, else 0. */
int braid__pool_run(braid__job *j, int64_t deadline, const char *what,
                    int *late);
void braid__pool_fini(void);
/* The I/O thread's side of the pool's growth (blocking.c): when it should
   look at the pool next (-1: no need), and the look, which starts threads
   for queued jobs while fewer than EAGER threads are free or running a
   job younger than GROW_NS. */
int64_t braid__pool_due(void);
void braid__pool_grow_late(int64_t now);

/* Shutdown flag: set by braid__poller_stop before draining; completers
   then leave abandoned coroutines alone. */
extern _Atomic int braid__netio_down;

#endif
