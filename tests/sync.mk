## tests/sync.mk
check_PROGRAMS += tests/check_chan
TESTS += tests/check_chan
tests_check_chan_SOURCES = tests/check_chan.c
tests_check_chan_CFLAGS = $(TEST_CFLAGS)
tests_check_chan_LDADD = $(TEST_LIBS)
## check_sync: mutex, cond, wait group, semaphore, once, nursery
check_PROGRAMS += tests/check_sync
TESTS += tests/check_sync
tests_check_sync_SOURCES = tests/check_sync.c
tests_check_sync_CFLAGS = $(TEST_CFLAGS)
tests_check_sync_LDADD = $(TEST_LIBS)
