/*
 * park: memory per parked coroutine.  After a warm-up, read VmRSS; spawn
 * 1,000,000 coroutines that each block in braid_recv on one shared
 * unbuffered int channel; poll braid_chan_stats until all 1,000,000 wait
 * (1 ms braid_sleep between polls); read VmRSS again.  Reports
 * (rss_after - rss_before) / 1e6 bytes.  Then closes the send handle, so
 * every receive returns -EPIPE, and joins all through a wait group.
 * Twin: bench/go/park.
 */
#include "bench.h"

#include <errno.h>
#include <stdatomic.h>

#define PARKED 1000000L
#define WARMUP 1000L
#define POLL_LIMIT_NS (120LL * 1000000000)

struct park_result {
    long long rss0, rss1;
    long woke;
    int ok;
};

static braid_wg done = BRAID_WG_INIT;
static atomic_long woke_epipe;

static void nothing(void *arg)
{
    (void)arg;
    braid_wg_done(&done);
}

static void parker(void *arg)
{
    int v;

    if (braid_recv(arg, &v, BRAID_FOREVER) == -EPIPE)
        atomic_fetch_add(&woke_epipe, 1);
    braid_wg_done(&done);
}

/* Spawn and finish a few coroutines and a channel, so that pools and
   worker state exist before the first RSS reading. */
static void warm_up(void)
{
    braid_tx *tx;
    braid_rx *rx;

    BENCH_TRY(braid_wg_add(&done, WARMUP));
    for (long i = 0; i < WARMUP; i++)
        BENCH_TRY(braid_go(nothing, NULL));
    BENCH_TRY(braid_wg_wait(&done, BRAID_FOREVER));
    BENCH_TRY(braid_chan_open(&tx, &rx, sizeof(int), 0));
    BENCH_TRY(braid_tx_close(tx));
    BENCH_TRY(braid_rx_close(rx));
    BENCH_TRY(braid_sleep(10 * 1000000));
}

/* Wait until n receivers are parked on rx; 0 on time, -1 on timeout. */
static int wait_parked(braid_rx *rx, size_t n)
{
    int64_t limit = braid_after(POLL_LIMIT_NS);
    braid_chan_info info;

    for (;;) {
        BENCH_TRY(braid_chan_stats(rx, &info));
        if (info.receivers_waiting >= n)
            return 0;
        if (braid_now() > limit)
            return -1;
        BENCH_TRY(braid_sleep(1000000));
    }
}

static void bench_main(void *arg)
{
    struct park_result *r = arg;
    braid_tx *tx;
    braid_rx *rx;

    warm_up();
    r->rss0 = bench_rss_bytes();
    BENCH_TRY(braid_chan_open(&tx, &rx, sizeof(int), 0));
    BENCH_TRY(braid_wg_add(&done, PARKED));
    for (long i = 0; i < PARKED; i++)
        BENCH_TRY(braid_go(parker, rx));
    r->ok = wait_parked(rx, PARKED) == 0;
    r->rss1 = bench_rss_bytes();
    BENCH_TRY(braid_tx_close(tx));
    BENCH_TRY(braid_wg_wait(&done, BRAID_FOREVER));
    BENCH_TRY(braid_rx_close(rx));
    r->woke = atomic_load(&woke_epipe);
}

int main(int argc, char **argv)
{
    struct park_result r = {0, 0, 0, 0};
    unsigned workers;
    int ok;

    bench_args(argc, argv, &workers);
    bench_run(workers, bench_main, &r);
    ok = r.ok && r.rss0 > 0 && r.rss1 > 0 && r.woke == PARKED;
    printf("park bytes_per_coro=%.1f rss_before=%lld rss_after=%lld "
           "parked=%ld check=%s\n", (double)(r.rss1 - r.rss0) / PARKED,
           r.rss0, r.rss1, r.woke, bench_check_str(ok));
    return ok ? 0 : 1;
}
