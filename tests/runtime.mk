## Runtime core suites.
check_PROGRAMS += tests/check_context tests/check_deque tests/check_spin \
	tests/check_timer tests/check_runtime tests/check_api
TESTS += tests/check_context tests/check_deque tests/check_spin \
	tests/check_timer tests/check_runtime tests/check_api

# The register switch alone, no scheduler.
tests_check_context_SOURCES = tests/check_context.c
tests_check_context_CFLAGS = $(TEST_CFLAGS)
tests_check_context_LDADD = libbraid_core.la $(CHECK_LIBS) -lm

# The spawn deque alone (header only), owner against two thieves.
tests_check_deque_SOURCES = tests/check_deque.c
tests_check_deque_CFLAGS = $(TEST_CFLAGS)
tests_check_deque_LDADD = $(CHECK_LIBS) -lpthread

# The runtime's spinlock: exclusion, and the sleeping waiter.
tests_check_spin_SOURCES = tests/check_spin.c
tests_check_spin_CFLAGS = $(TEST_CFLAGS)
tests_check_spin_LDADD = libbraid_core.la $(CHECK_LIBS) -lpthread

# The timer heaps without a runtime, late expiry by a worker included.
tests_check_timer_SOURCES = tests/check_timer.c
tests_check_timer_CFLAGS = $(TEST_CFLAGS)
tests_check_timer_LDADD = $(TEST_LIBS)

tests_check_runtime_SOURCES = tests/check_runtime.c tests/emulated.h
tests_check_runtime_CFLAGS = $(TEST_CFLAGS)
tests_check_runtime_LDADD = $(TEST_LIBS)

# Links only the installed-style library: a hidden symbol used by mistake
# fails the link.
tests_check_api_SOURCES = tests/check_api.c
tests_check_api_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_api_LDADD = libbraid.la $(CHECK_LIBS)
