/* grad_sync.c: bucketed, overlapped sum of the gradient arena over the ranks. */
#include "grad_sync.h"

#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "util.h"

void grad_sync_init(GradSync *g, float *grads, size_t total, size_t bucket_floats) {
    *g = (GradSync){.grads = grads, .total = total, .bucket = bucket_floats};
    g->req_cap = bucket_floats ? (int)(total / bucket_floats) + 2 : 1;
    g->req = xcalloc((size_t)g->req_cap, sizeof(MPI_Request));
}

void grad_sync_free(GradSync *g) { free(g->req); }

void grad_sync_begin(GradSync *g) {
    g->sent_lo = g->total;
    g->nreq = 0;
    g->buckets = 0;
}

static void start(GradSync *g, size_t lo, size_t hi) {
    if (hi <= lo) return;
    if (hi - lo > 2147483647u) die("gradient bucket of %zu floats: too large for one MPI call", hi - lo);
    if (g->nreq == g->req_cap) die("gradient buckets: more than %d (internal error)", g->req_cap);
    MPI_Iallreduce(MPI_IN_PLACE, g->grads + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM, dist_comm(),
                   &g->req[g->nreq++]);
    g->buckets++;
    g->sent_lo = lo;
}

void grad_sync_ready(void *ctx, size_t lo) {
    GradSync *g = ctx;
    if (dist()->size == 1 || g->bucket == 0) return;
    const double t0 = now_seconds();
    if (g->sent_lo > lo && g->sent_lo - lo >= g->bucket) start(g, lo, g->sent_lo);
    if (g->nreq) { /* Open MPI moves non-blocking collectives forward only inside MPI calls */
        int done;
        MPI_Testall(g->nreq, g->req, &done, MPI_STATUSES_IGNORE);
    }
    g->call_seconds += now_seconds() - t0;
}

void grad_sync_finish(GradSync *g) {
    if (dist()->size == 1) return;
    const double t0 = now_seconds();
    if (g->bucket == 0) {
        if (g->total > 2147483647u) die("gradient arena too large for one MPI call");
        MPI_Allreduce(MPI_IN_PLACE, g->grads, (int)g->total, MPI_FLOAT, MPI_SUM, dist_comm());
        g->buckets = 1;
    } else {
        start(g, 0, g->sent_lo);
        MPI_Waitall(g->nreq, g->req, MPI_STATUSES_IGNORE);
    }
    g->nreq = 0;
    g->wait_seconds += now_seconds() - t0;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double grad_sync_blocking_seconds(const GradSync *g, int reps) {
    if (dist()->size == 1 || reps < 1) return 0.0;
    float *scratch = floats_alloc(g->total);
    memcpy(scratch, g->grads, g->total * sizeof(float));
    double *times = xcalloc((size_t)reps, sizeof(double));
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(dist_comm());
        const double t0 = now_seconds();
        MPI_Allreduce(MPI_IN_PLACE, scratch, (int)g->total, MPI_FLOAT, MPI_SUM, dist_comm());
        times[r] = now_seconds() - t0;
    }
    qsort(times, (size_t)reps, sizeof(double), by_value);
    const double median = times[reps / 2];
    free(times);
    free(scratch);
    return median;
}
