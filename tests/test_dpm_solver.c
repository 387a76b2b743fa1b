/* test_dpm_solver.c: the DPM-Solver++(2M) step against DDIM and against the exact solution of
 * the deterministic (probability-flow) path (its walk back along a known forward trajectory:
 * test_diffusion.c).
 *
 * Strategy: for Gaussian data x0 ~ N(mu, s^2) the true noise prediction is known in closed
 * form, and so is the exact deterministic path from any x_t: the standardised value
 * (x - sqrt(abar) mu) / sqrt(abar s^2 + 1 - abar) stays constant. Feeding the exact prediction
 * to the steps isolates their discretisation error, which must fall like h^2 (four times per
 * halving of the step) for the second-order step and like h (twice) for DDIM. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "diffusion.h"
#include "rng.h"

enum { D = 32 };
static const double MU = 0.3, SD = 0.5; /* the Gaussian data: x0 ~ N(MU, SD^2) */

/* E[eps | x_t] for that data: sqrt(1-abar) (x - sqrt(abar) mu) / (abar s^2 + 1 - abar) */
static void exact_eps(float *eps, const float *x, int t, const Schedule *s) {
    const double a = s->abar[t];
    for (int j = 0; j < D; j++)
        eps[j] = (float)(sqrt(1.0 - a) * (x[j] - sqrt(a) * MU) / (a * SD * SD + 1.0 - a));
}

/* the exact deterministic path from abar_from to abar_to */
static double exact_path(double x, double abar_from, double abar_to) {
    const double z = (x - sqrt(abar_from) * MU) / sqrt(abar_from * SD * SD + 1.0 - abar_from);
    return sqrt(abar_to) * MU + z * sqrt(abar_to * SD * SD + 1.0 - abar_to);
}

/* Walk K - 1 steps from t = hi down to t = lo, about evenly spaced, with the exact prediction;
 * the largest error against the exact path. order 1: DDIM eta 0. */
static double path_error(const Schedule *s, int lo, int hi, int K, int order) {
    int *ts = malloc((size_t)K * sizeof(int));
    for (int i = 0; i < K; i++) ts[i] = lo + (int)lround((double)i * (hi - lo) / (K - 1));
    float x[D], x_start[D], eps[D], x0_prev[D];
    rng_normal(x_start, D, 5, RNG_TEST, 0, 0);
    for (int j = 0; j < D; j++) x[j] = x_start[j];
    for (int k = K - 1; k >= 1; k--) {
        exact_eps(eps, x, ts[k], s);
        if (order == 1) ddim_step(x, eps, NULL, ts[k], ts[k - 1], 0.0, 0, D, s);
        else dpmpp2m_step(x, eps, x0_prev, k < K - 1 ? ts[k + 1] : -1, ts[k], ts[k - 1], 0, D, s);
    }
    double worst = 0;
    for (int j = 0; j < D; j++) {
        const double want = exact_path(x_start[j], s->abar[ts[K - 1]], s->abar[ts[0]]);
        if (fabs(x[j] - want) > worst) worst = fabs(x[j] - want);
    }
    free(ts);
    return worst;
}

/* The measured order from t = hi down to t = lo with K0, 2 K0 and 4 K0 steps: DPM++ 2M's error
 * falls about 4x per doubling, DDIM's about 2x, and at equal K the second-order path is the
 * closer one by more than 3x. */
static void check_orders(const Schedule *s, int lo, int hi, int K0) {
    double e1[3], e2[3];
    for (int i = 0; i < 3; i++) {
        const int K = K0 << i;
        e1[i] = path_error(s, lo, hi, K, 1);
        e2[i] = path_error(s, lo, hi, K, 2);
        print_message("%s T %d, K %d: DDIM error %.3g, DPM++ 2M error %.3g\n",
                      schedule_name(s->kind), s->T, K, e1[i], e2[i]);
        if (!(e2[i] < 0.3 * e1[i])) fail_msg("K %d: DPM++ 2M is not the closer path", K);
    }
    for (int i = 0; i < 2; i++) {
        const double r1 = e1[i] / e1[i + 1], r2 = e2[i] / e2[i + 1];
        if (r1 < 1.6 || r1 > 2.6) fail_msg("DDIM: error ratio %g per doubling, want about 2", r1);
        if (r2 < 3.0 || r2 > 5.5) fail_msg("DPM++ 2M: error ratio %g per doubling, want about 4", r2);
    }
}

/* (With fewer steps the second-order step is still the closer one here but not yet in its
 * asymptotic range: the ratios are measured from steps of h = 0.2 in lambda down.) */
static void test_second_order_convergence(void **state) {
    (void)state;
    Schedule s;
    schedule_build(&s, SCHEDULE_LINEAR, 1000, 1e-4, 0.02);
    check_orders(&s, 50, 950, 40);
    schedule_free(&s);
    schedule_build(&s, SCHEDULE_COSINE, 300, 0, 0);
    check_orders(&s, 10, 290, 20);
    schedule_free(&s);
}

/* The first step (no earlier estimate) is the DDIM step with eta 0, clamped or not. */
/* One second-order step with uneven increments (t 250 -> 200 -> 100: h about 2.1 h_before), against
 * Lu et al.'s multistep update written with r = h_before / h in double: D = (1 + 1/(2r)) x0 -
 * 1/(2r) x0_prev, x_next = (sigma_next / sigma_t) x + alpha_next (1 - e^-h) D. The weights'
 * direction matters only when r != 1 (the convergence test's even steps cannot tell them apart). */
static void test_uneven_second_order_step(void **state) {
    (void)state;
    Schedule s;
    schedule_build(&s, SCHEDULE_LINEAR, 300, 1e-4, 0.02);
    const int tb = 250, t = 200, tn = 100;
    const double ab = s.abar[tb], at = s.abar[t], an = s.abar[tn];
    const double lam_b = 0.5 * log(ab / (1 - ab)), lam_t = 0.5 * log(at / (1 - at)),
                 lam_n = 0.5 * log(an / (1 - an));
    const double h = lam_n - lam_t, r = (lam_t - lam_b) / h;
    assert_true(fabs(r - 1.0) > 0.3); /* uneven enough to tell 1 + 1/(2r) from 1 + r/2 */
    const double x0 = 0.4, ep = -0.9, prev = -0.2, xt = sqrt(at) * x0 + sqrt(1 - at) * ep;
    const double d_est = (1 + 0.5 / r) * x0 - 0.5 / r * prev;
    const double want = sqrt((1 - an) / (1 - at)) * xt + sqrt(an) * (1 - exp(-h)) * d_est;
    float x = (float)xt, e = (float)ep, p = (float)prev;
    dpmpp2m_step(&x, &e, &p, tb, t, tn, 0, 1, &s);
    assert_true(fabs(x - want) < 5e-6);
    assert_true(fabs(p - x0) < 1e-5); /* this step's x0 estimate kept for the next */
    schedule_free(&s);
}

static void test_first_step_is_ddim(void **state) {
    (void)state;
    Schedule s;
    schedule_build(&s, SCHEDULE_COSINE, 300, 0, 0);
    float x[D], eps[D], a[D], b[D], x0_prev[D];
    rng_normal(x, D, 7, RNG_TEST, 0, 0);
    rng_normal(eps, D, 7, RNG_TEST, 1, 0);
    for (int clip = 0; clip <= 1; clip++) {
        for (int j = 0; j < D; j++) a[j] = b[j] = 3.0f * x[j]; /* some x0 estimates outside [-1, 1] */
        ddim_step(a, eps, NULL, 150, 120, 0.0, clip, D, &s);
        dpmpp2m_step(b, eps, x0_prev, -1, 150, 120, clip, D, &s);
        for (int j = 0; j < D; j++)
            if (fabs(a[j] - b[j]) > 1e-5 * (1 + fabs(a[j])))
                fail_msg("clip %d: DDIM %g, first DPM++ 2M step %g", clip, a[j], b[j]);
        /* the step leaves its x0 estimate, clamped when asked, for the next one */
        const double sa = sqrt(s.abar[150]), sb = sqrt(1 - s.abar[150]);
        for (int j = 0; j < D; j++) {
            double want = (3.0 * x[j] - sb * eps[j]) / sa;
            if (clip) want = want < -1 ? -1 : want > 1 ? 1 : want;
            assert_true(fabs(x0_prev[j] - want) < 1e-5 * (1 + fabs(want)));
        }
    }
    /* the last step (to abar = 1) returns the x0 estimate itself */
    for (int j = 0; j < D; j++) a[j] = x[j];
    dpmpp2m_step(a, eps, x0_prev, 3, 0, -1, 0, D, &s);
    for (int j = 0; j < D; j++)
        assert_true(fabs(a[j] - (x[j] - sqrt(1 - s.abar[0]) * eps[j]) / sqrt(s.abar[0])) < 1e-4);
    schedule_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_order_convergence),
        cmocka_unit_test(test_first_step_is_ddim),
        cmocka_unit_test(test_uneven_second_order_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
