/*
 * yield: two coroutines on ONE worker each call braid_yield 10,000,000
 * times.  Reports ns per switch = elapsed / 20,000,000.  The worker count
 * is forced to 1 whatever -w says.  Twin: bench/go/yield.
 */
#include "bench.h"

#define YIELDS 10000000L

struct yield_result {
    int64_t ns;
    long total;
};

static void *yielder(void *arg)
{
    long n = 0;

    (void)arg;
    for (long i = 0; i < YIELDS; i++) {
        braid_yield();
        n++;
    }
    return (void *)(intptr_t)n;
}

static void bench_main(void *arg)
{
    struct yield_result *r = arg;
    braid_task *a, *b;
    void *ra, *rb;
    int64_t t0 = bench_now();

    BENCH_TRY(braid_spawn(&a, yielder, NULL, NULL));
    BENCH_TRY(braid_spawn(&b, yielder, NULL, NULL));
    BENCH_TRY(braid_join(a, &ra, BRAID_FOREVER));
    BENCH_TRY(braid_join(b, &rb, BRAID_FOREVER));
    r->ns = bench_now() - t0;
    r->total = (long)(intptr_t)ra + (long)(intptr_t)rb;
}

int main(int argc, char **argv)
{
    struct yield_result r = {0, 0};
    unsigned workers;
    int ok;

    bench_args(argc, argv, &workers);
    bench_run(1, bench_main, &r);
    ok = r.total == 2 * YIELDS;
    printf("yield ns_per_switch=%.2f yields=%ld workers=1 check=%s\n",
           (double)r.ns / (2.0 * YIELDS), r.total, bench_check_str(ok));
    return ok ? 0 : 1;
}
