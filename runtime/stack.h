/*
 * stack.h - coroutine stacks: cut from large mmap'd slabs, pooled.
 */
#ifndef BRAID_STACK_H
#define BRAID_STACK_H

#include "common.h"

#define BRAID_STACK_MIN   (16u << 10)
#define BRAID_STACK_MAX   (1u << 30)
#define BRAID_STACK_DEFAULT (64u << 10)

typedef struct braid__stack {
    void *lo;          /* lowest usable address (above any guard page) */
    size_t size;       /* usable bytes */
    bool guarded;      /* a PROT_NONE page sits just below lo */
    unsigned vg_id;    /* valgrind stack id */
} braid__stack;

typedef struct braid__stack_cache braid__stack_cache;

/* Reserve the right to one stack of `size` bytes: after a successful
   reserve, braid__stack_get never fails.  -ENOMEM if no slab can be
   mapped.  cache may be NULL (plain thread). */
int  braid__stack_reserve(braid__stack_cache *cache, size_t size);
void braid__stack_unreserve(braid__stack_cache *cache, size_t size);

/* Take a reserved stack (LIFO: recently used, hot in cache). */
void braid__stack_get(braid__stack_cache *cache, size_t size, braid__stack *s);
/* Give it back; the reservation goes with it. */
void braid__stack_put(braid__stack_cache *cache, const braid__stack *s);

/* A worker's cache of stacks of one size (the runtime's default). */
braid__stack_cache *braid__stack_cache_new(size_t size);
void braid__stack_cache_free(braid__stack_cache *c);

/* Round a requested size to what a stack really gets. */
size_t braid__stack_round(size_t size);

/* If addr lies in the guard page of a live stack, its usable size, else 0. */
size_t braid__stack_guard_hit(const void *addr, const braid__stack *s);

/* Unmap every slab (braid_run's end: nothing runs any more). */
void braid__stacks_release_all(void);

/* Mappings created for stacks so far (slabs + guard splits). */
long braid__stacks_mappings(void);

/* How slabs are guarded: BRAID__GUARD_REGIONS (madvise guard regions,
   checked to fault), BRAID__GUARD_MPROTECT (the first BRAID_STACK_GUARDS
   stacks), or BRAID__GUARD_UNKNOWN before the first slab (and with
   BRAID_STACK_GUARDS=0). */
enum { BRAID__GUARD_UNKNOWN, BRAID__GUARD_REGIONS, BRAID__GUARD_MPROTECT };
int braid__stack_guard_kind(void);

/* Fault injection for tests: the next n slab mappings fail. */
void braid__stack_fail_next(int n);

#endif
