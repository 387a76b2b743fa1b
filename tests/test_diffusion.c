/* test_diffusion.c: schedules, forward noising, the DDPM and DDIM steps, DDIM spacing, and the
 * counter-based RNG they draw from (the DPM-Solver++(2M) step's order: test_dpm_solver.c).
 *
 * Strategy: every formula is checked against an independent double computation written out
 * here, and the samplers against identities that hold exactly when the network predicts the
 * true noise (DDIM with eta 0 then walks the exact forward trajectory back to x0). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diffusion.h"
#include "rng.h"

static void test_linear_schedule(void **state) {
    (void)state;
    Schedule s;
    schedule_build(&s, SCHEDULE_LINEAR, 300, 1e-4, 0.02);
    assert_true(fabs(s.beta[0] - 1e-4) < 1e-15);
    assert_true(fabs(s.beta[299] - 0.02) < 1e-15); /* both ends included */
    assert_true(fabs(s.beta[150] - (1e-4 + (0.02 - 1e-4) * 150.0 / 299.0)) < 1e-15);
    double abar = 1.0;
    for (int t = 0; t < 300; t++) {
        abar *= 1.0 - (1e-4 + (0.02 - 1e-4) * t / 299.0);
        assert_true(fabs(s.abar[t] - abar) < 1e-12);
        assert_true(fabs(s.alpha[t] - (1.0 - s.beta[t])) < 1e-15);
    }
    /* a known value: abar at T-1 for the reference recipe is about 0.0468 */
    assert_true(s.abar[299] > 0.04 && s.abar[299] < 0.055);
    schedule_free(&s);
}

static void test_cosine_schedule(void **state) {
    (void)state;
    Schedule s;
    const int T = 1000;
    schedule_build(&s, SCHEDULE_COSINE, T, 0, 0);
    const double pi = 3.14159265358979323846, c = 0.008;
    double f0 = cos(c / (1 + c) * pi / 2);
    f0 *= f0;
    for (int t = 0; t < T; t++) {
        assert_true(s.beta[t] > 0 && s.beta[t] <= 0.999);
        double f = cos(((t + 1.0) / T + c) / (1 + c) * pi / 2);
        double want = f * f / f0; /* abar(t) = f(t+1)/f(0) while no beta is clipped */
        if (s.beta[t] < 0.999) assert_true(fabs(s.abar[t] - want) < 1e-9 * (1 + want) + 1e-12);
        if (t) assert_true(s.abar[t] < s.abar[t - 1]);
    }
    assert_true(fabs(s.beta[T - 1] - 0.999) < 1e-12); /* the last beta is clipped */
    schedule_free(&s);
}

static void test_ddim_timesteps(void **state) {
    (void)state;
    int ts[50];
    ddim_timesteps(ts, 50, 300);
    assert_int_equal(ts[0], 0);
    assert_int_equal(ts[49], 299);
    for (int i = 0; i < 50; i++) assert_int_equal(ts[i], (int)lround(i * 299.0 / 49.0));
    for (int i = 1; i < 50; i++) assert_true(ts[i] > ts[i - 1]);
    int all[300];
    ddim_timesteps(all, 300, 300); /* K = T visits every step */
    for (int i = 0; i < 300; i++) assert_int_equal(all[i], i);

    /* quadratic: (i/49)^2 * 999 for T = 1000, raised to stay strictly ascending at the low end */
    int q[50];
    ddim_timesteps_quadratic(q, 50, 1000);
    assert_int_equal(q[0], 0);
    assert_int_equal(q[49], 999);
    assert_int_equal(q[1], 1);                              /* round(0.42) = 0, raised */
    assert_int_equal(q[10], (int)lround(100.0 / 2401 * 999)); /* 42: past the raised run */
    assert_int_equal(q[30], (int)lround(900.0 / 2401 * 999)); /* 374 */
    for (int i = 1; i < 50; i++) assert_true(q[i] > q[i - 1]);
    assert_true(q[25] < 300); /* half the steps below t = 300 (uniform: 510) */
    ddim_timesteps_quadratic(all, 300, 300); /* K = T: every step still */
    for (int i = 0; i < 300; i++) assert_int_equal(all[i], i);
    ddim_timesteps_quadratic(q, 2, 300);
    assert_int_equal(q[0], 0);
    assert_int_equal(q[1], 299);
}

/* v-prediction: the target is sqrt(abar) eps - sqrt(1-abar) x0 (against a double computation),
 * and the eps a v implies at x_t is the eps that made x_t, with x0 = sqrt(abar) x_t - sqrt(1-abar)
 * v: at every t of the cosine schedule, up to its last (abar = 3e-8), where eps's own x0
 * estimate, (x_t - sqrt(1-abar) eps) / sqrt(abar), is out by 1/sqrt(abar) times eps's error. */
static void test_v_prediction(void **state) {
    (void)state;
    Schedule s;
    schedule_build(&s, SCHEDULE_COSINE, 300, 0, 0);
    enum { N = 4, D = 40 };
    float x0[N * D], eps[N * D], xt[N * D], v[N * D];
    rng_uniform(x0, N * D, -1, 1, 11, RNG_TEST, 0, 0);
    rng_normal(eps, N * D, 11, RNG_TEST, 1, 0);
    int t[N] = {0, 120, 250, 299};
    diffusion_noise(xt, x0, eps, t, N, D, &s);
    diffusion_v_target(v, x0, eps, t, N, D, &s);
    double worst_v = 0, worst_eps = 0, worst_x0 = 0;
    for (int i = 0; i < N; i++) {
        const double a = sqrt(s.abar[t[i]]), b = sqrt(1 - s.abar[t[i]]);
        for (int j = 0; j < D; j++) {
            const int k = i * D + j;
            worst_v = fmax(worst_v, fabs(v[k] - (a * eps[k] - b * x0[k])));
            worst_x0 = fmax(worst_x0, fabs(a * xt[k] - b * v[k] - x0[k]));
        }
        float back[D];
        memcpy(back, v + i * D, sizeof back);
        diffusion_eps_from_v(back, xt + i * D, t[i], D, &s);
        for (int j = 0; j < D; j++) worst_eps = fmax(worst_eps, fabs(back[j] - eps[i * D + j]));
    }
    assert_true(worst_v < 1e-6);
    assert_true(worst_eps < 1e-5);
    assert_true(worst_x0 < 1e-5);
    assert_true(s.abar[299] < 1e-7); /* the end of the schedule was in the test */
    schedule_free(&s);
}

static void test_noise_and_ddpm_step(void **state) {
    (void)state;
    Schedule s;
    schedule_build(&s, SCHEDULE_LINEAR, 300, 1e-4, 0.02);
    enum { N = 3, D = 50 };
    float x0[N * D], eps[N * D], xt[N * D], z[N * D];
    rng_uniform(x0, N * D, -1, 1, 9, RNG_TEST, 0, 0);
    rng_normal(eps, N * D, 9, RNG_TEST, 1, 0);
    rng_normal(z, N * D, 9, RNG_TEST, 2, 0);
    int t[N] = {0, 150, 299};
    diffusion_noise(xt, x0, eps, t, N, D, &s);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double a = s.abar[t[i]];
            double want = sqrt(a) * x0[i * D + j] + sqrt(1 - a) * eps[i * D + j];
            assert_true(fabs(xt[i * D + j] - want) < 1e-5);
        }
    /* one ancestral step at t = 150, against the formula in double */
    float x[D];
    memcpy(x, xt + D, sizeof x);
    ddpm_step(x, eps + D, z, 150, 0, D, &s);
    for (int j = 0; j < D; j++) {
        double b = s.beta[150], a = s.abar[150];
        double want = (xt[D + j] - b / sqrt(1 - a) * eps[D + j]) / sqrt(1 - b) + sqrt(b) * z[j];
        assert_true(fabs(x[j] - want) < 1e-5);
    }
    /* at t = 0 no noise is added: z is ignored */
    memcpy(x, xt, sizeof x);
    ddpm_step(x, eps, z, 0, 0, D, &s);
    for (int j = 0; j < D; j++) {
        double b = s.beta[0], a = s.abar[0];
        assert_true(fabs(x[j] - (xt[j] - b / sqrt(1 - a) * eps[j]) / sqrt(1 - b)) < 1e-5);
    }
    /* clip: where the predicted x0 is inside [-1, 1] the x0-form mean equals the eps form; where
     * it is outside, the mean of the clamped x0 (formulas in double) */
    for (int tt = 0; tt < 300; tt += 149) {
        float xc[D], xe[D], e2[D];
        for (int j = 0; j < D; j++) e2[j] = j % 5 == 0 ? 40.0f * eps[D + j] : eps[D + j];
        memcpy(xc, xt + D, sizeof xc);
        memcpy(xe, xt + D, sizeof xe);
        ddpm_step(xc, e2, z, tt, 1, D, &s);
        ddpm_step(xe, e2, z, tt, 0, D, &s);
        int clamped = 0;
        for (int j = 0; j < D; j++) {
            const double at = s.abar[tt], ap = tt > 0 ? s.abar[tt - 1] : 1.0, b = s.beta[tt];
            double p0 = (xt[D + j] - sqrt(1 - at) * e2[j]) / sqrt(at);
            if (p0 >= -1 && p0 <= 1) {
                if (fabs(xc[j] - xe[j]) > 1e-4 * (1 + fabs(xe[j])))
                    fail_msg("t %d: clip changed an unclamped step: %g vs %g", tt, xc[j], xe[j]);
                continue;
            }
            clamped++;
            p0 = p0 < -1 ? -1 : 1;
            double want = sqrt(ap) * b / (1 - at) * p0 + sqrt(1 - b) * (1 - ap) / (1 - at) * xt[D + j] +
                          (tt > 0 ? sqrt(b) * z[j] : 0.0);
            if (fabs(xc[j] - want) > 1e-5 * (1 + fabs(want)))
                fail_msg("t %d: clipped step %g, want %g", tt, xc[j], want);
        }
        assert_true(clamped > 0 && clamped < D); /* both branches exercised */
    }
    schedule_free(&s);
}

/* With the true noise as the prediction, deterministic DDIM lands exactly on the forward
 * trajectory at every visited step, and on x0 after the last. So does DPM-Solver++(2M): every
 * x0 estimate is then the same x0, which its extrapolation leaves unchanged (with the quadratic
 * spacing, whose uneven steps give the extrapolation uneven weights). */
static void walk_back(int dpm) {
    Schedule s;
    schedule_build(&s, SCHEDULE_LINEAR, 300, 1e-4, 0.02);
    enum { D = 64, K = 20 };
    float x0[D], eps[D], x[D], x0_prev[D];
    rng_uniform(x0, D, -1, 1, 3, RNG_TEST, 0, 0);
    rng_normal(eps, D, 3, RNG_TEST, 1, 0);
    int ts[K];
    if (dpm) ddim_timesteps_quadratic(ts, K, 300);
    else ddim_timesteps(ts, K, 300);
    int tT = ts[K - 1];
    diffusion_noise(x, x0, eps, &tT, 1, D, &s);
    for (int k = K - 1; k >= 0; k--) {
        const int t_next = k ? ts[k - 1] : -1;
        if (dpm) dpmpp2m_step(x, eps, x0_prev, k < K - 1 ? ts[k + 1] : -1, ts[k], t_next, 0, D, &s);
        else ddim_step(x, eps, NULL, ts[k], t_next, 0.0, 0, D, &s);
        if (k) {
            float want[D];
            diffusion_noise(want, x0, eps, &t_next, 1, D, &s);
            for (int j = 0; j < D; j++) assert_true(fabs(x[j] - want[j]) < 1e-4);
        }
    }
    for (int j = 0; j < D; j++) assert_true(fabs(x[j] - x0[j]) < 1e-4);
    schedule_free(&s);
}

static void test_ddim_recovers_x0(void **state) {
    (void)state;
    walk_back(0);
}

static void test_dpmpp2m_recovers_x0(void **state) {
    (void)state;
    walk_back(1);
}

/* eta = 1 DDIM over every step has the DDPM posterior variance: sigma^2 = (1-abar_prev) /
 * (1-abar_t) beta_t. Check the noise scale by feeding z = 1 and eps = 0, x = 0. */
static void test_ddim_eta_one_variance(void **state) {
    (void)state;
    Schedule s;
    schedule_build(&s, SCHEDULE_LINEAR, 300, 1e-4, 0.02);
    float x = 0, e = 0, z = 1;
    ddim_step(&x, &e, &z, 200, 199, 1.0, 0, 1, &s);
    double sigma = sqrt((1 - s.abar[199]) / (1 - s.abar[200]) * s.beta[200]);
    assert_true(fabs(x - sigma) < 1e-6);
    /* the whole update, direction term included, with x and eps not zero: eta = 1 is the DDPM
     * posterior mean (coefficients of Ho et al.'s eq. 7, in double) plus sigma z; eta = 0.5
     * is sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z */
    const double a = s.abar[200], ap = s.abar[199], b = s.beta[200];
    const double x0 = 0.3, ep = -0.7, zz = 0.4, xt = sqrt(a) * x0 + sqrt(1 - a) * ep;
    float x1 = (float)xt, e1 = (float)ep, z1 = (float)zz;
    ddim_step(&x1, &e1, &z1, 200, 199, 1.0, 0, 1, &s);
    const double mean = sqrt(ap) * b / (1 - a) * x0 + sqrt(1 - b) * (1 - ap) / (1 - a) * xt;
    assert_true(fabs(x1 - (mean + sigma * zz)) < 2e-6);
    float xh = (float)xt, eh = (float)ep, zh = (float)zz;
    ddim_step(&xh, &eh, &zh, 200, 199, 0.5, 0, 1, &s);
    const double sh = 0.5 * sigma;
    assert_true(fabs(xh - (sqrt(ap) * x0 + sqrt(1 - ap - sh * sh) * ep + sh * zz)) < 2e-6);
    /* clip: a predicted x0 outside [-1, 1] is clamped, the noise re-derived */
    float xc = 3.0f, ec = 0.0f;
    ddim_step(&xc, &ec, NULL, 10, -1, 0.0, 1, 1, &s);
    assert_true(fabs(xc - 1.0f) < 1e-6);
    schedule_free(&s);
}

/* The RNG is a pure function of its key: same key, same numbers; other key, other numbers;
 * normal draws have mean ~0 and variance ~1. */
static void test_rng(void **state) {
    (void)state;
    enum { N = 100000 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    rng_normal(a, N, 42, RNG_NOISE, 7, 11);
    rng_normal(b, N, 42, RNG_NOISE, 7, 11);
    assert_memory_equal(a, b, N * sizeof(float));
    rng_normal(b, N, 42, RNG_NOISE, 7, 12);
    assert_memory_not_equal(a, b, N * sizeof(float));
    double m = 0, v = 0;
    for (int i = 0; i < N; i++) m += a[i];
    m /= N;
    for (int i = 0; i < N; i++) v += (a[i] - m) * (a[i] - m);
    v /= N;
    assert_true(fabs(m) < 0.02 && fabs(v - 1) < 0.02);
    /* a prefix of a longer draw equals the shorter draw (chunking does not matter) */
    rng_normal(b, 10, 42, RNG_NOISE, 7, 11);
    assert_memory_equal(a, b, 10 * sizeof(float));
    unsigned hist[10] = {0};
    for (uint32_t i = 0; i < 10000; i++) hist[rng_below(10, 1, RNG_TIMESTEP, 0, i)]++;
    for (int i = 0; i < 10; i++) assert_true(hist[i] > 850 && hist[i] < 1150);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_schedule),   cmocka_unit_test(test_cosine_schedule),
        cmocka_unit_test(test_ddim_timesteps),    cmocka_unit_test(test_noise_and_ddpm_step),
        cmocka_unit_test(test_v_prediction),
        cmocka_unit_test(test_ddim_recovers_x0),  cmocka_unit_test(test_dpmpp2m_recovers_x0),
        cmocka_unit_test(test_ddim_eta_one_variance),
        cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
