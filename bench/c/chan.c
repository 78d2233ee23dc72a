/*
 * chan: one int64 channel of capacity CAP; P producers each send N/P
 * distinct values (producer p sends p*(N/P) + i, i in [0, N/P)) on their
 * own cloned send handle and close it when done; C consumers each receive
 * on their own cloned receive handle until -EPIPE and add what they got.
 * The sum must be N*(N-1)/2.  Reports messages per second.
 *
 * Usage: chan [-w W] P C CAP N      (defaults 1 1 128 10000000)
 * Twin: bench/go/chan.
 */
#include "bench.h"

#include <errno.h>
#include <stdatomic.h>

#define MAX_SIDE 64

struct producer {
    braid_tx *tx;
    int64_t base, count;
};

struct chan_run {
    long p, c, n;
    size_t cap;
    int64_t ns;
    int64_t sum;
};

static braid_wg consumers_done = BRAID_WG_INIT;
static _Atomic int64_t total;

static void produce(void *arg)
{
    struct producer *p = arg;

    for (int64_t i = 0; i < p->count; i++) {
        int64_t v = p->base + i;

        BENCH_TRY(braid_send(p->tx, &v, BRAID_FOREVER));
    }
    BENCH_TRY(braid_tx_close(p->tx));
}

static void consume(void *arg)
{
    braid_rx *rx = arg;
    int64_t sum = 0, v;
    int rc;

    while ((rc = braid_recv(rx, &v, BRAID_FOREVER)) == 0)
        sum += v;
    if (rc != -EPIPE)
        bench_die("consumer braid_recv", rc);
    BENCH_TRY(braid_rx_close(rx));
    atomic_fetch_add(&total, sum);
    braid_wg_done(&consumers_done);
}

static void bench_main(void *arg)
{
    struct chan_run *r = arg;
    struct producer prod[MAX_SIDE];
    braid_rx *crx[MAX_SIDE];
    braid_tx *tx;
    braid_rx *rx;
    int64_t t0;

    BENCH_TRY(braid_chan_open(&tx, &rx, sizeof(int64_t), r->cap));
    for (long i = 0; i < r->p; i++) {
        BENCH_TRY(braid_tx_clone(tx, &prod[i].tx));
        prod[i].base = i * (r->n / r->p);
        prod[i].count = r->n / r->p;
    }
    for (long i = 0; i < r->c; i++)
        BENCH_TRY(braid_rx_clone(rx, &crx[i]));
    BENCH_TRY(braid_tx_close(tx));
    BENCH_TRY(braid_rx_close(rx));
    BENCH_TRY(braid_wg_add(&consumers_done, r->c));
    t0 = bench_now();
    for (long i = 0; i < r->c; i++)
        BENCH_TRY(braid_go(consume, crx[i]));
    for (long i = 0; i < r->p; i++)
        BENCH_TRY(braid_go(produce, &prod[i]));
    BENCH_TRY(braid_wg_wait(&consumers_done, BRAID_FOREVER));
    r->ns = bench_now() - t0;
    r->sum = atomic_load(&total);
}

int main(int argc, char **argv)
{
    unsigned workers;
    int i = bench_args(argc, argv, &workers);
    struct chan_run r;
    int ok;

    memset(&r, 0, sizeof r);
    r.p = bench_arg_long(argc, argv, i, 1);
    r.c = bench_arg_long(argc, argv, i + 1, 1);
    r.cap = (size_t)bench_arg_long(argc, argv, i + 2, 128);
    r.n = bench_arg_long(argc, argv, i + 3, 10000000);
    if (r.p < 1 || r.p > MAX_SIDE || r.c < 1 || r.c > MAX_SIDE ||
        r.n % r.p != 0) {
        fprintf(stderr, "usage: chan [-w W] P C CAP N  (1 <= P,C <= %d, "
                "P divides N)\n", MAX_SIDE);
        return 2;
    }
    bench_run(workers, bench_main, &r);
    ok = r.sum == (int64_t)r.n * (r.n - 1) / 2 && r.ns > 0;
    printf("chan msgs_per_sec=%.0f p=%ld c=%ld cap=%zu n=%ld sum=%lld "
           "check=%s\n", (double)r.n / bench_sec(r.ns), r.p, r.c, r.cap,
           r.n, (long long)r.sum, bench_check_str(ok));
    return ok ? 0 : 1;
}
