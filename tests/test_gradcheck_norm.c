/* test_gradcheck_norm.c: GroupNorm (1, 2, 4 and C groups) and GroupNorm + SiLU as one op:
 * statistics and output against double loops, every gradient against finite differences, the
 * fused op against the two kernels composed; SiLU finite over [-200, 200]. The strategy is in
 * layer_check.h.
 */
#include <omp.h>

#include "layer_check.h"
#include "nn.h"

/* GroupNorm: the shapes and buffers of one case */
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
    accumulate_prefill(v, acc, ns, 3, tag);
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
    accumulate_prefill(v, acc, ns, 3, tag);
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
int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groupnorm_g1),
        cmocka_unit_test(test_groupnorm_g2),
        cmocka_unit_test(test_groupnorm_g4),
        cmocka_unit_test(test_groupnorm_gc),
        cmocka_unit_test(test_groupnorm_silu),
        cmocka_unit_test(test_silu_large_inputs),
    };
    int failed = cmocka_run_group_tests_name("gradcheck_norm", tests, NULL, NULL);
    layer_check_report();
    return failed;
}
