/*
 * sleep: 10,000 coroutines, each sleeping a random duration in [1, 100] ms
 * (splitmix64 of seed and index, seed 1 by default: the Go twin draws the
 * same durations) with braid_sleep.  Each measures its lateness = wake
 * time - (time before the call + duration) on CLOCK_MONOTONIC.  Reports
 * p50, p99 and max lateness in microseconds, and spawn_ms, how long the
 * main coroutine took to spawn them all (deadlines that fall inside that
 * window compete with the spawning).  check=fail if a coroutine woke
 * before its deadline.
 *
 *   sleep [-w WORKERS] [COUNT [SEED]]
 *
 * Twin: bench/go/sleep.
 */
#include "bench.h"

#define MIN_NS 1000000L                 /* 1 ms */
#define MAX_NS 100000000L               /* 100 ms */

static int64_t *late;                   /* per coroutine, ns */
static uint64_t seed = 1;
static int64_t spawn_ns;
static braid_wg done = BRAID_WG_INIT;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static void sleeper(void *arg)
{
    long i = (long)(intptr_t)arg;
    int64_t d = MIN_NS + (int64_t)(splitmix64(seed + (uint64_t)i) %
                                   (MAX_NS - MIN_NS + 1));
    int64_t t0 = bench_now();

    BENCH_TRY(braid_sleep(d));
    late[i] = bench_now() - (t0 + d);
    braid_wg_done(&done);
}

static void bench_main(void *arg)
{
    long n = *(long *)arg;
    int64_t t0 = bench_now();

    BENCH_TRY(braid_wg_add(&done, n));
    for (long i = 0; i < n; i++)
        BENCH_TRY(braid_go(sleeper, (void *)(intptr_t)i));
    spawn_ns = bench_now() - t0;
    BENCH_TRY(braid_wg_wait(&done, BRAID_FOREVER));
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static double pct_us(long n, double q)
{
    long i = (long)(q * (double)n);

    return (double)late[i < n ? i : n - 1] / 1e3;
}

int main(int argc, char **argv)
{
    unsigned workers;
    int i0 = bench_args(argc, argv, &workers);
    long n = bench_arg_long(argc, argv, i0, 10000);
    int ok;

    seed = (uint64_t)bench_arg_long(argc, argv, i0 + 1, 1);
    if (n < 1 || !(late = calloc((size_t)n, sizeof *late)))
        return 2;
    bench_run(workers, bench_main, &n);
    qsort(late, (size_t)n, sizeof *late, cmp_i64);
    ok = late[0] >= 0;
    printf("sleep p99_us=%.1f p50_us=%.1f max_us=%.1f min_us=%.1f "
           "spawn_ms=%.1f n=%ld workers=%u check=%s\n", pct_us(n, 0.99),
           pct_us(n, 0.50), (double)late[n - 1] / 1e3, (double)late[0] / 1e3,
           (double)spawn_ns / 1e6, n, workers, bench_check_str(ok));
    return ok ? 0 : 1;
}
