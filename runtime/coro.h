/*
 * coro.h - the coroutine object.
 *
 * Lifetime: a coroutine holds one reference while it can still run and the
 * braid_task handle holds one (joinable) until join/detach.  The object is
 * recycled when the count reaches zero.  Its stack is taken at the first
 * run (braid__stack_get; reserved at spawn, so spawn alone reports
 * -ENOMEM) and given back right after it exits.
 *
 * Ownership: fields marked (owner) belong to whichever worker runs or holds
 * the coroutine at the time; hand-offs between workers go through a run
 * queue (release/acquire) or the waiter's park word (acq_rel).
 */
#ifndef BRAID_CORO_H
#define BRAID_CORO_H

#include "common.h"
#include "context.h"
#include "stack.h"

typedef struct braid__waiter braid__waiter;

enum {
    CORO_FREE = 0,     /* in an allocator cache */
    CORO_NEW,          /* spawned, never run, no stack yet */
    CORO_RUNNABLE,     /* in a run queue or next slot */
    CORO_RUNNING,
    CORO_BLOCKED,      /* parked in braid__waiter_wait */
    CORO_DONE          /* returned; waiting for join/detach */
};

enum { CORO_DETACHED = 1, CORO_GO = 2, CORO_MAIN = 4 };

typedef struct braid__coro {
    braid__ctx ctx;              /* (owner) saved registers */
    struct braid__coro *link;    /* (owner) run queue / batch / free list */
    braid__stack stack;          /* (owner) lo == NULL until the first run */
    size_t stack_size;           /* immutable: requested, rounded */
    void *(*fn)(void *);         /* immutable */
    union {
        void *arg;               /* immutable */
        struct braid__coro *batch; /* free: next batch in the pool */
    };
    void *result;                /* written before exit; read by the joiner
                                    after it saw done, or was woken by the
                                    exit */
    int saved_errno;             /* (owner) errno while switched out */
    unsigned flags;              /* CORO_*; lk after spawn */
    _Atomic int state;           /* CORO_*, for dumps and asserts */
    _Atomic int cancelled;       /* sticky; set by braid_cancel */
    _Atomic int refs;
    uint64_t id;                 /* immutable, from 1 */
    const char *name;            /* immutable */
    braid__spin lk;              /* protects waiter, joiner, done; a
                                    joiner keeps it across its park
                                    (braid_join) */
    _Atomic int claiming;        /* a party holding a wait-list lock is
                                    deciding our solo waiter with plain
                                    moves (waiter.h) */
    _Atomic bool done;           /* set under lk (release); read under lk,
                                    or by braid_join without it (acquire) */
    _Atomic(braid__waiter *) waiter; /* current cancellable wait: see
                                    waiter.c for who writes it, and how */
    braid__waiter *joiner;       /* lk: the braid_join waiting for us */
    int64_t since;               /* (owner) when the current wait began */
    const char *wait_what;       /* (owner) what it waits for, for dumps */
    const void *wait_obj;        /* (owner) on what */
    uint32_t ticks;              /* (owner) next-slot runs in a row */
    uint32_t nocancel;           /* (owner) depth of uncancellable scopes */
    int16_t worker;              /* last worker that ran it, for dumps */
    struct braid__worker *wk;    /* the worker it runs on: written by the
                                    switch to it (sched.c switch_ctx), read
                                    by itself while it runs */
#ifdef BRAID_ASAN
    void *asan_fake;
#endif
#ifdef BRAID_TSAN
    void *tsan_fiber;
#endif
} braid__coro;

typedef struct braid__coro_cache braid__coro_cache;

/* Allocate / recycle coroutine objects (slab allocator with a per-worker
   cache; slabs are walked by braid_dump).  c may be NULL (plain thread). */
braid__coro *braid__coro_alloc(braid__coro_cache *c);
void braid__coro_free(braid__coro_cache *c, braid__coro *co);
braid__coro_cache *braid__coro_cache_new(void);
void braid__coro_cache_free(braid__coro_cache *c);
/* Call fn on every coroutine object ever allocated (any state). */
void braid__coro_each(void (*fn)(braid__coro *, void *), void *arg);
/* Free every slab (braid_run's end). */
void braid__coros_release_all(void);

/* Drop one reference; recycles at zero. */
void braid__coro_unref(braid__coro *co);

#endif
