/*
 * braid-stress - seeded, time-bounded, randomized workloads for libbraid,
 * each checked by invariants.
 *
 *   braid-stress [--seed S] [--seconds T] [--workers W]
 *                [--profile NAME[,NAME...]|all] [--json] [--list]
 *
 * Each selected profile runs inside its own braid_run, one after the other,
 * so that a failure is attributed; --seconds is split evenly among them.
 * The seed is printed first; the last line is "N passed, N failed" (one
 * count per profile).  Exit status: 0 all passed, 1 an invariant broke (the
 * seed to replay is printed), 2 bad usage, 3 the watchdog saw no progress
 * for 10 s (a hang, told apart from a crash: braid_dump output precedes it).
 *
 * Threads: the main thread runs the profiles (inside braid_run); the
 * watchdog, a plain pthread, samples the counters every second, draws the
 * progress line when stdout is a terminal, and ends a hung run.  They share
 * only atomics (st_counters, phase) and `running`, written before the
 * watchdog starts or under wd_lock.
 */
#include "stress/stress.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ThreadSanitizer opens pipes of its own (symbolizer, background thread),
   so the fd balance is not braid's there. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

#define WATCHDOG_NS (10 * ST_SEC)   /* no counter moved: a hang */
#define OVERRUN_NS (60 * ST_SEC)    /* a profile past its slice: a hang */

/* The watchdog's self-test: park forever (no deadlock check). */
static void hang_run(st_prof *p)
{
    braid_tx *tx;
    braid_rx *rx;
    if (braid_chan_open(&tx, &rx, 0, 0) == 0) braid_recv(rx, NULL, BRAID_FOREVER);
    st_fail("hang: braid_recv returned");
}

static const st_profile_def profiles[] = {
    { "spawn", st_spawn_run, 0, "spawn trees, joins, cancellation" },
    { "pipeline", st_pipeline_run, 0, "producer/relay/consumer pipelines" },
    { "select", st_select_run, 0, "select mixes, deadlines, NULL cases" },
    { "close", st_close_run, 0, "close storms, EPIPE and EBADF" },
    { "cancel", st_cancel_run, 0, "cancellation racing hand-offs" },
    { "net", st_net_run, 0, "socket pairs, pipes, loopback echo, resets" },
    { "threads", st_threads_run, 1, "plain pthreads on the same channels" },
    { "sync", st_sync_run, 1, "mutex, cond, wait group, semaphore, once" },
    { "blocking", st_blocking_run, 0, "latency while a call blocks 100 ms" },
    /* Not in "all": checks the watchdog itself (exits 3 after 10 s). */
    { "hang", hang_run, 1, "self-test: block forever, for the watchdog" },
};
#define NPROFILES (sizeof profiles / sizeof profiles[0])

static st_options opt = { .seconds = 10 };
static int64_t slice_ns;
static char replay[512];             /* written before the profile starts */

/* ---- options ----------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out, "usage: braid-stress [--seed S] [--seconds T] [--workers W]\n"
                 "                    [--profile NAME[,NAME...]|all] [--json] "
                 "[--list]\nprofiles:");
    for (size_t i = 0; i < NPROFILES; i++) fprintf(out, " %s", profiles[i].name);
    fprintf(out, "\n");
}

static int select_profiles(const char *spec, bool *on)
{
    if (strcmp(spec, "all") == 0) {
        for (size_t i = 0; i < NPROFILES; i++) on[i] = profiles[i].run != hang_run;
        return 0;
    }
    char *copy = strdup(spec), *save = NULL;
    int rc = copy ? 0 : -1;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && rc == 0;
         t = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < NPROFILES && strcmp(profiles[i].name, t) != 0) i++;
        if (i == NPROFILES) {
            fprintf(stderr, "braid-stress: unknown profile '%s'\n", t);
            rc = -1;
        } else {
            on[i] = true;
        }
    }
    free(copy);
    return rc;
}

static int parse(int argc, char **argv, bool *on, bool *seeded)
{
    static const struct option lo[] = {
        { "seed", required_argument, 0, 's' },
        { "seconds", required_argument, 0, 't' },
        { "workers", required_argument, 0, 'w' },
        { "profile", required_argument, 0, 'p' },
        { "json", no_argument, 0, 'j' },
        { "list", no_argument, 0, 'l' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *spec = "all";
    char *end;
    int c;
    while ((c = getopt_long(argc, argv, "s:t:w:p:jlh", lo, NULL)) != -1) {
        switch (c) {
        case 's': opt.seed = strtoull(optarg, &end, 0); *seeded = true;
                  if (*end) return -1;
                  break;
        case 't': opt.seconds = strtod(optarg, &end);
                  if (*end || !(opt.seconds > 0) || opt.seconds > 1e6) return -1;
                  break;
        case 'w': opt.workers = (unsigned)strtoul(optarg, &end, 0);
                  if (*end || opt.workers > 1024) return -1;
                  break;
        case 'p': spec = optarg; break;
        case 'j': opt.json = 1; break;
        case 'l':
            for (size_t i = 0; i < NPROFILES; i++)
                printf("%-10s %s\n", profiles[i].name, profiles[i].what);
            exit(0);
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind != argc) return -1;
    return select_profiles(spec, on);
}

/* ---- crash and hang reporting ------------------------------------------------- */

static void on_crash(int sig)
{
    static const char head[] = "braid-stress: crashed; ";
    ssize_t r = write(2, head, sizeof head - 1);
    r = write(2, replay, strlen(replay));
    (void)r;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void set_replay(const char *names)
{
    snprintf(replay, sizeof replay, "replay: braid-stress --seed %" PRIu64
             " --seconds %.3g --workers %u --profile %s\n", opt.seed,
             (double)slice_ns / 1e9, opt.workers, names);
}

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond;
static bool wd_stop;
static _Atomic uint64_t phase;       /* moves at each profile start and end */
static _Atomic int64_t profile_start;
static st_prof *_Atomic wd_prof;

static uint64_t progress_sum(void)
{
    uint64_t s = atomic_load(&phase);
    for (int i = 0; i < C_COUNT; i++) s += st_counter(i);
    return s;
}

static void hang(const char *why, st_prof *p)
{
    fprintf(stderr, "\nbraid-stress: watchdog: %s in profile %s (seed %" PRIu64
            "); braid_dump follows\n", why, p ? p->name : "?", opt.seed);
    braid_dump(stderr);
    fprintf(stderr, "braid-stress: hang; %s", replay);
    fflush(NULL);
    _exit(3);
}

static void progress_line(st_prof *p, const uint64_t *prev, int64_t now)
{
    double t = (double)(now - atomic_load(&profile_start)) / 1e9;
    printf("\r\033[K[%s %.0fs] spawned %" PRIu64 " (%" PRIu64 "/s) sent %"
           PRIu64 " (%" PRIu64 "/s) recv %" PRIu64 " ops %" PRIu64 " (%"
           PRIu64 "/s) bytes %" PRIu64 " rss %ld MiB", p->name, t,
           st_counter(C_SPAWNED), st_counter(C_SPAWNED) - prev[C_SPAWNED],
           st_counter(C_SENT), st_counter(C_SENT) - prev[C_SENT],
           st_counter(C_RECEIVED), st_counter(C_OPS),
           st_counter(C_OPS) - prev[C_OPS], st_counter(C_BYTES),
           st_rss_kib() / 1024);
    fflush(stdout);
}

static void *watchdog(void *arg)
{
    bool tty = *(bool *)arg;
    uint64_t last = progress_sum(), prev[C_COUNT];
    int64_t moved = braid_now();
    for (int i = 0; i < C_COUNT; i++) prev[i] = st_counter(i);
    pthread_mutex_lock(&wd_lock);
    while (!wd_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&wd_cond, &wd_lock, &ts);
        if (wd_stop) break;
        int64_t now = braid_now();
        uint64_t cur = progress_sum();
        st_prof *p = atomic_load(&wd_prof);
        if (cur != last) { last = cur; moved = now; }
        if (now - moved >= WATCHDOG_NS) hang("no progress for 10 s", p);
        if (p && now - atomic_load(&profile_start) > slice_ns + OVERRUN_NS)
            hang("profile overran its time slice by 60 s", p);
        if (tty && p) progress_line(p, prev, now);
        for (int i = 0; i < C_COUNT; i++) prev[i] = st_counter(i);
    }
    pthread_mutex_unlock(&wd_lock);
    return NULL;
}

static int watchdog_start(pthread_t *t, bool *tty)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    return pthread_create(t, NULL, watchdog, tty);
}

static void watchdog_stop(pthread_t t)
{
    pthread_mutex_lock(&wd_lock);
    wd_stop = true;
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
    pthread_join(t, NULL);
}

/* ---- running the profiles ------------------------------------------------------ */

static void profile_main(void *arg)
{
    st_result *r = arg;
    r->prof.end = braid_now() + slice_ns;
    r->def->run(&r->prof);
}

static void run_one(st_result *r, bool tty)
{
    uint64_t before[C_COUNT];
    for (int i = 0; i < C_COUNT; i++) before[i] = st_counter(i);
    r->prof.name = r->def->name;
    r->prof.seed = opt.seed;
    r->prof.workers = opt.workers;
    st_current = &r->prof;
    set_replay(r->def->name);
    braid_config cfg = { .workers = opt.workers,
                         .no_deadlock_check = r->def->no_deadlock_check };
    r->fds_before = st_fd_count();
    int64_t t0 = braid_now();
    atomic_store(&profile_start, t0);
    atomic_store(&wd_prof, &r->prof);
    atomic_fetch_add(&phase, 1);
    r->rc = braid_run(&cfg, profile_main, r);
    r->ran = 1;
    pthread_mutex_lock(&wd_lock);       /* no progress line after this */
    atomic_store(&wd_prof, NULL);
    if (tty) printf("\r\033[K");
    fflush(stdout);
    pthread_mutex_unlock(&wd_lock);
    atomic_fetch_add(&phase, 1);
    r->secs = (double)(braid_now() - t0) / 1e9;
    braid_stats_get(&r->stats);
    r->fds_after = st_fd_count();
    for (int i = 0; i < C_COUNT; i++) r->counts[i] = st_counter(i) - before[i];
    const uint64_t *c = r->counts;
    if (r->prof.failures == 0 && c[C_SPAWNED] != c[C_COMPLETED] + c[C_CANCELLED])
        st_fail("coroutines: %llu spawned, %llu completed + %llu cancelled",
                (unsigned long long)c[C_SPAWNED], (unsigned long long)c[C_COMPLETED],
                (unsigned long long)c[C_CANCELLED]);
    if (r->rc != 0)
        st_fail("braid_run returned %s", braid_strerror(r->rc));
    if (r->fds_after != r->fds_before && !UNDER_TSAN)
        st_fail("braid_run leaked fds: %d open before, %d after",
                r->fds_before, r->fds_after);
    if (!st_result_passed(r)) fprintf(stderr, "braid-stress: %s", replay);
    fprintf(stderr, "braid-stress: %s %s in %.2f s\n", r->def->name,
            st_result_passed(r) ? "passed" : "FAILED", r->secs);
}

int main(int argc, char **argv)
{
    bool on[NPROFILES] = { false }, seeded = false;
    if (parse(argc, argv, on, &seeded) < 0) {
        usage(stderr);
        return 2;
    }
    if (!seeded) opt.seed = st_mix((uint64_t)braid_now() ^ ((uint64_t)getpid() << 32)) % 1000000000;
    size_t n = 0;
    for (size_t i = 0; i < NPROFILES; i++) n += on[i];
    slice_ns = (int64_t)(opt.seconds * 1e9 / (double)n);
    printf("braid-stress: seed %" PRIu64 "\n", opt.seed);
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGABRT, on_crash);
    signal(SIGFPE, on_crash);
    signal(SIGILL, on_crash);

    bool tty = isatty(1);
    int fds_start = st_fd_count();
    st_result res[NPROFILES];
    memset(res, 0, sizeof res);
    pthread_t wd;
    if (watchdog_start(&wd, &tty) != 0) {
        fprintf(stderr, "braid-stress: cannot start the watchdog\n");
        return 2;
    }
    size_t k = 0;
    for (size_t i = 0; i < NPROFILES; i++) {
        if (!on[i]) continue;
        res[k].def = &profiles[i];
        run_one(&res[k++], tty);
    }
    watchdog_stop(wd);
    st_report(stdout, &opt, res, k, fds_start, st_fd_count());
    return atomic_load(&st_failed_any) ? 1 : 0;
}
