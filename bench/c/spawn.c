/*
 * spawn: the main coroutine spawns 1,000,000 detached coroutines with
 * braid_go; each adds 1 to a shared atomic counter and signals a wait
 * group; main waits once at the end.  Reports ns per coroutine.
 * Twin: bench/go/spawn.
 */
#include "bench.h"

#include <stdatomic.h>

#define SPAWNS 1000000L

struct spawn_result {
    int64_t ns;
    long count;
};

static atomic_long counter;
static braid_wg done = BRAID_WG_INIT;

static void child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
    braid_wg_done(&done);
}

static void bench_main(void *arg)
{
    struct spawn_result *r = arg;
    int64_t t0 = bench_now();

    BENCH_TRY(braid_wg_add(&done, SPAWNS));
    for (long i = 0; i < SPAWNS; i++)
        BENCH_TRY(braid_go(child, NULL));
    BENCH_TRY(braid_wg_wait(&done, BRAID_FOREVER));
    r->ns = bench_now() - t0;
    r->count = atomic_load(&counter);
}

int main(int argc, char **argv)
{
    struct spawn_result r = {0, 0};
    unsigned workers;
    int ok;

    bench_args(argc, argv, &workers);
    bench_run(workers, bench_main, &r);
    ok = r.count == SPAWNS;
    printf("spawn ns_per_op=%.1f spawns=%ld check=%s\n",
           (double)r.ns / SPAWNS, r.count, bench_check_str(ok));
    return ok ? 0 : 1;
}
