/*
 * server_metrics.h: the counters and histograms `pagoda serve` keeps about its
 * requests, and their Prometheus text exposition (with the engine's gauges
 * from pagoda_engine_stats) for GET /metrics. Safe to use from any thread.
 */
#ifndef PAGODA_SERVER_METRICS_H
#define PAGODA_SERVER_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h"

#define SRV_TTFT_BUCKETS 12
#define SRV_TPOT_BUCKETS 11

struct srv_histogram {
    const double *bounds; /* upper bounds, ascending; +Inf is implied */
    int n_bounds;
    uint64_t counts[16];  /* per bucket (not cumulative), the last one +Inf */
    uint64_t count;
    double sum;
};

struct srv_metrics {
    pthread_mutex_t mu;
    uint64_t by_status[600]; /* requests by HTTP status */
    uint64_t prompt_tokens, generated_tokens;
    uint64_t aborted;        /* sequences aborted (client gone, shutdown) */
    struct srv_histogram ttft, tpot;
};

void srv_metrics_init(struct srv_metrics *m);
void srv_metrics_destroy(struct srv_metrics *m);
/* One finished HTTP request. */
void srv_metrics_request(struct srv_metrics *m, int status);
/* One finished sequence: tokens and the latency histograms. */
void srv_metrics_sequence(struct srv_metrics *m, const pagoda_timings *t, int aborted);
/* The exposition text (malloc'd, NUL-terminated), NULL when out of memory. */
char *srv_metrics_render(struct srv_metrics *m, const pagoda_stats *s);

#endif
