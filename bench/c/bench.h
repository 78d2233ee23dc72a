/*
 * bench.h - helpers shared by the C workloads in bench/c/.
 *
 * Each workload is one program: it parses "[-w WORKERS] [args...]", runs
 * its work under braid_run, and prints ONE line on stdout,
 *
 *     <name> <metric>=<value> [key=value ...] check=ok|fail
 *
 * the first key=value being the reported metric.  bench/run parses that
 * line; the Go twins in bench/go/ print the same format.  Exit status is 0
 * only when check=ok.
 */
#ifndef BRAID_BENCH_H
#define BRAID_BENCH_H

#include <braid.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Monotonic nanoseconds, independent of the library under test. */
static inline int64_t bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double bench_sec(int64_t ns)
{
    return (double)ns / 1e9;
}

/* Resident set size from /proc/self/status (VmRSS), in bytes; -1 if
   unreadable. */
static inline long long bench_rss_bytes(void)
{
    char line[256];
    long long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* Report a failed braid call and end the process at once (exit status 2,
   no result line).  Safe from any coroutine: skips atexit handlers. */
static inline void bench_die(const char *what, int rc)
{
    fprintf(stderr, "bench: %s: %s (%d)\n", what, braid_strerror(rc), rc);
    _exit(2);
}

/* Evaluate a braid call; die on a negative return. */
#define BENCH_TRY(call)                                                     \
    do {                                                                    \
        int bench_rc_ = (call);                                             \
        if (bench_rc_ < 0)                                                  \
            bench_die(#call, bench_rc_);                                    \
    } while (0)

/*
 * Parse a leading "-w N" (worker count; 0 or absent = braid's default,
 * i.e. env BRAID_WORKERS, else the usable CPUs).  Returns the index of the
 * first positional argument and stores the count in *workers.
 */
static inline int bench_args(int argc, char **argv, unsigned *workers)
{
    *workers = 0;
    if (argc >= 3 && strcmp(argv[1], "-w") == 0) {
        *workers = (unsigned)strtoul(argv[2], NULL, 10);
        return 3;
    }
    return 1;
}

/* Positional argument i as a long, or dflt when absent. */
static inline long bench_arg_long(int argc, char **argv, int i, long dflt)
{
    return i < argc ? strtol(argv[i], NULL, 0) : dflt;
}

/* Run main_fn(arg) as braid's main coroutine on the given worker count;
   die if braid_run fails. */
static inline void bench_run(unsigned workers, void (*main_fn)(void *),
                             void *arg)
{
    braid_config cfg;

    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    BENCH_TRY(braid_run(&cfg, main_fn, arg));
    if (getenv("BENCH_STATS")) {    /* the runtime's counters, to stderr */
        braid_stats s;
        braid_stats_get(&s);
        fprintf(stderr, "stats: switches %llu steals %llu parks %llu "
                "global_pushes %llu polls %llu\n",
                (unsigned long long)s.switches, (unsigned long long)s.steals,
                (unsigned long long)s.parks,
                (unsigned long long)s.global_pushes,
                (unsigned long long)s.polls);
    }
}

static inline const char *bench_check_str(int ok)
{
    return ok ? "ok" : "fail";
}

#endif /* BRAID_BENCH_H */
