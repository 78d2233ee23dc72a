/*
 * fdtab.c - the per-fd table and the readiness wait.  Invariants, locks and
 * orderings are stated in netio.h; the protocol that keeps a wake-up from
 * being lost is:
 *
 *   caller                               I/O thread
 *   g = gen (relaxed)                    epoll_wait -> (gen, fd, events)
 *   syscall -> EAGAIN                    lock(e)
 *   lock(e)                              gen differs: drop (stale)
 *   gen != g or odd: -EBADF              complete the waiters on the lists;
 *   ready bit set: clear it, retry       nobody completed: set the ready bit
 *   else link a node, unlock, park       unlock
 *
 * Both sides decide under e->lk, so an edge either finds the node or leaves
 * the bit that the caller reads.  An edge that came before the syscall may
 * leave a stale bit: it costs one extra syscall, never a hang.
 *
 * Generation: even while the fd is usable; braid_close makes it odd
 * (closing) before close() and even again after, and a fresh fd from
 * accept/socket bumps it; a parked waiter whose gen changed gets -EBADF.
 */
#include "../runtime/common.h"
#include "netio.h"
#include "poller.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define CHUNK_SHIFT 10
#define CHUNK (1u << CHUNK_SHIFT)
#define TOP 4096                        /* 4 Mi fds */

/* Chunk pointers: published once by CAS (release), read with acquire. */
static _Atomic(braid__fdent *) fdtab[TOP];

braid__fdent *braid__fd_peek(int fd)
{
    if (fd < 0 || (unsigned)fd >= TOP * CHUNK)
        return NULL;
    braid__fdent *c = ld_acquire(&fdtab[(unsigned)fd >> CHUNK_SHIFT]);
    return c ? &c[(unsigned)fd & (CHUNK - 1)] : NULL;
}

braid__fdent *braid__fd_get(int fd)
{
    braid__fdent *e = braid__fd_peek(fd);
    if (likely(e) || fd < 0 || (unsigned)fd >= TOP * CHUNK)
        return e;
    braid__fdent *c = calloc(CHUNK, sizeof *c), *exp = NULL;
    if (!c)
        return NULL;
    if (!atomic_compare_exchange_strong_explicit(
            &fdtab[(unsigned)fd >> CHUNK_SHIFT], &exp, c,
            memory_order_acq_rel, memory_order_acquire)) {
        free(c);                        /* another thread won */
        c = exp;
    }
    return &c[(unsigned)fd & (CHUNK - 1)];
}

int braid__fd_nonblock(braid__fdent *e, int fd)
{
    if (likely(ld_relaxed(&e->nb)))
        return 0;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    st_relaxed(&e->nb, 1);
    return 0;
}

/* Complete every waiter on l: with outcome if nonzero, else with the ready
   events it asked for.  Returns whether one was completed.  e->lk held. */
static bool wake_list(braid__wlist *l, int bits, int outcome, braid__batch *b)
{
    bool won = false;
    braid__wnode *n;
    while ((n = braid__wlist_pop(l)))
        if (braid__waiter_complete(n->w, outcome ? outcome : bits & (int)n->data, b))
            won = true;
    return won;
}

/* Wake all waiters with -EBADF and forget readiness.  e->lk held. */
static void reset_locked(braid__fdent *e, braid__batch *b)
{
    wake_list(&e->readers, 0, -EBADF, b);
    wake_list(&e->writers, 0, -EBADF, b);
    e->ready = 0;
}

void braid__fd_fresh(braid__fdent *e, int nb, int kind)
{
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&e->lk);
    st_relaxed(&e->gen, (ld_relaxed(&e->gen) | 1u) + 1);   /* next even */
    reset_locked(e, &b);
    e->epoch = 0;      /* an old registration belonged to another file */
    st_relaxed(&e->nb, (uint8_t)nb);
    st_relaxed(&e->kind, (uint8_t)kind);
    st_relaxed(&e->nodrain, 0);
    st_relaxed(&e->stream, 0);
    braid__spin_unlock(&e->lk);
    if (b.n)
        braid__ready_batch(&b);
}

void braid__fd_retire(braid__fdent *e, int fd)
{
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&e->lk);
    st_relaxed(&e->gen, (ld_relaxed(&e->gen) + 2) | 1u);   /* odd: closing */
    reset_locked(e, &b);
    if (e->epoch)
        braid__poller_unregister(fd, e->epoch);
    e->epoch = 0;
    st_relaxed(&e->nb, 0);
    st_relaxed(&e->kind, FD_KIND_UNKNOWN);
    st_relaxed(&e->nodrain, 0);
    st_relaxed(&e->stream, 0);
    braid__spin_unlock(&e->lk);
    if (b.n)
        braid__ready_batch(&b);
}

/* Register fd in this run's epoll set if it is not yet.  1 registered, 0
   no poller (use poll()), -EPERM never blocks (regular file), -errno.
   e->lk held. */
static int ensure_registered(braid__fdent *e, int fd, uint32_t gen)
{
    uint32_t epoch = braid__poller_epoch();
    if (!braid__running())
        return 0;                       /* none, or a forked child's copy */
    if (epoch && e->epoch == epoch)
        return 1;
    long r = braid__poller_register(fd, gen);
    if (r <= 0)
        return (int)r;
    e->epoch = (uint32_t)r;
    e->ready = 0;
    return 1;
}

static int park_locked(braid__fdent *e, int events, int64_t deadline,
                       const char *what, int fd)
{
    braid__waiter w;
    braid__wnode rn = { 0 }, wn = { 0 };
    braid__waiter_init(&w, what, (const void *)(intptr_t)fd);
    rn.w = wn.w = &w;
    rn.data = wn.data = (uintptr_t)events;
    if (events & BRAID_READ)
        braid__wlist_push(&e->readers, &rn);
    if (events & BRAID_WRITE)
        braid__wlist_push(&e->writers, &wn);
    braid__source_add();
    braid__spin_unlock(&e->lk);
    int rc = braid__waiter_wait(&w, deadline);
    braid__spin_lock(&e->lk);
    braid__wlist_remove(&e->readers, &rn);
    braid__wlist_remove(&e->writers, &wn);
    braid__spin_unlock(&e->lk);
    braid__source_del();
    return rc;
}

int braid__fd_park(braid__fdent *e, int fd, uint32_t gen, int events,
                   int64_t deadline, const char *what)
{
    if (deadline >= 0 && deadline <= braid_now())
        return -ETIMEDOUT;                      /* tried once */
    if (braid__cancel_pending())
        return -ECANCELED;
    if (gen & 1u)
        return -EBADF;
    braid__spin_lock(&e->lk);
    if (ld_relaxed(&e->gen) != gen) {
        braid__spin_unlock(&e->lk);
        return -EBADF;                          /* closed meanwhile */
    }
    int r = ensure_registered(e, fd, gen);
    if (r <= 0) {
        braid__spin_unlock(&e->lk);
        if (r == 0)
            return braid__poll_wait(fd, events, deadline);
        return r == -EPERM ? events : r;        /* not pollable: ready */
    }
    int got = e->ready & events;
    if (got) {
        e->ready &= (uint8_t)~got;
        braid__spin_unlock(&e->lk);
        return got;
    }
    return park_locked(e, events, deadline, what, fd);
}

void braid__fd_ready(int fd, uint32_t gen, uint32_t ev, braid__batch *b)
{
    braid__fdent *e = braid__fd_peek(fd);
    if (!e)
        return;
    int bits = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR))
        bits |= BRAID_READ;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        bits |= BRAID_WRITE;
    braid__spin_lock(&e->lk);
    /* Any gen: a stale event only costs a skipped skip. */
    if (ev & (EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        st_relaxed(&e->nodrain, 1);
    if (bits & BRAID_READ)
        st_release(&e->rseq, ld_relaxed(&e->rseq) + 1);
    if (ld_relaxed(&e->gen) == gen && e->epoch == braid__poller_epoch()) {
        if ((bits & BRAID_READ) && !wake_list(&e->readers, bits, 0, b))
            e->ready |= BRAID_READ;
        if ((bits & BRAID_WRITE) && !wake_list(&e->writers, bits, 0, b))
            e->ready |= BRAID_WRITE;
    }
    braid__spin_unlock(&e->lk);
}

/* Wake the plain-thread waiters of l with the events they wanted (they
   retry and fall back to poll()); drop the coroutine nodes, whose
   coroutines were abandoned with the run.  e->lk held. */
static void wake_threads_list(braid__wlist *l)
{
    braid__wnode *n;
    while ((n = braid__wlist_pop(l)))
        if (!n->w->coro)
            braid__waiter_complete(n->w, (int)n->data, NULL);
}

void braid__fd_wake_threads(void)
{
    for (unsigned i = 0; i < TOP; i++) {
        braid__fdent *c = ld_acquire(&fdtab[i]);
        for (unsigned j = 0; c && j < CHUNK; j++) {
            braid__fdent *e = &c[j];
            braid__spin_lock(&e->lk);
            wake_threads_list(&e->readers);
            wake_threads_list(&e->writers);
            e->epoch = 0;
            e->ready = 0;
            braid__spin_unlock(&e->lk);
        }
    }
}

static int poll_timeout_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - braid_now();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;     /* round up: never early */
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int braid__poll_wait(int fd, int events, int64_t deadline)
{
    struct pollfd p = { .fd = fd };
    p.events = (short)(((events & BRAID_READ) ? POLLIN | POLLRDHUP : 0) |
                       ((events & BRAID_WRITE) ? POLLOUT : 0));
    for (;;) {
        int to = poll_timeout_ms(deadline);
        int r = poll(&p, 1, to);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r > 0) {
            if (p.revents & POLLNVAL)
                return -EBADF;
            int got = 0;
            if (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLPRI))
                got |= BRAID_READ;
            if (p.revents & (POLLOUT | POLLHUP | POLLERR))
                got |= BRAID_WRITE;
            if (got & events)
                return got & events;
        }
        if (r == 0 && to == 0)
            return -ETIMEDOUT;
    }
}
