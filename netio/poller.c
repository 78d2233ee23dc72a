/*
 * poller.c - the I/O thread.
 *
 * One thread per running runtime blocks in epoll_wait (epoll_pwait2 with a
 * timespec where the kernel has it, for sub-millisecond timers) with the
 * earliest timer deadline (or the scheduler monitor's next call) as its
 * timeout.  Each loop: wait; expire timers; turn readiness into completed
 * waiters; drain file submissions and reap io_uring completions; ready
 * everything woken in one batch; run braid__sched_monitor.
 *
 * Registrations are edge-triggered (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLPRI|
 * EPOLLET; EPOLLPRI for the drained-read rule of net.c),
 * one per fd, added by the first wait on the fd and removed by braid_close.
 * epoll data = gen << 32 | fd, so an event of an older generation is
 * dropped (fdtab.c).  The eventfd `efd` (level-triggered, data KICK_TAG)
 * wakes the thread early; io_uring completions also signal it.
 *
 * Kick protocol (P.sleep_until, seq_cst, Dekker style):
 *   I/O thread: sleep_until = SLEEP_UNKNOWN; fence; next = timers_next();
 *               CAS(SLEEP_UNKNOWN -> next); epoll_wait(until next);
 *               on return sleep_until = AWAKE.
 *   kicker:     (timer heap updated); fence; s = sleep_until;
 *               when < s: CAS(s -> AWAKE) and, if won, write efd.
 * Either the thread's timers_next() sees the new deadline, or the kicker
 * sees SLEEP_UNKNOWN or a later deadline and writes the eventfd.  While
 * the thread is awake (AWAKE = INT64_MIN) nobody kicks: it re-reads the
 * timers before it sleeps.  A won CAS to AWAKE makes later kickers quiet.
 * P.woken coalesces braid__poller_wake (file submissions): set by the
 * first waker (exchange), cleared by the thread after it drained efd and
 * before it drains the submission list.
 *
 * Sockets live in their own epoll set, netfd, which sits in the thread's
 * set epfd (data NET_TAG) only while the thread watches it.  Workers take
 * readiness from netfd themselves whenever they run out of work
 * (braid__poller_poll, as Go's findrunnable polls), so under load the
 * thread leaves netfd to them: a wake-up of this thread per event batch
 * took a CPU from a worker and two context switches each time (echo:
 * 59,000 wake-ups a second, one per request).  The thread watches netfd
 * (EPOLL_CTL_MOD to EPOLLIN) only when every worker is parked (the last
 * worker to park kicks it: braid__poller_idle) or when no worker has
 * polled for POLL_STALE_NS (workers busy for that long: it polls for
 * them); otherwise it disarms netfd (events 0) and wakes after
 * POLL_STALE_NS at the latest to look again.  A ready socket thus waits
 * at most POLL_STALE_NS while every worker is busy and none polls.
 *
 * Registration lock P.reg (rwlock; entry lk < P.reg): registering and
 * writing efd take it shared and check P.epoch / P.efd; stop takes it
 * exclusive to set P.epoch = 0 and to close the fds, so no registration or
 * kick reaches an fd number being closed (or reused).
 */
#include "../runtime/common.h"
#include "poller.h"
#include "netio.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KICK_TAG UINT64_MAX
#define NET_TAG (UINT64_MAX - 1)
#define POLL_STALE_NS 1000000   /* no worker poll for this long: watch */
#define AWAKE INT64_MIN
#define SLEEP_UNKNOWN INT64_MAX
#define MAX_EVENTS 256

_Atomic int braid__netio_down;

static struct {
    int epfd, efd, netfd;           /* written under reg exclusive */
    _Atomic int64_t last_poll;      /* when a worker last polled netfd */
    bool watching;                  /* I/O thread: netfd armed in epfd */
    pthread_t thread;
    bool running;                   /* start/stop caller only */
    pthread_rwlock_t reg;
    _Atomic uint32_t epoch;         /* written under reg exclusive */
    uint32_t last_epoch;            /* start/stop caller only */
    _Atomic int64_t sleep_until;    /* see the kick protocol */
    _Atomic int woken;              /* efd write pending (wake) */
    _Atomic int stop;
    int pwait2;                     /* I/O thread: 1 try, 0 unavailable */
} P = {
    .epfd = -1, .efd = -1, .netfd = -1, .reg = PTHREAD_RWLOCK_INITIALIZER,
    .sleep_until = AWAKE, .pwait2 = 1,
};

uint32_t braid__poller_epoch(void) { return ld_acquire(&P.epoch); }

long braid__poller_register(int fd, uint32_t gen)
{
    long r = 0;
    pthread_rwlock_rdlock(&P.reg);
    uint32_t epoch = ld_relaxed(&P.epoch);
    if (epoch) {
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
            .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd,
        };
        r = epoll_ctl(P.netfd, EPOLL_CTL_ADD, fd, &ev);
        if (r < 0 && errno == EEXIST)   /* left by an older generation */
            r = epoll_ctl(P.netfd, EPOLL_CTL_MOD, fd, &ev);
        r = r < 0 ? -errno : (long)epoch;
    }
    pthread_rwlock_unlock(&P.reg);
    return r;
}

void braid__poller_unregister(int fd, uint32_t epoch)
{
    pthread_rwlock_rdlock(&P.reg);
    if (epoch == ld_relaxed(&P.epoch))
        epoll_ctl(P.netfd, EPOLL_CTL_DEL, fd, NULL);
    pthread_rwlock_unlock(&P.reg);
}

/* Signal the eventfd.  Shared P.reg: stop closes efd under it exclusive,
   so a late kicker never writes to a closed (or reused) fd number. */
static void efd_write(void)
{
    uint64_t one = 1;
    pthread_rwlock_rdlock(&P.reg);
    if (P.efd >= 0)
        while (write(P.efd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    pthread_rwlock_unlock(&P.reg);
}

void braid__poller_kick(int64_t when)
{
    atomic_thread_fence(memory_order_seq_cst);  /* pairs with loop_wait */
    int64_t s = atomic_load(&P.sleep_until);
    while (when < s)
        if (atomic_compare_exchange_weak(&P.sleep_until, &s, AWAKE)) {
            efd_write();
            return;
        }
}

void braid__poller_wake(void)
{
    if (!atomic_exchange(&P.woken, 1))
        efd_write();
}

void braid__poller_idle(void)
{
    braid__poller_wake();
}

/* epoll_pwait2 on fd for at most ns (> 0); -1 with errno ENOSYS where the
   kernel (or a seccomp filter) lacks it. */
static int pwait_ns(int fd, struct epoll_event *ev, int max, int64_t ns)
{
#ifdef SYS_epoll_pwait2
    struct timespec ts = { ns / 1000000000, ns % 1000000000 };
    int n = (int)syscall(SYS_epoll_pwait2, fd, ev, max, &ts, NULL, 0);
    if (n < 0 && errno == EPERM)
        errno = ENOSYS;
    return n;
#else
    (void)fd, (void)ev, (void)max, (void)ns;
    errno = ENOSYS;
    return -1;
#endif
}

/* Workers nap with epoll_pwait2 until it fails once (a kernel without it,
   or a seccomp filter); env BRAID_NAP_PWAIT2=0 starts a run without it,
   so the fallback (a futex sleep, sched.c poll_io) can be tested. */
static _Atomic int nap_pwait2 = 1;

/* Take what netfd has ready (at most max events) into b, waiting up to
   wait_ns for the first (0: not at all).  -ENOSYS: it could not wait here
   (no epoll_pwait2, or no netfd: the poller is stopping); nothing taken,
   and the caller sleeps another way. */
static int net_take_wait(struct epoll_event *ev, int max, braid__batch *b,
                         int64_t wait_ns)
{
    if (wait_ns > 0 && !ld_relaxed(&nap_pwait2))
        return -ENOSYS;
    pthread_rwlock_rdlock(&P.reg);      /* stop closes netfd exclusively */
    bool open = ld_relaxed(&P.epoch) && P.netfd >= 0;
    int n = !open ? 0 : wait_ns > 0 ? pwait_ns(P.netfd, ev, max, wait_ns)
                                    : epoll_wait(P.netfd, ev, max, 0);
    bool nosys = open && n < 0 && errno == ENOSYS;
    pthread_rwlock_unlock(&P.reg);
    if (nosys)
        st_relaxed(&nap_pwait2, 0);     /* the kernel lacks it */
    if (wait_ns > 0 && (!open || nosys))
        return -ENOSYS;
    for (int i = 0; i < n; i++) {
        uint64_t d = ev[i].data.u64;
        braid__fd_ready((int)(uint32_t)d, (uint32_t)(d >> 32),
                        ev[i].events, b);
    }
    return n < 0 ? 0 : n;
}

static int net_take(struct epoll_event *ev, int max, braid__batch *b)
{
    return net_take_wait(ev, max, b, 0);
}

int braid__poller_poll(braid__batch *b, int64_t wait_ns)
{
    struct epoll_event ev[64];
    st_relaxed(&P.last_poll, braid_now());
    int n = net_take_wait(ev, 64, b, wait_ns);
    if (wait_ns > 0)        /* it polled until now */
        st_relaxed(&P.last_poll, braid_now());
    return n;
}

/* I/O thread: arm or disarm netfd in epfd (see the top of the file). */
static void watch(bool on)
{
    if (on == P.watching) return;
    struct epoll_event ev = { .events = on ? EPOLLIN : 0,
                              .data.u64 = NET_TAG };
    if (epoll_ctl(P.epfd, EPOLL_CTL_MOD, P.netfd, &ev) == 0)
        P.watching = on;
}

/* epoll_wait until next (absolute ns; -1 none).  Returns the event count
   (0 on timeout or EINTR). */
static int epoll_until(struct epoll_event *ev, int64_t next)
{
    int64_t rel = next < 0 ? -1 : next - braid_now();
    if (next >= 0 && rel < 0)
        rel = 0;
    int n = -1;
#ifdef SYS_epoll_pwait2
    if (P.pwait2) {
        struct timespec ts = { rel / 1000000000, rel % 1000000000 };
        n = (int)syscall(SYS_epoll_pwait2, P.epfd, ev, MAX_EVENTS,
                         rel < 0 ? NULL : &ts, NULL, 0);
        if (n < 0 && (errno == ENOSYS || errno == EPERM))
            P.pwait2 = 0;               /* old kernel or filtered */
        else
            return n < 0 ? 0 : n;
    }
#endif
    int ms = rel < 0 ? -1 : (int)((rel + 999999) / 1000000);   /* round up */
    if (rel > (int64_t)INT_MAX * 1000000)
        ms = INT_MAX;
    n = epoll_wait(P.epfd, ev, MAX_EVENTS, ms);
    return n < 0 ? 0 : n;
}

/* Timer coalescing.  Every wake-up of this thread takes a CPU from a
   worker (it runs at a better nice value), and with dense deadlines (10,000
   sleepers over 100 ms: 100 per ms) waking for each one kept a worker off
   its CPU for whole scheduler slices, and a few woken coroutines queued on
   it waited 5-10 ms.  So when a loop fires several timers, the next sleep
   may run past the earliest deadline by a window that doubles up to
   COALESCE_MAX_NS; loops that fire at most one shrink it back to 0, so a
   lone sleeper wakes on time.  Deadlines never fire early. */
#define COALESCE_MAX_NS 250000
static int64_t coalesce_ns;             /* I/O thread only */

static void coalesce_after(int fired)
{
    if (fired >= 2)
        coalesce_ns = coalesce_ns * 2 + 10000 > COALESCE_MAX_NS
                    ? COALESCE_MAX_NS : coalesce_ns * 2 + 10000;
    else
        coalesce_ns /= 2;
}

/* Sleep until the earliest timer (plus the coalescing window), or mon
   (the scheduler monitor's next call, -1 none), or an event. */
static int loop_wait(struct epoll_event *ev, int64_t mon)
{
    atomic_store(&P.sleep_until, SLEEP_UNKNOWN);
    atomic_thread_fence(memory_order_seq_cst);  /* pairs with kick */
    /* The monitor said "all idle, no need to come back" before this fence;
       a worker woken since then kicked while we were AWAKE, and that kick
       was quiet (it counts on us re-reading the state here).  So look at
       the workers again: one is busy, the monitor runs again soon.  (It
       left a worker blocked in a system call undrained for as long as the
       call took: 500 ms in check_runtime under TSan.)  A worker that
       wakes after this load sees SLEEP_UNKNOWN and kicks for real. */
    if (mon < 0 && !braid__sched_all_idle())
        mon = braid_now() + POLL_STALE_NS;
    int64_t next = braid__timers_next();
    if (next >= 0)
        next += coalesce_ns;
    int64_t pool = braid__pool_due();
    if (pool >= 0 && (next < 0 || pool < next))
        next = pool;
    if (mon >= 0 && (next < 0 || mon < next))
        next = mon;
    /* Watch the sockets when no worker will: all parked, or none polled
       for POLL_STALE_NS; else look again when that would be so. */
    int64_t stale = ld_relaxed(&P.last_poll) + POLL_STALE_NS;
    bool on = braid__sched_all_idle() || braid_now() >= stale;
    watch(on);
    if (!P.watching && (next < 0 || stale < next))
        next = stale;
    int64_t exp = SLEEP_UNKNOWN;
    atomic_compare_exchange_strong(&P.sleep_until, &exp,
                                   next < 0 ? SLEEP_UNKNOWN : next);
    /* Lost the CAS: a kicker wrote efd, so the wait returns at once. */
    int n = epoll_until(ev, next);
    atomic_store(&P.sleep_until, AWAKE);
    braid__stat_poll();
    return n;
}

static void drain_efd(void)
{
    uint64_t v;
    while (read(P.efd, &v, sizeof v) > 0 || errno == EINTR)
        ;
    atomic_store(&P.woken, 0);      /* before the submission list is read */
}

/* The I/O thread sleeps nearly always and must run the moment a deadline
   or an event is due, even while every worker is busy: ask the kernel for
   a better nice value (allowed for root or with CAP_SYS_NICE; elsewhere it
   fails and nothing changes). */
static void boost(void)
{
    /* Deadlines are the thread's job: no timer slack (50 us by default)
       on its epoll timeouts. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (errno == 0)
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), cur - 10);
}

static void *loop(void *arg)
{
    pthread_setname_np(pthread_self(), "braid-io");
    boost();
    coalesce_ns = 0;
    struct epoll_event ev[MAX_EVENTS], ev2[MAX_EVENTS];
    int64_t mon = -1;
    while (!ld_acquire(&P.stop)) {
        int n = loop_wait(ev, mon);
        braid__batch b = BRAID__BATCH_INIT;
        coalesce_after(braid__timers_expire(braid_now(), &b));
        for (int i = 0; i < n; i++) {
            uint64_t d = ev[i].data.u64;
            if (d == KICK_TAG)
                drain_efd();
            else if (d == NET_TAG)
                net_take(ev2, MAX_EVENTS, &b);
        }
        braid__file_poll(&b);
        braid__pool_grow_late(braid_now());
        if (b.n)
            braid__ready_batch(&b);
        mon = braid__sched_monitor(braid_now());
    }
    return NULL;
}

/* Start the thread with every signal blocked: signals go to the
   application's threads, and EINTR never disturbs the loop. */
static int spawn(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&P.thread, NULL, loop, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -r;
}

static void close_fds(void)
{
    pthread_rwlock_wrlock(&P.reg);
    if (P.epfd >= 0)
        close(P.epfd);
    if (P.efd >= 0)
        close(P.efd);
    if (P.netfd >= 0)
        close(P.netfd);
    P.epfd = P.efd = P.netfd = -1;
    pthread_rwlock_unlock(&P.reg);
}

static void set_epoch(uint32_t e)
{
    pthread_rwlock_wrlock(&P.reg);
    st_release(&P.epoch, e);
    pthread_rwlock_unlock(&P.reg);
}

int braid__poller_start(void)
{
    if (P.running)
        return -EBUSY;
    const char *np = getenv("BRAID_NAP_PWAIT2");
    st_relaxed(&nap_pwait2, !(np && atoi(np) == 0));
    P.epfd = epoll_create1(EPOLL_CLOEXEC);
    P.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    P.netfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = KICK_TAG };
    struct epoll_event nev = { .events = EPOLLIN, .data.u64 = NET_TAG };
    P.watching = true;
    st_relaxed(&P.last_poll, 0);
    if (P.epfd < 0 || P.efd < 0 || P.netfd < 0 ||
        epoll_ctl(P.epfd, EPOLL_CTL_ADD, P.efd, &ev) < 0 ||
        epoll_ctl(P.epfd, EPOLL_CTL_ADD, P.netfd, &nev) < 0) {
        int err = -errno;
        close_fds();
        return err;
    }
    st_relaxed(&P.stop, 0);
    st_relaxed(&P.woken, 0);
    atomic_store(&P.sleep_until, AWAKE);
    atomic_store(&braid__netio_down, 0);
    braid__file_start(P.efd);
    if (++P.last_epoch == 0)
        P.last_epoch = 1;
    set_epoch(P.last_epoch);
    int r = spawn();
    if (r < 0) {
        set_epoch(0);
        braid__file_stop();
        close_fds();
        return r;
    }
    P.running = true;
    return 0;
}

void braid__poller_stop(void)
{
    if (!P.running)
        return;
    atomic_store(&braid__netio_down, 1);  /* coroutines are abandoned */
    set_epoch(0);                          /* no new registrations */
    st_release(&P.stop, 1);
    efd_write();
    pthread_join(P.thread, NULL);
    P.running = false;
    atomic_store(&P.sleep_until, AWAKE);
    braid__file_stop();
    braid__fd_wake_threads();
    close_fds();
}

void braid__netio_fini(void)
{
    braid__pool_fini();
}
