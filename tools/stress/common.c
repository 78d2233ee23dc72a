/*
 * common.c - counters, failure reports, randomness, timer lateness,
 * bitmaps and process facts shared by the braid-stress profiles.
 *
 * Lateness samples go to a ring of LAT_SLOTS slots: writers claim a slot
 * with one relaxed fetch_add and store into it relaxed; the summary is read
 * after the profiles stopped (braid_run returned), so a torn or stale slot
 * can only come from the live progress line, which does not use it.
 */
#include "stress.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

_Atomic uint64_t st_counters[C_COUNT];
const char *const st_counter_names[C_COUNT] = {
    "spawned", "completed", "cancelled", "sent", "received", "lost",
    "duplicated", "ops", "bytes", "rounds", "timeouts", "resets",
    "migrations", "dropped",
};

st_prof *st_current;
_Atomic int st_failed_any;

void st_fail(const char *fmt, ...)
{
    st_prof *p = st_current;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unsigned n = p ? atomic_fetch_add(&p->failures, 1) : 0;
    if (p && n == 0)        /* the only writer; read after braid_run */
        snprintf(p->first_failure, sizeof p->first_failure, "%s", msg);
    atomic_store(&st_failed_any, 1);
    if (n < 10)
        fprintf(stderr, "braid-stress: FAIL [%s] %s (seed %llu)\n",
                p ? p->name : "?", msg,
                (unsigned long long)(p ? p->seed : 0));
}

bool st_over(void)
{
    st_prof *p = st_current;
    return atomic_load_explicit(&p->failures, memory_order_relaxed) != 0 ||
           braid_now() >= p->end;
}

/* ---- randomness: splitmix64 -------------------------------------------------- */

uint64_t st_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t st_next(st_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    uint64_t x = r->s;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

st_rng st_rng_derive(uint64_t a, uint64_t b)
{
    st_rng r = { st_mix(a ^ st_mix(b + 0x632be59bd9b4e019ull)) };
    return r;
}

uint64_t st_below(st_rng *r, uint64_t n)
{
    return n ? st_next(r) % n : 0;
}

uint64_t st_range(st_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + st_below(r, hi - lo + 1);
}

int64_t st_random_deadline(st_rng *r)
{
    switch (st_below(r, 4)) {
    case 0: return BRAID_FOREVER;
    case 1: return 0;
    case 2: return braid_after((int64_t)st_below(r, 100 * ST_US));
    default: return braid_after((int64_t)st_below(r, 5 * ST_MS));
    }
}

/* ---- timer lateness ----------------------------------------------------------- */

#define LAT_SLOTS (1u << 16)
static _Atomic int64_t lat_ring[LAT_SLOTS];
static _Atomic uint64_t lat_n;
static _Atomic int64_t lat_max;

void st_lateness(int64_t late_ns)
{
    if (late_ns < 0) late_ns = 0;
    uint64_t i = atomic_fetch_add_explicit(&lat_n, 1, memory_order_relaxed);
    atomic_store_explicit(&lat_ring[i % LAT_SLOTS], late_ns, memory_order_relaxed);
    int64_t m = atomic_load_explicit(&lat_max, memory_order_relaxed);
    while (late_ns > m &&
           !atomic_compare_exchange_weak_explicit(&lat_max, &m, late_ns,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void st_lateness_summary(int64_t *p50, int64_t *p99, int64_t *max,
                         uint64_t *samples)
{
    uint64_t n = atomic_load(&lat_n);
    size_t k = n < LAT_SLOTS ? (size_t)n : LAT_SLOTS;
    *samples = n;
    *max = atomic_load(&lat_max);
    *p50 = *p99 = 0;
    int64_t *v = k ? malloc(k * sizeof *v) : NULL;
    if (!v) return;
    for (size_t i = 0; i < k; i++) v[i] = atomic_load(&lat_ring[i]);
    qsort(v, k, sizeof *v, cmp_i64);
    *p50 = v[k / 2];
    *p99 = v[k * 99 / 100];
    free(v);
}

int st_sleep_checked(st_rng *r, int64_t max_ns)
{
    int64_t deadline = braid_after((int64_t)st_below(r, (uint64_t)max_ns + 1));
    int rc = braid_sleep_until(deadline);
    int64_t now = braid_now();
    if (rc == 0 && now < deadline)
        st_fail("braid_sleep_until woke %lld ns before its deadline",
                (long long)(deadline - now));
    if (rc == 0) st_lateness(now - deadline);
    return rc;
}

int st_join(braid_task *t, void **res, const char *what)
{
    int rc = braid_join(t, res, braid_after(ST_PATIENCE));
    if (rc != 0)
        st_fail("%s: braid_join returned %s", what, braid_strerror(rc));
    return rc;
}

/* ---- messages ------------------------------------------------------------------ */

uint64_t st_msg_hash(uint64_t salt, uint32_t prod, uint64_t seq)
{
    return st_mix(salt ^ st_mix(((uint64_t)prod << 40) ^ seq));
}

void st_msg_make(st_msg *m, uint64_t salt, uint32_t prod, uint64_t seq)
{
    m->prod = prod;
    m->round = (uint32_t)salt;
    m->seq = seq;
    m->hash = st_msg_hash(salt, prod, seq);
}

int st_msg_check(const st_msg *m, uint64_t salt, uint32_t nprod,
                 uint64_t per_prod, const char *where)
{
    if (m->prod < nprod && m->seq < per_prod && m->round == (uint32_t)salt &&
        m->hash == st_msg_hash(salt, m->prod, m->seq))
        return 0;
    st_fail("%s: corrupt message (producer %u seq %llu round %u hash %llx)",
            where, m->prod, (unsigned long long)m->seq, m->round,
            (unsigned long long)m->hash);
    return -1;
}

/* ---- bitmaps ---------------------------------------------------------------- */

int st_bitmap_init(st_bitmap *b, size_t bits)
{
    b->bits = bits;
    b->w = calloc(bits / 64 + 1, sizeof *b->w);
    return b->w ? 0 : -ENOMEM;
}

void st_bitmap_free(st_bitmap *b)
{
    free(b->w);
    b->w = NULL;
}

bool st_bitmap_set(st_bitmap *b, size_t i)
{
    uint64_t bit = 1ull << (i % 64);
    return atomic_fetch_or_explicit(&b->w[i / 64], bit, memory_order_relaxed) & bit;
}

bool st_bitmap_get(const st_bitmap *b, size_t i)
{
    return atomic_load_explicit(&b->w[i / 64], memory_order_relaxed) >> (i % 64) & 1;
}

size_t st_bitmap_count(const st_bitmap *b)
{
    size_t n = 0;
    for (size_t i = 0; i <= b->bits / 64; i++)
        n += (size_t)__builtin_popcountll(atomic_load(&b->w[i]));
    return n;
}

/* ---- process facts ------------------------------------------------------------ */

int st_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;                   /* the directory's own fd */
}

long st_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

long st_maxrss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t st_crc32(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = buf;
    crc = ~crc;
    while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
