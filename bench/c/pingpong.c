/*
 * pingpong: the main coroutine sends v on one unbuffered int channel, a
 * peer coroutine replies v + 1 on another; 1,000,000 round trips, each
 * reply checked.  Reports ns per round trip.  Run with -w 1 and -w 2.
 * Twin: bench/go/pingpong.
 */
#include "bench.h"

#include <errno.h>

#define ROUNDS 1000000

struct peer {
    braid_rx *in;
    braid_tx *out;
};

struct pp_result {
    int64_t ns;
    long bad;
};

/* Reply v + 1 to every v until the ping side closes. */
static void *peer_main(void *arg)
{
    struct peer *p = arg;
    int v;
    int rc;

    while ((rc = braid_recv(p->in, &v, BRAID_FOREVER)) == 0) {
        v++;
        BENCH_TRY(braid_send(p->out, &v, BRAID_FOREVER));
    }
    if (rc != -EPIPE)
        bench_die("peer braid_recv", rc);
    return NULL;
}

static void bench_main(void *arg)
{
    struct pp_result *r = arg;
    braid_tx *ping_tx, *pong_tx;
    braid_rx *ping_rx, *pong_rx;
    struct peer p;
    braid_task *t;
    int64_t t0;

    BENCH_TRY(braid_chan_open(&ping_tx, &ping_rx, sizeof(int), 0));
    BENCH_TRY(braid_chan_open(&pong_tx, &pong_rx, sizeof(int), 0));
    p.in = ping_rx;
    p.out = pong_tx;
    t0 = bench_now();
    BENCH_TRY(braid_spawn(&t, peer_main, &p, NULL));
    for (int v = 0; v < ROUNDS; v++) {
        int w;

        BENCH_TRY(braid_send(ping_tx, &v, BRAID_FOREVER));
        BENCH_TRY(braid_recv(pong_rx, &w, BRAID_FOREVER));
        if (w != v + 1)
            r->bad++;
    }
    BENCH_TRY(braid_tx_close(ping_tx));
    BENCH_TRY(braid_join(t, NULL, BRAID_FOREVER));
    r->ns = bench_now() - t0;
    BENCH_TRY(braid_rx_close(ping_rx));
    BENCH_TRY(braid_tx_close(pong_tx));
    BENCH_TRY(braid_rx_close(pong_rx));
}

int main(int argc, char **argv)
{
    struct pp_result r = {0, 0};
    unsigned workers;
    int ok;

    bench_args(argc, argv, &workers);
    bench_run(workers, bench_main, &r);
    ok = r.bad == 0 && r.ns > 0;
    printf("pingpong ns_per_rt=%.1f rounds=%d workers=%u check=%s\n",
           (double)r.ns / ROUNDS, ROUNDS, workers, bench_check_str(ok));
    return ok ? 0 : 1;
}
