/*
 * fib: pfib(n) = n <= cutoff ? sfib(n)
 *              : spawn pfib(n-1); pfib(n-2) inline; join; sum.
 *
 * Usage: fib [-w N] n cutoff [speedup]
 *   default:  "fib<n> sec=... spawns_per_sec=..."   (fib 30 1)
 *   speedup:  also times plain sfib(n) on this thread before braid_run and
 *             reports "fib<n> speedup=seq_sec/par_sec ..."   (fib 38 15)
 * Twin: bench/go/fib.
 */
#include "bench.h"

static long cutoff;

/* Plain recursion; noinline keeps the compiler from specialising the
   timed sequential call differently from the leaves of pfib. */
static __attribute__((noinline)) long sfib(long n)
{
    return n < 2 ? n : sfib(n - 1) + sfib(n - 2);
}

static long pfib(long n);

static void *pfib_co(void *arg)
{
    return (void *)(intptr_t)pfib((long)(intptr_t)arg);
}

static long pfib(long n)
{
    braid_task *t;
    void *x;
    long y;

    if (n <= cutoff)
        return sfib(n);
    BENCH_TRY(braid_spawn(&t, pfib_co, (void *)(intptr_t)(n - 1), NULL));
    y = pfib(n - 2);
    BENCH_TRY(braid_join(t, &x, BRAID_FOREVER));
    return (long)(intptr_t)x + y;
}

/* Spawns pfib(n) makes: one per call above the cutoff. */
static long count_spawns(long n)
{
    return n <= cutoff ? 0 : 1 + count_spawns(n - 1) + count_spawns(n - 2);
}

static long fib_iter(long n)
{
    long a = 0, b = 1;

    for (long i = 0; i < n; i++) {
        long c = a + b;
        a = b;
        b = c;
    }
    return a;
}

struct fib_run {
    long n;
    long result;
    int64_t ns;
};

static void bench_main(void *arg)
{
    struct fib_run *r = arg;
    int64_t t0 = bench_now();

    r->result = pfib(r->n);
    r->ns = bench_now() - t0;
}

int main(int argc, char **argv)
{
    unsigned workers;
    int i = bench_args(argc, argv, &workers);
    struct fib_run r = {bench_arg_long(argc, argv, i, 30), 0, 0};
    int speedup = i + 2 < argc && strcmp(argv[i + 2], "speedup") == 0;
    long want = fib_iter(r.n), spawns;
    volatile long vn = r.n;
    int64_t seq_ns = 0;
    int ok;

    cutoff = bench_arg_long(argc, argv, i + 1, 1);
    spawns = count_spawns(r.n);
    if (speedup) {
        int64_t t0 = bench_now();
        long s = sfib(vn);

        seq_ns = bench_now() - t0;
        if (s != want)
            want = -1;
    }
    bench_run(workers, bench_main, &r);
    ok = r.result == want;
    if (speedup)
        printf("fib%ld speedup=%.3f sec=%.4f seq_sec=%.4f spawns=%ld "
               "cutoff=%ld check=%s\n", r.n, (double)seq_ns / (double)r.ns,
               bench_sec(r.ns), bench_sec(seq_ns), spawns, cutoff,
               bench_check_str(ok));
    else
        printf("fib%ld sec=%.4f spawns_per_sec=%.0f spawns=%ld cutoff=%ld "
               "check=%s\n", r.n, bench_sec(r.ns),
               (double)spawns / bench_sec(r.ns), spawns, cutoff,
               bench_check_str(ok));
    return ok ? 0 : 1;
}
