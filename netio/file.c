/*
 * file.c - braid_pread / braid_pwrite: regular files without blocking a
 * worker.
 *
 * First try: preadv2/pwritev2 with RWF_NOWAIT, which succeeds when the page
 * cache can serve the call (no extra system call on a cache hit).  On
 * EAGAIN the operation goes asynchronous: to the I/O thread's io_uring if
 * it has one, else to the helper pool (blocking.c).  Plain threads just
 * call pread/pwrite (blocking the thread is what they asked for).
 *
 * io_uring.  The ring belongs to the I/O thread.  A coroutine queues a
 * request (a fop on its stack) on U.head/U.tail and wakes the I/O thread,
 * which moves queued requests into the SQ, submits, and completes waiters
 * from the CQ (the ring signals the poller's eventfd).
 *
 * U.lk (spinlock) protects the list, U.inflight and every fop's state,
 * cancel, linked and w.  fop state: QUEUED (on the list) -> INFLIGHT (in
 * the kernel) -> DONE (res set).  A coroutine interrupted by its deadline or
 * by cancellation withdraws a QUEUED fop (the operation never happens);
 * for an INFLIGHT one it queues the same fop again with cancel set (the
 * I/O thread submits IORING_OP_ASYNC_CANCEL for it) and waits until DONE:
 * the kernel owns the buffer until then.  The completer sets DONE and
 * claims w under U.lk, so the owner never returns (and frees its stack
 * frame) while the I/O thread may still touch the fop.  Lock order: U.lk <
 * scheduler locks.
 */
#include "../runtime/common.h"
#include "netio.h"

#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define RING_ENTRIES 256
#define MAX_IO 0x7ffff000u      /* what one read(2) moves at most */

enum { FOP_QUEUED = 1, FOP_INFLIGHT, FOP_DONE };

typedef struct fop {
    struct fop *next, *prev;    /* U list; U.lk */
    int fd, write;
    void *buf;
    unsigned n;
    off_t off;
    int state;                  /* U.lk */
    bool cancel, linked;        /* U.lk */
    ssize_t res;                /* U.lk; valid once DONE */
    braid__waiter *w;           /* U.lk; NULL: nobody to wake */
} fop;

static struct {
    braid__spin lk;
    struct io_uring ring;       /* I/O thread (start/stop caller outside) */
    _Atomic int on;             /* ring usable; set at start, cleared at stop */
    fop *head, *tail;           /* lk */
    unsigned inflight;          /* I/O thread: CQEs still to come */
    int nowait;                 /* try RWF_NOWAIT first; set at start */
    _Atomic uint64_t uring_ops, pool_ops;
} U = { .nowait = 1 };

uint64_t braid__file_uring_ops(void) { return ld_relaxed(&U.uring_ops); }
uint64_t braid__file_pool_ops(void) { return ld_relaxed(&U.pool_ops); }
int braid__file_uses_uring(void) { return ld_acquire(&U.on); }

static bool env_off(const char *name)
{
    const char *v = getenv(name);
    return v && strcmp(v, "0") == 0;
}

void braid__file_start(int efd)
{
    U.nowait = !env_off("BRAID_FILE_NOWAIT");
    U.head = U.tail = NULL;
    U.inflight = 0;
    if (env_off("BRAID_IO_URING"))
        return;
    if (io_uring_queue_init(RING_ENTRIES, &U.ring, 0) < 0)
        return;                                 /* the pool serves */
    if (io_uring_register_eventfd(&U.ring, efd) < 0) {
        io_uring_queue_exit(&U.ring);
        return;
    }
    st_release(&U.on, 1);
}

static void list_push(fop *f)
{
    f->next = NULL;
    f->prev = U.tail;
    if (U.tail) U.tail->next = f; else U.head = f;
    U.tail = f;
    f->linked = true;
}

static void list_remove(fop *f)
{
    if (!f->linked) return;
    if (f->prev) f->prev->next = f->next; else U.head = f->next;
    if (f->next) f->next->prev = f->prev; else U.tail = f->prev;
    f->linked = false;
}

/* Move queued requests into the SQ.  Returns how many.  U.lk held. */
static unsigned fill_sq(void)
{
    unsigned n = 0;
    while (U.head && U.inflight < 2 * RING_ENTRIES) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&U.ring);
        if (!sqe)
            break;
        fop *f = U.head;
        list_remove(f);
        if (f->state == FOP_QUEUED) {
            if (f->write)
                io_uring_prep_write(sqe, f->fd, f->buf, f->n, (uint64_t)f->off);
            else
                io_uring_prep_read(sqe, f->fd, f->buf, f->n, (uint64_t)f->off);
            io_uring_sqe_set_data(sqe, f);
            f->state = FOP_INFLIGHT;
        } else {                                /* INFLIGHT, cancel wanted */
            io_uring_prep_cancel(sqe, f, 0);
            io_uring_sqe_set_data(sqe, NULL);   /* its CQE is ignored */
        }
        U.inflight++;
        n++;
    }
    return n;
}

static void complete(struct io_uring_cqe *cqe, braid__batch *b)
{
    fop *f = io_uring_cqe_get_data(cqe);
    braid__spin_lock(&U.lk);
    U.inflight--;
    if (f) {
        f->res = cqe->res;
        f->state = FOP_DONE;
        list_remove(f);                         /* a pending cancel */
        braid__waiter *w = f->w;
        f->w = NULL;
        if (w && !atomic_load(&braid__netio_down))
            braid__waiter_complete(w, 0, b);
    }
    braid__spin_unlock(&U.lk);
}

static void reap(braid__batch *b)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&U.ring, &cqe) == 0) {
        complete(cqe, b);
        io_uring_cqe_seen(&U.ring, cqe);
    }
}

void braid__file_poll(braid__batch *b)
{
    if (!ld_relaxed(&U.on))
        return;
    braid__spin_lock(&U.lk);
    unsigned n = fill_sq();
    braid__spin_unlock(&U.lk);
    if (n || io_uring_sq_ready(&U.ring))
        io_uring_submit(&U.ring);               /* errors: retried next loop */
    reap(b);
}

void braid__file_stop(void)
{
    if (!ld_relaxed(&U.on))
        return;
    braid__spin_lock(&U.lk);
    st_release(&U.on, 0);
    while (U.head) {                            /* never submitted: drop */
        U.head->state = FOP_DONE;
        list_remove(U.head);
    }
    braid__spin_unlock(&U.lk);
    while (U.inflight) {                        /* the kernel owns buffers */
        struct io_uring_cqe *cqe;
        io_uring_submit(&U.ring);
        if (io_uring_wait_cqe(&U.ring, &cqe) == 0) {
            complete(cqe, NULL);
            io_uring_cqe_seen(&U.ring, cqe);
        }
    }
    io_uring_queue_exit(&U.ring);
}

/* Park until f is DONE, ignoring the deadline and cancellation: the
   kernel may still be writing into the caller's buffer. */
static void wait_done(fop *f)
{
    for (;;) {
        braid__waiter w;
        braid__waiter_init(&w, "file io (finishing)", f);
        w.nocancel = true;          /* the job uses our stack: wait it out */
        braid__spin_lock(&U.lk);
        if (f->state == FOP_DONE) {
            braid__spin_unlock(&U.lk);
            return;
        }
        f->w = &w;
        braid__spin_unlock(&U.lk);
        if (braid__waiter_wait(&w, BRAID_FOREVER) == 0)
            return;
        braid__spin_lock(&U.lk);
        if (f->w == &w)
            f->w = NULL;
        braid__spin_unlock(&U.lk);
        braid_yield();
    }
}

/* The deadline or a cancel interrupted the wait with rc.  Withdraw or
   cancel f, then return what the caller reports. */
static ssize_t interrupted(fop *f, int rc)
{
    braid__spin_lock(&U.lk);
    if (f->state == FOP_QUEUED) {               /* never reached the kernel */
        list_remove(f);
        f->state = FOP_DONE;
        braid__spin_unlock(&U.lk);
        return rc;
    }
    if (f->state == FOP_INFLIGHT) {
        f->w = NULL;
        f->cancel = true;
        list_push(f);
    }
    braid__spin_unlock(&U.lk);
    braid__poller_wake();
    wait_done(f);
    return f->res == -ECANCELED || f->res == -EINTR ? rc : f->res;
}

/* io_uring path; -ENOSYS when the ring is not (or no longer) there. */
static ssize_t uring_io(fop *f, int64_t deadline)
{
    braid__waiter w;
    braid__waiter_init(&w, f->write ? "file write" : "file read",
                       (const void *)(intptr_t)f->fd);
    f->w = &w;
    f->state = FOP_QUEUED;
    f->cancel = f->linked = false;
    braid__source_add();
    braid__spin_lock(&U.lk);
    if (!ld_relaxed(&U.on)) {
        braid__spin_unlock(&U.lk);
        braid__source_del();
        return -ENOSYS;
    }
    list_push(f);
    braid__spin_unlock(&U.lk);
    add_relaxed(&U.uring_ops, 1);
    braid__poller_wake();
    int rc = braid__waiter_wait(&w, deadline);
    ssize_t r = rc == 0 ? f->res : interrupted(f, rc);
    braid__source_del();
    return r;
}

typedef struct fjob {
    braid__job job;             /* first: the pool hands back &job */
    fop *f;
} fjob;

static void fjob_run(braid__job *j)
{
    fop *f = ((fjob *)j)->f;
    ssize_t r;
    do r = f->write ? pwrite(f->fd, f->buf, f->n, f->off)
                    : pread(f->fd, f->buf, f->n, f->off);
    while (r < 0 && errno == EINTR);
    f->res = r < 0 ? -errno : r;
}

static ssize_t pool_io(fop *f, int64_t deadline)
{
    fjob j = { .job = { .run = fjob_run }, .f = f };
    int late;
    add_relaxed(&U.pool_ops, 1);
    int rc = braid__pool_run(&j.job, deadline,
                             f->write ? "file write" : "file read", &late);
    return rc < 0 ? rc : f->res;
}

/* One RWF_NOWAIT try; -EAGAIN when it would block. */
__attribute__((noinline))
static ssize_t try_nowait(fop *f)
{
    struct iovec iov = { f->buf, f->n };
    ssize_t r;
    do r = f->write ? pwritev2(f->fd, &iov, 1, f->off, RWF_NOWAIT)
                    : preadv2(f->fd, &iov, 1, f->off, RWF_NOWAIT);
    while (r < 0 && errno == EINTR);
    if (r >= 0)
        return r;
    return errno == EOPNOTSUPP || errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Without the RWF_NOWAIT try (a test knob), a pipe or socket would reach
   io_uring, whose read of a pipe waits for data: refuse it here as
   pread(2) does.  -EAGAIN (go on) or -errno. */
__attribute__((noinline))
static ssize_t check_seekable(int fd)
{
    return lseek(fd, 0, SEEK_CUR) < 0 ? -errno : -EAGAIN;
}

__attribute__((noinline))
static ssize_t plain_io(fop *f)
{
    fjob j = { .f = f };
    fjob_run(&j.job);
    return f->res;
}

static ssize_t file_io(fop *f, int64_t deadline)
{
    if (f->fd < 0)
        return -EBADF;
    if ((!f->buf && f->n) || f->off < 0)
        return -EINVAL;
    if (!braid__current())
        return plain_io(f);
    ssize_t r = U.nowait || (deadline >= 0 && deadline <= braid_now())
                ? try_nowait(f) : check_seekable(f->fd);
    if (r != -EAGAIN)
        return r;
    if (deadline >= 0 && deadline <= braid_now())
        return -ETIMEDOUT;                      /* tried once */
    if (braid__cancel_pending())
        return -ECANCELED;
    r = braid__file_uses_uring() ? uring_io(f, deadline) : -ENOSYS;
    return r == -ENOSYS ? pool_io(f, deadline) : r;
}

BRAID_EXPORT ssize_t braid_pread(int fd, void *buf, size_t n, off_t off,
                                 int64_t deadline)
{
    BRAID__FORK_GUARD();
    fop f = { .fd = fd, .buf = buf, .n = n > MAX_IO ? MAX_IO : (unsigned)n,
              .off = off };
    return file_io(&f, deadline);
}

BRAID_EXPORT ssize_t braid_pwrite(int fd, const void *buf, size_t n,
                                  off_t off, int64_t deadline)
{
    BRAID__FORK_GUARD();
    fop f = { .fd = fd, .buf = (void *)buf, .write = 1,
              .n = n > MAX_IO ? MAX_IO : (unsigned)n, .off = off };
    return file_io(&f, deadline);
}
