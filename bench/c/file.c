/*
 * file: random 4 KiB reads with braid_pread from COROS (64) coroutines
 * over a large file (bench/run makes a 1 GiB one of random bytes):
 * READS (262,144) reads, 1 GiB in all, of 4 KiB-aligned blocks chosen by
 * splitmix64(read index), pulled from a shared counter.  Reports seconds
 * and MB/s (10^6 bytes); sum= is a checksum of the first 8 bytes of every
 * block read (order-independent, the same in the twins).  check=fail on a
 * short read or an error.  The file sits in the page cache (bench/run just
 * wrote it), so this measures braid's file path, not the disk.  Run it
 * with BRAID_IO_URING=0 for the thread-pool path.
 *
 *   file [-w WORKERS] PATH [READS [COROS]]
 *
 * Twins: bench/go/file (64 goroutines, os.File.ReadAt) and bench/c/
 * file_plain (one thread, plain pread).
 */
#include "bench.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define BLOCK 4096

struct file_job {
    int fd;
    long reads, coros;
    uint64_t nblocks;
    int64_t ns;                       /* time from first spawn to last read */
    atomic_long next;                 /* next read index to take */
    atomic_ullong sum;                /* checksum of all reads */
    atomic_long bad;                  /* short or failed reads */
    braid_wg done;
};

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static void reader(void *arg)
{
    struct file_job *j = arg;
    unsigned char buf[BLOCK];
    uint64_t sum = 0, first;
    long i;

    while ((i = atomic_fetch_add(&j->next, 1)) < j->reads) {
        off_t off = (off_t)(splitmix64((uint64_t)i) % j->nblocks) * BLOCK;
        ssize_t n = braid_pread(j->fd, buf, BLOCK, off, BRAID_FOREVER);

        if (n != BLOCK) {
            atomic_fetch_add(&j->bad, 1);
            continue;
        }
        memcpy(&first, buf, sizeof first);
        sum += first;
    }
    atomic_fetch_add(&j->sum, sum);
    braid_wg_done(&j->done);
}

static void bench_main(void *arg)
{
    struct file_job *j = arg;
    int64_t t0 = bench_now();

    BENCH_TRY(braid_wg_add(&j->done, j->coros));
    for (long c = 0; c < j->coros; c++)
        BENCH_TRY(braid_go(reader, j));
    BENCH_TRY(braid_wg_wait(&j->done, BRAID_FOREVER));
    j->ns = bench_now() - t0;
}

int main(int argc, char **argv)
{
    static struct file_job j = { .done = BRAID_WG_INIT };
    unsigned workers;
    int i0 = bench_args(argc, argv, &workers);
    struct stat st;
    int ok;

    if (i0 >= argc) {
        fprintf(stderr, "usage: file [-w WORKERS] PATH [READS [COROS]]\n");
        return 2;
    }
    j.fd = open(argv[i0], O_RDONLY | O_CLOEXEC);
    if (j.fd < 0 || fstat(j.fd, &st) < 0 || st.st_size < BLOCK) {
        perror(argv[i0]);
        return 2;
    }
    j.reads = bench_arg_long(argc, argv, i0 + 1, 262144);
    j.coros = bench_arg_long(argc, argv, i0 + 2, 64);
    j.nblocks = (uint64_t)(st.st_size / BLOCK);
    if (j.reads < 1 || j.coros < 1)
        return 2;
    bench_run(workers, bench_main, &j);
    ok = atomic_load(&j.bad) == 0 && atomic_load(&j.next) >= j.reads &&
         j.ns > 0;
    printf("file sec=%.3f mb_per_sec=%.1f reads=%ld block=%d sum=%016llx "
           "coros=%ld workers=%u check=%s\n", bench_sec(j.ns),
           (double)j.reads * BLOCK / 1e6 / bench_sec(j.ns), j.reads, BLOCK,
           (unsigned long long)atomic_load(&j.sum), j.coros, workers,
           bench_check_str(ok));
    close(j.fd);
    return ok ? 0 : 1;
}
