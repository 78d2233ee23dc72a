/*
 * fuzz_http.c - libFuzzer target for the httpd request parser.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iexamples/httpd \
 *         tests/fuzz/fuzz_http.c examples/httpd/http_parse.c
 *   ./a.out tests/fuzz/corpus        (or: make fuzz; tests/fuzz/run.sh)
 *
 * Beyond memory safety it checks the parser's contract: a result is an
 * error code, 0, or a head length within the input; every returned string
 * lies inside the head; a shorter prefix of a complete head is never
 * complete itself; the limit is honoured.
 */
#include "http_parse.h"

#include <stdint.h>
#include <stdlib.h>

static int inside(http_str s, const char *lo, const char *hi)
{
    return s.p >= lo && s.p + s.n <= hi;
}

static void check_complete(const char *buf, size_t size, int r,
                           const http_request *q)
{
    if ((size_t)r > size || r > 8192)
        abort();
    const char *end = buf + r;
    if (!inside(q->method, buf, end) || !inside(q->target, buf, end) ||
        !q->method.n || !q->target.n || q->nheaders > HTTP_MAX_HEADERS ||
        q->minor < 0 || q->minor > 9)
        abort();
    for (size_t i = 0; i < q->nheaders; i++)
        if (!inside(q->headers[i].name, buf, end) ||
            !inside(q->headers[i].value, buf, end) || !q->headers[i].name.n)
            abort();
    http_request p;
    for (size_t k = 0; k < (size_t)r; k += 1 + (size_t)r / 16)
        if (http_parse_request(buf, k, 8192, &p) > 0)
            abort();                    /* a prefix cannot be complete */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    http_request q;
    int r = http_parse_request(buf, size, 8192, &q);
    if (r > 0)
        check_complete(buf, size, r, &q);
    else if (r != HTTP_INCOMPLETE && r != HTTP_BAD_REQUEST &&
             r != HTTP_TOO_LARGE && r != HTTP_NOT_IMPLEMENTED)
        abort();
    size_t small = size ? (size_t)data[0] : 0;  /* a tiny limit too */
    r = http_parse_request(buf, size, small, &q);
    if (r > 0 && (size_t)r > small)
        abort();
    if (r == HTTP_INCOMPLETE && size >= small && small)
        abort();                        /* at the limit: 431 or a verdict */
    return 0;
}
