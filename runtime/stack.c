/*
 * stack.c - coroutine stacks, cut from large mmap'd slabs and pooled.
 *
 * A slab is one anonymous MAP_NORESERVE mapping holding many slots; a slot
 * is one page (guard or red zone) followed by the usable stack.  Only the
 * pages a coroutine touches become resident.  Adjacent slabs merge into one
 * kernel mapping, so a million stacks cost a handful of mappings.
 *
 * Overflow: every stack gets a guard page where the kernel has guard
 * regions (Linux >= 6.13, see install_guards; the first is checked to
 * fault, as an emulator may accept the call and install nothing);
 * elsewhere the first BRAID_STACK_GUARDS (env; default 8192) stacks get a
 * PROT_NONE page (mprotect splits the mapping, so those are budgeted to
 * stay far below the kernel's 65,530 mappings); the SIGSEGV handler
 * (sched.c) names the coroutine.  Every stack, guarded or not, has
 * its lowest page as a red zone that must stay zero: the scheduler checks
 * the stack pointer against it at every switch-out and the red zone's top
 * word at exit, and aborts with the coroutine's name and stack size.
 *
 * Pools: one per distinct stack size (at most MAXPOOLS sizes), each a
 * vector of free slots behind a spinlock.  Workers keep a small LIFO cache
 * of default-size stacks and a stock of reservation credits, moved to and
 * from the pool in batches.
 *
 * Reservations make "spawn fails with -ENOMEM" exact while stacks are only
 * taken at a coroutine's first run: pool.reserved counts credits handed
 * out (held by caches, or by coroutines not yet started or running).  A
 * reserve keeps total >= reserved + slack, where slack covers every stack a
 * cache may hold, so a get always finds a free slot without mapping.
 */
#include "stack.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif
#ifdef BRAID_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define PAGE 4096u
#define MAXPOOLS 32
#define CACHE_MAX 32      /* stacks a worker cache holds at most */
#define CACHE_MOVE 16     /* batch moved between cache and pool */
#define CREDIT_MOVE 32    /* reservation credits moved at once */
#define SLAB_BYTES (8u << 20)

typedef struct slot { char *lo; bool guarded; } slot;

typedef struct slab { struct slab *next; char *base; size_t len; } slab;

typedef struct pool {
    braid__spin lock;
    size_t size;            /* usable bytes; immutable once set */
    slot *free;             /* vector of free slots; lock */
    size_t nfree, cap;      /* lock */
    size_t total;           /* slots in mapped slabs; lock */
    size_t reserved;        /* credits handed out; lock */
} pool;

struct braid__stack_cache {
    size_t size;            /* the one stack size it caches; immutable */
    slot stacks[CACHE_MAX]; /* owner only */
    size_t n;
    size_t credits;         /* default-size reservations held */
};

static struct {
    braid__spin lock;       /* protects npools, slabs, ncaches */
    pool pools[MAXPOOLS];
    size_t npools;
    slab *slabs;
    size_t ncaches;
    _Atomic long guards_left;
    _Atomic long mappings;
    _Atomic int fail_next;
    bool guards_init;
    bool no_guards;         /* env BRAID_STACK_GUARDS=0: red zones only */
    bool valgrind;          /* under valgrind: register the stacks */
} S;

/* Stacks come in power-of-two size classes (16 KiB .. 1 GiB), so any mix
   of requested sizes needs at most 17 pools. */
size_t braid__stack_round(size_t size)
{
    size_t c = BRAID_STACK_MIN;
    while (c < size && c < BRAID_STACK_MAX) c <<= 1;
    return c;
}

void braid__stack_fail_next(int n) { st_relaxed(&S.fail_next, n); }

long braid__stacks_mappings(void) { return ld_relaxed(&S.mappings); }

static pool *pool_of(size_t size)
{
    braid__spin_lock(&S.lock);
    pool *p = NULL;
    for (size_t i = 0; i < S.npools && !p; i++)
        if (S.pools[i].size == size) p = &S.pools[i];
    if (!p && S.npools < MAXPOOLS) {
        p = &S.pools[S.npools++];
        memset(p, 0, sizeof *p);
        p->size = size;
    }
    if (!S.guards_init) {
        const char *e = getenv("BRAID_STACK_GUARDS");
        st_relaxed(&S.guards_left, e ? atol(e) : 8192);
        S.no_guards = e && atol(e) == 0;
#ifdef HAVE_VALGRIND_VALGRIND_H
        /* A client request is ~15 instructions even natively, 4% of a
           spawn with two per stack: ask once.  Every worker's first stack
           comes through here (under S.lock) before its cache has any. */
        S.valgrind = RUNNING_ON_VALGRIND;
#endif
        S.guards_init = true;
    }
    braid__spin_unlock(&S.lock);
    if (!p) braid__panic("more than %d distinct coroutine stack sizes", MAXPOOLS);
    return p;
}

static size_t slack(void)
{
    return (S.ncaches + 1) * (CACHE_MAX + CREDIT_MOVE);
}

static int push_free(pool *p, char *lo, bool guarded)
{
    if (p->nfree == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        slot *v = realloc(p->free, cap * sizeof *v);
        if (!v) return -ENOMEM;
        p->free = v;
        p->cap = cap;
    }
    p->free[p->nfree++] = (slot){ lo, guarded };
    return 0;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Guard the lowest page of each of the n slots at base.  Linux >= 6.13
   has guard regions (madvise MADV_GUARD_INSTALL): a page-table marker that
   faults on access, taken under the mmap read lock and splitting no
   mapping, so every stack gets one.  Older kernels: mprotect, which splits
   the mapping (two more per stack) and takes the mmap write lock, so only
   the first BRAID_STACK_GUARDS stacks get one.  Returns whether the slab
   is guarded. */
static _Atomic int guard_kind = BRAID__GUARD_UNKNOWN;   /* until a slab */

/* Does the guard region at p fault?  The kernel's copy from it must fail
   with EFAULT.  An emulator can accept MADV_GUARD_INSTALL and do nothing
   (qemu-user 7.2 returns 0): overflows would then run silently into the
   stack below, so such a guard is not trusted.  Without a pipe (fds
   exhausted) there is no telling: the kernel's word is taken. */
static bool guard_faults(const char *p)
{
    int fd[2], saved = errno;
    bool ok = true;
    if (pipe2(fd, O_CLOEXEC) == 0) {
        ok = write(fd[1], p, 1) < 0 && errno == EFAULT;
        close(fd[0]);
        close(fd[1]);
    }
    errno = saved;
    return ok;
}

int braid__stack_guard_kind(void) { return ld_relaxed(&guard_kind); }

static bool install_guards(char *base, size_t n, size_t slotsz)
{
    if (S.no_guards) return false;        /* BRAID_STACK_GUARDS=0 */
    int kind = ld_relaxed(&guard_kind);
    if (kind != BRAID__GUARD_MPROTECT) {
        size_t i = 0;
        while (i < n && madvise(base + i * slotsz, PAGE, MADV_GUARD_INSTALL) == 0)
            i++;
        if (i == n && (kind == BRAID__GUARD_REGIONS || guard_faults(base))) {
            st_relaxed(&guard_kind, BRAID__GUARD_REGIONS);
            return true;
        }
        if (i > 0 && i < n) return false; /* partial: treat as unguarded */
        /* EINVAL (Linux < 6.13), or guards that do not fault: mprotect,
           for good (a no-op guard leaves nothing to undo). */
        st_relaxed(&guard_kind, BRAID__GUARD_MPROTECT);
    }
    if (atomic_fetch_sub(&S.guards_left, (long)n) < (long)n) return false;
    for (size_t i = 0; i < n; i++)
        if (mprotect(base + i * slotsz, PAGE, PROT_NONE) == 0)
            add_relaxed(&S.mappings, 2);
    return true;
}

/* Map one slab for p and put its slots on the free vector.  Called and
   returns with the pool lock held; drops it around the system calls. */
static int grow(pool *p)
{
    size_t slotsz = p->size + PAGE;
    size_t n = SLAB_BYTES / slotsz;
    if (n < 4) n = 4;
    if (atomic_load(&S.fail_next) > 0 && atomic_fetch_sub(&S.fail_next, 1) > 0)
        return -ENOMEM;
    /* The system calls run without the pool lock: others keep taking and
       returning stacks meanwhile (a racing grow just maps one more slab). */
    braid__spin_unlock(&p->lock);
    slab *sl = malloc(sizeof *sl);
    char *base = sl ? mmap(NULL, n * slotsz, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                    : MAP_FAILED;
    bool guard = false;
    if (base != MAP_FAILED) {
        add_relaxed(&S.mappings, 1);
        guard = install_guards(base, n, slotsz);
    }
    braid__spin_lock(&p->lock);
    if (base == MAP_FAILED) {
        free(sl);
        return -ENOMEM;
    }
    if (p->cap - p->nfree < n) {
        size_t cap = p->nfree + n + p->cap;
        slot *v = realloc(p->free, cap * sizeof *v);
        if (!v) {
            munmap(base, n * slotsz);
            free(sl);
            return -ENOMEM;
        }
        p->free = v;
        p->cap = cap;
    }
    /* Push in reverse so the lowest slot is taken first. */
    for (size_t i = n; i-- > 0;)
        p->free[p->nfree++] = (slot){ base + i * slotsz + PAGE, guard };
    p->total += n;
    braid__spin_lock(&S.lock);
    sl->base = base; sl->len = n * slotsz; sl->next = S.slabs; S.slabs = sl;
    braid__spin_unlock(&S.lock);
    return 0;
}

/* Take k credits from p, mapping slabs as needed.  Pool lock held. */
static int take_credits(pool *p, size_t k)
{
    while (p->total < p->reserved + k + slack()) {
        int r = grow(p);
        if (r < 0) return r;
    }
    p->reserved += k;
    return 0;
}


static bool cached(braid__stack_cache *c, size_t size)
{
    return c && c->size == size;
}

int braid__stack_reserve(braid__stack_cache *c, size_t size)
{
    if (cached(c, size) && c->credits > 0) {
        c->credits--;
        return 0;
    }
    pool *p = pool_of(size);
    size_t k = cached(c, size) ? CREDIT_MOVE : 1;
    braid__spin_lock(&p->lock);
    int r = take_credits(p, k);
    if (r < 0 && k > 1)
        r = take_credits(p, k = 1);
    braid__spin_unlock(&p->lock);
    if (r < 0) return r;
    if (k > 1) c->credits += k - 1;
    return 0;
}

static void give_credits(pool *p, size_t k)
{
    braid__spin_lock(&p->lock);
    p->reserved -= k;
    braid__spin_unlock(&p->lock);
}

void braid__stack_unreserve(braid__stack_cache *c, size_t size)
{
    if (cached(c, size)) {
        if (++c->credits < 2 * CREDIT_MOVE) return;
        c->credits -= CREDIT_MOVE;
        give_credits(pool_of(size), CREDIT_MOVE);
        return;
    }
    give_credits(pool_of(size), 1);
}

#ifdef HAVE_VALGRIND_VALGRIND_H
/* Out of line: the request block costs the callers a frame and spills. */
static __attribute__((noinline, cold)) void vg_register(braid__stack *s)
{
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
}

static __attribute__((noinline, cold)) void vg_deregister(const braid__stack *s)
{
    VALGRIND_STACK_DEREGISTER(s->vg_id);
}
#endif

static void fill(const slot *sl, size_t size, braid__stack *s)
{
    s->lo = sl->lo;
    s->size = size;
    s->guarded = sl->guarded;
#ifdef HAVE_VALGRIND_VALGRIND_H
    if (S.valgrind)
        vg_register(s);
#endif
}

void braid__stack_get(braid__stack_cache *c, size_t size, braid__stack *s)
{
    if (cached(c, size) && c->n > 0) {
        fill(&c->stacks[--c->n], size, s);
        return;
    }
    pool *p = pool_of(size);
    braid__spin_lock(&p->lock);
    if (p->nfree == 0)
        braid__panic("stack pool of %zu-byte stacks empty despite reservation",
                     size);
    fill(&p->free[--p->nfree], size, s);
    if (cached(c, size)) {          /* refill the cache while here */
        size_t k = p->nfree < CACHE_MOVE ? p->nfree : CACHE_MOVE;
        for (size_t i = 0; i < k; i++)
            c->stacks[c->n++] = p->free[--p->nfree];
    }
    braid__spin_unlock(&p->lock);
}

void braid__stack_put(braid__stack_cache *c, const braid__stack *s)
{
#ifdef HAVE_VALGRIND_VALGRIND_H
    if (S.valgrind)
        vg_deregister(s);
#endif
    slot sl = { s->lo, s->guarded };
    if (cached(c, s->size)) {
        if (c->n == CACHE_MAX) {
            pool *p = pool_of(s->size);
            braid__spin_lock(&p->lock);
            for (size_t i = 0; i < CACHE_MOVE; i++) {
                slot *o = &c->stacks[--c->n];
                if (push_free(p, o->lo, o->guarded))
                    braid__panic("out of memory returning a stack");
            }
            braid__spin_unlock(&p->lock);
        }
        c->stacks[c->n++] = sl;
        braid__stack_unreserve(c, s->size);
        return;
    }
    pool *p = pool_of(s->size);
    braid__spin_lock(&p->lock);
    if (push_free(p, sl.lo, sl.guarded))
        braid__panic("out of memory returning a stack");
    p->reserved--;
    braid__spin_unlock(&p->lock);
}

braid__stack_cache *braid__stack_cache_new(size_t size)
{
    braid__stack_cache *c = braid__zalloc_lines(sizeof *c);
    if (!c) return NULL;
    c->size = size;
    braid__spin_lock(&S.lock);
    S.ncaches++;
    braid__spin_unlock(&S.lock);
    return c;
}

/* Return the cache's stacks and credits to the pool. */
void braid__stack_cache_free(braid__stack_cache *c)
{
    if (!c) return;
    pool *p = pool_of(c->size);
    braid__spin_lock(&p->lock);
    while (c->n > 0) {
        c->n--;
        if (push_free(p, c->stacks[c->n].lo, c->stacks[c->n].guarded))
            braid__panic("out of memory returning a stack");
    }
    p->reserved -= c->credits;
    braid__spin_unlock(&p->lock);
    braid__spin_lock(&S.lock);
    S.ncaches--;
    braid__spin_unlock(&S.lock);
    free(c);
}

size_t braid__stack_guard_hit(const void *addr, const braid__stack *s)
{
    const char *a = addr;
    if (s->lo && a < (const char *)s->lo && a >= (const char *)s->lo - PAGE)
        return s->size;
    return 0;
}

void braid__stacks_release_all(void)
{
    braid__spin_lock(&S.lock);
    for (slab *sl = S.slabs, *nx; sl; sl = nx) {
        nx = sl->next;
#ifdef BRAID_ASAN
        /* Frames of coroutines abandoned by braid_run leave redzones in
           the shadow; the next mapping at these addresses must not
           inherit them. */
        __asan_unpoison_memory_region(sl->base, sl->len);
#endif
        munmap(sl->base, sl->len);
        free(sl);
    }
    S.slabs = NULL;
    for (size_t i = 0; i < S.npools; i++) {
        free(S.pools[i].free);
        memset(&S.pools[i], 0, sizeof S.pools[i]);
    }
    S.npools = 0;
    S.guards_init = false;
    st_relaxed(&S.mappings, 0);
    braid__spin_unlock(&S.lock);
}
