/*
 * common.c - futex wrappers and the panic path.
 */
#include "common.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int braid__futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline >= 0) {
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
    long r = syscall(SYS_futex, (uint32_t *)w,
                     FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, tsp, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    return r < 0 ? -errno : 0;
}

void braid__futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n,
            NULL, NULL, 0);
}

bool braid__asym;

void braid__asym_init(void)
{
#ifndef BRAID_TSAN
    static _Atomic int done;
    if (atomic_exchange(&done, 1)) return;
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0, 0) == 0)
        braid__asym = true;
#endif
}

void braid__asym_heavy(void)
{
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        braid__panic("membarrier failed after registration: errno %d", errno);
}

void braid__panic(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    /* write(2) is async-signal-safe: panic also runs in the SIGSEGV handler */
    ssize_t w = write(2, "braid: ", 7);
    w = write(2, buf, (size_t)n);
    (void)w;
    abort();
}

int braid__os_yield(void)
{
    return sched_yield();
}
