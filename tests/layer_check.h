/* layer_check.h: what the layer test programs (test_gradcheck_conv, test_gradcheck_norm,
 * test_gradcheck_layers) share on top of gradcheck.h: the finite-difference check that also
 * remembers the program's worst element error, random and copied sentinel buffers, and a
 * comparison against values computed in double.
 *
 * Strategy of those programs (see gradcheck.h for the numerics):
 *   - forward is checked against a second implementation: conv2d_forward against
 *     conv2d_forward_reference, the other layers against direct loops in double;
 *   - backward is checked against central finite differences of L = sum(out * r) with a fixed
 *     random r, for every input and parameter of every layer; per-element normalised error
 *     <= 2e-2 and global ||a - n|| / ||n|| <= 1e-2 (correct float32 kernels: at worst 2e-3
 *     per element and 1e-5 global; a wrong sign, index or scale lands near 1);
 *   - backward accumulates: run into buffers pre-filled with random v, it must give v + grad;
 *   - sentinels: every buffer has NaN guards on both sides that must stay bit-identical, outputs
 *     and scratch start as NaN so an unwritten output or a read of unwritten scratch shows, and
 *     every output and gradient must be finite;
 *   - batch n >= 2 everywhere, so a kernel that mixes images (wrong batch stride) fails.
 * Header of static functions for the reason gradcheck.h gives; each program has its own g_worst.
 */
#ifndef DDPM_TESTS_LAYER_CHECK_H
#define DDPM_TESTS_LAYER_CHECK_H

#include "gradcheck.h"

/* The worst per-element error of the whole program, printed at the end. */
static GcResult g_worst;

static inline void check(const char *name, float *x, size_t count, const float *analytic,
                         GcLossFn loss, void *ctx, uint32_t tag) {
    GcOptions o = gc_default_options();
    GcResult r = gc_check_assert(name, x, count, analytic, loss, ctx, tag, &o);
    if (r.worst >= g_worst.worst) g_worst = r;
}

static inline float *rnd(size_t count, float lo, float hi, uint32_t a, uint32_t b) {
    float *p = gc_alloc(count);
    gc_uniform(p, count, lo, hi, a, b);
    return p;
}

static inline float *copy_of(const float *src, size_t count) {
    float *p = gc_alloc(count);
    memcpy(p, src, count * sizeof *p);
    return p;
}

static inline double *want_alloc(size_t count) { return xmalloc(count * sizeof(double)); }

/* For the accumulate contract: k random gradients v[i] (ns[i] floats in [-2, 2]) and copies
 * acc[i] for a backward to add into; the test then wants acc[i] = v[i] + gradient. */
static inline void accumulate_prefill(float **v, float **acc, const size_t *ns, int k,
                                      uint32_t tag) {
    for (int i = 0; i < k; i++) {
        v[i] = rnd(ns[i], -2.0f, 2.0f, tag, 20 + (uint32_t)i);
        acc[i] = copy_of(v[i], ns[i]);
    }
}

/* |got - want| <= tol * max(1, |want|) everywhere. */
static inline void expect_near(const float *got, const double *want, size_t count, double tol,
                               const char *what) {
    for (size_t i = 0; i < count; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i]))))
            fail_msg("%s[%zu] = %.8g, want %.8g", what, i, (double)got[i], want[i]);
}

/* The program's worst element error and where it was. */
static inline void layer_check_report(void) {
    if (g_worst.checked > 0)
        print_message("worst element error over all layer checks: %.2e (%s [%zu], analytic "
                      "%+.6e numeric %+.6e)\n",
                      g_worst.worst, g_worst.name, g_worst.worst_index, g_worst.worst_analytic,
                      g_worst.worst_numeric);
}

#endif
