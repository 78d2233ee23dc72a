/*
 * context.c - braid__ctx_make for the assembly switches
 * (context_x86_64.S, context_aarch64.S).
 *
 * A fresh context is a saved frame, exactly as braid__ctx_switch leaves
 * one, written at the top of the new stack: its resume address is
 * braid__ctx_trampoline, entry and arg sit in callee-saved slots, the frame
 * pointer is 0 and the floating-point control slots hold the values of the
 * thread calling braid__ctx_make.  The first switch to the context pops
 * that frame and "returns" into the trampoline, which calls entry(arg).
 *
 * x86-64 (top = (lo + size) & ~15, sp = top - 80):
 *   sp+0  MXCSR | x87 CW << 32   sp+8 r15 = 0   sp+16 r14 = 0
 *   sp+24 r13 = arg   sp+32 r12 = entry   sp+40 rbx = 0   sp+48 rbp = 0
 *   sp+56 &braid__ctx_trampoline   sp+64, sp+72 = 0 (top - 16 .. top)
 *   The trampoline runs with rsp = top - 16, so entry starts with
 *   rsp = top - 24, i.e. (rsp + 8) % 16 == 0 as the ABI requires.
 * aarch64 (top = (lo + size) & ~15, sp = top - 176):
 *   sp+0 x19 = entry   sp+8 x20 = arg   x21..x29 = 0
 *   sp+88 x30 = &braid__ctx_trampoline   d8..d15 = 0   sp+160 FPCR
 *   The trampoline and entry start with sp = top, 16-byte aligned.
 *
 * The stack needs only this frame plus what entry uses; nothing is stored
 * below lo.  Re-making a context on a stack whose previous context will
 * never be resumed again is allowed.
 */
#include "context.h"

#if !defined(BRAID_CONTEXT_UCONTEXT)

#include <stdint.h>
#include <string.h>

#include "common.h"

/* Defined in context_<arch>.S; never called, only returned into. */
BRAID_HIDDEN void braid__ctx_trampoline(void);

static uintptr_t stack_top(void *lo, size_t size)
{
    return ((uintptr_t)lo + size) & ~(uintptr_t)15;
}

#if defined(__x86_64__)

enum { FRAME_WORDS = 10 };

/* Current MXCSR in the low 32 bits, x87 control word in bits 32..47. */
static uint64_t fp_control(void)
{
    uint32_t mxcsr;
    uint16_t cw;

    __asm__ __volatile__("stmxcsr %0" : "=m"(mxcsr));
    __asm__ __volatile__("fnstcw %0" : "=m"(cw));
    return mxcsr | (uint64_t)cw << 32;
}

static void fill_frame(uint64_t *f, void (*entry)(void *), void *arg)
{
    f[0] = fp_control();
    f[3] = (uintptr_t)arg;                      /* r13 */
    f[4] = (uintptr_t)entry;                    /* r12 */
    f[7] = (uintptr_t)braid__ctx_trampoline;    /* return address */
}

#elif defined(__aarch64__)

enum { FRAME_WORDS = 22 };

static uint64_t fp_control(void)
{
    uint64_t fpcr;

    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
}

static void fill_frame(uint64_t *f, void (*entry)(void *), void *arg)
{
    f[0] = (uintptr_t)entry;                    /* x19 */
    f[1] = (uintptr_t)arg;                      /* x20 */
    f[11] = (uintptr_t)braid__ctx_trampoline;   /* x30 */
    f[20] = fp_control();                       /* FPCR */
}

#else
#error "context.c: no assembly switch for this architecture"
#endif

/* Called by whoever owns the stack [lo, lo + size); the context must not
   be running.  size must exceed the frame (80 or 176 bytes) by what entry
   needs. */
void braid__ctx_make(braid__ctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg)
{
    uint64_t *f = (uint64_t *)stack_top(lo, size) - FRAME_WORDS;

    BRAID_ASSERT((uintptr_t)f > (uintptr_t)lo);
    memset(f, 0, FRAME_WORDS * sizeof *f);
    fill_frame(f, entry, arg);
    c->sp = f;
}

#endif
