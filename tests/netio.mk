## tests/netio.mk: the I/O suite.  White-box (links the core library for
## the file-path counters); no -I runtime/ so that <sched.h> stays the
## system header.
check_PROGRAMS += tests/check_netio
TESTS += tests/check_netio
tests_check_netio_SOURCES = tests/check_netio.c tests/emulated.h
tests_check_netio_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_netio_LDADD = $(TEST_LIBS)
