/*
 * httpd - a minimal HTTP/1.1 server on braid.
 *
 *   httpd [port [dir [workers]]]      (defaults: 8080, none, all CPUs)
 *
 * One coroutine per connection; keep-alive and pipelining (responses to
 * the requests that arrived together are written together); request heads
 * up to 8 KiB (431 beyond), 400 on malformed requests.
 *   GET /              -> "Hello, world!"
 *   GET /files/<path>  -> the file <path> under dir, read with braid_pread
 *                         (no "..", no escaping the directory)
 * Listens on 127.0.0.1 (env HTTPD_HOST to change it).  SIGINT / SIGTERM
 * arrive on a signalfd watched by a coroutine, which closes the listener;
 * the accept loop then ends and main returns.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <braid.h>
#include "http_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HEAD_LIMIT 8192
#define MAX_BODY (1 << 20)
#define IDLE_NS ((int64_t)30 * 1000000000)
#define CHUNK 65536

static int dirfd_ = -1;                 /* the /files/ root, or -1 */
static int listen_fd = -1;
static volatile int stopping;

typedef struct conn {
    int fd;
    size_t have, skip;                  /* bytes in in[]; body left to drop */
    size_t outn;                        /* bytes in out[] */
    char in[HEAD_LIMIT + 4096];
    char out[CHUNK];
} conn;

static int flush(conn *c)
{
    ssize_t r = braid_write(c->fd, c->out, c->outn, braid_after(IDLE_NS));
    c->outn = 0;
    return r < 0 ? -1 : 0;
}

static int append(conn *c, const void *p, size_t n)
{
    if (c->outn + n > sizeof c->out && flush(c) < 0)
        return -1;
    if (n > sizeof c->out)
        return braid_write(c->fd, p, n, braid_after(IDLE_NS)) < 0 ? -1 : 0;
    memcpy(c->out + c->outn, p, n);
    c->outn += n;
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    default: return "Internal Server Error";
    }
}

static int head(conn *c, int status, size_t len, int keep, int minor)
{
    char h[256];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %d %s\r\nServer: braid-httpd\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                     status, reason(status), len,
                     !keep ? "Connection: close\r\n"
                           : minor == 0 ? "Connection: keep-alive\r\n" : "");
    return append(c, h, (size_t)n);
}

static int simple(conn *c, int status, const char *body, int keep, int minor,
                  int head_only)
{
    size_t n = strlen(body);
    if (head(c, status, n, keep, minor) < 0)
        return -1;
    return head_only ? 0 : append(c, body, n);
}

/* Decode %XX in place; reject NUL, bad escapes and "." / ".." segments. */
static int clean_path(char *p)
{
    char *w = p;
    for (char *r = p; *r; r++) {
        if (*r == '%') {
            unsigned hi, lo;
            if (sscanf(r + 1, "%1x%1x", &hi, &lo) != 2)
                return -1;
            *w = (char)(hi << 4 | lo);
            r += 2;
        } else {
            *w = *r;
        }
        if (*w++ == '\0')
            return -1;
    }
    *w = '\0';
    if (!*p || *p == '/')
        return -1;
    for (char *s = p; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && !strncmp(s, "..", 2)))
            return -1;
    }
    return 0;
}

/* Open path beneath dirfd_: openat2(RESOLVE_BENEATH) where the kernel has
   it (no symlink escapes), else openat (".." was already refused). */
static int open_beneath(const char *path)
{
    struct open_how how = { .flags = O_RDONLY | O_CLOEXEC,
                            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    int fd = (int)syscall(SYS_openat2, dirfd_, path, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS)
        fd = openat(dirfd_, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    return fd;
}

static int serve_file(conn *c, char *path, int keep, int minor, int head_only)
{
    struct stat st;
    int fd = dirfd_ < 0 || clean_path(path) < 0 ? -1 : open_beneath(path);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return simple(c, 404, "not found\n", keep, minor, head_only);
    }
    int r = head(c, 200, (size_t)st.st_size, keep, minor);
    if (r == 0 && !head_only)
        r = flush(c);
    for (off_t off = 0; r == 0 && !head_only && off < st.st_size;) {
        ssize_t n = braid_pread(fd, c->out, sizeof c->out, off,
                                braid_after(IDLE_NS));
        if (n <= 0) {
            r = -1;                     /* shrank: the length was a lie */
            break;
        }
        r = braid_write(c->fd, c->out, (size_t)n, braid_after(IDLE_NS)) < 0
                ? -1 : 0;
        off += n;
    }
    close(fd);
    return r;
}

/* Answer one parsed request.  -1: close the connection. */
static int handle(conn *c, http_request *q)
{
    int keep = q->keep_alive, minor = q->minor;
    int head_only = http_str_ieq(q->method, "HEAD");
    if (q->content_length > MAX_BODY)
        return simple(c, 413, "body too large\n", 0, minor, 0), -1;
    if (!head_only && !http_str_ieq(q->method, "GET"))
        return simple(c, 501, "only GET and HEAD\n", keep, minor, 0) < 0 || !keep ? -1 : 0;
    char path[HEAD_LIMIT + 1];
    size_t n = strcspn(q->target.p, "? ");     /* the head ends in CRLF */
    if (n > q->target.n)
        n = q->target.n;
    memcpy(path, q->target.p, n);
    path[n] = '\0';
    int r;
    if (path[0] != '/')
        r = simple(c, 400, "bad target\n", keep = 0, minor, 0);
    else if (strcmp(path, "/") == 0)
        r = simple(c, 200, "Hello, world!", keep, minor, head_only);
    else if (strncmp(path, "/files/", 7) == 0)
        r = serve_file(c, path + 7, keep, minor, head_only);
    else
        r = simple(c, 404, "not found\n", keep, minor, head_only);
    return r < 0 || !keep ? -1 : 0;
}

/* Handle every complete request in c->in.  -1: close. */
static int drain_requests(conn *c)
{
    for (;;) {
        http_request q;
        int r = http_parse_request(c->in, c->have, HEAD_LIMIT, &q);
        if (r == HTTP_INCOMPLETE)
            return 0;
        if (r < 0) {
            simple(c, -r, reason(-r), 0, 1, 0);
            return -1;
        }
        if (handle(c, &q) < 0)
            return -1;
        size_t used = (size_t)r, body = q.content_length;
        size_t inbuf = c->have - used < body ? c->have - used : body;
        used += inbuf;
        c->skip = body - inbuf;
        memmove(c->in, c->in + used, c->have - used);
        c->have -= used;
    }
}

/* Read more; drop body bytes still to skip.  > 0 bytes kept, else close. */
static ssize_t fill(conn *c)
{
    char *p = c->in + c->have;
    ssize_t n = braid_read(c->fd, p, sizeof c->in - c->have,
                           braid_after(IDLE_NS));
    if (n <= 0)
        return -1;
    size_t drop = c->skip < (size_t)n ? c->skip : (size_t)n;
    memmove(p, p + drop, (size_t)n - drop);
    c->skip -= drop;
    c->have += (size_t)n - drop;
    return n;
}

static void serve(void *arg)
{
    conn *c = arg;
    while (drain_requests(c) == 0 && (!c->outn || flush(c) == 0) &&
           fill(c) > 0)
        ;
    if (c->outn)
        flush(c);
    braid_close(c->fd);
    free(c);
}

static void watch_signals(void *arg)
{
    int sfd = *(int *)arg;
    struct signalfd_siginfo si = { 0 };
    while (braid_fd_wait(sfd, BRAID_READ, BRAID_FOREVER) > 0)
        if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            break;
    fprintf(stderr, "httpd: signal %u, shutting down\n", si.ssi_signo);
    stopping = 1;
    braid_close(listen_fd);             /* wakes the accept loop */
}

typedef struct args { const char *port; int sfd; } args;

static void accept_loop(void *arg)
{
    args *a = arg;
    const char *host = getenv("HTTPD_HOST");
    listen_fd = braid_tcp_listen(host ? host : "127.0.0.1", a->port, 0);
    if (listen_fd < 0) {
        fprintf(stderr, "httpd: listen: %s\n", braid_strerror(listen_fd));
        return;
    }
    fprintf(stderr, "httpd: listening on port %s\n", a->port);
    braid_go(watch_signals, &a->sfd);
    while (!stopping) {
        int fd = braid_accept(listen_fd, NULL, NULL, BRAID_FOREVER);
        if (fd == -EMFILE || fd == -ENFILE) {
            braid_sleep(10 * 1000000);  /* out of fds: let some close */
            continue;
        }
        if (fd < 0)
            break;                      /* -EBADF once the watcher closed it */
        conn *c = malloc(sizeof *c);
        if (c) {
            c->fd = fd;
            c->have = c->skip = c->outn = 0;
        }
        if (!c || braid_go(serve, c) < 0) {
            free(c);
            braid_close(fd);
        }
    }
}

int main(int argc, char **argv)
{
    args a = { argc > 1 ? argv[1] : "8080", -1 };
    if (argc > 2 && (dirfd_ = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        perror(argv[2]);
        return 1;
    }
    braid_config cfg = { .workers = argc > 3 ? (unsigned)atoi(argv[3]) : 0 };
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);   /* every thread inherits it */
    a.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a.sfd < 0) {
        perror("signalfd");
        return 1;
    }
    int r = braid_run(&cfg, accept_loop, &a);
    if (r < 0)
        fprintf(stderr, "httpd: %s\n", braid_strerror(r));
    close(a.sfd);
    return r < 0;
}
