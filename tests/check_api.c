/*
 * check_api.c - links only the installed-style libbraid.la: uses nothing
 * but braid.h, so a hidden symbol used by mistake fails the link, and
 * checks that the shared library exports braid_* names only.
 */

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "braid.h"

static void *twice(void *arg) { return (void *)((long)arg * 2); }

static void producer(void *arg)
{
    braid_tx *tx = arg;
    for (int i = 0; i < 100; i++) braid_send(tx, &i, BRAID_FOREVER);
    braid_tx_close(tx);
}

static void api_main(void *arg)
{
    long *sum = arg;
    braid_task *t;
    ck_assert_int_eq(braid_spawn(&t, twice, (void *)21, NULL), 0);
    void *r;
    ck_assert_int_eq(braid_join(t, &r, BRAID_FOREVER), 0);
    ck_assert_int_eq((long)r, 42);
    braid_tx *tx;
    braid_rx *rx;
    ck_assert_int_eq(braid_chan_open(&tx, &rx, sizeof(int), 4), 0);
    ck_assert_int_eq(braid_go(producer, tx), 0);
    int v;
    while (braid_recv(rx, &v, BRAID_FOREVER) == 0) *sum += v;
    braid_rx_close(rx);
    ck_assert_int_eq(braid_sleep(1000000), 0);
}

START_TEST(public_api_round_trip)
{
    long sum = 0;
    ck_assert_int_eq(braid_run(NULL, api_main, &sum), 0);
    ck_assert_int_eq(sum, 4950);
}
END_TEST

START_TEST(only_braid_symbols_exported)
{
    const char *so = getenv("BRAID_SO");
    if (!so) so = ".libs/libbraid.so";
    char cmd[1024];
    size_t len = strlen(so);
    if (access(so, R_OK) == 0 || len < 3 || strcmp(so + len - 3, ".so") != 0)
        snprintf(cmd, sizeof cmd,
                 "nm -D --defined-only %s 2>/dev/null | awk '{print $3}'", so);
    else    /* configure --disable-shared: the archive's default-visibility
               definitions are what a shared build would export */
        snprintf(cmd, sizeof cmd, "readelf -sW %.*s.a 2>/dev/null | "
                 "awk '($5 == \"GLOBAL\" || $5 == \"WEAK\") && "
                 "$6 == \"DEFAULT\" && $7 != \"UND\" {print $8}'",
                 (int)(len - 3), so);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char name[256];
    int n = 0, bad = 0;
    while (fgets(name, sizeof name, p)) {
        name[strcspn(name, "\n")] = 0;
        if (!*name) continue;
        n++;
        if (strncmp(name, "braid_", 6) != 0 || name[6] == '_') {
            fprintf(stderr, "exported: %s\n", name);
            bad++;
        }
    }
    pclose(p);
    ck_assert_int_gt(n, 50);
    ck_assert_int_eq(bad, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, public_api_round_trip);
    tcase_add_test(tc, only_braid_symbols_exported);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
