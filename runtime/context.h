/*
 * context.h - the register switch.
 *
 * braid__ctx_switch(from, to) saves the callee-saved registers, the stack
 * pointer and the floating-point control state (x86-64: MXCSR and the x87
 * control word; aarch64: FPCR) of the running context into *from and loads
 * those of *to.  It makes no system call.  The ucontext fallback
 * (--with-context=ucontext, or an unknown architecture) uses
 * swapcontext and does enter the kernel for the signal mask.
 *
 * braid__ctx_make prepares *c so that the first switch to it calls
 * entry(arg) on the stack [lo, lo + size); entry must never return.
 */
#ifndef BRAID_CONTEXT_H
#define BRAID_CONTEXT_H

#include <stddef.h>

#if defined(BRAID_CONTEXT_UCONTEXT) || \
    !(defined(__x86_64__) || defined(__aarch64__))
#ifndef BRAID_CONTEXT_UCONTEXT
#define BRAID_CONTEXT_UCONTEXT 1
#endif
#include <ucontext.h>
typedef struct braid__ctx { ucontext_t uc; } braid__ctx;
#else
typedef struct braid__ctx { void *sp; } braid__ctx;
#endif

void braid__ctx_make(braid__ctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg);
void braid__ctx_switch(braid__ctx *from, braid__ctx *to);

#endif
