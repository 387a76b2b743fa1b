/* test_threads.c: results do not depend on the number of OpenMP threads.
 *
 * Strategy: run the same forward and backward on 1 and on 2 threads and compare every output
 * and gradient tensor: max |a - b| / max(|a|, |b|) <= 1e-5 per tensor. Work is split over
 * images (or channels), so only the order of cross-thread reductions (weight gradients summed
 * over images) may differ, a few float roundings of the tensor's scale; a race, a per-thread
 * partial that is lost or counted twice, or a workspace slice shared by two threads is off by
 * far more. Checked for the reference network (unet-s, batch 4) and for one convolution and one
 * GroupNorm layer directly. Buffers, models and workspaces are sized while the maximum thread
 * count is 2, so they fit both runs.
 */
#include <omp.h>

#include "gradcheck.h"
#include "model.h"
#include "nn.h"

#define THREAD_TOL 1e-5

static void expect_same(const float *one, const float *two, size_t count, const char *what) {
    double d = gc_max_rel_diff(one, two, count, 1e-30);
    if (gc_verbose()) print_message("  %-40s 1 vs 2 threads: %.2e\n", what, d);
    if (!(d <= THREAD_TOL))
        fail_msg("%s: 1 and 2 threads differ by %.2e of the tensor's largest value", what, d);
}

/* ---- the whole network ---- */

static void test_unet_threads(void **state) {
    enum { N = 4 };
    omp_set_num_threads(2);
    ModelConfig cfg = model_config_default();
    Model m;
    model_build(&m, &cfg, N);
    model_keep_input_grad(&m);
    size_t total = m.table.total;
    size_t img = (size_t)cfg.in_channels * cfg.image_size * cfg.image_size;
    print_message("unet-s: %zu parameters in %d tensors, batch %d\n", total, m.table.count, N);

    float *params = gc_alloc(total);
    params_initialise(&m.table, params, 77);
    float *x = gc_alloc(N * img), *r = gc_alloc(N * img);
    gc_uniform(x, N * img, -1.0f, 1.0f, 7000, 0);
    gc_uniform(r, N * img, -1.0f, 1.0f, 7000, 1);
    int t[N];
    for (int i = 0; i < N; i++) t[i] = (int)rng_below(1000, GC_SEED, RNG_TEST, 7000, 2 + i);

    float *out[2], *grads[2], *dx[2];
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        out[k] = gc_alloc(N * img);
        grads[k] = gc_alloc(total);
        dx[k] = gc_alloc(N * img);
        double start = now_seconds();
        memcpy(out[k], model_forward(&m, params, x, t, NULL, N), N * img * sizeof(float));
        model_backward(&m, params, grads[k], r, N);
        memcpy(dx[k], model_input_grad(&m), N * img * sizeof(float));
        print_message("  %d thread(s): forward + backward %.3f s\n", k + 1, now_seconds() - start);
        gc_assert_clean(out[k], N * img, "output");
        gc_assert_clean(grads[k], total, "gradients");
        gc_assert_clean(dx[k], N * img, "input gradient");
    }
    omp_set_num_threads(2);

    expect_same(out[0], out[1], N * img, "output");
    expect_same(dx[0], dx[1], N * img, "input gradient");
    for (int i = 0; i < m.table.count; i++) {
        const ParamEntry *e = &m.table.entries[i];
        expect_same(grads[0] + e->offset, grads[1] + e->offset, e->size, e->name);
    }
    for (int k = 0; k < 2; k++) {
        gc_free(out[k]);
        gc_free(grads[k]);
        gc_free(dx[k]);
    }
    gc_free(params);
    gc_free(x);
    gc_free(r);
    model_free(&m);
}

/* ---- one convolution ---- */

static void run_conv_threads(int n, int cin, int hw, int cout, int k, int stride, uint32_t tag) {
    omp_set_num_threads(2);
    ConvShape s = conv_shape(n, cin, hw, hw, cout, k, stride);
    size_t nin = (size_t)n * cin * hw * hw, nw = (size_t)cout * cin * k * k;
    size_t nout = (size_t)n * cout * s.hout * s.wout, nws = conv_workspace_floats(&s, 2);
    float *inp = gc_alloc(nin), *w = gc_alloc(nw), *b = gc_alloc((size_t)cout);
    float *dout = gc_alloc(nout), *ws = gc_alloc_poisoned(nws);
    gc_uniform(inp, nin, -1.0f, 1.0f, tag, 0);
    gc_uniform(w, nw, -0.3f, 0.3f, tag, 1);
    gc_uniform(b, (size_t)cout, -0.3f, 0.3f, tag, 2);
    gc_uniform(dout, nout, -1.0f, 1.0f, tag, 3);
    float *out[2], *dinp[2], *dw[2], *db[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        out[t] = gc_alloc_poisoned(nout);
        dinp[t] = gc_alloc(nin);
        dw[t] = gc_alloc(nw);
        db[t] = gc_alloc((size_t)cout);
        conv2d_forward(out[t], inp, w, b, &s, ws);
        conv2d_backward(dinp[t], dw[t], db[t], dout, inp, w, &s, ws);
        gc_assert_clean(out[t], nout, "conv out");
        gc_assert_clean(dinp[t], nin, "conv dinp");
        gc_assert_clean(dw[t], nw, "conv dweight");
        gc_assert_clean(db[t], (size_t)cout, "conv dbias");
        gc_assert_guards(ws, nws, "conv workspace");
    }
    omp_set_num_threads(2);
    expect_same(out[0], out[1], nout, "conv out");
    expect_same(dinp[0], dinp[1], nin, "conv dinp");
    expect_same(dw[0], dw[1], nw, "conv dweight");
    expect_same(db[0], db[1], (size_t)cout, "conv dbias");
    for (int t = 0; t < 2; t++) {
        gc_free(out[t]);
        gc_free(dinp[t]);
        gc_free(dw[t]);
        gc_free(db[t]);
    }
    float *all[] = {inp, w, b, dout, ws};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}

static void test_conv_threads(void **state) {
    run_conv_threads(5, 8, 14, 16, 3, 1, 7100); /* odd batch: uneven split over threads */
    run_conv_threads(4, 16, 14, 8, 3, 2, 7200);
    run_conv_threads(3, 16, 7, 32, 1, 1, 7300);
}

/* ---- one GroupNorm ---- */

static void test_groupnorm_threads(void **state) {
    const int n = 5, c = 32, hw = 49, groups = 8;
    size_t count = (size_t)n * c * hw, nstat = (size_t)n * groups;
    float *inp = gc_alloc(count), *gamma = gc_alloc(c), *beta = gc_alloc(c);
    float *dout = gc_alloc(count);
    gc_uniform(inp, count, -1.0f, 2.0f, 7400, 0);
    gc_uniform(gamma, c, 0.5f, 1.5f, 7400, 1);
    gc_uniform(beta, c, -0.5f, 0.5f, 7400, 2);
    gc_uniform(dout, count, -1.0f, 1.0f, 7400, 3);
    float *out[2], *mean[2], *rstd[2], *dinp[2], *dg[2], *dbt[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        out[t] = gc_alloc_poisoned(count);
        mean[t] = gc_alloc_poisoned(nstat);
        rstd[t] = gc_alloc_poisoned(nstat);
        dinp[t] = gc_alloc(count);
        dg[t] = gc_alloc(c);
        dbt[t] = gc_alloc(c);
        groupnorm_forward(out[t], mean[t], rstd[t], inp, gamma, beta, n, c, hw, groups);
        float *ws = gc_alloc_poisoned(groupnorm_workspace_floats(n, c));
        groupnorm_backward(dinp[t], dg[t], dbt[t], dout, inp, mean[t], rstd[t], gamma, n, c, hw,
                           groups, ws);
        gc_free(ws);
        gc_assert_clean(out[t], count, "groupnorm out");
        gc_assert_clean(mean[t], nstat, "groupnorm mean");
        gc_assert_clean(rstd[t], nstat, "groupnorm rstd");
        gc_assert_clean(dinp[t], count, "groupnorm dinp");
        gc_assert_clean(dg[t], c, "groupnorm dgamma");
        gc_assert_clean(dbt[t], c, "groupnorm dbeta");
    }
    omp_set_num_threads(2);
    expect_same(out[0], out[1], count, "groupnorm out");
    expect_same(mean[0], mean[1], nstat, "groupnorm mean");
    expect_same(rstd[0], rstd[1], nstat, "groupnorm rstd");
    expect_same(dinp[0], dinp[1], count, "groupnorm dinp");
    expect_same(dg[0], dg[1], c, "groupnorm dgamma");
    expect_same(dbt[0], dbt[1], c, "groupnorm dbeta");
    for (int t = 0; t < 2; t++) {
        float *each[] = {out[t], mean[t], rstd[t], dinp[t], dg[t], dbt[t]};
        for (size_t i = 0; i < ARRAY_LEN(each); i++) gc_free(each[i]);
    }
    float *all[] = {inp, gamma, beta, dout};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}

/* ---- the MSE loss: the same bits at 1, 3 and 4 threads, every time (an OpenMP reduction adds
 * the threads' sums in the order they finish; 2 threads could not show it: a + b = b + a) ---- */

static void test_mse_threads(void **state) {
    (void)state;
    const size_t count = (size_t)1 << 20;
    float *pred = gc_alloc(count), *target = gc_alloc(count);
    gc_uniform(pred, count, -1.0f, 1.0f, 7500, 0);
    gc_uniform(target, count, -1.0f, 1.0f, 7500, 1);
    omp_set_num_threads(1);
    const double one = mse_sum(pred, target, count);
    for (int rep = 0; rep < 20; rep++) {
        omp_set_num_threads(3 + rep % 2);
        const double many = mse_sum(pred, target, count);
        assert_memory_equal(&one, &many, sizeof one);
    }
    omp_set_num_threads(2);
    gc_free(pred);
    gc_free(target);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mse_threads),
        cmocka_unit_test(test_conv_threads),
        cmocka_unit_test(test_groupnorm_threads),
        cmocka_unit_test(test_unet_threads),
    };
    return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
