/*
 * common.h - small internal helpers shared by every room: branch hints,
 * atomics shorthands, a test-and-test-and-set spinlock, futex wrappers,
 * sanitizer hooks and the lock order.
 *
 * Lock order (a < b: a may be held while b is taken, never the reverse):
 *   chan/sync object lock < coro->lk < timer heap lock < global runq lock
 *   < idle-worker lock < pool locks (stack, coro)
 * Wait lists of sync objects are never nested with each other, except that
 * braid_select takes the locks of all its channels in address order.
 */
#ifndef BRAID_COMMON_H
#define BRAID_COMMON_H

#define BRAID_BUILDING 1
#include "braid.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define BRAID_HIDDEN __attribute__((visibility("hidden")))
#define BRAID_CACHELINE 64
#define BRAID_ALIGNED __attribute__((aligned(BRAID_CACHELINE)))

#define ld_relaxed(p)     atomic_load_explicit((p), memory_order_relaxed)
#define ld_acquire(p)     atomic_load_explicit((p), memory_order_acquire)
#define st_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
#define st_release(p, v)  atomic_store_explicit((p), (v), memory_order_release)
#define add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)

static inline void braid__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Spinlock: 0 free, 1 held.  Acquire on lock, release on unlock.  Used for
   short critical sections only (no call that can block or switch inside). */
typedef struct { _Atomic int v; } braid__spin;
#define BRAID__SPIN_INIT { 0 }

/* Relax rounds between looks at whether to give the CPU away. */
#define BRAID__SPIN_YIELD 256
void braid__spin_lock_slow(braid__spin *l);

static inline void braid__spin_lock(braid__spin *l)
{
    if (likely(!atomic_exchange_explicit(&l->v, 1, memory_order_acquire)))
        return;
    braid__spin_lock_slow(l);
}

static inline bool braid__spin_trylock(braid__spin *l)
{
    return !ld_relaxed(&l->v) &&
           !atomic_exchange_explicit(&l->v, 1, memory_order_acquire);
}

static inline void braid__spin_unlock(braid__spin *l)
{
    st_release(&l->v, 0);
}

/* Futex on a 32-bit word; private to the process.  wait returns when *w !=
   val, on a wake, or spuriously; the caller loops. */
int  braid__futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t deadline);

/* Asymmetric fences (Linux membarrier): a hot path that would need a full
   fence only against a rare path pays a compiler barrier
   (braid__asym_light), and the rare path makes every thread of the
   process execute a full fence (braid__asym_heavy, a system call).  Used
   only while braid__asym is true: braid__asym_init registered the process
   (Linux >= 4.14; not under ThreadSanitizer, which cannot see it). */
extern bool braid__asym;
void braid__asym_init(void);
void braid__asym_heavy(void);
static inline void braid__asym_light(void)
{
    atomic_signal_fence(memory_order_seq_cst);
}
void braid__futex_wake(_Atomic uint32_t *w, int n);

/* Sanitizer hand-off annotations.  TSan runs fibers in no-sync mode, so a
   hand-off through memory TSan cannot see (ck_ring's inline asm, the
   waiter's park word) is made visible with release before and acquire
   after. */
#if defined(__SANITIZE_THREAD__)
#define BRAID_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BRAID_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BRAID_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BRAID_ASAN 1
#endif
#endif

#ifdef BRAID_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define braid__tsan_acquire(p) __tsan_acquire((void *)(p))
#define braid__tsan_release(p) __tsan_release((void *)(p))
#else
#define braid__tsan_acquire(p) ((void)(p))
#define braid__tsan_release(p) ((void)(p))
#endif

#ifdef BRAID_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define BRAID_ASSERT(c) do { if (!(c)) { \
    fprintf(stderr, "braid: assertion failed: %s at %s:%d\n", #c, \
            __FILE__, __LINE__); abort(); } } while (0)
#else
#define BRAID_ASSERT(c) ((void)0)
#endif

/* Set in a child forked while a runtime ran: its worker and I/O threads
   are gone and any lock they held stays held, so every entry point returns
   -EPERM there until exec (runtime.c sets it from pthread_atfork). */
extern _Atomic int braid__forked;
#define BRAID__FORK_GUARD() do { \
    if (unlikely(atomic_load_explicit(&braid__forked, memory_order_relaxed))) \
        return -EPERM; \
} while (0)

/* Zeroed memory on cache lines of its own (free with free()), for state
   that one worker writes all the time: the per-worker caches and timer
   heaps came from calloc, 16-byte aligned, so one worker's cache could
   share a line with the next one's and every alloc or free on either
   would take the line from the other core. */
void *braid__zalloc_lines(size_t size);

/* Abort with a message (misuse that cannot be reported). */
__attribute__((noreturn, format(printf, 1, 2)))
void braid__panic(const char *fmt, ...);

#endif
