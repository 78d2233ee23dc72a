/*
 * echo_load: closed-loop load generator for the echo servers
 * (examples/echo and its Go twin bench/go/echo_server).  Plain C, one
 * thread, epoll; NOT linked to braid, so both servers face the same client.
 *
 *   echo_load [-c CONNS] [-s SECS] [-W WARMUP] [-n SIZE] PORT
 *   echo_load -F                  print a free loopback TCP port and exit
 *
 * Opens CONNS (100) connections to 127.0.0.1:PORT with TCP_NODELAY; each
 * keeps exactly one SIZE-byte (64) request in flight: send it, wait for the
 * SIZE bytes back, compare them with what was sent, record the latency
 * (CLOCK_MONOTONIC), send the next one.  The first WARMUP seconds (1,
 * fractional allowed) are not recorded; the next SECS (10) are.  Prints
 *
 *   echo req_per_sec=R p50_us=A p99_us=B p999_us=C conns=N secs=S ... check=ok
 *
 * check=fail (exit 1) on a content mismatch, an early EOF or a socket
 * error; exit 2 when the connections cannot be set up.  Stops by itself
 * after WARMUP + SECS.  On a 2-core box this process takes CPU from the
 * server under test: the same for both servers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 4096
#define MAX_SAMPLES (64u << 20)       /* 256 MiB of samples at most */

struct conn {
    int fd;
    uint32_t seq;                     /* requests sent on this connection */
    size_t sent, got;                 /* bytes of the current request */
    int64_t t_sent;                   /* when its first byte went out */
    unsigned char out[MAX_SIZE], in[MAX_SIZE];
};

struct load {
    int nconn;
    size_t size;
    int64_t rec_start, rec_end;       /* recording window, ns */
    uint32_t *lat;                    /* latencies in ns, capped */
    size_t nlat, cap;
    long done;                        /* replies completed in the window */
    long errors;
    int ep;
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "echo_load: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Print a port the kernel considers free on 127.0.0.1 (bind to port 0). */
static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        die("free port");
    printf("%d\n", ntohs(sa.sin_port));
    close(fd);
    return 0;
}

/* Fill c->out with the request numbered c->seq: distinct per connection and
   per request, so a reply crossed between connections or stale is caught. */
static void make_request(struct conn *c, int idx, size_t size)
{
    uint32_t x = (uint32_t)idx * 2654435761u ^ c->seq * 40503u;

    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        c->out[i] = (unsigned char)(x >> 16);
    }
}

static void record(struct load *l, int64_t t_done, int64_t ns)
{
    if (t_done < l->rec_start || t_done >= l->rec_end)
        return;
    l->done++;
    if (l->nlat == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1u << 20;
        uint32_t *p;

        if (cap > MAX_SAMPLES || !(p = realloc(l->lat, cap * sizeof *p)))
            return;                   /* keep the samples we have */
        l->lat = p;
        l->cap = cap;
    }
    l->lat[l->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Send what is left of the current request; arm EPOLLOUT if it would
   block.  -1 on a socket error. */
static int pump_out(struct load *l, struct conn *c, int idx)
{
    while (c->sent < l->size) {
        ssize_t n = send(c->fd, c->out + c->sent, l->size - c->sent,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
                                      .data.u32 = (uint32_t)idx };
            return epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        if (n < 0)
            return -1;
        c->sent += (size_t)n;
    }
    return 0;
}

static int start_request(struct load *l, struct conn *c, int idx)
{
    make_request(c, idx, l->size);
    c->sent = c->got = 0;
    c->t_sent = now_ns();
    return pump_out(l, c, idx);
}

/* Read the reply; when complete, check it, record it, start the next
   request.  -1 on EOF, a socket error or a mismatch. */
static int on_readable(struct load *l, struct conn *c, int idx)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->got, l->size - c->got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0 || c->got + (size_t)n > c->sent)
            return -1;                /* EOF, error, or reply before request */
        c->got += (size_t)n;
        if (c->got < l->size)
            continue;
        int64_t t = now_ns();
        if (memcmp(c->in, c->out, l->size) != 0)
            return -1;
        record(l, t, t - c->t_sent);
        c->seq++;
        return start_request(l, c, idx);
    }
}

static int on_writable(struct load *l, struct conn *c, int idx)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)idx };

    if (pump_out(l, c, idx) < 0)
        return -1;
    return c->sent == l->size ? epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev)
                              : 0;
}

static int dial(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port) };
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect");
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        die("TCP_NODELAY");
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        die("O_NONBLOCK");
    return fd;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Percentile q (0..1) of the sorted samples, in microseconds. */
static double pct_us(const struct load *l, double q)
{
    size_t i;

    if (l->nlat == 0)
        return 0;
    i = (size_t)(q * (double)l->nlat);
    return (double)l->lat[i < l->nlat ? i : l->nlat - 1] / 1e3;
}

/* The event loop: until rec_end, serve every ready connection.  Returns
   the number of connections that failed. */
static long run(struct load *l, struct conn *cs)
{
    struct epoll_event evs[256];
    long bad = 0;
    int64_t t;

    while ((t = now_ns()) < l->rec_end) {
        int ms = (int)((l->rec_end - t) / 1000000) + 1;
        int n = epoll_wait(l->ep, evs, 256, ms);

        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int idx = (int)evs[i].data.u32;
            struct conn *c = &cs[idx];
            int r = 0;

            errno = 0;
            if (evs[i].events & EPOLLOUT)
                r = on_writable(l, c, idx);
            if (r == 0 && evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                r = on_readable(l, c, idx);
            if (r < 0) {
                fprintf(stderr, "echo_load: connection %d failed after %u "
                        "requests: %s\n", idx, c->seq,
                        errno ? strerror(errno) : "EOF or bad reply");
                epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
                bad++;
            }
        }
    }
    return bad;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_load [-c CONNS] [-s SECS] [-W WARMUP] "
            "[-n SIZE] PORT | echo_load -F\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct load l = { .nconn = 100, .size = 64 };
    double secs = 10, warm = 1;
    struct conn *cs;
    int opt, port;

    while ((opt = getopt(argc, argv, "c:s:W:n:F")) != -1) {
        switch (opt) {
        case 'c': l.nconn = atoi(optarg); break;
        case 's': secs = atof(optarg); break;
        case 'W': warm = atof(optarg); break;
        case 'n': l.size = (size_t)atol(optarg); break;
        case 'F': return free_port();
        default: usage();
        }
    }
    if (optind != argc - 1 || l.nconn < 1 || secs <= 0 || warm < 0 ||
        l.size < 1 || l.size > MAX_SIZE || (port = atoi(argv[optind])) <= 0)
        usage();
    if (!(cs = calloc((size_t)l.nconn, sizeof *cs)) ||
        (l.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("setup");
    for (int i = 0; i < l.nconn; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };

        cs[i].fd = dial(port);
        if (epoll_ctl(l.ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            die("epoll_ctl");
    }
    l.rec_start = now_ns() + (int64_t)(warm * 1e9);
    l.rec_end = l.rec_start + (int64_t)(secs * 1e9);
    for (int i = 0; i < l.nconn; i++)
        if (start_request(&l, &cs[i], i) < 0)
            die("send");
    l.errors = run(&l, cs);
    for (int i = 0; i < l.nconn; i++)
        close(cs[i].fd);
    qsort(l.lat, l.nlat, sizeof *l.lat, cmp_u32);
    int ok = l.errors == 0 && l.nlat > 0;
    printf("echo req_per_sec=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
           "conns=%d size=%zu secs=%g samples=%zu errors=%ld check=%s\n",
           (double)l.done / secs, pct_us(&l, 0.50), pct_us(&l, 0.99),
           pct_us(&l, 0.999), l.nconn, l.size, secs, l.nlat, l.errors,
           ok ? "ok" : "fail");
    free(l.lat);
    free(cs);
    return ok ? 0 : 1;
}
