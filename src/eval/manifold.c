/* manifold.c: k-nearest-neighbour balls and the precision/recall built on them (manifold.h). */
#include "manifold.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "cblas.h"
#include "util.h"

#define ROWS 256 /* rows of x per block: a block's distances are ROWS x (rows of the other set) */

static void squared_norms(float *out, const float *a, long n, int d) {
    for (long i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++) s += (double)a[i * d + j] * a[i * d + j];
        out[i] = (float)s;
    }
}

/* dist[r, j] = |x_r|^2 + |y_j|^2 - 2 x_r . y_j for the rows r of one block of x. */
static void block_distances(float *dist, const float *x, const float *xn, long rows,
                            const float *y, const float *yn, long ny, int d) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)ny, d, -2.0f, x, d, y, d,
                0.0f, dist, (int)ny);
    for (long r = 0; r < rows; r++)
        for (long j = 0; j < ny; j++) dist[r * ny + j] += xn[r] + yn[j];
}

void knn_radii2(float *radius2, const float *a, long n, int d, int k) {
    if (k < 1 || n <= k) die("knn_radii2: need more than k = %d points, got %ld", k, n);
    float *norms = floats_alloc((size_t)n);
    squared_norms(norms, a, n, d);
#pragma omp parallel
    {
        float *dist = floats_alloc((size_t)ROWS * n), *best = floats_alloc((size_t)k);
#pragma omp for schedule(dynamic)
        for (long i0 = 0; i0 < n; i0 += ROWS) {
            const long rows = n - i0 < ROWS ? n - i0 : ROWS;
            block_distances(dist, a + i0 * d, norms + i0, rows, a, norms, n, d);
            for (long r = 0; r < rows; r++) {
                for (int q = 0; q < k; q++) best[q] = FLT_MAX; /* ascending: the k smallest */
                const float *row = dist + r * n;
                for (long j = 0; j < n; j++) {
                    if (j == i0 + r || !(row[j] < best[k - 1])) continue; /* NaN: never near */
                    int q = k - 1;
                    for (; q > 0 && best[q - 1] > row[j]; q--) best[q] = best[q - 1];
                    best[q] = row[j];
                }
                radius2[i0 + r] = best[k - 1] > 0.0f ? best[k - 1] : 0.0f;
            }
        }
        free(dist), free(best);
    }
    free(norms);
}

double manifold_coverage(const float *x, long nx, const float *ref, const float *radius2, long nr,
                         int d) {
    float *xn = floats_alloc((size_t)nx), *rn = floats_alloc((size_t)nr);
    squared_norms(xn, x, nx, d);
    squared_norms(rn, ref, nr, d);
    long inside = 0;
#pragma omp parallel reduction(+ : inside)
    {
        float *dist = floats_alloc((size_t)ROWS * nr);
#pragma omp for schedule(dynamic)
        for (long i0 = 0; i0 < nx; i0 += ROWS) {
            const long rows = nx - i0 < ROWS ? nx - i0 : ROWS;
            block_distances(dist, x + i0 * d, xn + i0, rows, ref, rn, nr, d);
            for (long r = 0; r < rows; r++) {
                const float *row = dist + r * nr;
                long j = 0;
                while (j < nr && !(row[j] <= radius2[j])) j++; /* NaN: outside */
                inside += j < nr;
            }
        }
        free(dist);
    }
    free(xn), free(rn);
    return nx > 0 ? (double)inside / nx : 0.0;
}

void precision_recall(double *precision, double *recall, const float *gen, long ng,
                      const float *real, long nr, int d, int k) {
    float *rr = floats_alloc((size_t)nr), *rg = floats_alloc((size_t)ng);
    knn_radii2(rr, real, nr, d, k);
    knn_radii2(rg, gen, ng, d, k);
    *precision = manifold_coverage(gen, ng, real, rr, nr, d);
    *recall = manifold_coverage(real, nr, gen, rg, ng, d);
    free(rr), free(rg);
}
