/*
 * echo - a TCP echo server on braid: one coroutine per connection, each
 * reading up to 4 KiB and writing it back until EOF.
 *
 *   echo [port [workers]]          (defaults: 7007, all CPUs)
 *
 * Listens on 127.0.0.1 (env ECHO_HOST to change it).
 */
#include <braid.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static void serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = braid_read(fd, buf, sizeof buf, BRAID_FOREVER)) > 0)
        if (braid_write(fd, buf, (size_t)n, BRAID_FOREVER) < 0)
            break;
    braid_close(fd);
}

static void accept_loop(void *arg)
{
    const char *host = getenv("ECHO_HOST");
    int lfd = braid_tcp_listen(host ? host : "127.0.0.1", arg, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo: listen: %s\n", braid_strerror(lfd));
        return;
    }
    fprintf(stderr, "echo: listening on port %s\n", (const char *)arg);
    for (;;) {
        int fd = braid_accept(lfd, NULL, NULL, BRAID_FOREVER);
        if (fd == -EMFILE || fd == -ENFILE) {
            braid_sleep(10 * 1000000);  /* out of fds: let some close */
            continue;
        }
        if (fd < 0) {
            fprintf(stderr, "echo: accept: %s\n", braid_strerror(fd));
            break;
        }
        if (braid_go(serve, (void *)(intptr_t)fd) < 0)
            braid_close(fd);
    }
    braid_close(lfd);
}

int main(int argc, char **argv)
{
    braid_config cfg = { .workers = argc > 2 ? (unsigned)atoi(argv[2]) : 0 };
    int r = braid_run(&cfg, accept_loop, argc > 1 ? argv[1] : "7007");
    if (r < 0)
        fprintf(stderr, "echo: %s\n", braid_strerror(r));
    return r < 0;
}
