/*
 * test_bench_serve.c: the pieces of `pagoda bench serve` that need no
 * server: the SSE parser on input split anywhere and on broken input,
 * percentiles and a level's figures, the table and JSON reports agreeing,
 * and the SVG being well-formed XML.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/rng.h"
#include "bench/bench_serve.h"
#include "pagoda.h"
#include "test.h"

/* ---- SSE ---- */

struct events {
    char *all; /* events joined with '|' (each written as [data]) */
    size_t len, cap;
    int n;
    int stop_at; /* return 1 on this event (0: never) */
};

static int on_event(void *user, const char *data, size_t len)
{
    struct events *e = user;
    if (strlen(data) != len)
        return 99; /* must be NUL-terminated at len with no NUL inside */
    size_t need = e->len + len + 3;
    if (need + 1 > e->cap) {
        e->cap = (need + 1) * 2;
        e->all = realloc(e->all, e->cap);
    }
    e->all[e->len++] = '[';
    memcpy(e->all + e->len, data, len);
    e->len += len;
    e->all[e->len++] = ']';
    e->all[e->len] = 0;
    e->n++;
    return e->stop_at && e->n == e->stop_at ? 1 : 0;
}

static void events_reset(struct events *e)
{
    e->len = 0;
    e->n = 0;
    if (e->all)
        e->all[0] = 0;
}

/* The stream used by the split tests: every kind of line end, comments,
 * other fields, multi-line data, a field without a colon, empty data. */
static const char stream_text[] =
    ": a comment first\n"
    "data: {\"a\":1}\n\n"
    "event: message\r\n"
    "id: 7\r\n"
    "data:no-space\r\n\r\n"
    "data: line one\n"
    "data: line two\r"
    "data:  two spaces\r\r"
    "retry: 100\n"
    "data\n\n"
    ":only a comment\n\n"
    "data: \n\n"
    "data: x\r\ndata: y\r\n\r\n"
    "data: [DONE]\n\n";
static const char stream_events[] =
    "[{\"a\":1}][no-space][line one\nline two\n two spaces][][][x\ny][[DONE]]";

static void feed_split(struct events *e, const size_t *cuts, int ncuts, int *rc_out)
{
    struct sse_parser p;
    sse_init(&p);
    events_reset(e);
    size_t at = 0, n = sizeof stream_text - 1;
    int rc = 0;
    for (int i = 0; i <= ncuts && !rc; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        rc = sse_feed(&p, stream_text + at, end - at, on_event, e);
        at = end;
    }
    if (!rc)
        rc = sse_finish(&p, on_event, e);
    sse_free(&p);
    *rc_out = rc;
}

static void test_sse_splits(void)
{
    struct events e = {0};
    int rc;
    feed_split(&e, NULL, 0, &rc);
    CHECKF(rc == 0 && e.all && !strcmp(e.all, stream_events), "whole: rc %d, got %s", rc,
           e.all ? e.all : "(none)");

    const size_t n = sizeof stream_text - 1;
    int bad = 0;
    for (size_t c = 0; c <= n; c++) { /* one cut at every position */
        feed_split(&e, &c, 1, &rc);
        if (rc || strcmp(e.all, stream_events))
            bad++;
    }
    CHECKF(bad == 0, "%d single cuts broke the parse", bad);

    size_t every[sizeof stream_text];
    for (size_t i = 0; i < n; i++)
        every[i] = i + 1;
    feed_split(&e, every, (int)n - 1, &rc); /* one byte at a time */
    CHECK(rc == 0 && !strcmp(e.all, stream_events));

    struct rng g;
    rng_seed(&g, 42);
    bad = 0;
    for (int t = 0; t < 300; t++) { /* random cut sets, sorted */
        size_t cuts[12];
        int k = 1 + (int)(rng_next(&g) % 12);
        for (int i = 0; i < k; i++)
            cuts[i] = (size_t)(rng_next(&g) % (n + 1));
        for (int i = 1; i < k; i++)
            for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t x = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = x;
            }
        feed_split(&e, cuts, k, &rc);
        if (rc || strcmp(e.all, stream_events))
            bad++;
    }
    CHECKF(bad == 0, "%d random splits broke the parse", bad);
    free(e.all);
}

static void test_sse_broken(void)
{
    struct events e = {0};
    struct sse_parser p;

    /* An event not closed by a blank line still comes out at the end. */
    sse_init(&p);
    const char *s = "data: a\n\ndata: tail";
    CHECK(sse_feed(&p, s, strlen(s), on_event, &e) == 0 && e.n == 1);
    CHECK(sse_finish(&p, on_event, &e) == 0 && e.n == 2 && !strcmp(e.all, "[a][tail]"));
    sse_free(&p);

    /* A callback's non-zero return stops the parse and sticks. */
    events_reset(&e);
    e.stop_at = 2;
    sse_init(&p);
    s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    CHECK(sse_feed(&p, s, strlen(s), on_event, &e) == 1 && e.n == 2);
    CHECK(sse_feed(&p, "data: 4\n\n", 9, on_event, &e) != 0 && e.n == 2);
    sse_free(&p);
    e.stop_at = 0;

    /* A line without an end that grows past the limit is refused, even
     * when it arrives in small pieces. */
    events_reset(&e);
    sse_init(&p);
    char *big = malloc(65536);
    memset(big, 'x', 65536);
    int rc = sse_feed(&p, "data: ", 6, on_event, &e);
    for (int i = 0; i < (SSE_MAX_EVENT / 65536) + 2 && rc == 0; i++)
        rc = sse_feed(&p, big, 65536, on_event, &e);
    CHECK(rc == PAGODA_EFORMAT && e.n == 0);
    CHECK(sse_finish(&p, on_event, &e) != 0);
    sse_free(&p);

    /* Many data lines adding up past the limit are refused too. */
    sse_init(&p);
    memset(big, 'y', 65536);
    big[65535] = '\n';
    memcpy(big, "data:", 5);
    rc = 0;
    for (int i = 0; i < (SSE_MAX_EVENT / 65536) + 2 && rc == 0; i++)
        rc = sse_feed(&p, big, 65536, on_event, &e);
    CHECK(rc == PAGODA_EFORMAT && e.n == 0);
    sse_free(&p);
    free(big);

    /* Binary junk with NULs and no data lines gives no events and no error. */
    events_reset(&e);
    sse_init(&p);
    const char junk[] = "\x01\x02\0\xff garbage\n\n\0\0\n";
    CHECK(sse_feed(&p, junk, sizeof junk - 1, on_event, &e) == 0 && e.n == 0);
    CHECK(sse_finish(&p, on_event, &e) == 0 && e.n == 0);
    sse_free(&p);
    free(e.all);
}

/* ---- statistics ---- */

static void test_percentiles(void)
{
    const double a[] = {1, 2, 3, 4};
    CHECK(fabs(bench_percentile(a, 4, 50) - 2.5) < 1e-12);
    CHECK(fabs(bench_percentile(a, 4, 90) - 3.7) < 1e-12);
    CHECK(fabs(bench_percentile(a, 4, 99) - 3.97) < 1e-12);
    CHECK(bench_percentile(a, 4, 0) == 1 && bench_percentile(a, 4, 100) == 4);
    CHECK(bench_percentile(a, 1, 99) == 1);
    CHECK(bench_percentile(a, 0, 50) == 0);

    struct rng g;
    rng_seed(&g, 7);
    for (int t = 0; t < 40; t++) {
        size_t n = 1 + (size_t)(rng_next(&g) % 301);
        double *v = malloc(n * sizeof *v);
        double sum = 0, lo = 1e30, hi = -1e30;
        for (size_t i = 0; i < n; i++) {
            v[i] = 0.001 + rng_uniform(&g) * (t % 2 ? 5.0 : 0.2);
            sum += v[i];
            lo = fmin(lo, v[i]);
            hi = fmax(hi, v[i]);
        }
        struct bench_dist d;
        bench_dist_compute(&d, v, n);
        int sorted = 1;
        for (size_t i = 1; i < n; i++)
            sorted &= v[i - 1] <= v[i];
        CHECK(sorted);
        CHECK(d.n == (long long)n);
        CHECK(fabs(d.mean - sum / (double)n * 1e3) < 1e-6 * d.mean + 1e-9);
        CHECK(d.median <= d.p90 && d.p90 <= d.p99 && d.p99 <= hi * 1e3 + 1e-9);
        CHECK(d.median >= lo * 1e3 - 1e-9);
        if (n % 2)
            CHECK(fabs(d.median - v[n / 2] * 1e3) < 1e-9);
        /* At pct = 100 k/(n-1) the percentile is exactly the k-th value. */
        if (n > 1) {
            size_t k = (size_t)(rng_next(&g) % n);
            double p = 100.0 * (double)k / (double)(n - 1);
            CHECK(fabs(bench_percentile(v, n, p) - v[k]) < 1e-9);
        }
        free(v);
    }
}

static void test_level_compute(void)
{
    struct bench_result res[6];
    memset(res, 0, sizeof res);
    /* three good requests */
    res[0] = (struct bench_result){1, 0, 0.10, 1.10, 20, 11, 11, BENCH_COUNT_USAGE};
    res[1] = (struct bench_result){1, 0, 0.20, 2.20, 30, 21, 20, BENCH_COUNT_USAGE};
    res[2] = (struct bench_result){1, 0, 0.30, 0.30, 10, 1, 1, BENCH_COUNT_CHUNKS};
    res[3] = (struct bench_result){0, BENCH_FAIL_HTTP, 0, 0, 0, 0, 0, 0};
    res[4] = (struct bench_result){0, BENCH_FAIL_HTTP, 0, 0, 0, 0, 0, 0};
    res[5] = (struct bench_result){0, BENCH_FAIL_DROPPED, 0, 0, 0, 0, 0, 0};
    double itl[] = {0.3, 0.1, 0.2};
    struct bench_level lv;
    memset(&lv, 0, sizeof lv);
    lv.failed[BENCH_FAIL_TIMEOUT] = 1; /* counted before: kept */
    bench_level_compute(&lv, res, 6, itl, 3, 4.0);
    CHECK(lv.completed == 3 && lv.failed_total == 4);
    CHECK(lv.failed[BENCH_FAIL_HTTP] == 2 && lv.failed[BENCH_FAIL_DROPPED] == 1 &&
          lv.failed[BENCH_FAIL_TIMEOUT] == 1 && lv.failed[BENCH_FAIL_CONNECT] == 0);
    CHECK(lv.input_tokens == 60 && lv.output_tokens == 33 && lv.chunks == 32);
    CHECK(fabs(lv.req_per_s - 0.75) < 1e-12);
    CHECK(fabs(lv.out_tok_per_s - 33 / 4.0) < 1e-12);
    CHECK(fabs(lv.total_tok_per_s - 93 / 4.0) < 1e-12);
    CHECK(lv.count_sources == (BENCH_COUNT_USAGE | BENCH_COUNT_CHUNKS));
    CHECK(lv.ttft.n == 3 && fabs(lv.ttft.median - 200) < 1e-9 && fabs(lv.ttft.mean - 200) < 1e-9);
    /* TPOT only for requests with more than one token: 1.0/10 and 2.0/20 */
    CHECK(lv.tpot.n == 2 && fabs(lv.tpot.mean - 100) < 1e-9);
    CHECK(lv.itl.n == 3 && fabs(lv.itl.median - 200) < 1e-9);
    CHECK(fabs(lv.e2e.p99 - (1.10 + (2.20 - 1.10) * 0.98) * 1e3) < 1e-6);
    char b[48];
    CHECK(!strcmp(bench_count_name(lv.count_sources, b, sizeof b), "usage+chunks"));
    CHECK(!strcmp(bench_count_name(0, b, sizeof b), "-"));
    CHECK(!strcmp(bench_fail_name(BENCH_FAIL_SSE), "sse"));

    /* Nothing succeeded: figures are zero, never NaN. */
    memset(&lv, 0, sizeof lv);
    bench_level_compute(&lv, res + 3, 3, NULL, 0, 0);
    CHECK(lv.completed == 0 && lv.failed_total == 3 && lv.req_per_s == 0 && lv.ttft.n == 0 &&
          lv.ttft.mean == 0);
}

/* ---- reports ---- */

static void fill_dist(struct bench_dist *d, struct rng *g)
{
    d->n = 1 + (long long)(rng_next(g) % 50);
    d->median = rng_range(g, 1, 500);
    d->mean = d->median * rng_range(g, 0.9f, 1.2f);
    d->p90 = d->median * rng_range(g, 1, 2);
    d->p99 = d->p90 * rng_range(g, 1, 1.5f);
}

static void make_report(struct bench_report *r, int n_servers, const char *url0)
{
    struct rng g;
    rng_seed(&g, 99);
    memset(r, 0, sizeof *r);
    r->n_servers = n_servers;
    strcpy(r->endpoint, "completions");
    r->input_len = 128;
    r->output_len = 64;
    r->requests = 32;
    r->seed = 5;
    strcpy(r->prompts, "synthetic <test> & more");
    r->n_notes = 1;
    strcpy(r->notes[0], "a note with \"quotes\"");
    const int conc[] = {1, 3, 8, 33, 64};
    for (int s = 0; s < n_servers; s++) {
        snprintf(r->servers[s].url, sizeof r->servers[s].url, "%s", s ? "http://b:9/x" : url0);
        snprintf(r->servers[s].model, sizeof r->servers[s].model, "m<%d>", s);
        r->servers[s].n_levels = 5;
        for (int li = 0; li < 5; li++) {
            struct bench_level *lv = &r->servers[s].levels[li];
            lv->concurrency = conc[li];
            lv->completed = (long long)(rng_next(&g) % 100);
            lv->failed[BENCH_FAIL_HTTP] = (long long)(rng_next(&g) % 3);
            lv->failed[BENCH_FAIL_SSE] = li == 2;
            lv->failed_total = lv->failed[BENCH_FAIL_HTTP] + lv->failed[BENCH_FAIL_SSE];
            if (lv->failed[BENCH_FAIL_HTTP])
                strcpy(lv->first_error[BENCH_FAIL_HTTP], "HTTP 500: <oops> & \"x\"");
            lv->duration_s = rng_range(&g, 0.5f, 30);
            lv->input_tokens = lv->completed * 128;
            lv->output_tokens = lv->completed * 64;
            lv->chunks = lv->output_tokens;
            lv->req_per_s = (double)lv->completed / lv->duration_s;
            lv->out_tok_per_s = (double)lv->output_tokens / lv->duration_s;
            lv->total_tok_per_s = (double)(lv->input_tokens + lv->output_tokens) / lv->duration_s;
            lv->count_sources = BENCH_COUNT_USAGE;
            fill_dist(&lv->ttft, &g);
            fill_dist(&lv->tpot, &g);
            fill_dist(&lv->itl, &g);
            fill_dist(&lv->e2e, &g);
            if (s == 1 && li == 4) /* a level where nothing succeeded */
                memset(&lv->ttft, 0, sizeof lv->ttft);
        }
    }
}

static char *render(const struct bench_report *r, int what)
{
    char *buf = NULL;
    size_t len = 0;
    char err[128];
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    if (what == 0)
        bench_report_table(r, f);
    else if (what == 1)
        CHECK(bench_report_json(r, f, err, sizeof err) == 0);
    else
        CHECK(bench_report_svg(r, f, err, sizeof err) == 0);
    fclose(f);
    return buf;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1e300;
}

/* Every number in the table's rows equals the JSON's to the table's rounding. */
static void test_table_json_agree(int n_servers)
{
    struct bench_report *r = calloc(1, sizeof *r);
    make_report(r, n_servers, "http://a:1");
    char *table = render(r, 0), *json = render(r, 1);
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    CHECKF(j != NULL, "the JSON does not parse");
    if (!table || !j)
        goto out;
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(j, "servers");
    CHECK(cJSON_GetArraySize(servers) == n_servers);
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "prompts")) &&
          !strcmp(cJSON_GetObjectItemCaseSensitive(j, "prompts")->valuestring, r->prompts));

    int section = 0, rows_tp = 0, rows_lat = 0, rows_fail = 0, rows_ratio = 0;
    char *save = NULL;
    for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strcmp(line, "Throughput"))
            section = 1;
        else if (!strncmp(line, "Latency (ms)", 12))
            section = 2;
        else if (!strcmp(line, "Failures"))
            section = 3;
        char name[8];
        int conc, used;
        if (!section || sscanf(line, "%7s %d%n", name, &conc, &used) != 2)
            continue;
        if (!strcmp(name, "B/A")) {
            rows_ratio++;
            continue;
        }
        int s = name[0] - 'A';
        if (s < 0 || s >= n_servers || name[1])
            continue;
        const cJSON *levels = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(servers, s),
                                                               "levels");
        const cJSON *lv = NULL, *it;
        cJSON_ArrayForEach(it, levels)
        {
            if (num(it, "concurrency") == conc)
                lv = it;
        }
        CHECKF(lv != NULL, "no JSON level for table row %s", line);
        if (!lv)
            continue;
        const char *rest = line + used;
        if (section == 1) {
            long long done, failed, cancel, in, out, chunks;
            double dur, rps, otps, ttps;
            int k = sscanf(rest, "%lld %lld %lld %lf %lf %lf %lf %lld %lld %lld", &done, &failed,
                           &cancel, &dur, &rps, &otps, &ttps, &in, &out, &chunks);
            CHECKF(k == 10, "throughput row: %s", line);
            CHECK(done == (long long)num(lv, "completed") && failed == (long long)num(lv, "failed") &&
                  cancel == (long long)num(lv, "cancelled"));
            CHECK(fabs(dur - num(lv, "duration_s")) <= 0.0051);
            CHECK(fabs(rps - num(lv, "request_throughput")) <= 0.00051);
            CHECK(fabs(otps - num(lv, "output_throughput")) <= 0.0051);
            CHECK(fabs(ttps - num(lv, "total_throughput")) <= 0.0051);
            CHECK(in == (long long)num(lv, "input_tokens") && out == (long long)num(lv, "output_tokens") &&
                  chunks == (long long)num(lv, "content_chunks"));
            rows_tp++;
        } else if (section == 2) {
            static const char *const keys[4] = {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"};
            static const char *const stats[4] = {"mean", "median", "p90", "p99"};
            char cell[16][16];
            int k = sscanf(rest, "%15s %15s %15s %15s %15s %15s %15s %15s %15s %15s %15s %15s %15s %15s %15s %15s",
                           cell[0], cell[1], cell[2], cell[3], cell[4], cell[5], cell[6], cell[7], cell[8],
                           cell[9], cell[10], cell[11], cell[12], cell[13], cell[14], cell[15]);
            CHECKF(k == 16, "latency row: %s", line);
            for (int m = 0; m < 16 && k == 16; m++) {
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(lv, keys[m / 4]);
                if (num(d, "n") == 0) {
                    CHECK(!strcmp(cell[m], "-"));
                    continue;
                }
                CHECKF(fabs(atof(cell[m]) - num(d, stats[m % 4])) <= 0.0051, "%s %s: %s vs %g",
                       keys[m / 4], stats[m % 4], cell[m], num(d, stats[m % 4]));
            }
            rows_lat++;
        } else if (section == 3) {
            const cJSON *fk = cJSON_GetObjectItemCaseSensitive(lv, "failures");
            long long c[BENCH_FAIL_COUNT];
            int k = sscanf(rest, "%lld %lld %lld %lld %lld", &c[0], &c[1], &c[2], &c[3], &c[4]);
            CHECK(k == BENCH_FAIL_COUNT);
            for (int q = 0; q < BENCH_FAIL_COUNT && k == BENCH_FAIL_COUNT; q++)
                CHECK(c[q] == (long long)num(fk, bench_fail_name(q)));
            rows_fail++;
        }
    }
    CHECKF(rows_tp == 5 * n_servers && rows_lat == 5 * n_servers && rows_fail == 5 * n_servers,
           "rows %d %d %d", rows_tp, rows_lat, rows_fail);
    CHECK(rows_ratio == (n_servers == 2 ? 10 : 0));
    if (n_servers == 2) {
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(j, "ratios_b_over_a");
        CHECK(cJSON_GetArraySize(ra) == 5);
        const cJSON *x = cJSON_GetArrayItem(ra, 1);
        const struct bench_level *a = &r->servers[0].levels[1], *b = &r->servers[1].levels[1];
        CHECK(fabs(num(x, "output_throughput") - b->out_tok_per_s / a->out_tok_per_s) < 1e-9);
    }
out:
    cJSON_Delete(j);
    free(table);
    free(json);
    free(r);
}

/* A small XML well-formedness check: one root element, every tag closed in
 * order, attribute values quoted, only the five entities (and numeric
 * ones) after '&', no '<' in text. Returns NULL or what is wrong. */
static const char *xml_check(const char *s, int *n_elems)
{
    const char *stack[256];
    size_t stack_len[256];
    int depth = 0, roots = 0;
    *n_elems = 0;
    if (!strncmp(s, "<?xml", 5)) {
        s = strstr(s, "?>");
        if (!s)
            return "unclosed declaration";
        s += 2;
    }
    while (*s) {
        if (*s == '&') {
            static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            int ok = 0;
            for (int i = 0; i < 5; i++)
                ok |= !strncmp(s, ents[i], strlen(ents[i]));
            if (!ok && s[1] == '#') {
                const char *e = strchr(s, ';');
                ok = e && e - s < 10;
            }
            if (!ok)
                return "bad entity";
            s++;
            continue;
        }
        if (*s != '<') {
            if (depth == 0 && !strchr(" \t\r\n", *s))
                return "text outside the root";
            s++;
            continue;
        }
        if (s[1] == '/') {
            const char *e = strchr(s, '>');
            if (!e || depth == 0)
                return "stray end tag";
            size_t n = (size_t)(e - s - 2);
            depth--;
            if (n != stack_len[depth] || strncmp(s + 2, stack[depth], n))
                return "mismatched end tag";
            s = e + 1;
            continue;
        }
        const char *name = s + 1;
        size_t nlen = strcspn(name, " \t\r\n/>");
        if (nlen == 0)
            return "empty tag name";
        const char *p = name + nlen;
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\t')
                p++;
            if (*p == '>' || (p[0] == '/' && p[1] == '>'))
                break;
            size_t an = strcspn(p, "= \t\n>");
            if (an == 0 || p[an] != '=' || p[an + 1] != '"')
                return "unquoted attribute";
            const char *v = p + an + 2;
            const char *ve = strchr(v, '"');
            if (!ve)
                return "unterminated attribute";
            for (const char *q = v; q < ve; q++)
                if (*q == '<' || (*q == '&' && strncmp(q, "&amp;", 5) && strncmp(q, "&lt;", 4) &&
                                  strncmp(q, "&gt;", 4) && strncmp(q, "&quot;", 6) &&
                                  strncmp(q, "&apos;", 6)))
                    return "bad character in attribute";
            p = ve + 1;
        }
        (*n_elems)++;
        if (depth == 0)
            roots++;
        if (*p == '/') {
            s = p + 2;
            continue;
        }
        if (depth == 256)
            return "too deep";
        stack[depth] = name;
        stack_len[depth] = nlen;
        depth++;
        s = p + 1;
    }
    if (depth)
        return "unclosed element";
    if (roots != 1)
        return "not exactly one root";
    return NULL;
}

static int count_str(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++)
        n++;
    return n;
}

static void test_svg(void)
{
    int n;
    CHECK(xml_check("<a><b x=\"1\"/>t &amp; u</a>", &n) == NULL && n == 2);
    CHECK(xml_check("<a><b></a></b>", &n) != NULL);
    CHECK(xml_check("<a x=1/>", &n) != NULL);
    CHECK(xml_check("<a>&</a>", &n) != NULL);
    CHECK(xml_check("<a/><b/>", &n) != NULL);

    for (int servers = 1; servers <= 2; servers++) {
        struct bench_report *r = calloc(1, sizeof *r);
        make_report(r, servers, "http://a:1/?x=1&y=<2>");
        char *svg = render(r, 2);
        const char *why = svg ? xml_check(svg, &n) : "no output";
        CHECKF(why == NULL, "SVG with %d servers: %s", servers, why);
        CHECK(svg && strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
        CHECK(svg && count_str(svg, "<polyline") == 2 * servers);
        CHECK(svg && strstr(svg, "x=1&amp;y=&lt;2&gt;") != NULL);
        /* one point per level and panel, except where there is nothing to show */
        int want = 0;
        for (int s = 0; s < servers; s++)
            for (int li = 0; li < 5; li++)
                want += (r->servers[s].levels[li].completed > 0) + (r->servers[s].levels[li].ttft.n > 0);
        CHECK(svg && count_str(svg, "<circle") == want);
        free(svg);
        free(r);
    }
}

int main(void)
{
    test_sse_splits();
    test_sse_broken();
    test_percentiles();
    test_level_compute();
    test_table_json_agree(1);
    test_table_json_agree(2);
    test_svg();
    TEST_END();
}
