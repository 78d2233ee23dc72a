## examples/: the echo and HTTP servers (what users copy first).  They
## link only the installed-style libbraid.la, as a user's program would.
noinst_PROGRAMS += examples/echo/echo examples/httpd/httpd
examples_echo_echo_SOURCES = examples/echo/echo.c
examples_echo_echo_LDADD = libbraid.la
examples_httpd_httpd_SOURCES = examples/httpd/httpd.c \
	examples/httpd/http_parse.c examples/httpd/http_parse.h
examples_httpd_httpd_LDADD = libbraid.la

## The request parser's libFuzzer target: `make fuzz` builds
## tests/fuzz/fuzz_http with clang; tests/fuzz/run.sh builds and runs it.
EXTRA_DIST += tests/fuzz/fuzz_http.c tests/fuzz/run.sh tests/fuzz/corpus
FUZZ_CC = clang
tests/fuzz/fuzz_http: $(srcdir)/tests/fuzz/fuzz_http.c \
		$(srcdir)/examples/httpd/http_parse.c \
		$(srcdir)/examples/httpd/http_parse.h
	@mkdir -p tests/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
		-I$(srcdir)/examples/httpd -o $@ \
		$(srcdir)/tests/fuzz/fuzz_http.c $(srcdir)/examples/httpd/http_parse.c
fuzz: tests/fuzz/fuzz_http
.PHONY: fuzz
CLEANFILES += tests/fuzz/fuzz_http
