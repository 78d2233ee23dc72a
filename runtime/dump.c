/*
 * dump.c - braid_dump: every live coroutine and every worker.
 *
 * Walks the coroutine slabs (coro.c), which stay mapped for the whole run,
 * so the walk is memory-safe without stopping anyone; what it prints is a
 * racy snapshot.  Strings printed come from the immutable name or from the
 * static `what` texts of waiters.
 */
#include "runtime.h"

#include <time.h>

static const char *state_name(int s)
{
    switch (s) {
    case CORO_NEW: return "new";
    case CORO_RUNNABLE: return "runnable";
    case CORO_RUNNING: return "running";
    case CORO_BLOCKED: return "blocked";
    case CORO_DONE: return "done";
    default: return "?";
    }
}

typedef struct { FILE *out; int64_t now; size_t n; } dump_ctx;

static void one(braid__coro *c, void *arg)
{
    dump_ctx *d = arg;
    int st = ld_relaxed(&c->state);
    if (st == CORO_FREE) return;
    d->n++;
    if (d->n > 1000) return;
    const char *what = st == CORO_BLOCKED
        ? __atomic_load_n(&c->wait_what, __ATOMIC_RELAXED) : NULL;
    fprintf(d->out, "  coroutine %llu (%s): %s", (unsigned long long)c->id,
            c->name ? c->name : (c->flags & CORO_MAIN) ? "main" : "unnamed",
            state_name(st));
    if (what)
        fprintf(d->out, " in %s on %p for %.3f ms", what,
                __atomic_load_n(&c->wait_obj, __ATOMIC_RELAXED),
                (double)(d->now - __atomic_load_n(&c->since, __ATOMIC_RELAXED)) / 1e6);
    if (atomic_load_explicit(&c->cancelled, memory_order_relaxed))
        fprintf(d->out, " [cancelled]");
    fprintf(d->out, " (worker %d, stack %zu)\n",
            __atomic_load_n(&c->worker, __ATOMIC_RELAXED), c->stack_size);
}

BRAID_EXPORT void braid_dump(FILE *out)
{
    if (!out) out = stderr;
    dump_ctx d = { out, braid__coarse_now(), 0 };
    braid_stats st;
    braid_stats_get(&st);
    fprintf(out, "braid dump: %u workers (%u idle, %u spinning), %llu live "
            "coroutines, %ld wake sources, %zu in the global queue\n",
            braid__rt.nworkers, ld_relaxed(&braid__rt.npidle),
            ld_relaxed(&braid__rt.nspinning), (unsigned long long)st.live,
            (long)atomic_load(&braid__rt.sources), ld_relaxed(&braid__rt.gq_n));
    for (unsigned i = 0; braid__rt.workers && i < braid__rt.nworkers; i++) {
        braid__worker *w = braid__rt.workers[i];
        braid__coro *cur = __atomic_load_n(&w->cur, __ATOMIC_RELAXED);
        fprintf(out, "  worker %u: %s, runq %u, spawns %lld, next %s, "
                "switches %llu\n", i,
                ld_relaxed(&w->idle) ? "idle" : cur ? "running" : "scheduling",
                ck_ring_size(&w->ring), (long long)braid__deq_size(&w->spawns),
                ld_relaxed(&w->next) ? "set" : "empty",
                (unsigned long long)ld_relaxed(&w->switches));
    }
    braid__coro_each(one, &d);
    if (d.n > 1000)
        fprintf(out, "  ... %zu more coroutines\n", d.n - 1000);
    fflush(out);
}
