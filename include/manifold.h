/* manifold.h: precision and recall of generated images in a feature space, after Kynkaanniemi
 * et al. (2019), "Improved precision and recall metric for assessing generative models".
 *
 * Each set of feature vectors is taken as the union of balls around its points, each ball's
 * radius being the distance from that point to its k-th nearest neighbour in the same set.
 *   precision = fraction of generated points inside the real set's balls (are the samples
 *               realistic?)
 *   recall    = fraction of real points inside the generated set's balls (do the samples
 *               cover the real variety?)
 * FID mixes both; these separate them. Distances are Euclidean, computed with sgemm
 * (|a|^2 + |b|^2 - 2 a.b) over blocks of rows, threads over blocks. */
#ifndef DDPM_MANIFOLD_H
#define DDPM_MANIFOLD_H

#define MANIFOLD_K 3 /* the neighbour that sets each radius (the paper's choice) */

/* radius2[i] = squared distance from row i of a [n, d] to its k-th nearest other row (n > k). */
void knn_radii2(float *radius2, const float *a, long n, int d, int k);
/* Fraction of the rows of x [nx, d] that lie within some ball of (ref [nr, d], radius2 [nr]). */
double manifold_coverage(const float *x, long nx, const float *ref, const float *radius2, long nr,
                         int d);
/* Both numbers for generated gen [ng, d] against real [nr, d] (ng, nr > k). */
void precision_recall(double *precision, double *recall, const float *gen, long ng,
                      const float *real, long nr, int d, int k);

#endif
