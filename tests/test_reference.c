/* test_reference.c: every layer and the whole unet-s against the PyTorch reference fixture.
 *
 * Strategy. tests/ref/make_reference.py, an independent PyTorch implementation, writes fixed
 * inputs, parameters, a random upstream gradient dout, the outputs and every gradient of
 * loss = sum(out * dout) into an HDF5 file (DDPM_REFERENCE, `make build/ref/reference.h5`).
 * Here each group of that file is one cmocka test: it runs our function on the same inputs and
 * compares each output and gradient by the normalised error
 *     err = max|ours - ref| / max(max|ref|, 1e-6)
 * against a threshold (a NaN anywhere counts as infinite error). Output and gradient buffers
 * carry a sentinel tail that must survive (no writes past the end). Backward functions
 * accumulate: gradients are zeroed before the first call, and a second call must give 2 x ref.
 * The network is also run on fewer images than its arenas were built for.
 *
 * Thresholds. Both sides are float32; they differ only in summation order, so errors are a few
 * ulps times a modest growth factor:
 *   TOL_EXACT  1e-6  data movement (upsample, concat, add): no arithmetic beyond one add
 *   TOL_ELEM   1e-5  elementwise maths (silu, broadcast add, mse)
 *   TOL_TEMB   1e-4  the sinusoidal embedding: in float32 the phase t * f of t = 299 carries an
 *                    error up to ulp(299) = 3e-5 rad, so a float32 implementation is this far
 *                    from the float64-accurate reference without being wrong
 *   TOL_LAYER  1e-4  reductions of up to a few hundred terms (conv, linear, groupnorm)
 *   TOL_NET_FWD 1e-4, TOL_NET_GRAD 1e-3  the whole network: 60 layers deep, gradients summed
 *                    over 28x28 positions and 3 images. The generator prints PyTorch's own
 *                    float32-vs-float64 error for this network (about 1e-6 forward, 3e-6 for
 *                    the worst gradient), so these leave a wide margin for a different but
 *                    sound summation order and still catch any real mistake (those give
 *                    errors of order 1e-2 to 1).
 * A missing fixture is a failure, never a skip. */
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "h5tensor.h"
#include "model.h"
#include "nn.h"
#include "util.h"

#define TOL_EXACT 1e-6
#define TOL_ELEM 1e-5
#define TOL_TEMB 1e-4
#define TOL_LAYER 1e-4
#define TOL_NET_FWD 1e-4
#define TOL_NET_GRAD 1e-3

#define UNET_PARAMS 748161
#define UNET_BATCH 3
#define GUARD 16
#define SENTINEL 1234.5f

static hid_t g_file = -1;
static const char *g_path;

/* ---- allocation: every buffer of a test is released by its teardown ---- */

#define MAX_ALLOCS 512
static void *g_allocs[MAX_ALLOCS];
static int g_nallocs;

static void *track(void *p) {
    if (g_nallocs == MAX_ALLOCS) die("test_reference: too many buffers in one test");
    g_allocs[g_nallocs++] = p;
    return p;
}

static int release_all(void **state) {
    (void)state;
    for (int i = 0; i < g_nallocs; i++) free(g_allocs[i]);
    g_nallocs = 0;
    return 0;
}

/* n floats, zeroed, followed by GUARD sentinel floats. */
static float *guarded(size_t n) {
    float *p = track(floats_alloc(n + GUARD));
    for (int i = 0; i < GUARD; i++) p[n + i] = SENTINEL;
    return p;
}

static int guard_intact(const float *p, size_t n, const char *what) {
    for (int i = 0; i < GUARD; i++)
        if (p[n + i] != SENTINEL) {
            printf("  %-34s FAIL: written past its end (element %zu)\n", what, n + (size_t)i);
            return 0;
        }
    return 1;
}

/* ---- fixture access: the dataset's shape must be exactly the one given ---- */

static size_t product(int ndim, const long long *dims) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    return n;
}

static float *load_f32(const char *group, const char *key, int ndim, const long long *dims) {
    char path[256];
    snprintf(path, sizeof path, "/%s/%s", group, key);
    float *p = track(floats_alloc(product(ndim, dims)));
    h5t_read_f32(g_file, path, p, ndim, dims);
    return p;
}

#define NDIMS(...) ((int)(sizeof((long long[]){__VA_ARGS__}) / sizeof(long long)))
#define LOAD(group, key, ...) load_f32(group, key, NDIMS(__VA_ARGS__), (long long[]){__VA_ARGS__})

/* ---- comparison ---- */

/* Normalised error of ours against scale * ref. */
static double norm_err(const float *ours, const float *ref, double scale, size_t n) {
    double diff = 0.0, mag = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = scale * (double)ref[i];
        double d = fabs((double)ours[i] - r);
        if (isnan(d)) return INFINITY;
        if (d > diff) diff = d;
        if (fabs(r) > mag) mag = fabs(r);
    }
    return diff / (mag > 1e-6 ? mag : 1e-6);
}

/* Count of failed checks in the running test; each check prints its worst error. */
static int g_failures;

static void check_scaled(const char *what, const float *ours, const float *ref, double scale,
                         size_t n, double tol) {
    double err = norm_err(ours, ref, scale, n);
    int ok = err <= tol;
    printf("  %-34s worst %.2e  (tol %.0e)%s\n", what, err, tol, ok ? "" : "  FAIL");
    if (!ok) g_failures++;
}

static void check(const char *what, const float *ours, const float *ref, size_t n, double tol) {
    check_scaled(what, ours, ref, 1.0, n, tol);
}

/* A gradient after one backward call (must equal ref) and its guard. */
static void check_grad(const char *what, const float *ours, const float *ref, size_t n,
                       double tol) {
    check(what, ours, ref, n, tol);
    if (!guard_intact(ours, n, what)) g_failures++;
}

/* The same gradient after a second backward call: accumulation must double it. */
static void check_twice(const char *what, const float *ours, const float *ref, size_t n,
                        double tol) {
    char label[PARAM_NAME_MAX + 32];
    snprintf(label, sizeof label, "%s (2 calls)", what);
    check_scaled(label, ours, ref, 2.0, n, tol);
}

static void finish(const char *layer) {
    if (g_failures) fail_msg("%s: %d comparison(s) against PyTorch failed", layer, g_failures);
}

static void start(const char *layer) {
    g_failures = 0;
    printf("[%s]\n", layer);
}

/* ---- convolution ---- */

static void run_conv(const char *g, int n, int cin, int h, int w, int cout, int k, int stride) {
    start(g);
    ConvShape s = conv_shape(n, cin, h, w, cout, k, stride);
    size_t nin = (size_t)n * cin * h * w, nw = (size_t)cout * cin * k * k;
    size_t nout = (size_t)n * cout * s.hout * s.wout;
    const float *inp = LOAD(g, "inp", n, cin, h, w);
    const float *weight = LOAD(g, "weight", cout, cin, k, k);
    const float *bias = LOAD(g, "bias", cout);
    /* Loading out with our hout/wout checks conv_shape against PyTorch's output size. */
    const float *out_ref = LOAD(g, "out", n, cout, s.hout, s.wout);
    const float *dout = LOAD(g, "dout", n, cout, s.hout, s.wout);
    const float *dinp_ref = LOAD(g, "dinp", n, cin, h, w);
    const float *dw_ref = LOAD(g, "dweight", cout, cin, k, k);
    const float *db_ref = LOAD(g, "dbias", cout);
    float *ws = track(floats_alloc(conv_workspace_floats(&s, omp_get_max_threads())));

    float *out = guarded(nout);
    conv2d_forward(out, inp, weight, bias, &s, ws);
    check_grad("out", out, out_ref, nout, TOL_LAYER);
    float *out_direct = guarded(nout);
    conv2d_forward_reference(out_direct, inp, weight, bias, &s);
    check_grad("out (direct-loop reference)", out_direct, out_ref, nout, TOL_LAYER);

    float *dinp = guarded(nin), *dw = guarded(nw), *db = guarded((size_t)cout);
    conv2d_backward(dinp, dw, db, dout, inp, weight, &s, ws);
    check_grad("dinp", dinp, dinp_ref, nin, TOL_LAYER);
    check_grad("dweight", dw, dw_ref, nw, TOL_LAYER);
    check_grad("dbias", db, db_ref, (size_t)cout, TOL_LAYER);
    conv2d_backward(dinp, dw, db, dout, inp, weight, &s, ws);
    check_twice("dinp", dinp, dinp_ref, nin, TOL_LAYER);
    check_twice("dweight", dw, dw_ref, nw, TOL_LAYER);
    check_twice("dbias", db, db_ref, (size_t)cout, TOL_LAYER);

    /* dinp == NULL: the parameter gradients alone, unchanged. */
    float *dw1 = guarded(nw), *db1 = guarded((size_t)cout);
    conv2d_backward(NULL, dw1, db1, dout, inp, weight, &s, ws);
    check_grad("dweight (dinp NULL)", dw1, dw_ref, nw, TOL_LAYER);
    check_grad("dbias (dinp NULL)", db1, db_ref, (size_t)cout, TOL_LAYER);
    finish(g);
}

static void test_conv_s1(void **state) { (void)state; run_conv("conv_s1", 2, 3, 9, 9, 4, 3, 1); }
static void test_conv_s2(void **state) { (void)state; run_conv("conv_s2", 2, 3, 10, 10, 4, 3, 2); }
static void test_conv_s2_odd(void **state) {
    (void)state;
    run_conv("conv_s2_odd", 2, 3, 7, 7, 4, 3, 2);
}
static void test_conv_1x1(void **state) { (void)state; run_conv("conv_1x1", 2, 5, 6, 6, 3, 1, 1); }

/* ---- GroupNorm ---- */

static void run_groupnorm(const char *g, int groups) {
    start(g);
    const int n = 2, c = 8, hw = 25;
    size_t nx = (size_t)n * c * hw, ns = (size_t)n * groups;
    const float *inp = LOAD(g, "inp", n, c, 5, 5);
    const float *gamma = LOAD(g, "weight", c);
    const float *beta = LOAD(g, "bias", c);
    const float *out_ref = LOAD(g, "out", n, c, 5, 5);
    const float *dout = LOAD(g, "dout", n, c, 5, 5);
    const float *dinp_ref = LOAD(g, "dinp", n, c, 5, 5);
    const float *dg_ref = LOAD(g, "dweight", c);
    const float *db_ref = LOAD(g, "dbias", c);
    const float *mean_ref = LOAD(g, "mean", n, groups);
    const float *rstd_ref = LOAD(g, "rstd", n, groups);

    float *out = guarded(nx), *mean = guarded(ns), *rstd = guarded(ns);
    groupnorm_forward(out, mean, rstd, inp, gamma, beta, n, c, hw, groups);
    check_grad("out", out, out_ref, nx, TOL_LAYER);
    check_grad("mean", mean, mean_ref, ns, TOL_LAYER);
    check_grad("rstd", rstd, rstd_ref, ns, TOL_LAYER);

    float *dinp = guarded(nx), *dg = guarded((size_t)c), *db = guarded((size_t)c);
    float *ws = guarded(groupnorm_workspace_floats(n, c));
    groupnorm_backward(dinp, dg, db, dout, inp, mean, rstd, gamma, n, c, hw, groups, ws);
    check_grad("dinp", dinp, dinp_ref, nx, TOL_LAYER);
    check_grad("dweight", dg, dg_ref, (size_t)c, TOL_LAYER);
    check_grad("dbias", db, db_ref, (size_t)c, TOL_LAYER);
    groupnorm_backward(dinp, dg, db, dout, inp, mean, rstd, gamma, n, c, hw, groups, ws);
    check_twice("dinp", dinp, dinp_ref, nx, TOL_LAYER);
    check_twice("dweight", dg, dg_ref, (size_t)c, TOL_LAYER);
    check_twice("dbias", db, db_ref, (size_t)c, TOL_LAYER);
    finish(g);
}

static void test_groupnorm(void **state) { (void)state; run_groupnorm("groupnorm", 4); }
static void test_groupnorm_g1(void **state) { (void)state; run_groupnorm("groupnorm_g1", 1); }
static void test_groupnorm_gc(void **state) { (void)state; run_groupnorm("groupnorm_gc", 8); }

/* ---- Linear ---- */

static void test_linear(void **state) {
    (void)state;
    const char *g = "linear";
    start(g);
    const int n = 3, cin = 5, cout = 4;
    const float *inp = LOAD(g, "inp", n, cin);
    const float *weight = LOAD(g, "weight", cout, cin);
    const float *bias = LOAD(g, "bias", cout);
    const float *out_ref = LOAD(g, "out", n, cout);
    const float *dout = LOAD(g, "dout", n, cout);
    const float *dinp_ref = LOAD(g, "dinp", n, cin);
    const float *dw_ref = LOAD(g, "dweight", cout, cin);
    const float *db_ref = LOAD(g, "dbias", cout);

    float *out = guarded((size_t)n * cout);
    linear_forward(out, inp, weight, bias, n, cin, cout);
    check_grad("out", out, out_ref, (size_t)n * cout, TOL_LAYER);
    float *dinp = guarded((size_t)n * cin), *dw = guarded((size_t)cout * cin);
    float *db = guarded((size_t)cout);
    linear_backward(dinp, dw, db, dout, inp, weight, n, cin, cout);
    check_grad("dinp", dinp, dinp_ref, (size_t)n * cin, TOL_LAYER);
    check_grad("dweight", dw, dw_ref, (size_t)cout * cin, TOL_LAYER);
    check_grad("dbias", db, db_ref, (size_t)cout, TOL_LAYER);
    linear_backward(dinp, dw, db, dout, inp, weight, n, cin, cout);
    check_twice("dinp", dinp, dinp_ref, (size_t)n * cin, TOL_LAYER);
    check_twice("dweight", dw, dw_ref, (size_t)cout * cin, TOL_LAYER);
    check_twice("dbias", db, db_ref, (size_t)cout, TOL_LAYER);
    finish(g);
}

/* ---- elementwise and data movement ---- */

static void test_silu(void **state) {
    (void)state;
    const char *g = "silu";
    start(g);
    const size_t count = 2 * 3 * 4 * 4;
    const float *inp = LOAD(g, "inp", 2, 3, 4, 4);
    const float *out_ref = LOAD(g, "out", 2, 3, 4, 4);
    const float *dout = LOAD(g, "dout", 2, 3, 4, 4);
    const float *dinp_ref = LOAD(g, "dinp", 2, 3, 4, 4);
    float *out = guarded(count), *dinp = guarded(count);
    silu_forward(out, inp, count);
    check_grad("out", out, out_ref, count, TOL_ELEM);
    silu_backward(dinp, dout, inp, count);
    check_grad("dinp", dinp, dinp_ref, count, TOL_ELEM);
    silu_backward(dinp, dout, inp, count);
    check_twice("dinp", dinp, dinp_ref, count, TOL_ELEM);
    finish(g);
}

static void test_upsample(void **state) {
    (void)state;
    const char *g = "upsample";
    start(g);
    const int n = 2, c = 3, h = 4, w = 5;
    size_t nin = (size_t)n * c * h * w, nout = 4 * nin;
    const float *inp = LOAD(g, "inp", n, c, h, w);
    const float *out_ref = LOAD(g, "out", n, c, 2 * h, 2 * w);
    const float *dout = LOAD(g, "dout", n, c, 2 * h, 2 * w);
    const float *dinp_ref = LOAD(g, "dinp", n, c, h, w);
    float *out = guarded(nout), *dinp = guarded(nin);
    upsample2x_forward(out, inp, n, c, h, w);
    check_grad("out", out, out_ref, nout, TOL_EXACT);
    upsample2x_backward(dinp, dout, n, c, h, w);
    check_grad("dinp", dinp, dinp_ref, nin, TOL_EXACT);
    upsample2x_backward(dinp, dout, n, c, h, w);
    check_twice("dinp", dinp, dinp_ref, nin, TOL_EXACT);
    finish(g);
}

static void test_concat(void **state) {
    (void)state;
    const char *g = "concat";
    start(g);
    const int n = 2, ca = 3, cb = 2, hw = 16;
    size_t na = (size_t)n * ca * hw, nb = (size_t)n * cb * hw, nout = na + nb;
    const float *a = LOAD(g, "a", n, ca, 4, 4);
    const float *b = LOAD(g, "b", n, cb, 4, 4);
    const float *out_ref = LOAD(g, "out", n, ca + cb, 4, 4);
    const float *dout = LOAD(g, "dout", n, ca + cb, 4, 4);
    const float *da_ref = LOAD(g, "da", n, ca, 4, 4);
    const float *db_ref = LOAD(g, "db", n, cb, 4, 4);
    float *out = guarded(nout), *da = guarded(na), *db = guarded(nb);
    concat_forward(out, a, b, n, ca, cb, hw);
    check_grad("out", out, out_ref, nout, TOL_EXACT);
    concat_backward(da, db, dout, n, ca, cb, hw);
    check_grad("da", da, da_ref, na, TOL_EXACT);
    check_grad("db", db, db_ref, nb, TOL_EXACT);
    concat_backward(da, db, dout, n, ca, cb, hw);
    check_twice("da", da, da_ref, na, TOL_EXACT);
    check_twice("db", db, db_ref, nb, TOL_EXACT);
    finish(g);
}

static void test_add(void **state) {
    (void)state;
    const char *g = "add";
    start(g);
    const size_t count = 2 * 3 * 4 * 4;
    const float *a = LOAD(g, "a", 2, 3, 4, 4);
    const float *b = LOAD(g, "b", 2, 3, 4, 4);
    const float *out_ref = LOAD(g, "out", 2, 3, 4, 4);
    const float *dout = LOAD(g, "dout", 2, 3, 4, 4);
    const float *da_ref = LOAD(g, "da", 2, 3, 4, 4);
    const float *db_ref = LOAD(g, "db", 2, 3, 4, 4);
    float *out = guarded(count), *da = guarded(count), *db = guarded(count);
    add_forward(out, a, b, count);
    check_grad("out", out, out_ref, count, TOL_EXACT);
    add_backward(da, db, dout, count);
    check_grad("da", da, da_ref, count, TOL_EXACT);
    check_grad("db", db, db_ref, count, TOL_EXACT);
    add_backward(da, db, dout, count);
    check_twice("da", da, da_ref, count, TOL_EXACT);
    check_twice("db", db, db_ref, count, TOL_EXACT);
    finish(g);
}

static void test_add_channel(void **state) {
    (void)state;
    const char *g = "add_channel";
    start(g);
    const int n = 2, c = 3, hw = 16;
    size_t nx = (size_t)n * c * hw, ne = (size_t)n * c;
    const float *x = LOAD(g, "x", n, c, 4, 4);
    const float *e = LOAD(g, "e", n, c);
    const float *out_ref = LOAD(g, "out", n, c, 4, 4);
    const float *dout = LOAD(g, "dout", n, c, 4, 4);
    const float *dx_ref = LOAD(g, "dx", n, c, 4, 4);
    const float *de_ref = LOAD(g, "de", n, c);
    float *out = guarded(nx), *dx = guarded(nx), *de = guarded(ne);
    add_channel_forward(out, x, e, n, c, hw);
    check_grad("out", out, out_ref, nx, TOL_EXACT);
    add_channel_backward(dx, de, dout, n, c, hw);
    check_grad("dx", dx, dx_ref, nx, TOL_EXACT);
    check_grad("de", de, de_ref, ne, TOL_ELEM); /* a sum over 16 positions */
    add_channel_backward(dx, de, dout, n, c, hw);
    check_twice("dx", dx, dx_ref, nx, TOL_EXACT);
    check_twice("de", de, de_ref, ne, TOL_ELEM);
    finish(g);
}

static void test_temb(void **state) {
    (void)state;
    const char *g = "temb";
    start(g);
    const int n = 6, dim = 32;
    int t[6];
    h5t_read_i32(g_file, "/temb/t", t, 1, (long long[]){n});
    const float *out_ref = LOAD(g, "out", n, dim);
    float *out = guarded((size_t)n * dim);
    timestep_embedding(out, t, n, dim);
    check_grad("out", out, out_ref, (size_t)n * dim, TOL_TEMB);
    finish(g);
}

static void test_mse(void **state) {
    (void)state;
    const char *g = "mse";
    start(g);
    const size_t count = 2 * 1 * 4 * 4;
    const float *pred = LOAD(g, "pred", 2, 1, 4, 4);
    const float *target = LOAD(g, "target", 2, 1, 4, 4);
    const float *loss_ref = LOAD(g, "loss", 1);
    const float *dpred_ref = LOAD(g, "dpred", 2, 1, 4, 4);
    float loss = (float)mse_forward(pred, target, count);
    check("loss", &loss, loss_ref, 1, TOL_ELEM);
    float *dpred = guarded(count);
    mse_backward(dpred, pred, target, count);
    check_grad("dpred", dpred, dpred_ref, count, TOL_ELEM);
    mse_backward(dpred, pred, target, count);
    check_twice("dpred", dpred, dpred_ref, count, TOL_ELEM);
    finish(g);
}

static void test_attention(void **state) {
    (void)state;
    const char *g = "attention";
    start(g);
    const int n = 2, c = 8, hw = 49;
    const size_t nq = (size_t)n * 3 * c * hw, no = (size_t)n * c * hw;
    const float *qkv = LOAD(g, "qkv", n, 3 * c, 7, 7);
    const float *out_ref = LOAD(g, "out", n, c, 7, 7);
    const float *dout = LOAD(g, "dout", n, c, 7, 7);
    const float *dqkv_ref = LOAD(g, "dqkv", n, 3 * c, 7, 7);
    float *out = guarded(no), *prob = guarded((size_t)n * hw * hw), *dqkv = guarded(nq);
    float *ws = guarded(attention_workspace_floats(hw, omp_get_max_threads()));
    attention_forward(out, prob, qkv, n, c, hw);
    check_grad("out", out, out_ref, no, TOL_ELEM);
    attention_backward(dqkv, dout, qkv, prob, n, c, hw, ws);
    check_grad("dqkv", dqkv, dqkv_ref, nq, TOL_ELEM);
    attention_backward(dqkv, dout, qkv, prob, n, c, hw, ws);
    check_twice("dqkv", dqkv, dqkv_ref, nq, TOL_ELEM);
    finish(g);
}

static void test_embedding(void **state) {
    (void)state;
    const char *g = "embedding";
    start(g);
    const int n = 6, rows = 5, dim = 6;
    int labels[6];
    h5t_read_i32(g_file, "/embedding/labels", labels, 1, (long long[]){n});
    const float *weight = LOAD(g, "weight", rows, dim);
    const float *out_ref = LOAD(g, "out", n, dim);
    const float *dout = LOAD(g, "dout", n, dim);
    const float *dweight_ref = LOAD(g, "dweight", rows, dim);
    float *out = guarded((size_t)n * dim), *dweight = guarded((size_t)rows * dim);
    embedding_forward(out, weight, labels, n, dim);
    check_grad("out", out, out_ref, (size_t)n * dim, TOL_EXACT);
    embedding_backward(dweight, dout, labels, n, dim);
    check_grad("dweight", dweight, dweight_ref, (size_t)rows * dim, TOL_ELEM);
    embedding_backward(dweight, dout, labels, n, dim);
    check_twice("dweight", dweight, dweight_ref, (size_t)rows * dim, TOL_ELEM);
    finish(g);
}

/* ---- the whole network ---- */

/* H5Literate callback: count fixture parameters our table lacks, naming each. */
static herr_t find_unknown(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group;
    (void)info;
    const ParamTable *table = ((void **)data)[0];
    int *unknown = ((void **)data)[1];
    if (params_find(table, name) < 0) {
        printf("  fixture parameter %s is missing from our table\n", name);
        (*unknown)++;
    }
    return 0;
}

/* unet-s built for max_batch images, run on the fixture's UNET_BATCH. */
static void run_unet(int max_batch) {
    const char *g = "unet";
    char title[64];
    snprintf(title, sizeof title, "unet, built for %d images, run on %d", max_batch, UNET_BATCH);
    start(title);
    Model m;
    ModelConfig cfg = model_config_default();
    model_build(&m, &cfg, max_batch);
    model_keep_input_grad(&m);
    const ParamTable *tab = &m.table;
    printf("  our table: %d tensors, %zu parameters\n", tab->count, tab->total);
    if (tab->total != UNET_PARAMS) {
        printf("  parameter count %zu, expected %d  FAIL\n", tab->total, UNET_PARAMS);
        g_failures++;
    }

    /* Forward FLOPs against the generator's count (2 per multiply-add, convs and linears). */
    double ref_mflop = 0.0;
    hid_t attr = H5Aopen_by_name(g_file, "/unet", "mflop_per_image", H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Aread(attr, H5T_NATIVE_DOUBLE, &ref_mflop) < 0)
        die("%s: /unet has no attribute mflop_per_image", g_path);
    H5Aclose(attr);
    double mflop = model_flops_per_image(&m) / 1e6;
    int flops_ok = fabs(mflop - ref_mflop) <= 1e-3 * ref_mflop;
    printf("  forward MFLOP per image: ours %.2f, PyTorch count %.2f%s\n", mflop, ref_mflop,
           flops_ok ? "" : "  FAIL");
    if (!flops_ok) g_failures++;

    /* Every table entry must be in the fixture with its exact shape (read dies otherwise)... */
    float *params = track(floats_alloc(tab->total));
    float *grads_ref = track(floats_alloc(tab->total));
    for (int i = 0; i < tab->count; i++) {
        const ParamEntry *e = &tab->entries[i];
        long long dims[PARAM_MAX_DIMS];
        for (int d = 0; d < e->ndim; d++) dims[d] = e->shape[d];
        char path[PARAM_NAME_MAX + 32];
        snprintf(path, sizeof path, "/unet/params/%s", e->name);
        h5t_read_f32(g_file, path, params + e->offset, e->ndim, dims);
        snprintf(path, sizeof path, "/unet/grads/%s", e->name);
        h5t_read_f32(g_file, path, grads_ref + e->offset, e->ndim, dims);
    }
    /* ...and every fixture parameter must be in our table. */
    int unknown = 0;
    void *iter_data[2] = {(void *)tab, &unknown};
    hid_t grp = H5Gopen2(g_file, "/unet/params", H5P_DEFAULT);
    if (grp < 0) die("%s: group /unet/params is missing", g_path);
    H5Literate(grp, H5_INDEX_NAME, H5_ITER_INC, NULL, find_unknown, iter_data);
    H5Gclose(grp);
    if (unknown) g_failures++;

    const int n = UNET_BATCH;
    const size_t nimg = (size_t)n * 28 * 28;
    const float *x = LOAD(g, "x", n, 1, 28, 28);
    int t[UNET_BATCH];
    h5t_read_i32(g_file, "/unet/t", t, 1, (long long[]){n});
    const float *out_ref = LOAD(g, "out", n, 1, 28, 28);
    const float *dout = LOAD(g, "dout", n, 1, 28, 28);
    const float *dx_ref = LOAD(g, "dx", n, 1, 28, 28);

    const float *out = model_forward(&m, params, x, t, NULL, n);
    check("out", out, out_ref, nimg, TOL_NET_FWD);

    float *grads = guarded(tab->total);
    model_backward(&m, params, grads, dout, n);
    check("dx", model_input_grad(&m), dx_ref, nimg, TOL_NET_GRAD);
    double worst = 0.0;
    const char *worst_name = "";
    for (int i = 0; i < tab->count; i++) {
        const ParamEntry *e = &tab->entries[i];
        char label[PARAM_NAME_MAX + 8];
        snprintf(label, sizeof label, "d %s", e->name);
        check(label, grads + e->offset, grads_ref + e->offset, e->size, TOL_NET_GRAD);
        double err = norm_err(grads + e->offset, grads_ref + e->offset, 1.0, e->size);
        if (err > worst) worst = err, worst_name = e->name;
    }
    if (!guard_intact(grads, tab->total, "grads arena")) g_failures++;
    printf("  worst parameter gradient: %.2e (%s)\n", worst, worst_name);

    /* A second forward and backward into the same arena: the gradients double. */
    out = model_forward(&m, params, x, t, NULL, n);
    check("out (second forward)", out, out_ref, nimg, TOL_NET_FWD);
    model_backward(&m, params, grads, dout, n);
    /* tensor by tensor, as the first backward: one scale for all would let a tensor of small
     * gradients overwrite instead of accumulate unseen */
    for (int i = 0; i < tab->count; i++) {
        const ParamEntry *e = &tab->entries[i];
        char label[PARAM_NAME_MAX + 8];
        snprintf(label, sizeof label, "d %s", e->name);
        check_twice(label, grads + e->offset, grads_ref + e->offset, e->size, TOL_NET_GRAD);
    }
    model_free(&m);
    finish(title);
}

static void test_unet(void **state) {
    (void)state;
    run_unet(UNET_BATCH);
}

/* A batch smaller than the arenas were sized for: slot offsets must not assume a full batch. */
static void test_unet_partial_batch(void **state) {
    (void)state;
    run_unet(UNET_BATCH + 2);
}

int main(void) {
    g_path = getenv("DDPM_REFERENCE");
    if (!g_path || !*g_path) {
        fprintf(stderr, "test_reference: DDPM_REFERENCE is not set; build the fixture with "
                        "`make build/ref/reference.h5` and point DDPM_REFERENCE at it\n");
        return 1;
    }
    g_file = h5t_open_read(g_path); /* dies, naming the path, if missing or not HDF5 */
    printf("reference fixture: %s (%d OpenMP threads)\n", g_path, omp_get_max_threads());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_conv_s1, release_all),
        cmocka_unit_test_teardown(test_conv_s2, release_all),
        cmocka_unit_test_teardown(test_conv_s2_odd, release_all),
        cmocka_unit_test_teardown(test_conv_1x1, release_all),
        cmocka_unit_test_teardown(test_groupnorm, release_all),
        cmocka_unit_test_teardown(test_groupnorm_g1, release_all),
        cmocka_unit_test_teardown(test_groupnorm_gc, release_all),
        cmocka_unit_test_teardown(test_linear, release_all),
        cmocka_unit_test_teardown(test_silu, release_all),
        cmocka_unit_test_teardown(test_upsample, release_all),
        cmocka_unit_test_teardown(test_concat, release_all),
        cmocka_unit_test_teardown(test_add, release_all),
        cmocka_unit_test_teardown(test_add_channel, release_all),
        cmocka_unit_test_teardown(test_temb, release_all),
        cmocka_unit_test_teardown(test_mse, release_all),
        cmocka_unit_test_teardown(test_attention, release_all),
        cmocka_unit_test_teardown(test_embedding, release_all),
        cmocka_unit_test_teardown(test_unet, release_all),
        cmocka_unit_test_teardown(test_unet_partial_batch, release_all),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    h5t_close(g_file);
    return failed ? 1 : 0;
}
