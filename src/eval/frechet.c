/* frechet.c: feature moments and the Frechet distance (matrix square roots from LAPACK). */
#include "frechet.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "util.h"

void feature_stats_init(FeatureStats *s, int d) {
    s->d = d;
    s->n = 0;
    s->sum = xcalloc((size_t)d, sizeof(double));
    s->outer = xcalloc((size_t)d * d, sizeof(double));
}

void feature_stats_free(FeatureStats *s) {
    free(s->sum);
    free(s->outer);
    memset(s, 0, sizeof *s);
}

void feature_stats_add(FeatureStats *s, const float *x, int n) {
    const int d = s->d;
    for (int r = 0; r < n; r++) {
        const float *row = x + (size_t)r * d;
        for (int i = 0; i < d; i++) s->sum[i] += row[i];
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < d; i++)
        for (int r = 0; r < n; r++) {
            const float *row = x + (size_t)r * d;
            const double xi = row[i];
            double *out = s->outer + (size_t)i * d;
            for (int j = 0; j < d; j++) out[j] += xi * row[j];
        }
    s->n += n;
}

void feature_stats_reduce(FeatureStats *s) {
    dist_sum_doubles(s->sum, (size_t)s->d);
    dist_sum_doubles(s->outer, (size_t)s->d * s->d);
    double n = (double)s->n;
    dist_sum_doubles(&n, 1);
    s->n = (long)n;
}

void feature_stats_moments(const FeatureStats *s, double *mu, double *cov) {
    const int d = s->d;
    if (s->n < 2) die("feature statistics of %ld images: need at least 2", s->n);
    for (int i = 0; i < d; i++) mu[i] = s->sum[i] / (double)s->n;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            cov[(size_t)i * d + j] = (s->outer[(size_t)i * d + j] - s->n * mu[i] * mu[j]) / (double)(s->n - 1);
}

/* Eigenvalues (ascending) into w and eigenvectors into the columns of a (row-major, in place). */
static void eigen(double *a, double *w, int d) {
    const lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', d, a, d, w);
    if (info != 0) die("eigendecomposition failed (LAPACK dsyevd info %d)", (int)info);
}

double frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2,
                        int d) {
    return frechet_distance_parts(mu1, s1, mu2, s2, d, NULL);
}

double frechet_distance_parts(const double *mu1, const double *s1, const double *mu2,
                              const double *s2, int d, double *mean_term) {
    const size_t dd = (size_t)d * d;
    /* images of a diverged model hold NaN: their distance is NaN (LAPACK would refuse them) */
    int finite = 1;
    for (size_t i = 0; i < dd; i++) finite &= isfinite(s1[i]) && isfinite(s2[i]);
    for (int i = 0; i < d; i++) finite &= isfinite(mu1[i]) && isfinite(mu2[i]);
    if (!finite) {
        if (mean_term) *mean_term = NAN;
        return NAN;
    }
    double *v = xcalloc(dd, sizeof(double)), *w = xcalloc((size_t)d, sizeof(double));
    double *root = xcalloc(dd, sizeof(double)), *tmp = xcalloc(dd, sizeof(double));
    /* S1^1/2 = V diag(sqrt l) V^T */
    memcpy(v, s1, dd * sizeof(double));
    eigen(v, w, d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0.0;
            for (int k = 0; k < d; k++)
                acc += v[(size_t)i * d + k] * sqrt(w[k] > 0 ? w[k] : 0.0) * v[(size_t)j * d + k];
            root[(size_t)i * d + j] = acc;
        }
    /* M = S1^1/2 S2 S1^1/2, symmetric positive semi-definite */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0.0;
            for (int k = 0; k < d; k++) acc += root[(size_t)i * d + k] * s2[(size_t)k * d + j];
            tmp[(size_t)i * d + j] = acc;
        }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0.0;
            for (int k = 0; k < d; k++) acc += tmp[(size_t)i * d + k] * root[(size_t)k * d + j];
            v[(size_t)i * d + j] = acc;
        }
    for (int i = 0; i < d; i++) /* symmetrise away rounding before the eigensolver */
        for (int j = 0; j < i; j++) {
            const double m = 0.5 * (v[(size_t)i * d + j] + v[(size_t)j * d + i]);
            v[(size_t)i * d + j] = v[(size_t)j * d + i] = m;
        }
    eigen(v, w, d);
    double trace_root = 0.0, trace = 0.0, diff = 0.0;
    for (int i = 0; i < d; i++) {
        trace_root += sqrt(w[i] > 0 ? w[i] : 0.0);
        trace += s1[(size_t)i * d + i] + s2[(size_t)i * d + i];
        diff += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    }
    free(v), free(w), free(root), free(tmp);
    if (mean_term) *mean_term = diff;
    const double fid = diff + trace - 2.0 * trace_root;
    return fid < 0.0 ? 0.0 : fid; /* a distance: rounding may leave -1e-10 for equal moments */
}
