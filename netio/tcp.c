/*
 * tcp.c - braid_tcp_listen(_ex) and braid_tcp_dial.
 *
 * Names are resolved with getaddrinfo.  A numeric host and port never
 * block, so they are tried first with AI_NUMERICHOST|AI_NUMERICSERV on the
 * calling worker; anything else (a name, a service) may block on DNS or
 * files and runs on the helper pool through braid_blocking, so a worker
 * never waits for it.  Resolution cannot be interrupted: the deadline of
 * braid_tcp_dial is checked after it and bounds the connects.
 */
#include "../runtime/common.h"
#include "netio.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct gai_call {
    const char *host, *port;
    struct addrinfo hints, *res;
    int rc;
} gai_call;

static int gai_errno(int rc, int err)
{
    switch (rc) {
    case 0: return 0;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_FAMILY: return -EAFNOSUPPORT;
    case EAI_SYSTEM: return err ? -err : -EIO;
    case EAI_SERVICE:
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        return -ENOENT;         /* no such host or service */
    default: return -EINVAL;
    }
}

static void *gai_run(void *arg)
{
    gai_call *c = arg;
    c->rc = getaddrinfo(c->host, c->port, &c->hints, &c->res);
    c->rc = gai_errno(c->rc, errno);
    return NULL;
}

/* Resolve host/port into *res (freeaddrinfo it).  0 or -errno. */
static int resolve(const char *host, const char *port, int flags,
                   struct addrinfo **res)
{
    gai_call c = { .host = host, .port = port };
    c.hints.ai_family = AF_UNSPEC;
    c.hints.ai_socktype = SOCK_STREAM;
    c.hints.ai_flags = flags | AI_NUMERICHOST | AI_NUMERICSERV;
    gai_run(&c);
    if (c.rc != -ENOENT) {
        *res = c.res;
        return c.rc;
    }
    c.hints.ai_flags = flags;           /* a name: may block */
    c.res = NULL;
    int r = braid_blocking(gai_run, &c, NULL);
    if (r < 0) {
        if (c.res)
            freeaddrinfo(c.res);        /* it ran, but we were cancelled */
        return r;
    }
    *res = c.res;
    return c.rc;
}

/* A non-blocking close-on-exec socket for ai, known fresh to the fd
   table.  The fd or -errno. */
__attribute__((noinline))
static int sock_open(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0)
        return -errno;
    braid__fdent *e = braid__fd_get(fd);
    if (e)
        braid__fd_fresh(e, 1, FD_KIND_SOCK);
    return fd;
}

__attribute__((noinline))
static int listen_one(const struct addrinfo *ai, int backlog, int reuseport,
                      bool dual)
{
    int fd = sock_open(ai), one = 1, zero = 0;
    if (fd < 0)
        return fd;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        (dual && ai->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, backlog) < 0) {
        int err = -errno;
        braid_close(fd);
        return err;
    }
    return fd;
}

BRAID_EXPORT int braid_tcp_listen_ex(const char *host, const char *port,
                                     int backlog, int reuseport)
{
    BRAID__FORK_GUARD();
    struct addrinfo *res, *ai;
    if (!port || (reuseport != 0 && reuseport != 1))
        return -EINVAL;
    int r = resolve(host, port, AI_PASSIVE, &res);
    if (r < 0)
        return r;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    r = -EADDRNOTAVAIL;
    /* No host: the IPv6 wildcard first, dual-stack, covers both families. */
    for (int pass = host ? 1 : 0; pass < 2 && r < 0; pass++)
        for (ai = res; ai && r < 0; ai = ai->ai_next)
            if (pass == 1 || ai->ai_family == AF_INET6)
                r = listen_one(ai, backlog, reuseport, !host);
    freeaddrinfo(res);
    return r;
}

BRAID_EXPORT int braid_tcp_listen(const char *host, const char *port,
                                  int backlog)
{
    BRAID__FORK_GUARD();
    return braid_tcp_listen_ex(host, port, backlog, 0);
}

BRAID_EXPORT int braid_tcp_dial(const char *host, const char *port,
                                int64_t deadline)
{
    BRAID__FORK_GUARD();
    struct addrinfo *res, *ai;
    if (!port)
        return -EINVAL;
    int r = resolve(host, port, 0, &res);
    if (r < 0)
        return r;
    r = -EADDRNOTAVAIL;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = sock_open(ai);
        if (fd < 0) {
            r = fd;
            continue;
        }
        r = braid_connect(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (r == 0) {
            r = fd;
            break;
        }
        braid_close(fd);
        if (r == -ETIMEDOUT || r == -ECANCELED)
            break;
    }
    freeaddrinfo(res);
    return r;
}
