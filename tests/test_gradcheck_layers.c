/* test_gradcheck_layers.c: every layer of nn.h, backward against finite differences.
 *
 * Strategy (see gradcheck.h for the numerics):
 *   - forward is checked against a second implementation: conv2d_forward against
 *     conv2d_forward_reference, the other layers against direct loops in double here;
 *   - backward is checked against central finite differences of L = sum(out * r) with a fixed
 *     random r, for every input and parameter of every layer; per-element normalised error
 *     <= 2e-2 and global ||a - n|| / ||n|| <= 1e-2 (correct float32 kernels: at worst 2e-3
 *     per element and 1e-5 global; a wrong sign, index or scale lands near 1);
 *   - backward accumulates: run into buffers pre-filled with random v, it must give v + grad;
 *   - sentinels: every buffer has NaN guards on both sides that must stay bit-identical, outputs
 *     and scratch start as NaN so an unwritten output or a read of unwritten scratch shows, and
 *     every output and gradient must be finite;
 *   - batch n >= 2 everywhere, so a kernel that mixes images (wrong batch stride) fails.
 * timestep_embedding has no gradient; its values are checked against a double computation.
 */
#include <omp.h>

#include "conv_direct.h"
#include "gradcheck.h"
#include "nn.h"

/* The worst per-element error of the whole program, printed at the end. */
static GcResult g_worst;

static void check(const char *name, float *x, size_t count, const float *analytic, GcLossFn loss,
                  void *ctx, uint32_t tag) {
    GcOptions o = gc_default_options();
    GcResult r = gc_check_assert(name, x, count, analytic, loss, ctx, tag, &o);
    if (r.worst >= g_worst.worst) g_worst = r;
}

static float *rnd(size_t count, float lo, float hi, uint32_t a, uint32_t b) {
    float *p = gc_alloc(count);
    gc_uniform(p, count, lo, hi, a, b);
    return p;
}

static float *copy_of(const float *src, size_t count) {
    float *p = gc_alloc(count);
    memcpy(p, src, count * sizeof *p);
    return p;
}

/* |got - want| <= tol * max(1, |want|) everywhere. */
static void expect_near(const float *got, const double *want, size_t count, double tol,
                        const char *what) {
    for (size_t i = 0; i < count; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i]))))
            fail_msg("%s[%zu] = %.8g, want %.8g", what, i, (double)got[i], want[i]);
}

/* ---------------------------------------------------------------- conv2d */

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
    for (int i = 0; i < 3; i++) {
        v[i] = rnd(ns[i], -2.0f, 2.0f, tag, 20 + (uint32_t)i);
        acc[i] = copy_of(v[i], ns[i]);
    }
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
    if (!conv_direct_applies(&a) || !conv_direct_applies(&at) || !conv_direct_applies(&b) ||
        !conv_direct_applies(&bt))
        fail_msg("conv_direct does not apply to the shapes meant to test it");
    run_conv(2, 17, 7, 5, 18, 3, 1, 7, 5, 1900);
    run_conv(3, 16, 6, 9, 33, 5, 1, 6, 9, 2000);
    run_conv(2, 24, 10, 10, 40, 3, 1, 10, 10, 2050); /* Q = 120: panels of 48, 48, 32 */
}

/* At the model's sizes (too many elements for finite differences): conv_direct.c and
 * conv_weight_grad.c against the im2col path, forward and all gradients, with and without bias. */
static void compare_paths_k(int n, int cin, int hw, int cout, int k, int stride, uint32_t tag) {
    const ConvShape s = conv_shape(n, cin, hw, hw, cout, k, stride);
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
}
static void compare_paths(int n, int cin, int hw, int cout, int stride, uint32_t tag) {
    compare_paths_k(n, cin, hw, cout, 3, stride, tag);
}
static void test_conv_direct_model_sizes(void **state) {
    for (int vec = 1; vec >= 0; vec--) { /* the vector engine (AVX-512 builds), then BLIS's */
        conv_direct_set_vector(vec);
        compare_paths(3, 32, 28, 32, 1, 2100);
        compare_paths(3, 64, 14, 64, 1, 2200);
        compare_paths(5, 128, 7, 64, 1, 2300);
        compare_paths(2, 8, 28, 16, 1, 2400);  /* BLIS engine: im2col input gradient (16 -> 8) */
        compare_paths(6, 16, 14, 16, 1, 2500); /* weight gradient: groups of 4 images, then 2 */
        compare_paths(3, 1, 28, 32, 1, 2600);  /* conv_in */
        compare_paths(3, 32, 28, 1, 1, 2700);  /* out_conv */
        compare_paths(3, 32, 28, 32, 2, 2800); /* the downsamples: 28 -> 14, 14 -> 7 */
        compare_paths(3, 64, 14, 64, 2, 2900);
        compare_paths(5, 24, 7, 40, 2, 3000);       /* 7 -> 4 (odd), a partial channel block */
        compare_paths_k(3, 64, 28, 32, 1, 1, 3100); /* the 1x1 skip at 28x28 */
    }
    conv_direct_set_vector(1);
}

/* ---------------------------------------------------------------- groupnorm */

typedef struct {
    int n, c, hw, groups;
    size_t count, nstat;
    float *inp, *gamma, *beta, *out, *mean, *rstd, *r;
} Gn;

static double gn_loss(void *ctx) {
    Gn *g = ctx;
    groupnorm_forward(g->out, g->mean, g->rstd, g->inp, g->gamma, g->beta, g->n, g->c, g->hw,
                      g->groups);
    return gc_dot(g->out, g->r, g->count);
}

static void run_groupnorm(int groups, uint32_t tag) {
    char name[64];
    Gn g = {.n = 2, .c = 8, .hw = 12, .groups = groups};
    g.count = (size_t)g.n * g.c * g.hw;
    g.nstat = (size_t)g.n * groups;
    size_t c = (size_t)g.c;
    g.inp = rnd(g.count, -1.0f, 2.0f, tag, 0); /* non-zero mean */
    g.gamma = rnd(c, 0.5f, 1.5f, tag, 1);
    g.beta = rnd(c, -0.5f, 0.5f, tag, 2);
    g.r = rnd(g.count, -1.0f, 1.0f, tag, 3);
    g.out = gc_alloc_poisoned(g.count);
    g.mean = gc_alloc_poisoned(g.nstat);
    g.rstd = gc_alloc_poisoned(g.nstat);
    gn_loss(&g);
    gc_assert_clean(g.out, g.count, "groupnorm out");
    gc_assert_clean(g.mean, g.nstat, "groupnorm mean");
    gc_assert_clean(g.rstd, g.nstat, "groupnorm rstd");

    /* statistics and output against double loops */
    size_t per = (size_t)(g.c / groups) * g.hw;
    double *want_mean = xmalloc(g.nstat * sizeof(double));
    double *want_rstd = xmalloc(g.nstat * sizeof(double));
    double *want_out = xmalloc(g.count * sizeof(double));
    for (size_t s = 0; s < g.nstat; s++) {
        const float *x = g.inp + s * per;
        double m = 0.0, v = 0.0;
        for (size_t i = 0; i < per; i++) m += x[i];
        m /= (double)per;
        for (size_t i = 0; i < per; i++) v += (x[i] - m) * (x[i] - m);
        want_mean[s] = m;
        want_rstd[s] = 1.0 / sqrt(v / (double)per + (double)GROUPNORM_EPS);
        for (size_t i = 0; i < per; i++) {
            size_t ch = (s % (size_t)groups) * (size_t)(g.c / groups) + i / (size_t)g.hw;
            want_out[s * per + i] = (x[i] - m) * want_rstd[s] * g.gamma[ch] + g.beta[ch];
        }
    }
    expect_near(g.mean, want_mean, g.nstat, 1e-5, "groupnorm mean");
    expect_near(g.rstd, want_rstd, g.nstat, 1e-4, "groupnorm rstd");
    expect_near(g.out, want_out, g.count, 1e-4, "groupnorm out");

    float *dinp = gc_alloc(g.count), *dgamma = gc_alloc(c), *dbeta = gc_alloc(c);
    const size_t nws = groupnorm_workspace_floats(g.n, g.c);
    float *ws = gc_alloc_poisoned(nws); /* scratch starts as NaN: a read before a write shows */
    groupnorm_backward(dinp, dgamma, dbeta, g.r, g.inp, g.mean, g.rstd, g.gamma, g.n, g.c, g.hw,
                       groups, ws);
    gc_assert_guards(ws, nws, "groupnorm workspace");
    gc_assert_clean(dinp, g.count, "groupnorm dinp");
    gc_assert_clean(dgamma, c, "groupnorm dgamma");
    gc_assert_clean(dbeta, c, "groupnorm dbeta");
    const char *what[3] = {"inp", "gamma", "beta"};
    float *xs[3] = {g.inp, g.gamma, g.beta}, *gs[3] = {dinp, dgamma, dbeta};
    size_t ns[3] = {g.count, c, c};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "groupnorm G=%d %s", groups, what[i]);
        check(name, xs[i], ns[i], gs[i], gn_loss, &g, tag + 10 + (uint32_t)i);
    }

    gn_loss(&g); /* statistics of the unperturbed input again */
    float *v[3], *acc[3];
    for (int i = 0; i < 3; i++) {
        v[i] = rnd(ns[i], -2.0f, 2.0f, tag, 20 + (uint32_t)i);
        acc[i] = copy_of(v[i], ns[i]);
    }
    groupnorm_backward(acc[0], acc[1], acc[2], g.r, g.inp, g.mean, g.rstd, g.gamma, g.n, g.c, g.hw,
                       groups, ws);
    for (int i = 0; i < 3; i++) gc_assert_accumulated(acc[i], v[i], gs[i], ns[i], what[i]);

    float *all[] = {g.inp, g.gamma, g.beta, g.r,  g.out,  g.mean, g.rstd, dinp, dgamma,
                    dbeta, v[0],    v[1],   v[2], acc[0], acc[1], acc[2], ws};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
    free(want_mean);
    free(want_rstd);
    free(want_out);
}

/* GroupNorm then SiLU as one op: forward and all gradients against the two kernels above composed
 * (each checked on its own), the gradients against finite differences, accumulation, dinp NULL. */
static double gns_loss(void *ctx) {
    Gn *g = ctx;
    groupnorm_silu_forward(g->out, g->mean, g->rstd, g->inp, g->gamma, g->beta, g->n, g->c, g->hw,
                           g->groups);
    return gc_dot(g->out, g->r, g->count);
}

static void run_groupnorm_silu(int n, int c, int hw, int groups, uint32_t tag) {
    char name[64];
    Gn g = {.n = n, .c = c, .hw = hw, .groups = groups};
    g.count = (size_t)n * c * hw;
    g.nstat = (size_t)n * groups;
    g.inp = rnd(g.count, -1.0f, 2.0f, tag, 0);
    g.gamma = rnd((size_t)c, 0.5f, 1.5f, tag, 1);
    g.beta = rnd((size_t)c, -0.5f, 0.5f, tag, 2);
    g.r = rnd(g.count, -1.0f, 1.0f, tag, 3);
    g.out = gc_alloc_poisoned(g.count);
    g.mean = gc_alloc_poisoned(g.nstat);
    g.rstd = gc_alloc_poisoned(g.nstat);
    gns_loss(&g);
    gc_assert_clean(g.out, g.count, "groupnorm_silu out");

    /* the composition: y = gn(x), z = silu(y); backward dy = silu'(y) dz, then GroupNorm's */
    float *y = gc_alloc(g.count), *z = gc_alloc(g.count), *m2 = gc_alloc(g.nstat);
    float *r2 = gc_alloc(g.nstat), *dy = gc_alloc(g.count);
    groupnorm_forward(y, m2, r2, g.inp, g.gamma, g.beta, n, c, hw, groups);
    silu_forward(z, y, g.count);
    double d = gc_max_rel_diff(g.out, z, g.count, 1e-3);
    if (d > 1e-5) fail_msg("groupnorm_silu forward differs from the pair by %.2e", d);
    memset(dy, 0, g.count * sizeof(float));
    silu_backward(dy, g.r, y, g.count);
    const int threads = omp_get_max_threads();
    const size_t nws = groupnorm_silu_workspace_floats(n, c, hw, groups, threads);
    float *ws = gc_alloc_poisoned(nws);
    float *want[3] = {gc_alloc(g.count), gc_alloc((size_t)c), gc_alloc((size_t)c)};
    for (int i = 0; i < 3; i++) memset(want[i], 0, (i ? (size_t)c : g.count) * sizeof(float));
    groupnorm_backward(want[0], want[1], want[2], dy, g.inp, m2, r2, g.gamma, n, c, hw, groups, ws);

    /* dinp overwritten (set): it starts as NaN, like the scratch; a read before a write shows */
    float *gs[3] = {gc_alloc_poisoned(g.count), gc_alloc((size_t)c), gc_alloc((size_t)c)};
    for (int i = 1; i < 3; i++) memset(gs[i], 0, (size_t)c * sizeof(float));
    gc_free(ws);
    ws = gc_alloc_poisoned(nws);
    groupnorm_silu_backward(gs[0], 1, gs[1], gs[2], g.r, g.inp, g.mean, g.rstd, g.gamma, g.beta, n,
                            c, hw, groups, ws);
    gc_assert_guards(ws, nws, "groupnorm_silu workspace");
    const char *what[3] = {"inp", "gamma", "beta"};
    float *xs[3] = {g.inp, g.gamma, g.beta};
    size_t ns[3] = {g.count, (size_t)c, (size_t)c};
    for (int i = 0; i < 3; i++) {
        gc_assert_clean(gs[i], ns[i], what[i]);
        d = gc_max_rel_diff(gs[i], want[i], ns[i], 1e-3);
        if (d > 1e-4) fail_msg("groupnorm_silu d%s differs from the pair's by %.2e", what[i], d);
    }
    for (int i = 0; i < 3 && g.count <= 4096; i++) { /* finite differences on the small cases */
        snprintf(name, sizeof name, "groupnorm_silu G=%d %s", groups, what[i]);
        check(name, xs[i], ns[i], gs[i], gns_loss, &g, tag + 10 + (uint32_t)i);
    }

    gns_loss(&g); /* statistics of the unperturbed input again */
    float *v[3], *acc[3];
    for (int i = 0; i < 3; i++) {
        v[i] = rnd(ns[i], -2.0f, 2.0f, tag, 20 + (uint32_t)i);
        acc[i] = copy_of(v[i], ns[i]);
    }
    groupnorm_silu_backward(acc[0], 0, acc[1], acc[2], g.r, g.inp, g.mean, g.rstd, g.gamma, g.beta,
                            n, c, hw, groups, ws);
    for (int i = 0; i < 3; i++) gc_assert_accumulated(acc[i], v[i], gs[i], ns[i], what[i]);
    float *dg = gc_alloc((size_t)c), *db = gc_alloc((size_t)c);
    memset(dg, 0, (size_t)c * sizeof(float));
    memset(db, 0, (size_t)c * sizeof(float));
    groupnorm_silu_backward(NULL, 0, dg, db, g.r, g.inp, g.mean, g.rstd, g.gamma, g.beta, n, c, hw,
                            groups, ws);
    if (gc_max_rel_diff(dg, gs[1], (size_t)c, 1e-6) > 1e-6 ||
        gc_max_rel_diff(db, gs[2], (size_t)c, 1e-6) > 1e-6)
        fail_msg("groupnorm_silu_backward with dinp NULL gives other gamma/beta gradients");

    float *all[] = {g.inp, g.gamma, g.beta, g.r,  g.out,   g.mean,  g.rstd,  y,     z,
                    m2,    r2,      dy,     ws,   want[0], want[1], want[2], gs[0], gs[1],
                    gs[2], v[0],    v[1],   v[2], acc[0],  acc[1],  acc[2],  dg,    db};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}
static void test_groupnorm_silu(void **state) {
    run_groupnorm_silu(2, 8, 12, 2, 2400);
    run_groupnorm_silu(3, 8, 12, 8, 2500);    /* groups = channels */
    run_groupnorm_silu(5, 64, 196, 32, 2600); /* a model size: 2 channels per group at 14x14 */
}

/* Large inputs: exp(-x) overflows below x = -88.7, and SiLU (built with -ffast-math) must still
 * give 0, not NaN, in the forward and the backward; the fused op likewise when gamma is large. */
static void test_silu_large_inputs(void **state) {
    enum { N = 64 };
    float x[N], y[N], dx[N], dy[N];
    for (int i = 0; i < N; i++) {
        x[i] = -200.0f + 400.0f * i / (N - 1);
        dy[i] = 1.0f;
        dx[i] = 0.0f;
    }
    silu_forward(y, x, N);
    silu_backward(dx, dy, x, N);
    for (int i = 0; i < N; i++) {
        const double s = 1.0 / (1.0 + exp(-(double)x[i])), want = x[i] * s;
        const double dwant = s * (1.0 + x[i] * (1.0 - s));
        if (!(fabs(y[i] - want) <= 1e-5 * fmax(1.0, fabs(want))) || !(fabs(dx[i] - dwant) <= 1e-5))
            fail_msg("silu(%g) = %g, d %g; want %g, d %g", x[i], y[i], dx[i], want, dwant);
    }
    /* GroupNorm + SiLU with gamma 100: gn(x) reaches -170 */
    const int n = 1, c = 4, hw = 16, groups = 2;
    float *inp = rnd((size_t)c * hw, -1.0f, 1.0f, 2700, 0), gamma[4] = {100, 100, 100, 100};
    float beta[4] = {0}, out[64], mean[2], rstd[2], d[64], r[64], dg[4] = {0}, db[4] = {0};
    for (int i = 0; i < 64; i++) r[i] = 1.0f;
    const size_t nws = groupnorm_silu_workspace_floats(n, c, hw, groups, omp_get_max_threads());
    float *ws = gc_alloc_poisoned(nws);
    groupnorm_silu_forward(out, mean, rstd, inp, gamma, beta, n, c, hw, groups);
    groupnorm_silu_backward(d, 1, dg, db, r, inp, mean, rstd, gamma, beta, n, c, hw, groups, ws);
    for (int i = 0; i < 64; i++)
        if (!isfinite(out[i]) || !isfinite(d[i])) fail_msg("gn_silu with gamma 100: element %d", i);
    for (int i = 0; i < 4; i++)
        if (!isfinite(dg[i]) || !isfinite(db[i])) fail_msg("gn_silu with gamma 100: dgamma/dbeta");
    gc_free(inp), gc_free(ws);
}

static void test_groupnorm_g1(void **state) { run_groupnorm(1, 2000); }
static void test_groupnorm_g2(void **state) { run_groupnorm(2, 2100); }
static void test_groupnorm_g4(void **state) { run_groupnorm(4, 2200); }
static void test_groupnorm_gc(void **state) { run_groupnorm(8, 2300); } /* groups = channels */

/* ---------------------------------------------------------------- elementwise and shape ops */

/* One context for the small layers: up to two inputs, one output, the loss weights. */
typedef struct Small {
    int n, c, h, w, cb; /* shapes as each layer reads them */
    size_t na, nb, nout;
    float *a, *b, *out, *r;
    void (*forward)(void *ctx);
    /* layers with *_ex backwards: the same with both input gradients overwritten (set) */
    void (*backward_set)(struct Small *s, float *da, float *db);
} Small;

static double small_loss(void *ctx) {
    Small *s = ctx;
    s->forward(s);
    return gc_dot(s->out, s->r, s->nout);
}

/* Finite differences for each input, then the accumulate contract. backward(ctx, da, db)
 * must run the layer's backward with dout = r. */
static void run_small(Small *s, const char *layer, double *want_out,
                      void (*backward)(Small *s, float *da, float *db), uint32_t tag) {
    char name[64];
    s->r = rnd(s->nout, -1.0f, 1.0f, tag, 3);
    s->out = gc_alloc_poisoned(s->nout);
    small_loss(s);
    snprintf(name, sizeof name, "%s out", layer);
    gc_assert_clean(s->out, s->nout, name);
    expect_near(s->out, want_out, s->nout, 1e-5, name);

    int inputs = s->b ? 2 : 1;
    float *xs[2] = {s->a, s->b}, *gs[2] = {gc_alloc(s->na), s->b ? gc_alloc(s->nb) : NULL};
    size_t ns[2] = {s->na, s->nb};
    backward(s, gs[0], gs[1]);
    gc_assert_guards(s->out, s->nout, layer);
    for (int i = 0; i < inputs; i++) {
        snprintf(name, sizeof name, "%s d%s", layer, i == 0 ? "a" : "b");
        gc_assert_clean(gs[i], ns[i], name);
        gc_assert_guards(xs[i], ns[i], layer);
        snprintf(name, sizeof name, "%s %s", layer, i == 0 ? "a" : "b");
        check(name, xs[i], ns[i], gs[i], small_loss, s, tag + 10 + (uint32_t)i);
    }
    float *v[2] = {NULL, NULL}, *acc[2] = {NULL, NULL};
    for (int i = 0; i < inputs; i++) {
        v[i] = rnd(ns[i], -2.0f, 2.0f, tag, 20 + (uint32_t)i);
        acc[i] = copy_of(v[i], ns[i]);
    }
    small_loss(s);
    backward(s, acc[0], acc[1]);
    for (int i = 0; i < inputs; i++) gc_assert_accumulated(acc[i], v[i], gs[i], ns[i], layer);
    if (s->backward_set) { /* overwritten gradients start as NaN: an unwritten element shows */
        float *set[2] = {gc_alloc_poisoned(s->na), s->b ? gc_alloc_poisoned(s->nb) : NULL};
        s->backward_set(s, set[0], set[1]);
        for (int i = 0; i < inputs; i++) {
            snprintf(name, sizeof name, "%s d%s (set)", layer, i == 0 ? "a" : "b");
            gc_assert_clean(set[i], ns[i], name);
            if (memcmp(set[i], gs[i], ns[i] * sizeof(float)) != 0)
                fail_msg("%s: the overwriting backward differs from the one into zeros", name);
            gc_free(set[i]);
        }
    }

    for (int i = 0; i < 2; i++) {
        gc_free(xs[i]);
        gc_free(gs[i]);
        gc_free(v[i]);
        gc_free(acc[i]);
    }
    gc_free(s->out);
    gc_free(s->r);
    free(want_out);
}

static double *want_alloc(size_t count) { return xmalloc(count * sizeof(double)); }

static void silu_fwd(void *ctx) {
    Small *s = ctx;
    silu_forward(s->out, s->a, s->na);
}
static void silu_bwd(Small *s, float *da, float *db) { silu_backward(da, s->r, s->a, s->na); }

static void test_silu(void **state) {
    Small s = {.na = 2 * 3 * 5 * 7, .nout = 2 * 3 * 5 * 7, .forward = silu_fwd};
    s.a = rnd(s.na, -6.0f, 6.0f, 3000, 0);
    double *want = want_alloc(s.nout);
    for (size_t i = 0; i < s.na; i++) want[i] = s.a[i] / (1.0 + exp(-(double)s.a[i]));
    run_small(&s, "silu", want, silu_bwd, 3000);
}

static void upsample_fwd(void *ctx) {
    Small *s = ctx;
    upsample2x_forward(s->out, s->a, s->n, s->c, s->h, s->w);
}
static void upsample_bwd(Small *s, float *da, float *db) {
    upsample2x_backward(da, s->r, s->n, s->c, s->h, s->w);
}

static void test_upsample2x(void **state) {
    Small s = {.n = 2, .c = 3, .h = 4, .w = 5, .forward = upsample_fwd};
    s.na = 2 * 3 * 4 * 5;
    s.nout = 4 * s.na;
    s.a = rnd(s.na, -1.0f, 1.0f, 3100, 0);
    double *want = want_alloc(s.nout);
    for (int p = 0; p < s.n * s.c; p++)
        for (int y = 0; y < 2 * s.h; y++)
            for (int x = 0; x < 2 * s.w; x++)
                want[((size_t)p * 2 * s.h + y) * 2 * s.w + x] =
                    s.a[((size_t)p * s.h + y / 2) * s.w + x / 2];
    run_small(&s, "upsample2x", want, upsample_bwd, 3100);
}

static void concat_fwd(void *ctx) {
    Small *s = ctx;
    concat_forward(s->out, s->a, s->b, s->n, s->c, s->cb, s->h);
}
static void concat_bwd_set(Small *s, float *da, float *db) {
    concat_backward_ex(da, 1, db, 1, s->r, s->n, s->c, s->cb, s->h);
}
static void concat_bwd(Small *s, float *da, float *db) {
    concat_backward(da, db, s->r, s->n, s->c, s->cb, s->h);
}

static void test_concat(void **state) {
    Small s = {.n = 2,
               .c = 3,
               .cb = 2,
               .h = 6,
               .forward = concat_fwd, /* h holds hw */
               .backward_set = concat_bwd_set};
    s.na = 2 * 3 * 6;
    s.nb = 2 * 2 * 6;
    s.nout = s.na + s.nb;
    s.a = rnd(s.na, -1.0f, 1.0f, 3200, 0);
    s.b = rnd(s.nb, -1.0f, 1.0f, 3200, 1);
    double *want = want_alloc(s.nout);
    size_t ia = (size_t)s.c * s.h, ib = (size_t)s.cb * s.h;
    for (int i = 0; i < s.n; i++) {
        for (size_t j = 0; j < ia; j++) want[i * (ia + ib) + j] = s.a[i * ia + j];
        for (size_t j = 0; j < ib; j++) want[i * (ia + ib) + ia + j] = s.b[i * ib + j];
    }
    run_small(&s, "concat", want, concat_bwd, 3200);
}

static void add_fwd(void *ctx) {
    Small *s = ctx;
    add_forward(s->out, s->a, s->b, s->na);
}
static void add_bwd(Small *s, float *da, float *db) { add_backward(da, db, s->r, s->na); }
static void add_bwd_set(Small *s, float *da, float *db) {
    add_backward_ex(da, 1, db, 1, s->r, s->na);
}

static void test_add(void **state) {
    Small s = {.na = 2 * 3 * 4 * 5,
               .nb = 2 * 3 * 4 * 5,
               .nout = 2 * 3 * 4 * 5,
               .forward = add_fwd,
               .backward_set = add_bwd_set};
    s.a = rnd(s.na, -1.0f, 1.0f, 3300, 0);
    s.b = rnd(s.nb, -1.0f, 1.0f, 3300, 1);
    double *want = want_alloc(s.nout);
    for (size_t i = 0; i < s.nout; i++) want[i] = (double)s.a[i] + (double)s.b[i];
    run_small(&s, "add", want, add_bwd, 3300);
}

static void add_channel_fwd(void *ctx) {
    Small *s = ctx;
    add_channel_forward(s->out, s->a, s->b, s->n, s->c, s->h);
}
static void add_channel_bwd(Small *s, float *da, float *db) {
    add_channel_backward(da, db, s->r, s->n, s->c, s->h);
}
static void add_channel_bwd_set(Small *s, float *da, float *db) {
    add_channel_backward_ex(da, 1, db, 1, s->r, s->n, s->c, s->h);
}

static void test_add_channel(void **state) {
    Small s = {.n = 2,
               .c = 3,
               .h = 10,
               .forward = add_channel_fwd, /* h holds hw */
               .backward_set = add_channel_bwd_set};
    s.na = s.nout = 2 * 3 * 10;
    s.nb = 2 * 3;
    s.a = rnd(s.na, -1.0f, 1.0f, 3400, 0);
    s.b = rnd(s.nb, -1.0f, 1.0f, 3400, 1);
    double *want = want_alloc(s.nout);
    for (size_t i = 0; i < s.nout; i++) want[i] = (double)s.a[i] + (double)s.b[i / (size_t)s.h];
    run_small(&s, "add_channel", want, add_channel_bwd, 3400);
}

/* ---------------------------------------------------------------- linear */

typedef struct {
    int n, cin, cout;
    float *inp, *weight, *bias, *out, *r;
} Lin;

static double linear_loss(void *ctx) {
    Lin *l = ctx;
    linear_forward(l->out, l->inp, l->weight, l->bias, l->n, l->cin, l->cout);
    return gc_dot(l->out, l->r, (size_t)l->n * l->cout);
}

static void test_linear(void **state) {
    Lin l = {.n = 3, .cin = 7, .cout = 5};
    size_t ni = 3 * 7, nw = 5 * 7, nb = 5, no = 3 * 5;
    l.inp = rnd(ni, -1.0f, 1.0f, 4000, 0);
    l.weight = rnd(nw, -0.5f, 0.5f, 4000, 1);
    l.bias = rnd(nb, -0.5f, 0.5f, 4000, 2);
    l.r = rnd(no, -1.0f, 1.0f, 4000, 3);
    l.out = gc_alloc_poisoned(no);
    linear_loss(&l);
    gc_assert_clean(l.out, no, "linear out");
    double want[3 * 5];
    for (int i = 0; i < l.n; i++)
        for (int o = 0; o < l.cout; o++) {
            double s = l.bias[o];
            for (int k = 0; k < l.cin; k++)
                s += (double)l.inp[i * l.cin + k] * l.weight[o * l.cin + k];
            want[i * l.cout + o] = s;
        }
    expect_near(l.out, want, no, 1e-5, "linear out");

    float *gs[3] = {gc_alloc(ni), gc_alloc(nw), gc_alloc(nb)};
    linear_backward(gs[0], gs[1], gs[2], l.r, l.inp, l.weight, l.n, l.cin, l.cout);
    const char *names[3] = {"linear inp", "linear weight", "linear bias"};
    float *xs[3] = {l.inp, l.weight, l.bias};
    size_t ns[3] = {ni, nw, nb};
    for (int i = 0; i < 3; i++) {
        gc_assert_clean(gs[i], ns[i], names[i]);
        check(names[i], xs[i], ns[i], gs[i], linear_loss, &l, 4010 + (uint32_t)i);
    }
    float *v[3], *acc[3];
    for (int i = 0; i < 3; i++) {
        v[i] = rnd(ns[i], -2.0f, 2.0f, 4000, 20 + (uint32_t)i);
        acc[i] = copy_of(v[i], ns[i]);
    }
    linear_backward(acc[0], acc[1], acc[2], l.r, l.inp, l.weight, l.n, l.cin, l.cout);
    for (int i = 0; i < 3; i++) gc_assert_accumulated(acc[i], v[i], gs[i], ns[i], names[i]);
    for (int i = 0; i < 3; i++) {
        gc_free(xs[i]);
        gc_free(gs[i]);
        gc_free(v[i]);
        gc_free(acc[i]);
    }
    gc_free(l.out);
    gc_free(l.r);
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
    int n, rows, dim;
    const int *labels;
    float *weight, *out, *r;
} Emb;

static double embedding_loss(void *ctx) {
    Emb *e = ctx;
    embedding_forward(e->out, e->weight, e->labels, e->n, e->dim);
    return gc_dot(e->out, e->r, (size_t)e->n * e->dim);
}

/* Five images over four rows: row 2 is read three times (its gradient is the sum of three
 * output rows), row 1 never (zero gradient), the last row (the null label) once. */
static void test_embedding(void **state) {
    static const int labels[5] = {2, 0, 2, 3, 2};
    Emb e = {.n = 5, .rows = 4, .dim = 6, .labels = labels};
    const size_t nw = 4 * 6, no = 5 * 6;
    e.weight = rnd(nw, -1.0f, 1.0f, 4500, 0);
    e.r = rnd(no, -1.0f, 1.0f, 4500, 1);
    e.out = gc_alloc_poisoned(no);
    embedding_loss(&e);
    gc_assert_clean(e.out, no, "embedding out");
    double want[5 * 6];
    for (int i = 0; i < e.n; i++)
        for (int j = 0; j < e.dim; j++) want[i * e.dim + j] = e.weight[labels[i] * e.dim + j];
    expect_near(e.out, want, no, 0, "embedding out");

    float *g = gc_alloc(nw);
    embedding_backward(g, e.r, labels, e.n, e.dim);
    gc_assert_clean(g, nw, "embedding weight");
    for (int j = 0; j < e.dim; j++) assert_true(g[1 * e.dim + j] == 0.0f);
    check("embedding weight", e.weight, nw, g, embedding_loss, &e, 4510);
    float *v = rnd(nw, -2.0f, 2.0f, 4500, 20), *acc = copy_of(v, nw);
    embedding_backward(acc, e.r, labels, e.n, e.dim);
    gc_assert_accumulated(acc, v, g, nw, "embedding weight");
    gc_free(e.weight), gc_free(e.out), gc_free(e.r), gc_free(g), gc_free(v), gc_free(acc);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    int n, c, hw;
    float *qkv, *out, *prob, *r;
} Attn;

static double attention_loss(void *ctx) {
    Attn *a = ctx;
    attention_forward(a->out, a->prob, a->qkv, a->n, a->c, a->hw);
    return gc_dot(a->out, a->r, (size_t)a->n * a->c * a->hw);
}

/* Forward against softmax attention written out in double; backward (queries, keys and values
 * in one buffer) against finite differences, on 2 images of 5 channels over 3x4 positions and
 * on 2 images of 4 channels over 7x7 (the U-Net's attention resolution); the accumulate
 * contract; queries and keys of +-2 so the softmax is far from uniform. */
static void run_attention(int n, int c, int hw, uint32_t tag) {
    Attn a = {.n = n, .c = c, .hw = hw};
    const size_t nq = (size_t)n * 3 * c * hw, no = (size_t)n * c * hw, np = (size_t)n * hw * hw;
    a.qkv = rnd(nq, -2.0f, 2.0f, tag, 0);
    a.r = rnd(no, -1.0f, 1.0f, tag, 1);
    a.out = gc_alloc_poisoned(no);
    a.prob = gc_alloc_poisoned(np);
    attention_loss(&a);
    gc_assert_clean(a.out, no, "attention out");
    gc_assert_clean(a.prob, np, "attention prob");
    double *want = want_alloc(no), *s = want_alloc((size_t)hw);
    for (int b = 0; b < n; b++) {
        const float *q = a.qkv + (size_t)b * 3 * c * hw, *k = q + c * hw, *v = k + c * hw;
        for (int i = 0; i < hw; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < hw; j++) {
                s[j] = 0;
                for (int ch = 0; ch < c; ch++) s[j] += (double)q[ch * hw + i] * k[ch * hw + j];
                s[j] /= sqrt((double)c);
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < hw; j++) sum += s[j] = exp(s[j] - mx);
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int j = 0; j < hw; j++) acc += v[ch * hw + j] * s[j] / sum;
                want[((size_t)b * c + ch) * hw + i] = acc;
            }
        }
    }
    expect_near(a.out, want, no, 1e-5, "attention out");
    float *g = gc_alloc(nq), *ws = gc_alloc(attention_workspace_floats(hw, omp_get_max_threads()));
    attention_backward(g, a.r, a.qkv, a.prob, n, c, hw, ws);
    gc_assert_clean(g, nq, "attention qkv");
    check("attention qkv", a.qkv, nq, g, attention_loss, &a, tag + 10);
    float *v = rnd(nq, -2.0f, 2.0f, tag, 20), *acc = copy_of(v, nq);
    attention_loss(&a); /* prob of the unperturbed input again */
    attention_backward(acc, a.r, a.qkv, a.prob, n, c, hw, ws);
    gc_assert_accumulated(acc, v, g, nq, "attention qkv");
    gc_free(a.qkv), gc_free(a.r), gc_free(a.out), gc_free(a.prob), gc_free(g), gc_free(ws);
    gc_free(v), gc_free(acc);
    free(want), free(s);
}

static void test_attention_small(void **state) { run_attention(2, 5, 12, 4600); }
static void test_attention_7x7(void **state) { run_attention(2, 4, 49, 4700); }

/* ---------------------------------------------------------------- dropout */

typedef struct {
    int n;
    size_t per;
    uint32_t keys[2];
    float *inp, *out, *mask, *r;
} Drop;

static double dropout_loss(void *ctx) {
    Drop *d = ctx;
    dropout_forward(d->out, d->mask, d->inp, d->n, d->per, 0.3, 5, 17, d->keys);
    return gc_dot(d->out, d->r, (size_t)d->n * d->per);
}

/* p = 0.3 over 2 x 5000 elements: about 30% zeros (binomial sd 0.46%: 3% is 6 sd), the rest
 * scaled by 1/0.7; the mask a function of (seed, step, key): the same again, another for
 * another step or key; backward against finite differences and the accumulate contract. */
static void test_dropout(void **state) {
    Drop d = {.n = 2, .per = 5000, .keys = {3 * 1024 + 1, 4 * 1024 + 1}};
    const size_t count = 2 * 5000;
    d.inp = rnd(count, -1.0f, 1.0f, 4800, 0);
    d.r = rnd(count, -1.0f, 1.0f, 4800, 1);
    d.out = gc_alloc_poisoned(count);
    d.mask = gc_alloc_poisoned(count);
    dropout_loss(&d);
    gc_assert_clean(d.out, count, "dropout out");
    size_t zeros = 0;
    for (size_t e = 0; e < count; e++) {
        if (d.mask[e] == 0.0f)
            zeros++;
        else if (fabsf(d.mask[e] - 1.0f / 0.7f) > 1e-6f)
            fail_msg("mask[%zu] = %g", e, d.mask[e]);
        if (d.out[e] != d.inp[e] * d.mask[e]) fail_msg("out[%zu] != inp * mask", e);
    }
    const double frac = (double)zeros / count;
    if (fabs(frac - 0.3) > 0.03) fail_msg("dropout zeroed %.4f of the elements, want 0.3", frac);
    float *m1 = copy_of(d.mask, count);
    dropout_loss(&d);
    assert_memory_equal(m1, d.mask, count * sizeof(float));
    float *other = gc_alloc(count), *tmp = gc_alloc(count);
    dropout_forward(tmp, other, d.inp, 1, d.per, 0.3, 5, 18, d.keys); /* another step */
    assert_true(memcmp(other, m1, d.per * sizeof(float)) != 0);
    dropout_forward(tmp, other, d.inp, 1, d.per, 0.3, 5, 17, d.keys + 1); /* image 1's key */
    assert_memory_equal(other, m1 + d.per, d.per * sizeof(float));
    float *g = gc_alloc(count);
    dropout_backward(g, d.r, d.mask, count);
    check("dropout inp", d.inp, count < 400 ? count : 400, g, dropout_loss, &d, 4810);
    float *v = rnd(count, -2.0f, 2.0f, 4800, 20), *acc = copy_of(v, count);
    dropout_backward(acc, d.r, d.mask, count);
    gc_assert_accumulated(acc, v, g, count, "dropout inp");
    gc_free(d.inp), gc_free(d.r), gc_free(d.out), gc_free(d.mask), gc_free(m1), gc_free(other);
    gc_free(tmp), gc_free(g), gc_free(v), gc_free(acc);
}

/* ---------------------------------------------------------------- mse */

typedef struct {
    size_t count;
    float *pred, *target;
} Mse;

static double mse_loss(void *ctx) {
    Mse *m = ctx;
    return mse_forward(m->pred, m->target, m->count);
}

static void test_mse(void **state) {
    Mse m = {.count = 2 * 1 * 6 * 6};
    m.pred = rnd(m.count, -2.0f, 2.0f, 5000, 0);
    m.target = rnd(m.count, -1.0f, 1.0f, 5000, 1);
    double want = 0.0;
    for (size_t i = 0; i < m.count; i++)
        want += ((double)m.pred[i] - m.target[i]) * ((double)m.pred[i] - m.target[i]);
    want /= (double)m.count;
    double got = mse_loss(&m);
    if (!(fabs(got - want) <= 1e-6 * want)) fail_msg("mse_forward = %.9g, want %.9g", got, want);

    float *dpred = gc_alloc(m.count);
    mse_backward(dpred, m.pred, m.target, m.count);
    gc_assert_clean(dpred, m.count, "mse dpred");
    check("mse pred", m.pred, m.count, dpred, mse_loss, &m, 5010);
    float *v = rnd(m.count, -0.1f, 0.1f, 5000, 20), *acc = copy_of(v, m.count);
    mse_backward(acc, m.pred, m.target, m.count);
    gc_assert_accumulated(acc, v, dpred, m.count, "mse dpred");
    /* split as two ranks would (uneven shares): the numerators add up to the whole loss and
     * each share's gradient, scaled by the global count, equals the whole one's exactly */
    const size_t cut = m.count / 3;
    const double parts =
        mse_sum(m.pred, m.target, cut) + mse_sum(m.pred + cut, m.target + cut, m.count - cut);
    if (!(fabs(parts / (double)m.count - want) <= 1e-6 * want))
        fail_msg("mse_sum over two shares = %.9g, want %.9g", parts / (double)m.count, want);
    float *split = gc_alloc(m.count);
    mse_backward_over(split, m.pred, m.target, cut, m.count);
    mse_backward_over(split + cut, m.pred + cut, m.target + cut, m.count - cut, m.count);
    for (size_t i = 0; i < m.count; i++)
        if (split[i] != dpred[i])
            fail_msg("mse share gradient [%zu] = %g, want %g", i, split[i], dpred[i]);
    gc_free(split);
    gc_assert_guards(m.pred, m.count, "mse pred");
    gc_assert_guards(m.target, m.count, "mse target");
    float *all[] = {m.pred, m.target, dpred, v, acc};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}

/* ---------------------------------------------------------------- softmax cross-entropy */

typedef struct {
    int n, k;
    float *logits, *prob;
    int labels[5];
} Xent;

static double xent_loss(void *ctx) {
    Xent *x = ctx;
    return softmax_xent_forward(x->prob, x->logits, x->labels, x->n, x->k) / x->n;
}

static void test_softmax_xent(void **state) {
    Xent x = {.n = 5, .k = 10, .labels = {3, 0, 9, 3, 7}};
    const size_t count = (size_t)x.n * x.k;
    x.logits = rnd(count, -4.0f, 4.0f, 5100, 0);
    x.logits[7] = 60.0f; /* a large logit: the max is subtracted before exp */
    x.prob = gc_alloc(count);
    const double loss = xent_loss(&x);
    double want = 0.0;
    for (int i = 0; i < x.n; i++) {
        double sum = 0.0;
        for (int j = 0; j < x.k; j++) sum += exp((long double)x.logits[i * x.k + j] - 60.0);
        want += log(sum) + 60.0 - x.logits[i * x.k + x.labels[i]];
        double psum = 0.0;
        for (int j = 0; j < x.k; j++) psum += x.prob[i * x.k + j];
        if (fabs(psum - 1.0) > 1e-6) fail_msg("softmax row %d sums to %.9f", i, psum);
    }
    want /= x.n;
    if (!(fabs(loss - want) <= 1e-6 * want)) fail_msg("xent = %.9g, want %.9g", loss, want);
    float *d = gc_alloc(count);
    softmax_xent_backward(d, x.prob, x.labels, x.n, x.k, x.n);
    gc_assert_clean(d, count, "xent dlogits");
    check("softmax xent logits", x.logits, count, d, xent_loss, &x, 5110);
    float *v = rnd(count, -0.1f, 0.1f, 5100, 20), *acc = copy_of(v, count);
    xent_loss(&x); /* prob of the unperturbed logits again */
    softmax_xent_backward(acc, x.prob, x.labels, x.n, x.k, x.n);
    gc_assert_accumulated(acc, v, d, count, "xent dlogits");
    gc_assert_guards(x.logits, count, "xent logits");
    gc_assert_guards(x.prob, count, "xent prob");
    float *all[] = {x.logits, x.prob, d, v, acc};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}

/* ---------------------------------------------------------------- timestep embedding */

/* Values against double: t * freq reaches 299 rad, where one float ulp is 3e-5, so a float32
 * implementation is within a few 1e-5; a wrong frequency or a sin/cos swap is off by 1e-2 or
 * more. */
static void test_timestep_embedding(void **state) {
    const int t[3] = {0, 1, 299};
    const int dims[3] = {8, 32, 64};
    for (int d = 0; d < 3; d++) {
        int dim = dims[d], half = dim / 2;
        size_t count = 3 * (size_t)dim;
        float *out = gc_alloc_poisoned(count);
        timestep_embedding(out, t, 3, dim);
        gc_assert_clean(out, count, "timestep_embedding out");
        double *want = want_alloc(count);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < half; k++) {
                double arg = t[i] * exp(-log(10000.0) * k / half);
                want[(size_t)i * dim + k] = sin(arg);
                want[(size_t)i * dim + half + k] = cos(arg);
            }
        for (size_t i = 0; i < count; i++)
            if (!(fabs((double)out[i] - want[i]) <= 2e-4))
                fail_msg("timestep_embedding dim %d: t = %d element %zu = %.7f, want %.7f", dim,
                         t[i / (size_t)dim], i % (size_t)dim, (double)out[i], want[i]);
        gc_free(out);
        free(want);
    }
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
        cmocka_unit_test(test_groupnorm_silu),
        cmocka_unit_test(test_silu_large_inputs),
        cmocka_unit_test(test_groupnorm_g1),
        cmocka_unit_test(test_groupnorm_g2),
        cmocka_unit_test(test_groupnorm_g4),
        cmocka_unit_test(test_groupnorm_gc),
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_attention_small),
        cmocka_unit_test(test_attention_7x7),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_upsample2x),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_add_channel),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_timestep_embedding),
    };
    int failed = cmocka_run_group_tests_name("gradcheck_layers", tests, NULL, NULL);
    if (g_worst.checked > 0)
        print_message("worst element error over all layer checks: %.2e (%s [%zu], analytic "
                      "%+.6e numeric %+.6e)\n",
                      g_worst.worst, g_worst.name, g_worst.worst_index, g_worst.worst_analytic,
                      g_worst.worst_numeric);
    return failed;
}
