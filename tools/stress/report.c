/*
 * report.c - the final report of braid-stress, as text or JSON, always
 * ending with the line "N passed, N failed" alone on the last line.
 *
 * Called by the main thread after every profile ran and the watchdog
 * stopped; nothing else runs then.
 */
#include "stress.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool st_result_passed(const st_result *r)
{
    return r->ran && r->rc == 0 && r->prof.failures == 0;
}

typedef struct totals {
    uint64_t c[C_COUNT];
    uint64_t switches, steals, parks, spawned, polls;
    int64_t max_latency;
    unsigned passed, failed;
} totals;

static void sum(const st_result *res, size_t n, totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        const st_result *r = &res[i];
        for (int k = 0; k < C_COUNT; k++) t->c[k] += r->counts[k];
        t->switches += r->stats.switches;
        t->steals += r->stats.steals;
        t->parks += r->stats.parks;
        t->spawned += r->stats.spawned;
        t->polls += r->stats.polls;
        if (r->prof.max_latency > t->max_latency)
            t->max_latency = r->prof.max_latency;
        if (st_result_passed(r)) t->passed++; else t->failed++;
    }
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(out, "\\u%04x", *s);
        else fputc(*s, out);
    }
    fputc('"', out);
}

static void json_counts(FILE *out, const uint64_t *c)
{
    fprintf(out, "{");
    for (int k = 0; k < C_COUNT; k++)
        fprintf(out, "%s\"%s\": %" PRIu64, k ? ", " : "", st_counter_names[k], c[k]);
    fprintf(out, "}");
}

static void json_profile(FILE *out, const st_result *r, bool last)
{
    fprintf(out, "    {\"name\": \"%s\", \"result\": \"%s\", \"seconds\": %.3f, "
            "\"braid_run\": %d, \"fds_before\": %d, \"fds_after\": %d, "
            "\"steals\": %" PRIu64 ", \"parks\": %" PRIu64 ",\n     \"counters\": ",
            r->def->name, st_result_passed(r) ? "pass" : "fail", r->secs, r->rc,
            r->fds_before, r->fds_after, r->stats.steals, r->stats.parks);
    json_counts(out, r->counts);
    fprintf(out, ",\n     \"failure\": ");
    json_string(out, r->prof.first_failure);
    fprintf(out, "}%s\n", last ? "" : ",");
}

static void json(FILE *out, const st_options *o, const st_result *res,
                 size_t n, const totals *t, int fds_start, int fds_end)
{
    int64_t p50, p99, max;
    uint64_t samples;
    st_lateness_summary(&p50, &p99, &max, &samples);
    fprintf(out, "{\n  \"seed\": %" PRIu64 ", \"seconds\": %g, \"workers\": %u,\n"
            "  \"profiles\": [\n", o->seed, o->seconds, o->workers);
    for (size_t i = 0; i < n; i++) json_profile(out, &res[i], i + 1 == n);
    fprintf(out, "  ],\n  \"totals\": ");
    json_counts(out, t->c);
    fprintf(out, ",\n  \"timer_lateness_ns\": {\"p50\": %" PRId64 ", \"p99\": %"
            PRId64 ", \"max\": %" PRId64 ", \"samples\": %" PRIu64 "},\n",
            p50, p99, max, samples);
    fprintf(out, "  \"scheduler\": {\"spawned\": %" PRIu64 ", \"switches\": %"
            PRIu64 ", \"steals\": %" PRIu64 ", \"parks\": %" PRIu64
            ", \"polls\": %" PRIu64 "},\n", t->spawned, t->switches, t->steals,
            t->parks, t->polls);
    fprintf(out, "  \"blocking_max_latency_ns\": %" PRId64 ", \"max_rss_kib\": %ld,\n"
            "  \"fds_start\": %d, \"fds_end\": %d, \"passed\": %u, \"failed\": %u\n}\n",
            t->max_latency, st_maxrss_kib(), fds_start, fds_end, t->passed,
            t->failed);
}

static double ms(int64_t ns) { return (double)ns / 1e6; }

static void text_profile(FILE *out, const st_result *r)
{
    const uint64_t *c = r->counts;
    fprintf(out, "%-9s %-4s %6.2fs rounds %-6" PRIu64 " spawned %-8" PRIu64
            " sent %-9" PRIu64 " received %-9" PRIu64 " ops %-9" PRIu64
            " steals %" PRIu64 "\n", r->def->name,
            st_result_passed(r) ? "PASS" : "FAIL", r->secs, c[C_ROUNDS],
            c[C_SPAWNED], c[C_SENT], c[C_RECEIVED], c[C_OPS], r->stats.steals);
    if (!st_result_passed(r))
        fprintf(out, "          failure: %s\n", r->prof.first_failure[0]
                ? r->prof.first_failure : "(see stderr)");
}

static void text(FILE *out, const st_result *res, size_t n, const totals *t,
                 int fds_start, int fds_end)
{
    int64_t p50, p99, max;
    uint64_t samples;
    st_lateness_summary(&p50, &p99, &max, &samples);
    for (size_t i = 0; i < n; i++) text_profile(out, &res[i]);
    const uint64_t *c = t->c;
    fprintf(out, "coroutines: spawned %" PRIu64 ", completed %" PRIu64
            ", cancelled %" PRIu64 "\n", c[C_SPAWNED], c[C_COMPLETED],
            c[C_CANCELLED]);
    fprintf(out, "messages: sent %" PRIu64 ", received %" PRIu64 ", dropped %"
            PRIu64 ", lost %" PRIu64 ", duplicated %" PRIu64 "\n", c[C_SENT],
            c[C_RECEIVED], c[C_DROPPED], c[C_LOST], c[C_DUPLICATED]);
    fprintf(out, "net: %" PRIu64 " bytes, %" PRIu64 " injected resets; "
            "timeouts %" PRIu64 ", migrations %" PRIu64 "\n", c[C_BYTES],
            c[C_RESETS], c[C_TIMEOUTS], c[C_MIGRATIONS]);
    fprintf(out, "timer lateness: p50 %.3f ms, p99 %.3f ms, max %.3f ms "
            "(%" PRIu64 " samples)\n", ms(p50), ms(p99), ms(max), samples);
    fprintf(out, "blocking: max latency %.3f ms while a call blocked 100 ms "
            "(bound 1000 ms)\n", ms(t->max_latency));
    fprintf(out, "scheduler: spawned %" PRIu64 ", switches %" PRIu64
            ", steals %" PRIu64 ", parks %" PRIu64 ", polls %" PRIu64 "\n",
            t->spawned, t->switches, t->steals, t->parks, t->polls);
    fprintf(out, "max RSS %.1f MiB; fds at start %d, at end %d\n",
            (double)st_maxrss_kib() / 1024, fds_start, fds_end);
}

/* The whole report; the last line is "N passed, N failed". */
void st_report(FILE *out, const st_options *o, const st_result *res,
               size_t n, int fds_start, int fds_end)
{
    totals t;
    sum(res, n, &t);
    if (o->json) json(out, o, res, n, &t, fds_start, fds_end);
    else text(out, res, n, &t, fds_start, fds_end);
    for (size_t i = 0; i < n; i++)
        if (!st_result_passed(&res[i]))
            fprintf(o->json ? stderr : out, "replay: braid-stress --seed %" PRIu64 " --seconds %.3g"
                    " --workers %u --profile %s\n", o->seed,
                    o->seconds / (double)n, o->workers, res[i].def->name);
    fprintf(out, "%u passed, %u failed\n", t.passed, t.failed);
    fflush(out);
}
