/*
 * net.c - byte streams through the I/O thread: socket pairs, pipes and a
 * loopback (127.0.0.1 only) echo server, with random chunk sizes, tiny
 * socket buffers (SO_SNDBUF / SO_RCVBUF), short read deadlines that must
 * time out cleanly, and injected resets (SO_LINGER 0 + close).
 *
 * Each stream is generated from its own random stream and checksummed
 * (CRC-32) on both ends.  Invariants per round: every intact stream
 * arrives with the same length and CRC; an echo connection fails only with
 * -ECONNRESET / -EPIPE, and no more of them than resets were injected; the
 * number of open fds (/proc/self/fd) is back to what it was when the round
 * started.
 *
 * An fd is used by at most one reader and one writer coroutine at a time,
 * and closed (braid_close) by the last of them after the other finished;
 * a reset connection belongs to a single coroutine.
 */
#include "stress.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct round {
    braid_wg wg;
    _Atomic unsigned resets_injected, resets_seen;
    char port[16];
    unsigned clients;
    int lfd;
} round;

typedef struct stream {
    round *rd;
    int fd;
    uint64_t len;           /* writer: to send; reader: received */
    uint32_t crc;
    size_t chunk;           /* largest chunk */
    int how;                /* writer: 0 shutdown(SHUT_WR), 1 close */
    int rc;
    st_rng rng;
    braid_wg done;          /* the writer of a pair: finished */
} stream;

static int net_go(void (*fn)(void *), void *arg)
{
    int rc = braid_go(fn, arg);
    if (rc == 0) st_count(C_SPAWNED, 1);
    return rc;
}

/* Small echoed chunks would otherwise meet Nagle's algorithm and delayed
   ACKs (tens of ms each): a TCP matter, not braid's. */
static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Shrink the send buffer, and the receive buffer when rcv: a TCP receive
   buffer far below the MSS makes the peer wait for window probes (about
   200 ms each on Linux), so TCP streams through one are kept short. */
static bool tiny_buffers(int fd, st_rng *r, bool rcv)
{
    int snd = (int)st_range(r, 1024, 16384), rb = (int)st_range(r, 1024, 16384);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
    if (!rcv || st_below(r, 2)) return false;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
    return true;
}

/* Write s->len pseudo-random bytes in random chunks; s->crc gets their CRC. */
static int write_stream(stream *s)
{
    unsigned char *buf = malloc(s->chunk);
    if (!buf) return -ENOMEM;
    uint64_t done = 0;
    int rc = 0;
    s->crc = 0;
    while (done < s->len && rc == 0) {
        size_t n = (size_t)st_range(&s->rng, 1, s->chunk);
        if (n > s->len - done) n = (size_t)(s->len - done);
        for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)st_next(&s->rng);
        s->crc = st_crc32(s->crc, buf, n);
        ssize_t w = braid_write(s->fd, buf, n, braid_after(ST_PATIENCE));
        if (w != (ssize_t)n) rc = w < 0 ? (int)w : -EIO;
        done += n;
        st_count(C_BYTES, n);
        st_count(C_OPS, 1);
    }
    free(buf);
    return rc;
}

/* Read to end-of-file; s->len and s->crc get what arrived. */
static int read_stream(stream *s)
{
    unsigned char *buf = malloc(s->chunk);
    if (!buf) return -ENOMEM;
    s->len = 0;
    s->crc = 0;
    for (;;) {
        bool quick = st_below(&s->rng, 8) == 0;
        int64_t dl = braid_after(quick ? (int64_t)st_below(&s->rng, ST_MS) : ST_PATIENCE);
        ssize_t r = braid_read(s->fd, buf, (size_t)st_range(&s->rng, 1, s->chunk), dl);
        st_count(C_OPS, 1);
        if (r == -ETIMEDOUT && quick) {
            if (braid_now() < dl) st_fail("net: read timed out early");
            st_count(C_TIMEOUTS, 1);
            continue;
        }
        if (r <= 0) {
            free(buf);
            return (int)r;
        }
        s->crc = st_crc32(s->crc, buf, (size_t)r);
        s->len += (uint64_t)r;
    }
}

static void compare(const stream *w, const stream *r, const char *what)
{
    if (w->rc != 0 || r->rc != 0)
        st_fail("net: %s: writer %s, reader %s", what, braid_strerror(w->rc),
                braid_strerror(r->rc));
    else if (w->len != r->len || w->crc != r->crc)
        st_fail("net: %s: sent %llu bytes crc %08x, received %llu crc %08x", what,
                (unsigned long long)w->len, w->crc, (unsigned long long)r->len,
                r->crc);
}

static void writer_main(void *arg)
{
    stream *s = arg;
    s->rc = write_stream(s);
    if (s->how == 0) shutdown(s->fd, SHUT_WR);
    else braid_close(s->fd);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&s->done);
}

/* ---- socket pairs and pipes ------------------------------------------------------ */

typedef struct pairdir { stream w, r; const char *what; } pairdir;

static void reader_main(void *arg)
{
    pairdir *d = arg;
    d->r.rc = read_stream(&d->r);
    braid_wg_wait(&d->w.done, BRAID_FOREVER);
    compare(&d->w, &d->r, d->what);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&d->r.rd->wg);
}

/* Stream shapes: chunks up to 2^4..2^16 bytes, and at most ~1000 chunks
   of the largest size per stream so that a round stays short. */
static void init_dir(round *rd, pairdir *d, int wfd, int rfd, int how,
                     const char *what, st_rng *r)
{
    size_t wmax = (size_t)1 << st_range(r, 4, 16), rmax = (size_t)1 << st_range(r, 4, 16);
    uint64_t cap = wmax * 1000 < (256u << 10) ? wmax * 1000 : (256u << 10);
    d->what = what;
    d->w = (stream){ .rd = rd, .fd = wfd, .how = how, .rng = st_rng_derive(st_next(r), 1) };
    d->w.len = st_below(r, 4) ? st_below(r, cap + 1) : st_below(r, 64);
    d->w.chunk = wmax;
    while (rmax * 1000 < d->w.len) rmax *= 2;
    d->r = (stream){ .rd = rd, .fd = rfd, .rng = st_rng_derive(st_next(r), 2) };
    d->r.chunk = rmax;
    braid_wg_add(&d->w.done, 1);
}

/* A writer and a reader coroutine on one direction; rd->wg counts it. */
static void start_dir(round *rd, pairdir *d, int wfd, int rfd, int how,
                      const char *what, st_rng *r)
{
    init_dir(rd, d, wfd, rfd, how, what, r);
    braid_wg_add(&rd->wg, 1);
    if (net_go(writer_main, &d->w) != 0 || net_go(reader_main, d) != 0)
        st_fail("net: braid_go failed");
}

static void socket_pair(round *rd, st_rng *r)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        st_fail("net: socketpair: errno %d", errno);
        return;
    }
    if (st_below(r, 2)) { tiny_buffers(sv[0], r, true); tiny_buffers(sv[1], r, true); }
    pairdir d[2];
    start_dir(rd, &d[0], sv[0], sv[1], 0, "socketpair a->b", r);
    start_dir(rd, &d[1], sv[1], sv[0], 0, "socketpair b->a", r);
    braid_wg_wait(&rd->wg, BRAID_FOREVER);
    braid_close(sv[0]);
    braid_close(sv[1]);
}

static void pipe_stream(round *rd, st_rng *r)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        st_fail("net: pipe2: errno %d", errno);
        return;
    }
    if (st_below(r, 2)) fcntl(p[1], F_SETPIPE_SZ, 4096);
    pairdir d;
    start_dir(rd, &d, p[1], p[0], 1, "pipe", r);
    braid_wg_wait(&rd->wg, BRAID_FOREVER);
    braid_close(p[0]);
}

/* ---- loopback echo ----------------------------------------------------------------- */

typedef struct echo { round *rd; int fd; size_t bufsz; } echo;

static bool reset_error(round *rd, ssize_t rc)
{
    if (rc != -ECONNRESET && rc != -EPIPE) return false;
    atomic_fetch_add(&rd->resets_seen, 1);
    return true;
}

static void echo_main(void *arg)
{
    echo *e = arg;
    char *buf = malloc(e->bufsz);
    ssize_t n = buf ? 1 : -ENOMEM;
    while (n > 0) {
        n = braid_read(e->fd, buf, e->bufsz, braid_after(ST_PATIENCE));
        if (n > 0) {
            ssize_t w = braid_write(e->fd, buf, (size_t)n, braid_after(ST_PATIENCE));
            if (w != n) n = w < 0 ? w : -EIO;
        }
        st_count(C_OPS, 1);
    }
    if (n < 0 && !reset_error(e->rd, n))
        st_fail("net: echo server: %s", braid_strerror((int)n));
    braid_close(e->fd);
    free(buf);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&e->rd->wg);
    free(e);
}

static void server_main(void *arg)
{
    round *rd = arg;
    st_rng r = st_rng_derive(rd->lfd, rd->clients);
    for (unsigned i = 0; i < rd->clients; i++) {
        int fd = braid_accept(rd->lfd, NULL, NULL, braid_after(ST_PATIENCE));
        if (fd < 0) {
            st_fail("net: braid_accept %s", braid_strerror(fd));
            break;
        }
        nodelay(fd);
        if (st_below(&r, 3) == 0) tiny_buffers(fd, &r, false);
        echo *e = malloc(sizeof *e);
        *e = (echo){ rd, fd, (size_t)st_range(&r, 1, 16384) };
        braid_wg_add(&rd->wg, 1);
        if (net_go(echo_main, e) != 0) st_fail("net: braid_go failed");
    }
    braid_close(rd->lfd);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&rd->wg);
}

typedef struct client { round *rd; bool reset; st_rng rng; } client;

/* Write a little, maybe read a little, then reset the connection. */
static void reset_conn(round *rd, int fd, st_rng *r)
{
    char buf[512];
    for (unsigned i = 0, n = (unsigned)st_below(r, 4); i < n; i++) {
        size_t len = (size_t)st_range(r, 1, sizeof buf);
        for (size_t k = 0; k < len; k++) buf[k] = (char)st_next(r);
        ssize_t w = braid_write(fd, buf, len, braid_after(50 * ST_MS));
        if (w < 0 && w != -ETIMEDOUT && !reset_error(rd, w))
            st_fail("net: reset client write: %s", braid_strerror((int)w));
        if (st_below(r, 2)) {
            ssize_t g = braid_read(fd, buf, sizeof buf, braid_after(ST_MS));
            if (g < 0 && g != -ETIMEDOUT)
                st_fail("net: reset client read: %s", braid_strerror((int)g));
        }
    }
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    atomic_fetch_add(&rd->resets_injected, 1);
    st_count(C_RESETS, 1);
}

static void client_main(void *arg)
{
    client *c = arg;
    round *rd = c->rd;
    int fd = braid_tcp_dial("127.0.0.1", rd->port, braid_after(ST_PATIENCE));
    if (fd < 0) {
        st_fail("net: braid_tcp_dial 127.0.0.1:%s: %s", rd->port, braid_strerror(fd));
    } else if (c->reset) {
        reset_conn(rd, fd, &c->rng);
    } else {
        nodelay(fd);
        bool small = st_below(&c->rng, 2) && tiny_buffers(fd, &c->rng, true);
        pairdir d;
        init_dir(rd, &d, fd, fd, 0, "tcp echo", &c->rng);
        if (small && d.w.len > 8192) d.w.len = 8192;
        if (net_go(writer_main, &d.w) != 0) st_fail("net: braid_go failed");
        d.r.rc = read_stream(&d.r);
        braid_wg_wait(&d.w.done, BRAID_FOREVER);
        compare(&d.w, &d.r, d.what);
    }
    if (fd >= 0) braid_close(fd);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&rd->wg);
    free(c);
}

static void tcp_echo(round *rd, st_rng *r)
{
    rd->lfd = braid_tcp_listen("127.0.0.1", "0", 64);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (rd->lfd < 0 || getsockname(rd->lfd, (struct sockaddr *)&sa, &len) < 0) {
        st_fail("net: braid_tcp_listen 127.0.0.1: %s", braid_strerror(rd->lfd));
        return;
    }
    snprintf(rd->port, sizeof rd->port, "%u", ntohs(sa.sin_port));
    rd->clients = (unsigned)st_range(r, 1, 8);
    bool inject = st_below(r, 2);
    braid_wg_add(&rd->wg, 1 + rd->clients);
    if (net_go(server_main, rd) != 0) st_fail("net: braid_go failed");
    for (unsigned i = 0; i < rd->clients; i++) {
        client *c = malloc(sizeof *c);
        *c = (client){ rd, inject && st_below(r, 3) == 0, st_rng_derive(st_next(r), i) };
        if (net_go(client_main, c) != 0) st_fail("net: braid_go failed");
    }
    if (braid_wg_wait(&rd->wg, braid_after(2 * ST_PATIENCE)) != 0) {
        st_fail("net: echo round did not finish");
        return;
    }
    if (rd->resets_seen > rd->resets_injected)
        st_fail("net: %u connection resets seen by the server, %u injected",
                rd->resets_seen, rd->resets_injected);
}

static void round_once(st_rng *r)
{
    round *rd = calloc(1, sizeof *rd);
    int fds = st_fd_count();
    int64_t t0 = braid_now();
    int kind = (int)st_below(r, 3);
    switch (kind) {
    case 0: socket_pair(rd, r); break;
    case 1: pipe_stream(rd, r); break;
    default: tcp_echo(rd, r); break;
    }
    if (getenv("NETDBG")) fprintf(stderr, "net round kind %d: %.1f ms clients %u resets %u\n", kind, (braid_now() - t0) / 1e6, rd->clients, rd->resets_injected);
    if (atomic_load(&st_current->failures)) return;      /* leak rd */
    int after = st_fd_count();
    if (after != fds)
        st_fail("net: %d fds open before the round, %d after", fds, after);
    free(rd);
    st_count(C_ROUNDS, 1);
}

void st_net_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0x4e7);
    int fds = st_fd_count();
    do round_once(&r);
    while (!st_over());
    int after = st_fd_count();
    if (after != fds)
        st_fail("net: %d fds open when the profile started, %d at its end", fds, after);
}
