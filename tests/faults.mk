## tests/faults.mk: the fault table of braid as a Check suite.  Each row of
## the table at the top of tests/check_faults.c is one test of that file.
## White-box: it links the core library for the fault-injection hooks
## (braid__stack_fail_next, braid__coro_fail_next).
check_PROGRAMS += tests/check_faults
TESTS += tests/check_faults
tests_check_faults_SOURCES = tests/check_faults.c tests/emulated.h
tests_check_faults_CFLAGS = $(TEST_CFLAGS)
tests_check_faults_LDADD = $(TEST_LIBS)
