/* test_manifold.c: the k-nearest-neighbour balls and precision/recall of manifold.h.
 *
 * - knn_radii2 and manifold_coverage against brute force in double on random points, with sizes
 *   that leave a partial block of rows and several threads' blocks;
 * - precision/recall on sets whose answer is known: a set against itself (1, 1), a set against a
 *   far-away copy (0, 0), a generator that drops one of two equal clusters (precision high,
 *   recall about half), and a generator spread twice as wide as the real data (recall high,
 *   precision low);
 * - NaN rows count as near nothing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "manifold.h"
#include "rng.h"
#include "util.h"

static float *gaussian(long n, int d, float centre0, float scale, uint32_t key) {
    float *x = floats_alloc((size_t)n * d);
    rng_normal(x, (size_t)n * d, 7, RNG_EVAL, 0, key);
    for (long i = 0; i < n * d; i++) x[i] *= scale;
    for (long i = 0; i < n; i++) x[i * d] += centre0;
    return x;
}

static double dist2(const float *a, const float *b, int d) {
    double s = 0.0;
    for (int j = 0; j < d; j++) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return s;
}

static void test_radii_and_coverage_brute_force(void **state) {
    const long n = 613, m = 300; /* 613 = 2 full blocks of 256 + a partial one */
    const int d = 6, k = 3;
    float *a = gaussian(n, d, 0.0f, 1.0f, 1), *x = gaussian(m, d, 0.5f, 1.2f, 2);
    float *r2 = floats_alloc((size_t)n);
    knn_radii2(r2, a, n, d, k);
    for (long i = 0; i < n; i++) {
        double best[3] = {INFINITY, INFINITY, INFINITY};
        for (long j = 0; j < n; j++) {
            if (j == i) continue;
            const double v = dist2(a + i * d, a + j * d, d);
            if (v < best[2]) {
                int q = 2;
                for (; q > 0 && best[q - 1] > v; q--) best[q] = best[q - 1];
                best[q] = v;
            }
        }
        if (fabs(r2[i] - best[2]) > 1e-4 * (1.0 + best[2]))
            fail_msg("radius2[%ld] = %g, brute force %g", i, (double)r2[i], best[2]);
    }
    long inside = 0, near_edge = 0;
    for (long i = 0; i < m; i++) {
        int in = 0;
        for (long j = 0; j < n && !in; j++) {
            const double v = dist2(x + i * d, a + j * d, d);
            in = v <= r2[j];
            near_edge += fabs(v - r2[j]) < 1e-4 * (1.0 + r2[j]);
        }
        inside += in;
    }
    /* float rounding may decide a point within 1e-4 of a ball's edge either way */
    const double got = manifold_coverage(x, m, a, r2, n, d);
    if (fabs(got * m - inside) > near_edge + 1e-9)
        fail_msg("coverage %g, brute force %g (%ld points near an edge)", got, (double)inside / m, near_edge);
    assert_true(near_edge < 3);
    assert_true(inside > 0 && inside < m); /* the check means something: some in, some out */
    free(a), free(x), free(r2);
}

static void test_known_answers(void **state) {
    const long n = 400;
    const int d = 8;
    double p, r;
    float *a = gaussian(n, d, 0.0f, 1.0f, 3);
    precision_recall(&p, &r, a, n, a, n, d, MANIFOLD_K);
    assert_true(p == 1.0 && r == 1.0);

    float *far = gaussian(n, d, 100.0f, 1.0f, 4);
    precision_recall(&p, &r, far, n, a, n, d, MANIFOLD_K);
    assert_true(p == 0.0 && r == 0.0);

    /* real: two clusters (at -10 and +10); generated: the same number of points, all from the
     * first cluster (a dropped mode) */
    float *real = floats_alloc((size_t)2 * n * d), *c1 = gaussian(n, d, -10.0f, 1.0f, 5),
          *c2 = gaussian(n, d, 10.0f, 1.0f, 6);
    for (long i = 0; i < n * d; i++) real[i] = c1[i], real[n * d + i] = c2[i];
    float *gen = gaussian(2 * n, d, -10.0f, 1.0f, 7);
    precision_recall(&p, &r, gen, 2 * n, real, 2 * n, d, MANIFOLD_K);
    /* two samples of one distribution give ~0.9 each way at this n, d and k; dropping a mode
     * halves the recall */
    if (!(p > 0.8 && r > 0.35 && r < 0.55)) fail_msg("dropped mode: precision %.3f, recall %.3f", p, r);

    /* a generator spread twice as wide as the real data: recall stays high, precision falls */
    float *wide = gaussian(n, d, 0.0f, 2.0f, 8);
    precision_recall(&p, &r, wide, n, a, n, d, MANIFOLD_K);
    if (!(p < 0.5 && r > 0.8)) fail_msg("too wide: precision %.3f, recall %.3f", p, r);
    free(a), free(far), free(real), free(c1), free(c2), free(gen), free(wide);
}

/* A NaN feature row is near nothing: it is outside every ball, its own ball covers nothing,
 * and the other rows' radii ignore it (so one NaN sample cannot make the recall 1). */
static void test_nan_row(void **state) {
    const long n = 300;
    const int d = 8;
    float *real = gaussian(n, d, 0.0f, 1.0f, 9), *gen = gaussian(n, d, 0.3f, 1.0f, 10);
    double p0, r0, p1, r1;
    precision_recall(&p0, &r0, gen, n, real, n, d, MANIFOLD_K);
    gen[5 * d + 2] = NAN;
    precision_recall(&p1, &r1, gen, n, real, n, d, MANIFOLD_K);
    if (!(fabs(p1 - p0) <= 1.0 / n + 1e-12 && r1 <= r0 && r0 - r1 < 0.05 && r1 < 1.0))
        fail_msg("one NaN row: precision %.3f -> %.3f, recall %.3f -> %.3f", p0, p1, r0, r1);
    for (long i = 0; i < n * d; i++) gen[i] = NAN;
    precision_recall(&p1, &r1, gen, n, real, n, d, MANIFOLD_K);
    assert_true(p1 == 0.0 && r1 == 0.0);
    free(real), free(gen);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_radii_and_coverage_brute_force),
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_nan_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
