/*
 * stress.h - what the braid-stress profiles share.
 *
 * The harness uses only the public API (<braid.h>).  Each profile is a
 * function run as the main coroutine of its own braid_run; it loops over
 * short randomized rounds until its time slice ends (st_over) and checks an
 * invariant after each round, reporting a broken one with st_fail.
 *
 * Counters (st_count) are process-wide relaxed atomics: the profiles add to
 * them, the watchdog and the progress line only read them.  A profile's own
 * numbers are the difference between two snapshots.
 *
 * Randomness: every round and every coroutine draws from its own splitmix64
 * stream derived from the run's seed (st_rng_derive), so a seed replays the
 * same workload shapes; the interleavings, of course, differ.
 */
#ifndef BRAID_STRESS_H
#define BRAID_STRESS_H

#include <braid.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- counters ----------------------------------------------------------- */

enum {
    C_SPAWNED, C_COMPLETED, C_CANCELLED,
    C_SENT, C_RECEIVED, C_LOST, C_DUPLICATED,
    C_OPS,          /* any other unit of work: selects, locks, I/O calls */
    C_BYTES,        /* bytes carried by the net profile */
    C_ROUNDS,
    C_TIMEOUTS,     /* deadlines that expired as asked */
    C_RESETS,       /* injected connection resets */
    C_MIGRATIONS,   /* a coroutine seen on another thread after a switch */
    C_DROPPED,      /* elements dropped by closing the last receive handle */
    C_COUNT
};

extern _Atomic uint64_t st_counters[C_COUNT];
extern const char *const st_counter_names[C_COUNT];

static inline void st_count(int which, uint64_t n)
{
    atomic_fetch_add_explicit(&st_counters[which], n, memory_order_relaxed);
}

static inline uint64_t st_counter(int which)
{
    return atomic_load_explicit(&st_counters[which], memory_order_relaxed);
}

/* ---- the running profile -------------------------------------------------- */

typedef struct st_prof {
    const char *name;
    uint64_t seed;          /* the run's seed, mixed with the profile's index */
    int64_t end;            /* braid_now() when the time slice is over */
    unsigned workers;       /* as asked (0 = runtime default) */
    _Atomic unsigned failures; /* st_fail calls */
    char first_failure[256];
    int64_t max_latency;    /* blocking profile: worst ticker lateness (ns) */
} st_prof;

/* The profile now running (set by the driver before braid_run). */
extern st_prof *st_current;
extern _Atomic int st_failed_any;

/* Report a broken invariant of the running profile (printed at once with
   the seed; the profile then winds down).  Callable from any context. */
void st_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True once the slice is over or an invariant broke: start no new round. */
bool st_over(void);

/* ---- randomness --------------------------------------------------------- */

typedef struct st_rng { uint64_t s; } st_rng;

uint64_t st_next(st_rng *r);
st_rng st_rng_derive(uint64_t a, uint64_t b);
uint64_t st_below(st_rng *r, uint64_t n);            /* [0, n), n > 0 */
uint64_t st_range(st_rng *r, uint64_t lo, uint64_t hi); /* [lo, hi] */
uint64_t st_mix(uint64_t x);                          /* a 64-bit hash */

/* A deadline for a call that may time out: FOREVER, 0 (past), or a few
   microseconds to milliseconds ahead, chosen at random. */
int64_t st_random_deadline(st_rng *r);

/* ---- timer lateness ---------------------------------------------------------- */

/* Record that a timer (sleep or deadline) fired late_ns after it was due. */
void st_lateness(int64_t late_ns);
/* Quantiles over the recorded samples (a reservoir of the latest ones) and
   the max over all. */
void st_lateness_summary(int64_t *p50, int64_t *p99, int64_t *max,
                         uint64_t *samples);

/* ---- messages and bitmaps ----------------------------------------------------- */

/* The element carried by the message profiles. */
typedef struct st_msg {
    uint32_t prod;          /* producer index */
    uint32_t round;         /* round number (low bits) */
    uint64_t seq;           /* per-producer sequence */
    uint64_t hash;          /* st_msg_hash(salt, prod, seq) */
} st_msg;

uint64_t st_msg_hash(uint64_t salt, uint32_t prod, uint64_t seq);
/* Fill m; check m against salt (0 ok, or st_fail and -1). */
void st_msg_make(st_msg *m, uint64_t salt, uint32_t prod, uint64_t seq);
int st_msg_check(const st_msg *m, uint64_t salt, uint32_t nprod,
                 uint64_t per_prod, const char *where);

typedef struct st_bitmap { _Atomic uint64_t *w; size_t bits; } st_bitmap;

int st_bitmap_init(st_bitmap *b, size_t bits);
void st_bitmap_free(st_bitmap *b);
/* Set bit i; returns its previous value. */
bool st_bitmap_set(st_bitmap *b, size_t i);
bool st_bitmap_get(const st_bitmap *b, size_t i);
size_t st_bitmap_count(const st_bitmap *b);

/* ---- process facts ------------------------------------------------------------- */

int st_fd_count(void);              /* open fds, from /proc/self/fd */
long st_rss_kib(void);              /* resident set now */
long st_maxrss_kib(void);           /* peak resident set */
uint32_t st_crc32(uint32_t crc, const void *buf, size_t n);

/* Sleep until a random point up to max_ns ahead, check that the wake-up was
   not early and record its lateness.  Returns braid_sleep_until's result. */
int st_sleep_checked(st_rng *r, int64_t max_ns);

/* Join t within a generous bound; st_fail when it fails.  Returns the
   result of braid_join. */
int st_join(braid_task *t, void **res, const char *what);

/* ---- the profiles ------------------------------------------------------------ */

typedef struct st_profile_def {
    const char *name;
    void (*run)(st_prof *p);
    unsigned no_deadlock_check;     /* fed by plain threads braid cannot see */
    const char *what;
} st_profile_def;

void st_spawn_run(st_prof *p);
void st_pipeline_run(st_prof *p);
void st_select_run(st_prof *p);
void st_close_run(st_prof *p);
void st_cancel_run(st_prof *p);
void st_net_run(st_prof *p);
void st_threads_run(st_prof *p);
void st_sync_run(st_prof *p);
void st_blocking_run(st_prof *p);

/* Rounds of the sync profile kept in waits.c. */
void st_wg_round(st_rng *r);
void st_sem_round(st_rng *r);
void st_once_round(st_rng *r);

/* ---- the driver and its report ------------------------------------------------- */

typedef struct st_result {
    const st_profile_def *def;
    st_prof prof;
    int rc;                     /* braid_run's result */
    int ran;                    /* braid_run was called and returned */
    double secs;
    uint64_t counts[C_COUNT];   /* counter deltas over the profile */
    braid_stats stats;          /* braid_stats_get after braid_run */
    int fds_before, fds_after;  /* around braid_run */
} st_result;

typedef struct st_options {
    uint64_t seed;
    double seconds;
    unsigned workers;
    int json;
} st_options;

bool st_result_passed(const st_result *r);
void st_report(FILE *out, const st_options *o, const st_result *res,
               size_t n, int fds_start, int fds_end);

#define ST_MS ((int64_t)1000000)
#define ST_US ((int64_t)1000)
#define ST_SEC ((int64_t)1000000000)

/* Bound for things that must happen "eventually": generous for CI boxes. */
#define ST_PATIENCE (20 * ST_SEC)

#endif /* BRAID_STRESS_H */
