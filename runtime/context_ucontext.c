/*
 * context_ucontext.c - the portable switch: makecontext/swapcontext.
 *
 * Used with --with-context=ucontext and on architectures without an
 * assembly switch.  swapcontext saves and restores the signal mask, so
 * each switch makes a system call; it is the slow path.
 *
 * makecontext passes only int arguments to the start function, so entry
 * and arg each travel as two 32-bit halves and are put back together in
 * start().  uc_link is NULL: entry must never return, and start() aborts
 * if it does.
 */
#include "context.h"

#if defined(BRAID_CONTEXT_UCONTEXT)

#include <stdint.h>
#include <stdlib.h>

static unsigned lo32(uint64_t v) { return (unsigned)(v & 0xffffffffu); }
static unsigned hi32(uint64_t v) { return (unsigned)(v >> 32); }

static uint64_t join(unsigned hi, unsigned lo)
{
    return (uint64_t)hi << 32 | lo;
}

/* The start function makecontext calls; the int halves come back as
   unsigned, which has the same representation. */
static void start(unsigned ehi, unsigned elo, unsigned ahi, unsigned alo)
{
    void (*entry)(void *) = (void (*)(void *))(uintptr_t)join(ehi, elo);

    entry((void *)(uintptr_t)join(ahi, alo));
    abort();                    /* entry returned: forbidden */
}

/* Same contract as the assembly variant (see context.h). */
void braid__ctx_make(braid__ctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg)
{
    uint64_t e = (uintptr_t)entry, a = (uintptr_t)arg;

    if (getcontext(&c->uc) != 0)
        abort();
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, (void (*)(void))start, 4,
                hi32(e), lo32(e), hi32(a), lo32(a));
}

void braid__ctx_switch(braid__ctx *from, braid__ctx *to)
{
    if (swapcontext(&from->uc, &to->uc) != 0)
        abort();
}

#endif
