/*
 * http_parse.h - a strict HTTP/1.x request-head parser: a pure function
 * over a byte buffer, no allocation, no I/O (fuzzed by tests/fuzz).
 */
#ifndef HTTP_PARSE_H
#define HTTP_PARSE_H

#include <stddef.h>

#define HTTP_MAX_HEADERS 32

/* Errors returned by http_parse_request, named after the status to send. */
enum {
    HTTP_INCOMPLETE = 0,        /* need more bytes */
    HTTP_BAD_REQUEST = -400,    /* malformed */
    HTTP_TOO_LARGE = -431,      /* head over the limit, or too many headers */
    HTTP_NOT_IMPLEMENTED = -501 /* Transfer-Encoding (no bodies but sized) */
};

typedef struct http_str { const char *p; size_t n; } http_str;

typedef struct http_header { http_str name, value; } http_header;

typedef struct http_request {
    http_str method;            /* a token, e.g. "GET" */
    http_str target;            /* request-target as sent, e.g. "/a?b" */
    int minor;                  /* HTTP/1.<minor> */
    int keep_alive;             /* 1.1 default on, 1.0 default off; the
                                   Connection header overrides */
    size_t content_length;      /* 0 when absent */
    size_t nheaders;
    http_header headers[HTTP_MAX_HEADERS];
} http_request;

/*
 * Parse the request head at the start of buf[0, len).  limit caps the head
 * (request line, headers and the blank line).  Returns the head's length
 * (> 0) and fills *req (pointers into buf); HTTP_INCOMPLETE when buf holds
 * a valid prefix shorter than limit; or a negative HTTP_* error.  Lines end
 * with CRLF; obsolete line folding, bare CR, control characters in values,
 * a Content-Length that is not a number (or two that differ) are errors.
 */
int http_parse_request(const char *buf, size_t len, size_t limit,
                       http_request *req);

/* Case-insensitive comparison of s with the NUL-terminated lit. */
int http_str_ieq(http_str s, const char *lit);

#endif
