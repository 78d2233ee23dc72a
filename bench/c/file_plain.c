/*
 * file_plain: the baseline of the "file" workload.  One thread, plain
 * pread(2), no braid (not linked to it): the same READS (262,144) 4 KiB
 * reads of the same blocks as bench/c/file.c, in index order.  Prints
 *
 *   file_plain sec=S mb_per_sec=M reads=N block=4096 sum=X check=ok
 *
 * sum= matches file's and the Go twin's for the same file.
 *
 *   file_plain [-w IGNORED] PATH [READS]
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

int main(int argc, char **argv)
{
    int i0 = argc >= 3 && strcmp(argv[1], "-w") == 0 ? 3 : 1;
    unsigned char buf[BLOCK];
    uint64_t nblocks, sum = 0, first;
    long reads, bad = 0;
    struct stat st;
    int64_t t0, ns;
    int fd;

    if (i0 >= argc) {
        fprintf(stderr, "usage: file_plain [-w IGNORED] PATH [READS]\n");
        return 2;
    }
    fd = open(argv[i0], O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < BLOCK) {
        perror(argv[i0]);
        return 2;
    }
    reads = i0 + 1 < argc ? strtol(argv[i0 + 1], NULL, 0) : 262144;
    nblocks = (uint64_t)st.st_size / BLOCK;
    t0 = now_ns();
    for (long i = 0; i < reads; i++) {
        off_t off = (off_t)(splitmix64((uint64_t)i) % nblocks) * BLOCK;

        if (pread(fd, buf, BLOCK, off) != BLOCK) {
            bad++;
            continue;
        }
        memcpy(&first, buf, sizeof first);
        sum += first;
    }
    ns = now_ns() - t0;
    printf("file_plain sec=%.3f mb_per_sec=%.1f reads=%ld block=%d "
           "sum=%016llx check=%s\n", (double)ns / 1e9,
           (double)reads * BLOCK * 1e3 / (double)ns, reads, BLOCK,
           (unsigned long long)sum, bad == 0 && ns > 0 ? "ok" : "fail");
    close(fd);
    return bad == 0 ? 0 : 1;
}
