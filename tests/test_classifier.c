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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier_gradients),
        cmocka_unit_test(test_frechet_closed_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
