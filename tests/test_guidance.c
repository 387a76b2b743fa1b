/* test_guidance.c: class-conditional sampling with classifier-free guidance.
 *
 * Strategy: a small conditional U-Net with random weights (the sampler's arithmetic does not
 * care whether the network is trained) run through sample_run, against the reverse process
 * written out here step by step from model_forward and ddim_step, with the guided noise
 * (1 + W) eps(x, c) - W eps(x, null) formed in double. Also: W = 0 is plain conditional
 * sampling, the result does not depend on the chunking (each chunk must read its own images'
 * labels), and the label layout of sample_class_labels. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "rng.h"
#include "sampler_fixture.h"
#include "sampling.h"
#include "util.h"

#define N 5
#define STEPS 4

static ModelConfig small_conditional(void) {
    ModelConfig cfg = model_config_default();
    cfg.base = 8, cfg.groups = 2, cfg.image_size = 8, cfg.levels = 2;
    cfg.mult[0] = 1, cfg.mult[1] = 2;
    cfg.time_sin_dim = 8, cfg.time_dim = 16, cfg.classes = 3;
    return cfg;
}

static void fixture_init(Fixture *f) {
    fixture_build(f, small_conditional(), 7, SCHEDULE_LINEAR, 50);
}

/* sample_run over N images in chunks of `batch` */
static float *run(Fixture *f, const int *labels, double w, int batch) {
    Model m;
    model_build_inference(&m, &f->cfg, batch);
    SamplerSpec spec = {.kind = SAMPLER_DDIM, .steps = STEPS, .eta = 1.0, .seed = 11,
                        .guidance = w};
    float *x = floats_alloc(f->dim * N);
    sample_initial_noise(x, N, 0, f->dim, spec.seed);
    sample_run(&m, f->params, &f->sched, &spec, x, labels, N, 0, NULL);
    model_free(&m);
    return x;
}

/* The same process written out: the guided noise in double, DDIM with eta 1, the noise of
 * image i at step s keyed (seed, s, i) as sampling.h promises. */
static float *by_hand(Fixture *f, const int *labels, double w) {
    Model m;
    model_build_inference(&m, &f->cfg, N);
    const size_t count = f->dim * N;
    float *x = floats_alloc(count), *ec = floats_alloc(count), *eps = floats_alloc(count);
    float *z = floats_alloc(count);
    sample_initial_noise(x, N, 0, f->dim, 11);
    int ts[STEPS], tb[N];
    ddim_timesteps(ts, STEPS, f->sched.T);
    for (int k = STEPS - 1; k >= 0; k--) {
        for (int i = 0; i < N; i++) tb[i] = ts[k];
        memcpy(ec, model_forward(&m, f->params, x, tb, labels, N), count * sizeof(float));
        const float *eu = model_forward(&m, f->params, x, tb, NULL, N);
        for (size_t j = 0; j < count; j++) eps[j] = (float)((1 + w) * ec[j] - w * (double)eu[j]);
        for (int i = 0; i < N && k > 0; i++)
            rng_normal(z + (size_t)i * f->dim, f->dim, 11, RNG_SAMPLE, (uint32_t)(STEPS - k),
                       (uint32_t)i);
        ddim_step(x, eps, k > 0 ? z : NULL, ts[k], k > 0 ? ts[k - 1] : -1, k > 0 ? 1.0 : 0.0, 0,
                  count, &f->sched);
    }
    clamp_unit(x, count);
    free(ec), free(eps), free(z);
    model_free(&m);
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_guided_matches_hand_written(void **state) {
    Fixture f;
    fixture_init(&f);
    static const int labels[N] = {0, 2, 1, 2, 0};
    for (int wi = 0; wi < 2; wi++) {
        const double w = wi ? 2.5 : 0.5;
        float *got = run(&f, labels, w, N), *want = by_hand(&f, labels, w);
        const double d = max_abs_diff(got, want, f.dim * N);
        if (d > 1e-5) fail_msg("guidance %g: sample_run differs from the written-out process by %.2e", w, d);
        /* chunks of 2 images (the last holds one) give the same samples up to rounding (a
         * batch of another size may sum in another order); a chunk reading another chunk's
         * labels would be off by far more */
        float *chunked = run(&f, labels, w, 2);
        const double dc = max_abs_diff(chunked, got, f.dim * N);
        if (dc > 1e-5) fail_msg("guidance %g: chunks of 2 differ from one chunk by %.2e", w, dc);
        free(got), free(want), free(chunked);
    }
    /* guidance changes the samples; so do the labels */
    float *w0 = run(&f, labels, 0.0, N), *w2 = run(&f, labels, 2.0, N);
    assert_true(max_abs_diff(w0, w2, f.dim * N) > 1e-3);
    static const int others[N] = {1, 1, 1, 1, 1};
    float *o0 = run(&f, others, 0.0, N);
    assert_true(max_abs_diff(w0, o0, f.dim * N) > 1e-3);
    free(w0), free(w2), free(o0);
    fixture_free(&f);
}

/* W = 0: plain conditional sampling equals the written-out process with W = 0 (there the
 * unconditional term is multiplied by zero). */
static void test_zero_guidance_is_conditional(void **state) {
    Fixture f;
    fixture_init(&f);
    static const int labels[N] = {2, 2, 0, 1, 1};
    float *got = run(&f, labels, 0.0, N), *want = by_hand(&f, labels, 0.0);
    const double d = max_abs_diff(got, want, f.dim * N);
    if (d > 1e-5) fail_msg("guidance 0 differs from conditional sampling by %.2e", d);
    free(got), free(want);
    fixture_free(&f);
}

static void test_class_labels_layout(void **state) {
    int l[100];
    sample_class_labels(l, 0, 10, 100, 0, 100); /* ten rows of ten */
    for (int i = 0; i < 100; i++) assert_int_equal(l[i], i / 10);
    sample_class_labels(l, 3, 4, 8, 2, 5); /* images 2..6 of 8 over classes 3..6 */
    static const int want[5] = {4, 4, 5, 5, 6};
    assert_memory_equal(l, want, sizeof want);
    sample_class_labels(l, 7, 1, 9, 0, 9); /* one class */
    for (int i = 0; i < 9; i++) assert_int_equal(l[i], 7);
    sample_class_labels(l, 0, 3, 7, 0, 7); /* 7 over 3: runs of 3, 2, 2 */
    static const int uneven[7] = {0, 0, 0, 1, 1, 2, 2};
    assert_memory_equal(l, uneven, sizeof uneven);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guided_matches_hand_written),
        cmocka_unit_test(test_zero_guidance_is_conditional),
        cmocka_unit_test(test_class_labels_layout),
    };
    return cmocka_run_group_tests_name("guidance", tests, NULL, NULL);
}
