/* test_classifier.c: the evaluation classifier's backward against finite differences, and its
 * Frechet-distance arithmetic against closed forms.
 *
 * Gradients: batch 3 of random images, the mean cross-entropy against fixed labels as the loss;
 * 40 random elements of every parameter tensor, with the U-Net check's bounds (per element 5e-2
 * over floor 2e-2, per tensor 1e-2: see test_gradcheck_unet.c for why), plus the accumulate
 * contract. */
#include "classifier.h"
#include "frechet.h"
#include "gradcheck.h"

#define BATCH 3
#define IMG (CLS_SIZE * CLS_SIZE)

typedef struct {
    Classifier *c;
    float *params, *x;
    int labels[BATCH];
} Net;

static double net_loss(void *ctx) {
    Net *n = ctx;
    classifier_forward(n->c, n->params, n->x, BATCH);
    return classifier_loss(n->c, n->labels, BATCH) / BATCH;
}

static void test_classifier_gradients(void **state) {
    Classifier c;
    classifier_build(&c, BATCH);
    const size_t total = c.table.total;
    Net n = {.c = &c, .labels = {7, 0, 3}};
    n.params = gc_alloc(total);
    params_initialise(&c.table, n.params, 77);
    n.x = gc_alloc(BATCH * IMG);
    gc_uniform(n.x, BATCH * IMG, -1.0f, 1.0f, 9000, 1);
    float *grads = gc_alloc(total);
    net_loss(&n);
    classifier_backward(&c, n.params, grads, n.x, n.labels, BATCH, BATCH);
    gc_assert_clean(grads, total, "classifier gradients");

    float *v = gc_alloc(total), *acc = gc_alloc(total);
    gc_uniform(v, total, -1.0f, 1.0f, 9000, 2);
    memcpy(acc, v, total * sizeof(float));
    net_loss(&n);
    classifier_backward(&c, n.params, acc, n.x, n.labels, BATCH, BATCH);
    gc_assert_accumulated(acc, v, grads, total, "classifier grads");

    GcOptions o = gc_default_options();
    o.full_limit = o.samples = 40;
    o.step = 3e-2;
    o.floor = 2e-2;
    o.elem_tol = 5e-2;
    int failures = 0;
    for (int i = 0; i < c.table.count; i++) {
        const ParamEntry *e = &c.table.entries[i];
        GcResult r = gc_check(e->name, n.params + e->offset, e->size, grads + e->offset, net_loss,
                              &n, 9100 + (uint32_t)i, &o);
        if (gc_verbose() || !gc_ok(&r, &o)) gc_print(&r);
        failures += !gc_ok(&r, &o);
    }
    if (failures) fail_msg("%d classifier tensors fail the gradient check", failures);
    gc_assert_guards(grads, total, "classifier gradients");
    float *all[] = {n.params, n.x, grads, v, acc};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
    classifier_free(&c);
}

/* Two Gaussians with diagonal covariances a, b: FID = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2.
 * The same after rotating both by one orthogonal matrix (the distance does not see the basis),
 * which exercises the full matrix square root. */
static void test_frechet_closed_form(void **state) {
    enum { D = 4 };
    double mu1[D] = {1, 2, 3, 4}, mu2[D] = {1.5, 2, 2, 4};
    double a[D] = {1, 4, 9, 0.25}, b[D] = {4, 4, 1, 1};
    double s1[D * D] = {0}, s2[D * D] = {0};
    double want = 0, want_mean = 0;
    for (int i = 0; i < D; i++) {
        s1[i * D + i] = a[i];
        s2[i * D + i] = b[i];
        want_mean += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
    }
    double got = frechet_distance(mu1, s1, mu2, s2, D);
    if (fabs(got - want) > 1e-9 * (1 + want)) fail_msg("diagonal: FID %.12g, want %.12g", got, want);
    /* rotate: Q = Householder reflection I - 2 u u^T / |u|^2 */
    double u[D] = {1, -2, 0.5, 3}, uu = 0, q[D * D], r1[D * D], r2[D * D], m1[D], m2[D];
    for (int i = 0; i < D; i++) uu += u[i] * u[i];
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) q[i * D + j] = (i == j) - 2 * u[i] * u[j] / uu;
    for (int i = 0; i < D; i++) {
        m1[i] = m2[i] = 0;
        for (int k = 0; k < D; k++) m1[i] += q[i * D + k] * mu1[k], m2[i] += q[i * D + k] * mu2[k];
        for (int j = 0; j < D; j++) { /* Q S Q^T, S diagonal */
            r1[i * D + j] = r2[i * D + j] = 0;
            for (int k = 0; k < D; k++) {
                r1[i * D + j] += q[i * D + k] * a[k] * q[j * D + k];
                r2[i * D + j] += q[i * D + k] * b[k] * q[j * D + k];
            }
        }
    }
    double mean_term = -1;
    got = frechet_distance_parts(m1, r1, m2, r2, D, &mean_term);
    if (fabs(got - want) > 1e-9 * (1 + want)) fail_msg("rotated: FID %.12g, want %.12g", got, want);
    if (fabs(mean_term - want_mean) > 1e-9 * (1 + want_mean))
        fail_msg("rotated: mean term %.12g, want |mu1 - mu2|^2 = %.12g", mean_term, want_mean);
    if (fabs(frechet_distance(m1, r1, m1, r1, D)) > 1e-9) fail_msg("FID of a distribution with itself is not 0");
}

/* Covariances that do not commute (the rotated case above shares its eigenvectors, so a wrong
 * square root such as Tr(S1^1/2 S2^1/2) would pass it): for 2 x 2 matrices the trace of the
 * square root of S1 S2 is sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)). Here tr(S1 S2) = 8 and
 * det S1 = det S2 = 3, so FID = tr S1 + tr S2 - 2 sqrt(14) (Tr(S1^1/2 S2^1/2) would give
 * 2 + sqrt(3) in place of sqrt(14)). */
static void test_frechet_not_commuting(void **state) {
    (void)state;
    const double mu[2] = {0.5, -1}, s1[4] = {2, 1, 1, 2}, s2[4] = {3, 0, 0, 1};
    const double want = 4 + 4 - 2 * sqrt(14.0);
    const double got = frechet_distance(mu, s1, mu, s2, 2);
    if (fabs(got - want) > 1e-12) fail_msg("FID %.15g, want %.15g", got, want);
    const double self = frechet_distance(mu, s1, mu, s1, 2);
    if (!(self >= 0 && self < 1e-12)) fail_msg("FID of S1 with itself %.3g, want 0 (never below)", self);
}

/* Features of a diverged model's images hold NaN: their distance is NaN, never a perfect 0 (a
 * max with 0 turns NaN into 0), and LAPACK is not asked to decompose them. */
static void test_frechet_nan(void **state) {
    (void)state;
    const double mu[2] = {0.5, -1}, s1[4] = {2, 1, 1, 2}, s2[4] = {3, 0, 0, 1};
    double bad_mu[2] = {NAN, -1}, bad_s[4] = {3, 0, 0, NAN}, mean_term = 0;
    if (!isnan(frechet_distance_parts(bad_mu, s1, mu, s2, 2, &mean_term)) || !isnan(mean_term))
        fail_msg("a NaN mean gives FID %g, mean term %g: want NaN", frechet_distance(bad_mu, s1, mu, s2, 2),
                 mean_term);
    /* a NaN covariance made LAPACK's dsyevd fail (info -5): the process died */
    if (!isnan(frechet_distance(mu, s1, mu, bad_s, 2))) fail_msg("a NaN covariance: FID not NaN");
}

/* The moments accumulated in parts (two calls, as the evaluation adds batches) against a
 * two-pass mean and covariance in double, divisor N - 1; features far from 0 (offset 100), where
 * subtracting N mu mu^T from the raw second moment cancels most digits. */
static void test_feature_moments(void **state) {
    (void)state;
    enum { N = 57, D = 5 };
    float x[N * D];
    uint64_t r = 12345;
    for (int i = 0; i < N * D; i++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        x[i] = 100.0f + (float)((double)(r >> 11) / 9007199254740992.0) * (float)(1 + i % D);
    }
    FeatureStats st;
    feature_stats_init(&st, D);
    feature_stats_add(&st, x, 20);
    feature_stats_add(&st, x + 20 * D, N - 20);
    feature_stats_reduce(&st); /* one process: unchanged */
    double mu[D], cov[D * D], m2[D] = {0};
    feature_stats_moments(&st, mu, cov);
    for (int j = 0; j < D; j++) {
        for (int i = 0; i < N; i++) m2[j] += x[i * D + j];
        m2[j] /= N;
        if (fabs(mu[j] - m2[j]) > 1e-12 * fabs(m2[j])) fail_msg("mean[%d] %.15g, want %.15g", j, mu[j], m2[j]);
    }
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            double c = 0;
            for (int i = 0; i < N; i++) c += (x[i * D + a] - m2[a]) * (x[i * D + b] - m2[b]);
            c /= N - 1;
            if (fabs(cov[a * D + b] - c) > 1e-8 * (fabs(c) + 1e-3))
                fail_msg("cov[%d][%d] %.12g, want %.12g (two-pass, N - 1)", a, b, cov[a * D + b], c);
        }
    feature_stats_free(&st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier_gradients),
        cmocka_unit_test(test_frechet_closed_form),
        cmocka_unit_test(test_frechet_not_commuting),
        cmocka_unit_test(test_frechet_nan),
        cmocka_unit_test(test_feature_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
