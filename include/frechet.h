/* frechet.h: feature statistics and the Frechet distance between two Gaussians.
 *
 *   FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
 *
 * The square roots come from symmetric eigendecompositions (LAPACK dsyevd through LAPACKE):
 * S1^1/2 = V diag(sqrt(max(l, 0))) V^T, then the trace term is the sum of the square roots of
 * the eigenvalues of the symmetric S1^1/2 S2 S1^1/2 (which has the same eigenvalues as S1 S2). */
#ifndef DDPM_FRECHET_H
#define DDPM_FRECHET_H

#include <stddef.h>

/* Running sums for the mean and covariance of d-dimensional features, in double. */
typedef struct {
    int d;
    long n;
    double *sum;   /* [d] */
    double *outer; /* [d, d]: sum of x x^T */
} FeatureStats;

void feature_stats_init(FeatureStats *s, int d);
void feature_stats_free(FeatureStats *s);
/* Add n feature rows x [n, d]. */
void feature_stats_add(FeatureStats *s, const float *x, int n);
/* Sum the statistics of every MPI rank (a world of one rank: nothing to do). Collective. */
void feature_stats_reduce(FeatureStats *s);
/* Mean [d] and unbiased covariance [d, d] (n - 1 in the denominator). */
void feature_stats_moments(const FeatureStats *s, double *mu, double *cov);

double frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2,
                        int d);
/* The same, and its first term |mu1 - mu2|^2 in *mean_term (NULL: not wanted); the rest is the
 * covariance term. */
double frechet_distance_parts(const double *mu1, const double *s1, const double *mu2,
                              const double *s2, int d, double *mean_term);

#endif
