/*
 * emulated.h - checks that know when they run under a user-mode emulator.
 *
 * `tools/dev ports` runs the suites of an aarch64 build under
 * qemu-user, through tools/qemu-wrap, which sets BRAID_TEST_EMULATED=1.
 * The emulator lives inside the tested process and does not do all the
 * kernel does (qemu 7.2, measured):
 *  - its own memory (translated code, page flags) grows the process's
 *    VmRSS as the test runs, so resident-memory bounds measure it too;
 *  - it returns 0 for madvise advice it ignores: MADV_GUARD_INSTALL
 *    installs no guard page, and an overflow runs on into the next slot;
 *  - it refuses RWF_NOWAIT with EOPNOTSUPP, so no read is served inline;
 *  - its own reservations count against RLIMIT_AS.
 * A check that depends on one of these calls skip_emulated(), which says
 * on stderr what it skips, and returns when it is true.  Time margins
 * grow there as under valgrind (emulated(): the emulator is 5-20x slower
 * than the machine, more while other suites run beside it).
 */
#ifndef BRAID_TEST_EMULATED_H
#define BRAID_TEST_EMULATED_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static inline bool emulated(void)
{
    const char *e = getenv("BRAID_TEST_EMULATED");
    return e && *e == '1';
}

static inline bool skip_emulated(const char *what)
{
    if (!emulated())
        return false;
    fprintf(stderr, "skipped under emulation: %s\n", what);
    return true;
}

#endif
