/* test_gradcheck_conv.c: conv2d (forward against a direct loop, every gradient against finite
 * differences), on each of its paths: the direct convolutions on the project's vector engine
 * (AVX-512 builds) and on BLIS's micro-kernel, and im2col + GEMM; at the model's sizes each direct
 * path against the im2col one. The strategy is in layer_check.h.
 */
#include <omp.h>

#include "conv_direct.h"
#include "layer_check.h"
#include "nn.h"

/* conv2d: the shapes and buffers of one case */
typedef struct {
    ConvShape s;
    size_t nin, nw, nout, nws;
    float *inp, *weight, *bias, *out, *r, *ws;
} Conv;

static double conv_loss(void *ctx) {
    Conv *c = ctx;
    conv2d_forward(c->out, c->inp, c->weight, c->bias, &c->s, c->ws);
    return gc_dot(c->out, c->r, c->nout);
}

static void run_conv_once(int n, int cin, int h, int w, int cout, int k, int stride, int hout,
                          int wout, uint32_t tag) {
    char name[64];
    Conv c;
    c.s = conv_shape(n, cin, h, w, cout, k, stride);
    assert_int_equal(c.s.pad, k / 2);
    assert_int_equal(c.s.hout, hout);
    assert_int_equal(c.s.wout, wout);
    c.nin = (size_t)n * cin * h * w;
    c.nw = (size_t)cout * cin * k * k;
    c.nout = (size_t)n * cout * hout * wout;
    c.nws = conv_workspace_floats(&c.s, omp_get_max_threads());
    c.inp = rnd(c.nin, -1.0f, 1.0f, tag, 0);
    c.weight = rnd(c.nw, -0.5f, 0.5f, tag, 1);
    c.bias = rnd((size_t)cout, -0.5f, 0.5f, tag, 2);
    c.r = rnd(c.nout, -1.0f, 1.0f, tag, 3);
    c.out = gc_alloc_poisoned(c.nout);
    c.ws = gc_alloc_poisoned(c.nws);

    /* forward against the direct loop */
    float *ref = gc_alloc_poisoned(c.nout);
    conv_loss(&c);
    gc_assert_clean(c.out, c.nout, "conv out");
    gc_assert_guards(c.ws, c.nws, "conv workspace");
    conv2d_forward_reference(ref, c.inp, c.weight, c.bias, &c.s);
    gc_assert_clean(ref, c.nout, "conv reference out");
    double d = gc_max_rel_diff(c.out, ref, c.nout, 1.0);
    if (d > 1e-5) fail_msg("conv2d_forward differs from the reference by %.2e (of max)", d);

    /* backward into zeros, then finite differences */
    float *dinp = gc_alloc(c.nin), *dw = gc_alloc(c.nw), *db = gc_alloc((size_t)cout);
    conv2d_backward(dinp, dw, db, c.r, c.inp, c.weight, &c.s, c.ws);
    gc_assert_clean(dinp, c.nin, "conv dinp");
    gc_assert_clean(dw, c.nw, "conv dweight");
    gc_assert_clean(db, (size_t)cout, "conv dbias");
    gc_assert_guards(c.ws, c.nws, "conv workspace");
    const char *what[3] = {"inp", "weight", "bias"};
    float *xs[3] = {c.inp, c.weight, c.bias}, *gs[3] = {dinp, dw, db};
    size_t ns[3] = {c.nin, c.nw, (size_t)cout};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "conv k%d s%d %dx%d %s", k, stride, h, w, what[i]);
        check(name, xs[i], ns[i], gs[i], conv_loss, &c, tag + 10 + (uint32_t)i);
    }

    /* accumulation into random prefill */
    float *v[3], *acc[3];
    accumulate_prefill(v, acc, ns, 3, tag);
    conv2d_backward(acc[0], acc[1], acc[2], c.r, c.inp, c.weight, &c.s, c.ws);
    for (int i = 0; i < 3; i++) gc_assert_accumulated(acc[i], v[i], gs[i], ns[i], what[i]);

    /* set_dinp: dinp is overwritten, whatever it held (NaN here): the gradient into zeros */
    float *dset = gc_alloc_poisoned(c.nin), *dw3 = gc_alloc(c.nw), *db3 = gc_alloc((size_t)cout);
    conv2d_backward_ex(dset, 1, dw3, db3, c.r, c.inp, c.weight, &c.s, c.ws);
    gc_assert_clean(dset, c.nin, "conv dinp (set)");
    if (gc_max_rel_diff(dset, dinp, c.nin, 1e-6) > 1e-6)
        fail_msg("conv2d_backward_ex with set_dinp differs from the gradient into zeros");
    gc_free(dset), gc_free(dw3), gc_free(db3);

    /* dinp may be NULL (the first convolution has no input gradient) */
    float *dw2 = gc_alloc(c.nw), *db2 = gc_alloc((size_t)cout);
    conv2d_backward(NULL, dw2, db2, c.r, c.inp, c.weight, &c.s, c.ws);
    gc_assert_clean(dw2, c.nw, "conv dweight (dinp NULL)");
    gc_assert_clean(db2, (size_t)cout, "conv dbias (dinp NULL)");
    gc_assert_guards(c.ws, c.nws, "conv workspace");
    if (gc_max_rel_diff(dw2, dw, c.nw, 1e-6) > 1e-6 || gc_max_rel_diff(db2, db, cout, 1e-6) > 1e-6)
        fail_msg("conv2d_backward with dinp NULL gives different weight/bias gradients");

    float *all[] = {c.inp, c.weight, c.bias, c.r,  c.out, c.ws, ref,    dinp,   dw,
                    db,    dw2,      db2,    v[0], v[1],  v[2], acc[0], acc[1], acc[2]};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}

/* Every case on each path conv2d has: the direct convolutions on the vector engine (AVX-512
 * builds), on BLIS's micro-kernel, and im2col + GEMM (where a path does not apply to the shape,
 * conv2d falls back to the next, and that is checked too). */
static void run_conv(int n, int cin, int h, int w, int cout, int k, int stride, int hout, int wout,
                     uint32_t tag) {
    for (int path = 0; path < 3; path++) {
        conv_direct_set_vector(path == 0);
        conv2d_set_direct(path < 2);
        run_conv_once(n, cin, h, w, cout, k, stride, hout, wout, tag);
    }
    conv_direct_set_vector(1);
    conv2d_set_direct(1);
}

static void test_conv_3x3_stride1(void **state) { run_conv(2, 3, 9, 6, 4, 3, 1, 9, 6, 1000); }
static void test_conv_3x3_stride2_even(void **state) {
    run_conv(2, 3, 10, 10, 4, 3, 2, 5, 5, 1100);
}
static void test_conv_3x3_stride2_odd(void **state) { run_conv(2, 2, 7, 7, 3, 3, 2, 4, 4, 1200); }
static void test_conv_1x1(void **state) {
    run_conv(2, 5, 6, 7, 3, 1, 1, 6, 7, 1300);
    run_conv(2, 5, 24, 24, 6, 1, 1, 24, 24, 1350); /* 576 pixels: the direct paths */
}
/* conv_in: one input channel, the square image of the model */
static void test_conv_3x3_cin1(void **state) { run_conv(3, 1, 8, 8, 4, 3, 1, 8, 8, 1400); }
/* conv2d.c groups images so that one GEMM has >= 384 columns: the cases above put every image
 * in one group; these reach the one-image-per-group path (in-place output, direct input-gradient
 * accumulation, the input itself as col for 1x1) and a batch that ends in a partial group. */
static void test_conv_single_image_groups(void **state) {
    run_conv(2, 2, 20, 20, 3, 3, 1, 20, 20, 1500); /* P = 400: groups of 1 */
    run_conv(2, 2, 40, 40, 3, 3, 2, 20, 20, 1600); /* stride 2, P = 400 */
    run_conv(2, 3, 20, 20, 2, 1, 1, 20, 20, 1700); /* 1x1, P = 400 */
}
static void test_conv_partial_group(void **state) {
    run_conv(5, 2, 14, 14, 3, 3, 1, 14, 14, 1800); /* P = 196: groups of 2, 2, 1 */
}

/* conv_direct.c at shapes both its engines take (the BLIS one needs >= 16 output and >= 8 input
 * channels, so the input gradient too when cin >= 16):
 * partial panels of positions (7x5 and 6x9 images), output channels that fill no whole register
 * block (18, 33), k = 5. */
static void test_conv_direct(void **state) {
    ConvShape a = conv_shape(2, 17, 7, 5, 18, 3, 1), b = conv_shape(3, 16, 6, 9, 33, 5, 1);
    ConvShape at = conv_shape(2, 18, 7, 5, 17, 3, 1), bt = conv_shape(3, 33, 6, 9, 16, 5, 1);
    /* the vector engine (AVX-512 builds), then BLIS's micro-kernel engine: each must take these
     * shapes, or the gradient checks below would test the im2col path under BLIS's kernels
     * (test_kernels.sh reruns this program with other BLIS kernels) */
    for (int vec = 1; vec >= 0; vec--) {
        conv_direct_set_vector(vec);
        if (vec && !conv_direct_vector_engine()) continue; /* no AVX-512: the BLIS one is all */
        if (!conv_direct_applies(&a) || !conv_direct_applies(&at) || !conv_direct_applies(&b) ||
            !conv_direct_applies(&bt))
            fail_msg("the %s engine does not take the shapes meant to test it",
                     vec ? "vector" : "BLIS micro-kernel");
        run_conv(2, 17, 7, 5, 18, 3, 1, 7, 5, 1900);
        run_conv(3, 16, 6, 9, 33, 5, 1, 6, 9, 2000);
        run_conv(2, 24, 10, 10, 40, 3, 1, 10, 10, 2050); /* Q = 120: panels of 48, 48, 32 */
    }
    conv_direct_set_vector(1);
}

/* At the model's sizes (too many elements for finite differences): conv_direct.c and
 * conv_weight_grad.c against the im2col path, forward and all gradients, with and without bias. */
/* Returns 0 without comparing when no direct path takes the shape under the current engine (both
 * runs would be im2col's); the caller counts the shapes compared. */
static int compare_paths_k(int n, int cin, int hw, int cout, int k, int stride, uint32_t tag) {
    const ConvShape s = conv_shape(n, cin, hw, hw, cout, k, stride);
    if (!conv_direct_applies(&s)) return 0;
    const int ho = s.hout;
    const size_t nin = (size_t)n * cin * hw * hw, nout = (size_t)n * cout * ho * ho,
                 nw = (size_t)cout * cin * k * k,
                 nws = conv_workspace_floats(&s, omp_get_max_threads());
    float *inp = rnd(nin, -1.0f, 1.0f, tag, 0), *w = rnd(nw, -0.2f, 0.2f, tag, 1);
    float *bias = rnd((size_t)cout, -0.5f, 0.5f, tag, 2), *dout = rnd(nout, -1.0f, 1.0f, tag, 3);
    float *ws = gc_alloc_poisoned(nws), *out[2], *dinp[2], *dw[2], *db[2];
    float *prefill = rnd(nin, -1.0f, 1.0f, tag, 4);
    for (int use_direct = 0; use_direct < 2; use_direct++) {
        conv2d_set_direct(use_direct);
        out[use_direct] = gc_alloc_poisoned(nout);
        dinp[use_direct] = copy_of(prefill, nin);
        dw[use_direct] = copy_of(w, nw); /* accumulates onto anything */
        db[use_direct] = copy_of(bias, (size_t)cout);
        conv2d_forward(out[use_direct], inp, w, bias, &s, ws);
        conv2d_backward(dinp[use_direct], dw[use_direct], db[use_direct], dout, inp, w, &s, ws);
        gc_assert_clean(out[use_direct], nout, "conv out");
        gc_assert_clean(dinp[use_direct], nin, "conv dinp");
        gc_assert_guards(ws, nws, "conv workspace");
    }
    conv2d_set_direct(1);
    double d = gc_max_rel_diff(out[1], out[0], nout, 1.0);
    if (d > 1e-5)
        fail_msg("direct forward s%d %dx%d %d->%d differs by %.2e", stride, hw, hw, cin, cout, d);
    d = gc_max_rel_diff(dinp[1], dinp[0], nin, 1.0);
    if (d > 1e-5)
        fail_msg("direct input gradient s%d %dx%d %d->%d differs by %.2e", stride, hw, hw, cin,
                 cout, d);
    d = gc_max_rel_diff(dw[1], dw[0], nw, 1.0);
    if (d > 1e-5)
        fail_msg("direct weight gradient s%d %dx%d %d->%d differs by %.2e", stride, hw, hw, cin,
                 cout, d);
    d = gc_max_rel_diff(db[1], db[0], (size_t)cout, 1.0);
    if (d > 1e-5)
        fail_msg("direct bias gradient s%d %dx%d %d->%d differs by %.2e", stride, hw, hw, cin, cout,
                 d);
    float *nobias = gc_alloc_poisoned(nout), *zero = gc_alloc(nout);
    memset(zero, 0, nout * sizeof(float));
    conv2d_forward(nobias, inp, w, NULL, &s, ws);
    for (size_t i = 0; i < nout; i++) zero[i] = out[1][i] - bias[(i / ((size_t)ho * ho)) % cout];
    d = gc_max_rel_diff(nobias, zero, nout, 1.0);
    if (d > 1e-5) fail_msg("direct forward without bias differs by %.2e", d);
    float *all[] = {inp,     w,       bias,  dout,  ws,    prefill, out[0], out[1],
                    dinp[0], dinp[1], dw[0], dw[1], db[0], db[1],   nobias, zero};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
    return 1;
}
static int compare_paths(int n, int cin, int hw, int cout, int stride, uint32_t tag) {
    return compare_paths_k(n, cin, hw, cout, 3, stride, tag);
}
static void test_conv_direct_model_sizes(void **state) {
    for (int vec = 1; vec >= 0; vec--) { /* the vector engine (AVX-512 builds), then BLIS's */
        conv_direct_set_vector(vec);
        if (vec && !conv_direct_vector_engine()) continue;
        int compared = 0;
        compared += compare_paths(3, 32, 28, 32, 1, 2100);
        compared += compare_paths(3, 64, 14, 64, 1, 2200);
        compared += compare_paths(5, 128, 7, 64, 1, 2300);
        compared += compare_paths(2, 8, 28, 16, 1, 2400);  /* BLIS engine: im2col input gradient (16 -> 8) */
        compared += compare_paths(6, 16, 14, 16, 1, 2500); /* weight gradient: groups of 4 images, then 2 */
        compared += compare_paths(3, 1, 28, 32, 1, 2600);  /* conv_in */
        compared += compare_paths(3, 32, 28, 1, 1, 2700);  /* out_conv */
        compared += compare_paths(3, 32, 28, 32, 2, 2800); /* the downsamples: 28 -> 14, 14 -> 7 */
        compared += compare_paths(3, 64, 14, 64, 2, 2900);
        compared += compare_paths(5, 24, 7, 40, 2, 3000);       /* 7 -> 4 (odd), a partial channel block */
        compared += compare_paths_k(3, 64, 28, 32, 1, 1, 3100); /* the 1x1 skip at 28x28 */
        /* the vector engine takes all 11 shapes; the BLIS one the 5 of stride 1, 3x3, >= 16
         * output and >= 8 input channels */
        print_message("  %s engine: %d of 11 model shapes on a direct path, compared with im2col\n",
                      vec ? "vector" : "BLIS micro-kernel", compared);
        if (compared != (vec ? 11 : 5))
            fail_msg("the %s engine took %d of the model's shapes, expected %d",
                     vec ? "vector" : "BLIS micro-kernel", compared, vec ? 11 : 5);
    }
    conv_direct_set_vector(1);
}
int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_3x3_stride1),
        cmocka_unit_test(test_conv_3x3_stride2_even),
        cmocka_unit_test(test_conv_3x3_stride2_odd),
        cmocka_unit_test(test_conv_1x1),
        cmocka_unit_test(test_conv_3x3_cin1),
        cmocka_unit_test(test_conv_single_image_groups),
        cmocka_unit_test(test_conv_partial_group),
        cmocka_unit_test(test_conv_direct),
        cmocka_unit_test(test_conv_direct_model_sizes),
    };
    int failed = cmocka_run_group_tests_name("gradcheck_conv", tests, NULL, NULL);
    layer_check_report();
    return failed;
}
