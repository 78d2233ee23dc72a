/*
 * check_context.c - white-box tests of the register switch (context.h)
 * alone: no scheduler, no runtime.  Links runtime/context.c plus
 * context_<arch>.S, or runtime/context_ucontext.c.
 *
 * Each test runs a single coroutine ("co") against the test's own thread
 * context ("main") on a 64 KiB mmap'd stack.  Check forks every test, so
 * the file-scope state below is fresh in each.
 */
#define _GNU_SOURCE 1

#include <check.h>
#include <execinfo.h>
#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../runtime/context.h"

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#define STACK_SIZE (64 * 1024)

static braid__ctx main_ctx, co_ctx;

static void *stack_new(void)
{
    void *p = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

static void stack_free(void *p)
{
    munmap(p, STACK_SIZE);
}

static void to_main(void)
{
    braid__ctx_switch(&co_ctx, &main_ctx);
}

static void to_co(void)
{
    braid__ctx_switch(&main_ctx, &co_ctx);
}

/* An entry's last act: hand control back for good. */
__attribute__((noreturn)) static void finish(void)
{
    to_main();
    abort();                    /* resumed after finishing */
}

/* ---- (a) ping-pong ---------------------------------------------------- */

static long counter;

static void pingpong_entry(void *arg)
{
    (void)arg;
    for (;;) {
        counter++;
        to_main();
    }
}

START_TEST(test_pingpong)
{
    void *stk = stack_new();
    long i, bad = 0;

    braid__ctx_make(&co_ctx, stk, STACK_SIZE, pingpong_entry, NULL);
    for (i = 0; i < 1000000; i++) {
        to_co();
        bad += counter != i + 1;
    }
    ck_assert_int_eq(counter, 1000000);
    ck_assert_int_eq(bad, 0);
    stack_free(stk);
}
END_TEST

/* ---- (b) callee-saved registers --------------------------------------- */

/*
 * switch_regs loads every callee-saved register from in[], switches, and
 * stores the same registers into out[] when the context is resumed, all in
 * one asm block, so nothing the compiler does can hide a register the
 * switch fails to restore.
 */
#if defined(__x86_64__)
enum { NREGS = 6 };             /* rbx rbp r12 r13 r14 r15 */

static void switch_regs(braid__ctx *from, braid__ctx *to,
                        const uint64_t *in, uint64_t *out)
{
    __asm__ __volatile__(
        "movq %%rsp, %%rax\n\t"
        "leaq -128(%%rsp), %%rsp\n\t"   /* step over the red zone */
        "andq $-16, %%rsp\n\t"
        "pushq %%rax\n\t"               /* caller's rsp */
        "pushq %%rbp\n\t"
        "pushq %%rdx\n\t"               /* out */
        "pushq %%rdx\n\t"               /* keeps rsp 16-byte aligned */
        "movq 0(%%rcx), %%rbx\n\t"
        "movq 8(%%rcx), %%rbp\n\t"
        "movq 16(%%rcx), %%r12\n\t"
        "movq 24(%%rcx), %%r13\n\t"
        "movq 32(%%rcx), %%r14\n\t"
        "movq 40(%%rcx), %%r15\n\t"
        "call braid__ctx_switch@PLT\n\t"
        "movq (%%rsp), %%rdx\n\t"
        "movq %%rbx, 0(%%rdx)\n\t"
        "movq %%rbp, 8(%%rdx)\n\t"
        "movq %%r12, 16(%%rdx)\n\t"
        "movq %%r13, 24(%%rdx)\n\t"
        "movq %%r14, 32(%%rdx)\n\t"
        "movq %%r15, 40(%%rdx)\n\t"
        "addq $16, %%rsp\n\t"
        "popq %%rbp\n\t"
        "popq %%rsp\n\t"
        : "+D"(from), "+S"(to), "+c"(in), "+d"(out)
        :
        : "rax", "rbx", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
          "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
          "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
          "xmm14", "xmm15", "memory", "cc");
}
#define HAVE_SWITCH_REGS 1
#elif defined(__aarch64__)
enum { NREGS = 19 };            /* x19..x29, then d8..d15 as bits */

static void switch_regs(braid__ctx *from, braid__ctx *to,
                        const uint64_t *in, uint64_t *out)
{
    register braid__ctx *x0 __asm__("x0") = from;
    register braid__ctx *x1 __asm__("x1") = to;
    register const uint64_t *x2 __asm__("x2") = in;
    register uint64_t *x3 __asm__("x3") = out;

    __asm__ __volatile__(
        "stp x29, x30, [sp, #-32]!\n\t"
        "str x3, [sp, #16]\n\t"
        "ldp x19, x20, [x2, #0]\n\t"
        "ldp x21, x22, [x2, #16]\n\t"
        "ldp x23, x24, [x2, #32]\n\t"
        "ldp x25, x26, [x2, #48]\n\t"
        "ldp x27, x28, [x2, #64]\n\t"
        "ldr x29, [x2, #80]\n\t"
        "ldp d8, d9, [x2, #88]\n\t"
        "ldp d10, d11, [x2, #104]\n\t"
        "ldp d12, d13, [x2, #120]\n\t"
        "ldp d14, d15, [x2, #136]\n\t"
        "bl braid__ctx_switch\n\t"
        "ldr x3, [sp, #16]\n\t"
        "stp x19, x20, [x3, #0]\n\t"
        "stp x21, x22, [x3, #16]\n\t"
        "stp x23, x24, [x3, #32]\n\t"
        "stp x25, x26, [x3, #48]\n\t"
        "stp x27, x28, [x3, #64]\n\t"
        "str x29, [x3, #80]\n\t"
        "stp d8, d9, [x3, #88]\n\t"
        "stp d10, d11, [x3, #104]\n\t"
        "stp d12, d13, [x3, #120]\n\t"
        "stp d14, d15, [x3, #136]\n\t"
        "ldp x29, x30, [sp], #32\n\t"
        : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
        :
        : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
          "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22",
          "x23", "x24", "x25", "x26", "x27", "x28", "x30",
          "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
          "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18",
          "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",
          "v28", "v29", "v30", "v31", "memory", "cc");
}
#define HAVE_SWITCH_REGS 1
#endif

#ifdef HAVE_SWITCH_REGS
static uint64_t co_in[NREGS], co_out[NREGS];

static void fill(uint64_t *v, uint64_t seed)
{
    for (int i = 0; i < NREGS; i++)
        v[i] = seed * (uint64_t)(i + 1) ^ 0x0123456789abcdefull;
}

static void regs_entry(void *arg)
{
    (void)arg;
    switch_regs(&co_ctx, &main_ctx, co_in, co_out);
    finish();
}

static void assert_regs_eq(const uint64_t *got, const uint64_t *want)
{
    for (int i = 0; i < NREGS; i++)
        ck_assert_msg(got[i] == want[i], "register %d: %#llx != %#llx", i,
                      (unsigned long long)got[i],
                      (unsigned long long)want[i]);
}

START_TEST(test_callee_saved)
{
    void *stk = stack_new();
    uint64_t a[NREGS], b[NREGS], out[NREGS];

    fill(a, 0x1111111111111111ull);
    fill(co_in, 0x2222222222222222ull);
    fill(b, 0x3333333333333333ull);
    braid__ctx_make(&co_ctx, stk, STACK_SIZE, regs_entry, NULL);

    /* main loads a, co loads co_in and switches back: main sees a. */
    switch_regs(&main_ctx, &co_ctx, a, out);
    assert_regs_eq(out, a);
    /* main loads b and resumes co: co sees co_in, main then sees b. */
    switch_regs(&main_ctx, &co_ctx, b, out);
    assert_regs_eq(co_out, co_in);
    assert_regs_eq(out, b);
    stack_free(stk);
}
END_TEST
#else
START_TEST(test_callee_saved)
{
    /* No register-level test for this architecture. */
}
END_TEST
#endif

/* ---- (c) floating-point control state --------------------------------- */

#if defined(__x86_64__)
#define FTZ_BIT 0x8000u                 /* MXCSR.FZ */
static unsigned long fpctl_get(void) { return _mm_getcsr(); }
static void fpctl_set(unsigned long v) { _mm_setcsr((unsigned)v); }

/* Rounding mode as the x87 CW and MXCSR see it; they must agree. */
static int hw_rounding(void)
{
    uint16_t cw;

    __asm__ __volatile__("fnstcw %0" : "=m"(cw));
    ck_assert_int_eq((cw >> 10) & 3, (_mm_getcsr() >> 13) & 3);
    return fegetround();
}
#elif defined(__aarch64__)
#define FTZ_BIT (1ul << 24)             /* FPCR.FZ */
static unsigned long fpctl_get(void)
{
    uint64_t v;

    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
}
static void fpctl_set(unsigned long v)
{
    __asm__ __volatile__("msr fpcr, %0" : : "r"((uint64_t)v));
}
static int hw_rounding(void) { return fegetround(); }
#else
#define FTZ_BIT 0ul
static unsigned long fpctl_get(void) { return 0; }
static void fpctl_set(unsigned long v) { (void)v; }
static int hw_rounding(void) { return fegetround(); }
#endif

static int co_round_start, co_round_later;
static unsigned long co_ftz_later;

static void fp_entry(void *arg)
{
    (void)arg;
    co_round_start = hw_rounding();
    fesetround(FE_UPWARD);
    fpctl_set(fpctl_get() | FTZ_BIT);
    to_main();
    co_round_later = hw_rounding();
    co_ftz_later = fpctl_get() & FTZ_BIT;
    finish();
}

START_TEST(test_fp_control)
{
    void *stk = stack_new();

    /* A new context starts with the FP state of its maker. */
    ck_assert_int_eq(fesetround(FE_TOWARDZERO), 0);
    braid__ctx_make(&co_ctx, stk, STACK_SIZE, fp_entry, NULL);
    ck_assert_int_eq(fesetround(FE_TONEAREST), 0);
    ck_assert_uint_eq(fpctl_get() & FTZ_BIT, 0);

    to_co();
    ck_assert_int_eq(co_round_start, FE_TOWARDZERO);
    /* co changed its own mode only. */
    ck_assert_int_eq(hw_rounding(), FE_TONEAREST);
    ck_assert_uint_eq(fpctl_get() & FTZ_BIT, 0);

    to_co();
    ck_assert_int_eq(co_round_later, FE_UPWARD);
    /* valgrind does not emulate MXCSR's flush-to-zero bit: it reads 0 */
    if (!RUNNING_ON_VALGRIND)
        ck_assert_uint_eq(co_ftz_later, FTZ_BIT);
    ck_assert_int_eq(hw_rounding(), FE_TONEAREST);
    stack_free(stk);
}
END_TEST

/* ---- (d) doubles live across a switch --------------------------------- */

static volatile double seed_d = 1.0000001;

/* n steps of a recurrence over several doubles; with switch_each, every
   step switches to co and back while all of them are live. */
static double recur(int n, int switch_each)
{
    double a = seed_d, b = a * 3.25, c = a / 7.0, d = a + 0.5;
    double e = b - c, f = d * d, g = e + 1e-3, h = f - b;

    for (int i = 0; i < n; i++) {
        if (switch_each)
            to_co();
        a = a * 1.0000003 + b;  b = b * 0.9999997 - c;
        c = c + d * 1e-6;       d = d - e * 1e-7;
        e = e * f * 1e-9 + g;   f = f + h * 1e-8;
        g = g - a * 1e-10;      h = h + a * 1e-11;
    }
    return a + b + c + d + e + f + g + h;
}

/* co keeps its own doubles live across its switches. */
static void dbl_entry(void *arg)
{
    double x = *(double *)arg, y = x * 2.5, z = y - 1.0, w = z * x;

    for (;;) {
        x = x * 1.5 + 1.0;  y = y * 0.5 - x;
        z = z + y * x;      w = w - z;
        to_main();
        *(double *)arg = x + y + z + w;
    }
}

START_TEST(test_double_live)
{
    void *stk = stack_new();
    double co_arg = 0.75, want, got;

    want = recur(1000, 0);
    braid__ctx_make(&co_ctx, stk, STACK_SIZE, dbl_entry, &co_arg);
    got = recur(1000, 1);
    ck_assert_msg(memcmp(&got, &want, sizeof got) == 0, "%a != %a", got,
                  want);
    stack_free(stk);
}
END_TEST

/* ---- (e) stack alignment and the terminating frame -------------------- */

static volatile uintptr_t entry_frame;
static void *entry_caller_fp;
static int entry_depth;
static char fmt_buf[64];

__attribute__((noinline)) static void align_entry(void *arg)
{
    void *bt[32];
    long double ld = *(volatile double *)arg;

    entry_frame = (uintptr_t)__builtin_frame_address(0);
    entry_caller_fp = *(void **)__builtin_frame_address(0);
    /* Varargs with doubles: glibc's prologue uses aligned SSE stores. */
    snprintf(fmt_buf, sizeof fmt_buf, "%.1f %.1Lf", 1.5, ld);
    entry_depth = backtrace(bt, 32);
    finish();
}

START_TEST(test_alignment)
{
    void *stk = stack_new();
    double arg = 2.5;

    braid__ctx_make(&co_ctx, stk, STACK_SIZE, align_entry, &arg);
    to_co();
    ck_assert_uint_eq(entry_frame & 15, 0);
    ck_assert_str_eq(fmt_buf, "1.5 2.5");
    /* The unwinder stops at the bottom of the coroutine stack: entry and
       the trampoline (ucontext: glibc's start frames; sanitizers may add
       one), not a walk into garbage up to the buffer size. */
    ck_assert_int_ge(entry_depth, 1);
    ck_assert_int_le(entry_depth, 6);
#if !defined(BRAID_CONTEXT_UCONTEXT)
    /* The frame-pointer chain ends at entry's caller. */
    ck_assert_ptr_null(entry_caller_fp);
#endif
    stack_free(stk);
}
END_TEST

/* ---- (f) re-making a context on the same stack ------------------------ */

static int runs;

/* Recurses n levels of 512-byte frames; returns first + n(n+1)/2. */
__attribute__((noinline)) static unsigned deep(unsigned first, unsigned n)
{
    volatile unsigned char buf[512];

    buf[0] = (unsigned char)n;
    buf[511] = (unsigned char)first;
    return n ? deep(first, n - 1) + buf[0] : buf[511];
}

static void remake_entry(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;

    /* Touch about 20 KiB of stack, then report. */
    ck_assert_uint_eq(deep(id, 40), id + 40 * 41 / 2);
    runs += (int)id;
    finish();
}

START_TEST(test_remake)
{
    void *stk = stack_new();

    for (intptr_t i = 1; i <= 3; i++) {
        braid__ctx_make(&co_ctx, stk, STACK_SIZE, remake_entry, (void *)i);
        to_co();
        ck_assert_int_eq(runs, (int)(i * (i + 1) / 2));
    }
    stack_free(stk);
}
END_TEST

/* ---- runner ------------------------------------------------------------ */

/* One TCase per behaviour, each with its own timeout (seconds). */
#define ADD_CASE(s, test, secs) do { \
        TCase *tc_ = tcase_create(#test); \
        tcase_set_timeout(tc_, (secs)); \
        tcase_add_test(tc_, test); \
        suite_add_tcase((s), tc_); \
    } while (0)

static Suite *context_suite(void)
{
    Suite *s = suite_create("context");

    ADD_CASE(s, test_pingpong, 60);
    ADD_CASE(s, test_callee_saved, 10);
    ADD_CASE(s, test_fp_control, 10);
    ADD_CASE(s, test_double_live, 10);
    ADD_CASE(s, test_alignment, 10);
    ADD_CASE(s, test_remake, 10);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(context_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
