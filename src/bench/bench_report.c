/*
 * bench_report.c: the outputs of `pagoda bench serve`: plain tables for the
 * terminal (throughput, latency, failures, and second/first ratios when two
 * servers were compared), the same figures as JSON, and a standalone SVG
 * chart of output throughput and median TTFT against concurrency.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/err.h"
#include "bench/bench_serve.h"

static const char server_names[BENCH_MAX_SERVERS][2] = {"A", "B"};

static double ratio(double b, double a)
{
    return a > 0 ? b / a : 0;
}

/* ---- table ---- */

static void table_header(const struct bench_report *r, FILE *f)
{
    fprintf(f, "pagoda bench serve: /v1/%s, input %d tokens, output %d tokens, ", r->endpoint,
            r->input_len, r->output_len);
    if (r->duration_s > 0)
        fprintf(f, "%.1f s per level", r->duration_s);
    else if (r->requests > 0)
        fprintf(f, "%lld requests per level", r->requests);
    else
        fprintf(f, "4 x concurrency requests per level (at least 8)");
    if (r->rate > 0)
        fprintf(f, ", Poisson arrivals at %.3g req/s", r->rate);
    else
        fprintf(f, ", all at once");
    fprintf(f, ", seed %llu\n", (unsigned long long)r->seed);
    if (r->prompts[0])
        fprintf(f, "prompts: %s\n", r->prompts);
    for (int s = 0; s < r->n_servers; s++)
        fprintf(f, "server %s: %s  model %s\n", server_names[s], r->servers[s].url,
                r->servers[s].model[0] ? r->servers[s].model : "(none named)");
    for (int i = 0; i < r->n_notes; i++)
        fprintf(f, "note: %s\n", r->notes[i]);
    if (r->interrupted)
        fprintf(f, "note: interrupted: the figures cover what was measured before Ctrl-C\n");
}

static int max_levels(const struct bench_report *r)
{
    int n = 0;
    for (int s = 0; s < r->n_servers; s++)
        n = r->servers[s].n_levels > n ? r->servers[s].n_levels : n;
    return n;
}

/* "-" marks a distribution without samples (no request got that far). */
static void dist_cells(const struct bench_dist *d, FILE *f)
{
    if (d->n == 0)
        fprintf(f, " %9s %9s %9s %9s", "-", "-", "-", "-");
    else
        fprintf(f, " %9.2f %9.2f %9.2f %9.2f", d->mean, d->median, d->p90, d->p99);
}

static void dist_ratio_cells(const struct bench_dist *b, const struct bench_dist *a, FILE *f)
{
    fprintf(f, " %9.3f %9.3f %9.3f %9.3f", ratio(b->mean, a->mean), ratio(b->median, a->median),
            ratio(b->p90, a->p90), ratio(b->p99, a->p99));
}

void bench_report_table(const struct bench_report *r, FILE *f)
{
    const int nl = max_levels(r);
    const int cmp = r->n_servers == 2;
    char src[48];
    table_header(r, f);

    fprintf(f, "\nThroughput\n");
    fprintf(f, "%-6s %5s %6s %6s %6s %8s %9s %10s %10s %9s %9s %9s  %s\n", "server", "conc", "done",
            "failed", "cancel", "dur_s", "req/s", "out_tok/s", "tot_tok/s", "in_tok", "out_tok",
            "chunks", "tokens");
    for (int li = 0; li < nl; li++) {
        for (int s = 0; s < r->n_servers; s++) {
            if (li >= r->servers[s].n_levels)
                continue;
            const struct bench_level *lv = &r->servers[s].levels[li];
            fprintf(f, "%-6s %5d %6lld %6lld %6lld %8.2f %9.3f %10.2f %10.2f %9lld %9lld %9lld  %s\n",
                    server_names[s], lv->concurrency, lv->completed, lv->failed_total,
                    lv->cancelled, lv->duration_s, lv->req_per_s, lv->out_tok_per_s,
                    lv->total_tok_per_s, lv->input_tokens, lv->output_tokens, lv->chunks,
                    bench_count_name(lv->count_sources, src, sizeof src));
        }
        if (cmp && li < r->servers[1].n_levels) {
            const struct bench_level *a = &r->servers[0].levels[li], *b = &r->servers[1].levels[li];
            fprintf(f, "%-6s %5d %6s %6s %6s %8.3f %9.3f %10.3f %10.3f\n", "B/A", a->concurrency,
                    "", "", "", ratio(b->duration_s, a->duration_s),
                    ratio(b->req_per_s, a->req_per_s), ratio(b->out_tok_per_s, a->out_tok_per_s),
                    ratio(b->total_tok_per_s, a->total_tok_per_s));
        }
    }

    fprintf(f, "\nLatency (ms)   %-39s %-39s %-39s %s\n", "TTFT mean/median/p90/p99",
            "TPOT mean/median/p90/p99", "ITL mean/median/p90/p99", "E2E mean/median/p90/p99");
    fprintf(f, "%-6s %5s", "server", "conc");
    for (int k = 0; k < 4; k++)
        fprintf(f, " %9s %9s %9s %9s", "mean", "median", "p90", "p99");
    fputc('\n', f);
    for (int li = 0; li < nl; li++) {
        for (int s = 0; s < r->n_servers; s++) {
            if (li >= r->servers[s].n_levels)
                continue;
            const struct bench_level *lv = &r->servers[s].levels[li];
            fprintf(f, "%-6s %5d", server_names[s], lv->concurrency);
            dist_cells(&lv->ttft, f);
            dist_cells(&lv->tpot, f);
            dist_cells(&lv->itl, f);
            dist_cells(&lv->e2e, f);
            fputc('\n', f);
        }
        if (cmp && li < r->servers[1].n_levels) {
            const struct bench_level *a = &r->servers[0].levels[li], *b = &r->servers[1].levels[li];
            fprintf(f, "%-6s %5d", "B/A", a->concurrency);
            dist_ratio_cells(&b->ttft, &a->ttft, f);
            dist_ratio_cells(&b->tpot, &a->tpot, f);
            dist_ratio_cells(&b->itl, &a->itl, f);
            dist_ratio_cells(&b->e2e, &a->e2e, f);
            fputc('\n', f);
        }
    }

    fprintf(f, "\nFailures\n%-6s %5s", "server", "conc");
    for (int k = 0; k < BENCH_FAIL_COUNT; k++)
        fprintf(f, " %7s", bench_fail_name(k));
    fputc('\n', f);
    for (int li = 0; li < nl; li++) {
        for (int s = 0; s < r->n_servers; s++) {
            if (li >= r->servers[s].n_levels)
                continue;
            const struct bench_level *lv = &r->servers[s].levels[li];
            fprintf(f, "%-6s %5d", server_names[s], lv->concurrency);
            for (int k = 0; k < BENCH_FAIL_COUNT; k++)
                fprintf(f, " %7lld", lv->failed[k]);
            fputc('\n', f);
        }
    }
    /* The first message of each kind, so a failure can be looked into. */
    for (int li = 0; li < nl; li++)
        for (int s = 0; s < r->n_servers; s++)
            for (int k = 0; k < BENCH_FAIL_COUNT && li < r->servers[s].n_levels; k++) {
                const struct bench_level *lv = &r->servers[s].levels[li];
                if (lv->failed[k] && lv->first_error[k][0])
                    fprintf(f, "first %s error (%s, c=%d): %s\n", bench_fail_name(k),
                            server_names[s], lv->concurrency, lv->first_error[k]);
            }
    if (cmp)
        fprintf(f, "\nB/A: server B's figure divided by server A's (0 when A's is 0).\n");
}

/* ---- JSON ---- */

static cJSON *dist_json(const struct bench_dist *d)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "n", (double)d->n);
    cJSON_AddNumberToObject(o, "mean", d->mean);
    cJSON_AddNumberToObject(o, "median", d->median);
    cJSON_AddNumberToObject(o, "p90", d->p90);
    cJSON_AddNumberToObject(o, "p99", d->p99);
    return o;
}

static cJSON *level_json(const struct bench_level *lv)
{
    char src[48];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "concurrency", lv->concurrency);
    cJSON_AddNumberToObject(o, "sent", (double)lv->sent);
    cJSON_AddNumberToObject(o, "completed", (double)lv->completed);
    cJSON_AddNumberToObject(o, "failed", (double)lv->failed_total);
    cJSON_AddNumberToObject(o, "cancelled", (double)lv->cancelled);
    cJSON *fk = cJSON_AddObjectToObject(o, "failures");
    cJSON *fe = cJSON_AddObjectToObject(o, "first_errors");
    for (int k = 0; k < BENCH_FAIL_COUNT && fk && fe; k++) {
        cJSON_AddNumberToObject(fk, bench_fail_name(k), (double)lv->failed[k]);
        if (lv->first_error[k][0])
            cJSON_AddStringToObject(fe, bench_fail_name(k), lv->first_error[k]);
    }
    cJSON_AddNumberToObject(o, "duration_s", lv->duration_s);
    cJSON_AddNumberToObject(o, "request_throughput", lv->req_per_s);
    cJSON_AddNumberToObject(o, "output_throughput", lv->out_tok_per_s);
    cJSON_AddNumberToObject(o, "total_throughput", lv->total_tok_per_s);
    cJSON_AddNumberToObject(o, "input_tokens", (double)lv->input_tokens);
    cJSON_AddNumberToObject(o, "output_tokens", (double)lv->output_tokens);
    cJSON_AddNumberToObject(o, "content_chunks", (double)lv->chunks);
    cJSON_AddStringToObject(o, "token_count", bench_count_name(lv->count_sources, src, sizeof src));
    cJSON_AddItemToObject(o, "ttft_ms", dist_json(&lv->ttft));
    cJSON_AddItemToObject(o, "tpot_ms", dist_json(&lv->tpot));
    cJSON_AddItemToObject(o, "itl_ms", dist_json(&lv->itl));
    cJSON_AddItemToObject(o, "e2e_ms", dist_json(&lv->e2e));
    return o;
}

int bench_report_json(const struct bench_report *r, FILE *f, char *err, size_t errlen)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    cJSON_AddStringToObject(o, "benchmark", "serve");
    cJSON_AddStringToObject(o, "endpoint", r->endpoint);
    cJSON_AddNumberToObject(o, "input_len", r->input_len);
    cJSON_AddNumberToObject(o, "output_len", r->output_len);
    cJSON_AddNumberToObject(o, "requests_per_level", (double)r->requests);
    cJSON_AddNumberToObject(o, "duration_s", r->duration_s);
    cJSON_AddNumberToObject(o, "rate", r->rate);
    cJSON_AddNumberToObject(o, "seed", (double)r->seed);
    cJSON_AddStringToObject(o, "prompts", r->prompts);
    cJSON_AddBoolToObject(o, "interrupted", r->interrupted);
    cJSON *notes = cJSON_AddArrayToObject(o, "notes");
    for (int i = 0; i < r->n_notes && notes; i++)
        cJSON_AddItemToArray(notes, cJSON_CreateString(r->notes[i]));
    cJSON *servers = cJSON_AddArrayToObject(o, "servers");
    for (int s = 0; s < r->n_servers && servers; s++) {
        cJSON *so = cJSON_CreateObject();
        if (!so)
            break;
        cJSON_AddStringToObject(so, "name", server_names[s]);
        cJSON_AddStringToObject(so, "url", r->servers[s].url);
        cJSON_AddStringToObject(so, "model", r->servers[s].model);
        cJSON *levels = cJSON_AddArrayToObject(so, "levels");
        for (int li = 0; li < r->servers[s].n_levels && levels; li++)
            cJSON_AddItemToArray(levels, level_json(&r->servers[s].levels[li]));
        cJSON_AddItemToArray(servers, so);
    }
    if (r->n_servers == 2) {
        cJSON *ra = cJSON_AddArrayToObject(o, "ratios_b_over_a");
        int n = r->servers[0].n_levels < r->servers[1].n_levels ? r->servers[0].n_levels
                                                                : r->servers[1].n_levels;
        for (int li = 0; li < n && ra; li++) {
            const struct bench_level *a = &r->servers[0].levels[li], *b = &r->servers[1].levels[li];
            cJSON *x = cJSON_CreateObject();
            if (!x)
                break;
            cJSON_AddNumberToObject(x, "concurrency", a->concurrency);
            cJSON_AddNumberToObject(x, "request_throughput", ratio(b->req_per_s, a->req_per_s));
            cJSON_AddNumberToObject(x, "output_throughput",
                                    ratio(b->out_tok_per_s, a->out_tok_per_s));
            cJSON_AddNumberToObject(x, "total_throughput",
                                    ratio(b->total_tok_per_s, a->total_tok_per_s));
            cJSON_AddNumberToObject(x, "ttft_median", ratio(b->ttft.median, a->ttft.median));
            cJSON_AddNumberToObject(x, "tpot_median", ratio(b->tpot.median, a->tpot.median));
            cJSON_AddNumberToObject(x, "itl_median", ratio(b->itl.median, a->itl.median));
            cJSON_AddNumberToObject(x, "e2e_median", ratio(b->e2e.median, a->e2e.median));
            cJSON_AddItemToArray(ra, x);
        }
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    int bad = fputs(text, f) < 0 || fputc('\n', f) == EOF;
    cJSON_free(text);
    if (bad)
        return err_set(err, errlen, PAGODA_EIO, "cannot write the JSON report");
    return 0;
}

/* ---- SVG ---- */

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* XML 1.0 allows no control characters but tab and newlines. */
            fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
        }
    }
}

/* A round axis maximum at or above v and its tick step (5 or so ticks). */
static double nice_max(double v, double *step)
{
    if (!(v > 0))
        v = 1;
    double raw = v / 5;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    double s = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
    *step = s * p;
    return ceil(v / *step - 1e-9) * *step;
}

static const char *const svg_colors[BENCH_MAX_SERVERS] = {"#1f77b4", "#d62728"};

enum { PANEL_W = 440, PANEL_H = 300, PAD_L = 70, PAD_T = 70, PAD_B = 50, GAP = 90 };

static double metric(const struct bench_level *lv, int which)
{
    return which == 0 ? lv->out_tok_per_s : lv->ttft.median;
}

/* A level has a point: something completed (and, for TTFT, got a token). */
static int has_point(const struct bench_level *lv, int which)
{
    return lv->completed > 0 && (which == 0 || lv->ttft.n > 0);
}

static void svg_panel(const struct bench_report *r, FILE *f, int which, double x0)
{
    const char *title = which == 0 ? "Output throughput (tokens/s)" : "Median TTFT (ms)";
    const int nl = max_levels(r);
    double vmax = 0;
    for (int s = 0; s < r->n_servers; s++)
        for (int li = 0; li < r->servers[s].n_levels; li++)
            if (has_point(&r->servers[s].levels[li], which))
                vmax = fmax(vmax, metric(&r->servers[s].levels[li], which));
    double step, top = nice_max(vmax, &step);
    const double y0 = PAD_T, y1 = PAD_T + PANEL_H;
    fprintf(f, "<g>\n<text x=\"%.1f\" y=\"%d\" font-size=\"15\" text-anchor=\"middle\">", x0 + PANEL_W / 2.0,
            PAD_T - 14);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n",
            x0, y0, PANEL_W, PANEL_H);
    for (double t = 0; t <= top + step * 1e-6; t += step) {
        double y = y1 - t / top * PANEL_H;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, y,
                x0 + PANEL_W, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n",
                x0 - 6, y + 4, t);
    }
    for (int li = 0; li < nl; li++) {
        int conc = 0;
        for (int s = 0; s < r->n_servers && !conc; s++)
            if (li < r->servers[s].n_levels)
                conc = r->servers[s].levels[li].concurrency;
        double x = x0 + (li + 0.5) * PANEL_W / nl;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n", x,
                y1 + 16, conc);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">concurrency</text>\n",
            x0 + PANEL_W / 2.0, y1 + 36);
    for (int s = 0; s < r->n_servers; s++) {
        const struct bench_server *sv = &r->servers[s];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", svg_colors[s]);
        int first = 1;
        for (int li = 0; li < sv->n_levels; li++) {
            if (!has_point(&sv->levels[li], which))
                continue;
            double x = x0 + (li + 0.5) * PANEL_W / nl;
            double y = y1 - metric(&sv->levels[li], which) / top * PANEL_H;
            fprintf(f, "%s%.1f,%.1f", first ? "" : " ", x, y);
            first = 0;
        }
        fprintf(f, "\"/>\n");
        for (int li = 0; li < sv->n_levels; li++) {
            if (!has_point(&sv->levels[li], which))
                continue;
            double x = x0 + (li + 0.5) * PANEL_W / nl;
            double v = metric(&sv->levels[li], which);
            double y = y1 - v / top * PANEL_H;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s, concurrency %d: %.2f</title></circle>\n",
                    x, y, svg_colors[s], server_names[s], sv->levels[li].concurrency, v);
        }
    }
    fprintf(f, "</g>\n");
}

int bench_report_svg(const struct bench_report *r, FILE *f, char *err, size_t errlen)
{
    const int w = PAD_L + PANEL_W + GAP + PANEL_W + 30;
    const int h = PAD_T + PANEL_H + PAD_B + 24 * r->n_servers + 10;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
            w, h, w, h);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">pagoda bench serve: input %d, output %d tokens%s</text>\n",
            PAD_L, r->input_len, r->output_len, r->interrupted ? " (interrupted)" : "");
    svg_panel(r, f, 0, PAD_L);
    svg_panel(r, f, 1, PAD_L + PANEL_W + GAP);
    for (int s = 0; s < r->n_servers; s++) {
        double y = PAD_T + PANEL_H + PAD_B + 24 * s + 6;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                PAD_L, y, PAD_L + 24, y, svg_colors[s]);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\">%s: ", PAD_L + 32, y + 4, server_names[s]);
        xml_text(f, r->servers[s].url);
        if (r->servers[s].model[0]) {
            fputs(" (", f);
            xml_text(f, r->servers[s].model);
            fputs(")", f);
        }
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
    if (ferror(f))
        return err_set(err, errlen, PAGODA_EIO, "cannot write the SVG report");
    return 0;
}
