/*
 * net.c - braid_fd_wait, read, write, accept, connect, close.
 *
 * Every call first tries the non-blocking system call; only on EAGAIN does
 * it park on the fd's wait list (fdtab.c), so a ready fd costs nothing
 * beyond the call that uses it.  Fds passed in are made O_NONBLOCK on first
 * use (remembered in the fd table until braid_close).
 *
 * errno is read only inside the small noinline wrappers below, right after
 * their system call: never across a park, after which the coroutine may
 * run on another thread (and a cached &errno would be the old thread's).
 *
 * Drained reads: a read of a SOCK_STREAM socket that comes back short
 * emptied the receive queue (TCP and unix stream reads copy until the
 * queue or the buffer runs out; they stop early only at an urgent mark or
 * the end of the stream, and those raise nodrain below).  Anything that
 * arrives after it raises a new edge, which the poller has not handled as
 * long as the fd's rseq has not moved since just before that read.  So the
 * next braid_read skips the syscall (it would return EAGAIN) and parks at
 * once when its rseq is still the one saved with the short read (key
 * `drained`, with the gen), and nodrain is clear: the edge still to come
 * either finds it parked or leaves the ready bit it sees under lk.  A
 * request/response server saves one of its three syscalls per request.
 * Datagram and seqpacket sockets (a short read leaves the next message),
 * pipes and everything else always make the syscall.  After a park that
 * followed a skip, the next try is always a syscall.
 *
 * SIGPIPE: sockets are written with send(MSG_NOSIGNAL); other fds (pipes)
 * with write() while SIGPIPE is blocked in the calling thread, and a
 * SIGPIPE that write raised is consumed with sigtimedwait before the mask
 * is restored.
 */
#include "../runtime/common.h"
#include "netio.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

/* The entry of fd, or the error to report. */
static int entry(int fd, braid__fdent **e)
{
    if (fd < 0)
        return -EBADF;
    *e = braid__fd_get(fd);
    if (!*e)
        return braid__fd_peek(fd) || fd < (1 << 22) ? -ENOMEM : -EBADF;
    return 0;
}

NOINLINE static ssize_t sys_read(int fd, void *buf, size_t n)
{
    ssize_t r;
    do r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

NOINLINE static ssize_t sys_send(int fd, const void *buf, size_t n)
{
    ssize_t r;
    do r = send(fd, buf, n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

/* write() that never lets a SIGPIPE through. */
NOINLINE static ssize_t sys_write_nosig(int fd, const void *buf, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t r;
    do r = write(fd, buf, n);
    while (r < 0 && errno == EINTR);
    int err = r < 0 ? errno : 0;
    if (err == EPIPE && !sigismember(&old, SIGPIPE)) {
        static const struct timespec zero = { 0, 0 };
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err ? -err : r;
}

static ssize_t fd_write_some(braid__fdent *e, int fd, const void *buf, size_t n)
{
    int kind = ld_relaxed(&e->kind);
    if (kind != FD_KIND_OTHER) {
        ssize_t r = sys_send(fd, buf, n);
        if (r != -ENOTSOCK) {
            if (kind == FD_KIND_UNKNOWN && r >= 0)
                st_relaxed(&e->kind, FD_KIND_SOCK);
            return r;
        }
        st_relaxed(&e->kind, FD_KIND_OTHER);
    }
    return sys_write_nosig(fd, buf, n);
}

/* Level-triggered check without waiting: ready events, 0, or -EBADF. */
NOINLINE static int poll_now(int fd, int events)
{
    struct pollfd p = { .fd = fd };
    p.events = (short)(((events & BRAID_READ) ? POLLIN | POLLRDHUP : 0) |
                       ((events & BRAID_WRITE) ? POLLOUT : 0));
    int r;
    do r = poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (p.revents & POLLNVAL)
        return -EBADF;
    int got = 0;
    if (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLPRI))
        got |= BRAID_READ;
    if (p.revents & (POLLOUT | POLLHUP | POLLERR))
        got |= BRAID_WRITE;
    return got & events;
}

BRAID_EXPORT int braid_fd_wait(int fd, int events, int64_t deadline)
{
    BRAID__FORK_GUARD();
    braid__chaos_point();       /* chaos mode: a yield at an I/O point */
    braid__fdent *e;
    if (!events || (events & ~(BRAID_READ | BRAID_WRITE)))
        return fd < 0 ? -EBADF : -EINVAL;
    int r = entry(fd, &e);
    while (r == 0) {
        uint32_t gen = ld_relaxed(&e->gen);
        r = poll_now(fd, events);
        if (r == 0) {
            r = braid__fd_park(e, fd, gen, events, deadline, "fd wait");
            if (r > 0)
                r = 0;          /* level-check again: a stale edge lies */
        }
    }
    return r;
}

/* 1 if fd is a SOCK_STREAM socket, asked once per fd life. */
NOINLINE static int is_stream(braid__fdent *e, int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    int s = ld_relaxed(&e->kind) != FD_KIND_OTHER &&
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
            type == SOCK_STREAM ? 1 : 2;
    st_relaxed(&e->stream, (uint8_t)s);
    return s == 1;
}

static inline uint64_t drained_key(uint32_t gen, uint32_t seq)
{
    return (uint64_t)(gen + 1) << 32 | seq;     /* gen even: never 0 */
}

BRAID_EXPORT ssize_t braid_read(int fd, void *buf, size_t n, int64_t deadline)
{
    BRAID__FORK_GUARD();
    braid__chaos_point();       /* chaos mode: a yield at an I/O point */
    braid__fdent *e;
    if (!buf && n)
        return fd < 0 ? -EBADF : -EINVAL;
    int r = entry(fd, &e);
    if (r == 0)
        r = braid__fd_nonblock(e, fd);
    bool may_skip = true;
    while (r == 0) {
        uint32_t gen = ld_relaxed(&e->gen);
        uint32_t seq = ld_acquire(&e->rseq);
        if (may_skip && ld_relaxed(&e->drained) == drained_key(gen, seq) &&
            !ld_relaxed(&e->nodrain)) {
            braid__count_read_skip();
            may_skip = false;
        } else {
            ssize_t got = sys_read(fd, buf, n);
            if (got > 0 && (size_t)got < n &&
                (ld_relaxed(&e->stream) == 1 ||
                 (!ld_relaxed(&e->stream) && is_stream(e, fd))))
                st_relaxed(&e->drained, drained_key(gen, seq));
            if (got != -EAGAIN)
                return got;
        }
        r = braid__fd_park(e, fd, gen, BRAID_READ, deadline, "fd read");
        if (r > 0)
            r = 0;
    }
    return r;
}

BRAID_EXPORT ssize_t braid_write(int fd, const void *buf, size_t n,
                                 int64_t deadline)
{
    BRAID__FORK_GUARD();
    braid__chaos_point();       /* chaos mode: a yield at an I/O point */
    braid__fdent *e;
    if (!buf && n)
        return fd < 0 ? -EBADF : -EINVAL;
    if (n > SSIZE_MAX)
        return -EINVAL;
    int r = entry(fd, &e);
    if (r == 0)
        r = braid__fd_nonblock(e, fd);
    size_t done = 0;
    while (r == 0 && done < n) {
        uint32_t gen = ld_relaxed(&e->gen);
        ssize_t w = fd_write_some(e, fd, (const char *)buf + done, n - done);
        if (w >= 0) {
            done += (size_t)w;
            continue;
        }
        if (w != -EAGAIN)
            return w;
        r = braid__fd_park(e, fd, gen, BRAID_WRITE, deadline, "fd write");
        if (r > 0)
            r = 0;
    }
    return r < 0 ? r : (ssize_t)n;
}

/* accept4; ECONNABORTED (the peer gave up) is retried like EINTR. */
NOINLINE static int sys_accept(int lfd, struct sockaddr *sa, socklen_t *len)
{
    int r;
    do r = accept4(lfd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (r < 0 && (errno == EINTR || errno == ECONNABORTED));
    return r < 0 ? -errno : r;
}

BRAID_EXPORT int braid_accept(int lfd, struct sockaddr *sa, socklen_t *len,
                              int64_t deadline)
{
    BRAID__FORK_GUARD();
    braid__chaos_point();       /* chaos mode: a yield at an I/O point */
    braid__fdent *e;
    if (sa && !len)
        return lfd < 0 ? -EBADF : -EINVAL;
    int r = entry(lfd, &e);
    if (r == 0)
        r = braid__fd_nonblock(e, lfd);
    while (r == 0) {
        uint32_t gen = ld_relaxed(&e->gen);
        int fd = sys_accept(lfd, sa, len);
        if (fd >= 0) {
            braid__fdent *ne = braid__fd_get(fd);
            if (ne)
                braid__fd_fresh(ne, 1, FD_KIND_SOCK);
            return fd;
        }
        if (fd != -EAGAIN)
            return fd;                  /* -EMFILE too: the caller decides */
        r = braid__fd_park(e, lfd, gen, BRAID_READ, deadline, "accept");
        if (r > 0)
            r = 0;
    }
    return r;
}

NOINLINE static int sys_connect(int fd, const struct sockaddr *sa,
                                socklen_t len)
{
    int r = connect(fd, sa, len);
    if (r < 0 && errno == EINTR)
        return -EINPROGRESS;            /* it goes on asynchronously */
    return r < 0 ? -errno : 0;
}

/* After a writability wake: 0 connected, -EINPROGRESS not yet, -errno. */
NOINLINE static int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    if (err)
        return -err;
    struct sockaddr_storage ss;
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return errno == ENOTCONN ? -EINPROGRESS : -errno;
    return 0;
}

BRAID_EXPORT int braid_connect(int fd, const struct sockaddr *sa,
                               socklen_t len, int64_t deadline)
{
    BRAID__FORK_GUARD();
    braid__fdent *e;
    if (!sa || !len)
        return fd < 0 ? -EBADF : -EINVAL;
    int r = entry(fd, &e);
    if (r == 0)
        r = braid__fd_nonblock(e, fd);
    if (r < 0)
        return r;
    uint32_t gen = ld_relaxed(&e->gen);
    r = sys_connect(fd, sa, len);
    while (r == -EINPROGRESS) {
        r = braid__fd_park(e, fd, gen, BRAID_WRITE, deadline, "connect");
        if (r > 0)
            r = connect_result(fd);
    }
    return r;
}

BRAID_EXPORT int braid_close(int fd)
{
    BRAID__FORK_GUARD();
    if (fd < 0)
        return -EBADF;
    braid__fdent *e = braid__fd_peek(fd);
    if (e)
        braid__fd_retire(e, fd);        /* waiters get -EBADF; gen odd */
    int r = close(fd);
    int err = r < 0 && errno != EINTR ? errno : 0;  /* EINTR: closed */
    if (e) {
        braid__spin_lock(&e->lk);
        uint32_t g = ld_relaxed(&e->gen);
        if (g & 1u)
            st_relaxed(&e->gen, g + 1);         /* usable again */
        braid__spin_unlock(&e->lk);
    }
    return -err;
}
