/*
 * common.c - futex wrappers, line-aligned allocation and the panic path.
 */
#include "common.h"

#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void *braid__zalloc_lines(size_t size)
{
    void *p;
    size = (size + BRAID_CACHELINE - 1) & ~(size_t)(BRAID_CACHELINE - 1);
    if (posix_memalign(&p, BRAID_CACHELINE, size)) return NULL;
    return memset(p, 0, size);
}

/* A spinlock's holder is running on another CPU and nearly done, so spin
   first; after that it is probably preempted: yield, then sleep.  The
   sleep is what counts when we outrank the holder.  The I/O thread runs
   at a better nice value (poller.c), and a heavier task's sched_yield
   under EEVDF moves its deadline by a fraction of a slice, so the kernel
   picks it again and again while the worker it preempted holds the lock:
   timers_expire spun 1-5 ms at a time on a timer heap's lock in bench
   sleep, whose p99 lateness was 3-5 ms.  A sleep leaves the run queue
   for real; it starts at 10 us and doubles to 160 us. */
void braid__spin_lock_slow(braid__spin *l)
{
    int saved = errno;
    unsigned n = 0;
    long ns = 10000;
    do {
        while (ld_relaxed(&l->v)) {
            if (++n % BRAID__SPIN_YIELD) {
                braid__cpu_relax();
            } else if (n < 4 * BRAID__SPIN_YIELD) {
                sched_yield();
            } else {
                struct timespec ts = { 0, ns };
                nanosleep(&ts, NULL);
                if (ns < 160000) ns *= 2;
            }
        }
    } while (atomic_exchange_explicit(&l->v, 1, memory_order_acquire));
    errno = saved;
}
