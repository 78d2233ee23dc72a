## bench/: the C workloads against braid (bench/c/<name>.c, one program
## each, shared helpers in bench/c/bench.h), their Go twins
## (bench/go/<name>/main.go, standard library only) and bench/run, which
## runs both sides in fresh processes and prints medians, the braid/Go
## ratio and the target of each case.  The I/O workloads (echo, http,
## sleep, file) also use examples/echo and examples/httpd as the braid
## servers, bench/c/echo_load and wrk as the clients, and bench/c/
## file_plain as a baseline; echo_load and file_plain do not link braid.
## Nothing here is built by "all":
##     make bench [BENCH_FLAGS='--runs 3 --only chan']
## -no-install: link against the uninstalled shared libbraid without a
## libtool wrapper script, so the binaries can be run and profiled as is.
BENCH_PROGS = bench/c/spawn bench/c/yield bench/c/fib bench/c/park \
	bench/c/pingpong bench/c/chan bench/c/skynet bench/c/sleep \
	bench/c/file bench/c/file_plain bench/c/echo_load
BENCH_LINKOPTS = $(AM_LDFLAGS) -no-install
EXTRA_PROGRAMS += $(BENCH_PROGS)
CLEANFILES += $(BENCH_PROGS:=$(EXEEXT))

bench_c_spawn_SOURCES = bench/c/spawn.c bench/c/bench.h
bench_c_spawn_LDADD = libbraid.la
bench_c_spawn_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_yield_SOURCES = bench/c/yield.c bench/c/bench.h
bench_c_yield_LDADD = libbraid.la
bench_c_yield_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_fib_SOURCES = bench/c/fib.c bench/c/bench.h
bench_c_fib_LDADD = libbraid.la
bench_c_fib_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_park_SOURCES = bench/c/park.c bench/c/bench.h
bench_c_park_LDADD = libbraid.la
bench_c_park_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_pingpong_SOURCES = bench/c/pingpong.c bench/c/bench.h
bench_c_pingpong_LDADD = libbraid.la
bench_c_pingpong_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_chan_SOURCES = bench/c/chan.c bench/c/bench.h
bench_c_chan_LDADD = libbraid.la
bench_c_chan_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_skynet_SOURCES = bench/c/skynet.c bench/c/bench.h
bench_c_skynet_LDADD = libbraid.la
bench_c_skynet_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_sleep_SOURCES = bench/c/sleep.c bench/c/bench.h
bench_c_sleep_LDADD = libbraid.la
bench_c_sleep_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_file_SOURCES = bench/c/file.c bench/c/bench.h
bench_c_file_LDADD = libbraid.la
bench_c_file_LDFLAGS = $(BENCH_LINKOPTS)
bench_c_file_plain_SOURCES = bench/c/file_plain.c
bench_c_echo_load_SOURCES = bench/c/echo_load.c

EXTRA_DIST += bench/run bench/.gitignore \
	bench/go/spawn/main.go bench/go/yield/main.go bench/go/fib/main.go \
	bench/go/park/main.go bench/go/pingpong/main.go bench/go/chan/main.go \
	bench/go/skynet/main.go bench/go/sleep/main.go bench/go/file/main.go \
	bench/go/echo_server/main.go bench/go/http_server/main.go

bench-build: $(BENCH_PROGS:=$(EXEEXT)) examples/echo/echo$(EXEEXT) \
	examples/httpd/httpd$(EXEEXT)

bench: bench-build
	bash $(srcdir)/bench/run $(BENCH_FLAGS) $(abs_builddir)

.PHONY: bench bench-build
