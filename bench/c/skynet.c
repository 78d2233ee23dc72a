/*
 * skynet: skynet(out, num, size, div): size 1 sends num on out; otherwise
 * open an unbuffered channel, spawn div children
 * skynet(ch, num + i*size/div, size/div, div), receive div values and send
 * their sum on out.  Root size 1,000,000, div 10: 1,111,111 coroutines;
 * the result must be 499,999,500,000.  Reports seconds.
 * Twin: bench/go/skynet.
 */
#include "bench.h"

#define ROOT_SIZE 1000000L
#define DIV 10
#define WANT 499999500000LL

struct sky {
    braid_tx *out;
    int64_t num, size;
};

struct sky_result {
    int64_t ns;
    int64_t sum;
};

static void skynet(void *arg)
{
    struct sky a = *(struct sky *)arg;  /* arg lives on the parent's stack */
    struct sky kid[DIV];
    braid_tx *tx;
    braid_rx *rx;
    int64_t sum = 0, v;

    if (a.size == 1) {
        BENCH_TRY(braid_send(a.out, &a.num, BRAID_FOREVER));
        return;
    }
    BENCH_TRY(braid_chan_open(&tx, &rx, sizeof(int64_t), 0));
    for (int i = 0; i < DIV; i++) {
        kid[i].out = tx;
        kid[i].size = a.size / DIV;
        kid[i].num = a.num + i * kid[i].size;
        BENCH_TRY(braid_go(skynet, &kid[i]));
    }
    for (int i = 0; i < DIV; i++) {
        BENCH_TRY(braid_recv(rx, &v, BRAID_FOREVER));
        sum += v;
    }
    BENCH_TRY(braid_tx_close(tx));
    BENCH_TRY(braid_rx_close(rx));
    BENCH_TRY(braid_send(a.out, &sum, BRAID_FOREVER));
}

static void bench_main(void *arg)
{
    struct sky_result *r = arg;
    struct sky root;
    braid_tx *tx;
    braid_rx *rx;
    int64_t t0;

    BENCH_TRY(braid_chan_open(&tx, &rx, sizeof(int64_t), 0));
    root.out = tx;
    root.num = 0;
    root.size = ROOT_SIZE;
    t0 = bench_now();
    BENCH_TRY(braid_go(skynet, &root));
    BENCH_TRY(braid_recv(rx, &r->sum, BRAID_FOREVER));
    r->ns = bench_now() - t0;
    BENCH_TRY(braid_tx_close(tx));
    BENCH_TRY(braid_rx_close(rx));
}

int main(int argc, char **argv)
{
    struct sky_result r = {0, 0};
    unsigned workers;
    int ok;

    bench_args(argc, argv, &workers);
    bench_run(workers, bench_main, &r);
    ok = r.sum == WANT;
    printf("skynet sec=%.4f coroutines=1111111 sum=%lld check=%s\n",
           bench_sec(r.ns), (long long)r.sum, bench_check_str(ok));
    return ok ? 0 : 1;
}
