/*
 * http_parse.c - see http_parse.h.  RFC 9112 request-line and field
 * syntax, strictly: a cursor walks the head once and never reads past the
 * blank line that ends it.
 */
#include "http_parse.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define MAX_CONTENT_LENGTH ((size_t)1 << 40)

typedef struct cur { const char *p, *end; } cur;

/* tchar of RFC 9110. */
static int is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9') return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A visible character or obs-text. */
static int is_vchar(unsigned char c) { return c > 0x20 && c != 0x7f; }

int http_str_ieq(http_str s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((s.p[i] | 0x20) != (lit[i] | 0x20))
            return 0;
    return 1;
}

/* Take a run of characters matching ok(); empty -> 0. */
static int take(cur *c, int (*ok)(unsigned char), http_str *out)
{
    out->p = c->p;
    while (c->p < c->end && ok((unsigned char)*c->p))
        c->p++;
    out->n = (size_t)(c->p - out->p);
    return out->n > 0;
}

static int expect(cur *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

static int request_line(cur *c, http_request *req)
{
    if (!take(c, is_tchar, &req->method) || !expect(c, " ") ||
        !take(c, is_vchar, &req->target) || !expect(c, " HTTP/1."))
        return 0;
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return 0;
    req->minor = *c->p++ - '0';
    return expect(c, "\r\n");
}

/* Field value: VCHAR / SP / HTAB, trimmed of surrounding whitespace. */
static int field_value(cur *c, http_str *v)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
    v->p = c->p;
    while (c->p < c->end && (is_vchar((unsigned char)*c->p) ||
                             *c->p == ' ' || *c->p == '\t'))
        c->p++;
    v->n = (size_t)(c->p - v->p);
    while (v->n && (v->p[v->n - 1] == ' ' || v->p[v->n - 1] == '\t'))
        v->n--;
    return expect(c, "\r\n");
}

static int parse_length(http_str v, size_t *out)
{
    size_t n = 0;
    if (!v.n)
        return 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return 0;
        n = n * 10 + (size_t)(v.p[i] - '0');
        if (n > MAX_CONTENT_LENGTH)
            return 0;
    }
    *out = n;
    return 1;
}

/* Walk a comma-separated Connection value for close / keep-alive. */
static void connection_tokens(http_str v, http_request *req)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ',' || v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
        size_t j = i;
        while (j < v.n && v.p[j] != ',' && v.p[j] != ' ' && v.p[j] != '\t')
            j++;
        http_str t = { v.p + i, j - i };
        if (http_str_ieq(t, "close"))
            req->keep_alive = 0;
        else if (http_str_ieq(t, "keep-alive") && req->minor == 0)
            req->keep_alive = 1;
        i = j;
    }
}

/* Apply the headers the server acts on.  0 or a negative error. */
static int interpret(http_request *req, const http_header *h, int *have_len)
{
    if (http_str_ieq(h->name, "content-length")) {
        size_t n;
        if (!parse_length(h->value, &n) || (*have_len && n != req->content_length))
            return HTTP_BAD_REQUEST;
        req->content_length = n;
        *have_len = 1;
    } else if (http_str_ieq(h->name, "transfer-encoding")) {
        return HTTP_NOT_IMPLEMENTED;
    } else if (http_str_ieq(h->name, "connection")) {
        connection_tokens(h->value, req);
    }
    return 0;
}

static int headers(cur *c, http_request *req)
{
    int have_len = 0;
    while (!expect(c, "\r\n")) {
        http_header h;
        if (!take(c, is_tchar, &h.name) || !expect(c, ":") ||
            !field_value(c, &h.value))
            return HTTP_BAD_REQUEST;
        if (req->nheaders == HTTP_MAX_HEADERS)
            return HTTP_TOO_LARGE;
        req->headers[req->nheaders++] = h;
        int r = interpret(req, &h, &have_len);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Length of the head (through CRLFCRLF) within buf[0, n), or 0. */
static size_t head_end(const char *buf, size_t n)
{
    for (size_t i = 3; i < n; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
            buf[i - 3] == '\r')
            return i + 1;
    return 0;
}

/* No blank line yet: a complete but malformed request line is already a
   400; otherwise wait for more, up to the limit. */
static int early_verdict(const char *buf, size_t n, int full)
{
    const char *nl = memchr(buf, '\n', n);
    if (nl) {
        http_request tmp;
        cur c = { buf, nl + 1 };
        if (!request_line(&c, &tmp) || c.p != nl + 1)
            return HTTP_BAD_REQUEST;
    }
    return full ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
}

int http_parse_request(const char *buf, size_t len, size_t limit,
                       http_request *req)
{
    if (!buf || !req)
        return HTTP_BAD_REQUEST;
    size_t n = len < limit ? len : limit;
    size_t end = head_end(buf, n);
    memset(req, 0, sizeof *req);
    if (!end)
        return early_verdict(buf, n, len >= limit);
    if (end > INT_MAX)
        return HTTP_TOO_LARGE;
    cur c = { buf, buf + end };
    if (!request_line(&c, req))
        return HTTP_BAD_REQUEST;
    req->keep_alive = req->minor >= 1;
    int r = headers(&c, req);
    if (r < 0)
        return r;
    return c.p == buf + end ? (int)end : HTTP_BAD_REQUEST;
}
