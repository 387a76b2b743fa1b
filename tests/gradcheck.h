/* gradcheck.h: finite-difference gradient checks and buffer sentinels for the test programs.
 *
 * Header of static inline helpers: the Makefile turns each tests/test_*.c into its own program
 * linked against the library objects only, so shared test code cannot live in a separate .c.
 *
 * Sentinel buffers. gc_alloc(count) returns `count` usable floats with GC_GUARD sentinel floats
 * on either side. The sentinel is a quiet NaN with a recognisable payload, so
 *   - a write past either end changes a guard's bit pattern (gc_assert_guards), and
 *   - a read past either end puts a NaN into whatever it feeds (gc_assert_finite).
 * gc_alloc_poisoned() also fills the interior with the sentinel: for outputs, which forward must
 * overwrite entirely, and for scratch space, which must be written before it is read.
 *
 * Gradients. Layer outputs are reduced to the scalar L = sum_i out_i r_i (summed in double) with
 * a fixed random r, so dL/dout = r is what a test hands to backward. The numeric derivative with
 * respect to one float element x starts from the central difference
 *     D(h) = (L(x+) - L(x-)) / (x+ - x-),   x+ = fl(x + h),  x- = fl(x - h),
 * divided by the step actually taken (x+ and x- are rounded to float), with h = step * max(1,|x|);
 * Richardson extrapolation n = (4 D(h) - D(2h)) / 3 then cancels the h^2 term of the truncation
 * error, leaving O(h^4). Two errors compete: truncation, which grows with h, and rounding: every
 * forward is float32, so L carries noise ~ eps |L| (eps = 6e-8, more through a deep graph) and
 * the derivative ~ eps |L| / h, an ABSOLUTE error. Extrapolation lets h be large. Measured on the
 * layer tests: plain central differences reach a worst per-element error of 8e-3 at h = 1e-2
 * (rounding) and 6e-2 at h = 1e-1 (truncation, GroupNorm and SiLU); extrapolated at h = 5e-2 the
 * worst is 2e-3. Linear and quadratic layers have no truncation error at all.
 * Metrics over the checked elements, a = analytic (from backward), n = numeric:
 *     per element  |a - n| / max(|a|, |n|, floor)          <= elem_tol
 *     global       ||a - n||_2 / max(||n||_2, floor)       <= global_tol
 * The floor stands for the absolute accuracy of n: an element whose gradient is below it is
 * judged on the absolute error floor * elem_tol. Defaults (the layer tests): h = 5e-2, floor
 * 1e-3, elem_tol 2e-2, global_tol 1e-2; there the worst element error seen is 2e-3 and the worst
 * global 1e-5, while a wrong sign, index or scale gives errors near 1.
 * Tensors of at most full_limit elements are checked at every element; larger ones at `samples`
 * distinct elements drawn from the RNG_TEST stream (the same ones on every run).
 */
#ifndef DDPM_TESTS_GRADCHECK_H
#define DDPM_TESTS_GRADCHECK_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rng.h"
#include "util.h"

#define GC_SEED 0x5eedULL
#define GC_GUARD 16 /* sentinel floats on each side; 64 bytes keeps the interior aligned */
#define GC_SENTINEL_BITS 0x7fc5a5a5u /* a quiet NaN with a payload no kernel produces */
#define GC_NAME_MAX 112

/* ---- sentinel buffers ---- */

static inline float gc_sentinel(void) {
    uint32_t bits = GC_SENTINEL_BITS;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline void gc_fill_sentinel(float *p, size_t count) {
    float s = gc_sentinel();
    for (size_t i = 0; i < count; i++) p[i] = s;
}

/* `count` zeroed floats between two guards of sentinels. Free with gc_free. */
static inline float *gc_alloc(size_t count) {
    float *base = floats_alloc(count + 2 * GC_GUARD);
    gc_fill_sentinel(base, GC_GUARD);
    gc_fill_sentinel(base + GC_GUARD + count, GC_GUARD);
    return base + GC_GUARD;
}

/* Like gc_alloc, with the interior also filled with the sentinel. */
static inline float *gc_alloc_poisoned(size_t count) {
    float *p = gc_alloc(count);
    gc_fill_sentinel(p, count);
    return p;
}

static inline void gc_free(float *p) {
    if (p) free(p - GC_GUARD);
}

static inline void gc_assert_guards(const float *p, size_t count, const char *what) {
    for (int side = 0; side < 2; side++) {
        const float *g = side == 0 ? p - GC_GUARD : p + count;
        for (int i = 0; i < GC_GUARD; i++) {
            uint32_t bits;
            memcpy(&bits, &g[i], sizeof bits);
            if (bits != GC_SENTINEL_BITS)
                fail_msg("%s: guard float %d %s the buffer was overwritten (0x%08x)", what,
                         side == 0 ? GC_GUARD - i : i + 1, side == 0 ? "before" : "after",
                         (unsigned)bits);
        }
    }
}

static inline void gc_assert_finite(const float *p, size_t count, const char *what) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(p[i])) fail_msg("%s[%zu] = %g is not finite", what, i, (double)p[i]);
}

/* Guards intact and every value finite. */
static inline void gc_assert_clean(const float *p, size_t count, const char *what) {
    gc_assert_guards(p, count, what);
    gc_assert_finite(p, count, what);
}

/* ---- random data from the test stream: a names the test, b the buffer ---- */

static inline void gc_uniform(float *p, size_t count, float lo, float hi, uint32_t a,
                              uint32_t b) {
    rng_uniform(p, count, lo, hi, GC_SEED, RNG_TEST, a, b);
}

static inline double gc_dot(const float *x, const float *y, size_t count) {
    double s = 0.0;
    for (size_t i = 0; i < count; i++) s += (double)x[i] * (double)y[i];
    return s;
}

static inline double gc_maxabs(const float *x, size_t count) {
    double m = 0.0;
    for (size_t i = 0; i < count; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* max_i |a_i - b_i| / max(max|a|, max|b|, floor): 0 for identical tensors. */
static inline double gc_max_rel_diff(const float *a, const float *b, size_t count, double floor) {
    double d = 0.0;
    for (size_t i = 0; i < count; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    double scale = fmax(fmax(gc_maxabs(a, count), gc_maxabs(b, count)), floor);
    return d / scale;
}

/* ---- finite differences ---- */

typedef double (*GcLossFn)(void *ctx); /* re-runs forward, returns L */

typedef struct {
    double step;       /* relative finite-difference step h */
    double floor;      /* smallest denominator of the per-element error */
    size_t full_limit; /* tensors up to this size are checked at every element */
    size_t samples;    /* larger tensors: this many distinct random elements */
    double elem_tol;   /* per-element normalised error bound */
    double global_tol; /* ||a - n|| / ||n|| bound */
    int richardson;    /* extrapolate central differences at h and 2h: error O(h^4) */
} GcOptions;

static inline GcOptions gc_default_options(void) {
    GcOptions o = {.step = 5e-2,
                   .floor = 1e-3,
                   .full_limit = 1024,
                   .samples = 96,
                   .elem_tol = 2e-2,
                   .global_tol = 1e-2,
                   .richardson = 1};
    return o;
}

typedef struct {
    char name[GC_NAME_MAX];
    size_t count, checked;
    double worst;          /* largest per-element normalised error */
    size_t worst_index;
    double worst_analytic, worst_numeric;
    double global;         /* ||a - n||_2 / max(||n||_2, floor) */
    double max_diff;       /* max |a - n| */
    double rms;            /* root mean square of the numeric gradient */
} GcResult;

/* (L(x+) - L(x-)) / (x+ - x-) with x+- = fl(x[i] +- h); x[i] is restored bit for bit. */
static inline double gc_central(float *x, size_t i, double h, GcLossFn loss, void *ctx) {
    float x0 = x[i];
    float xp = (float)((double)x0 + h), xm = (float)((double)x0 - h);
    x[i] = xp;
    double lp = loss(ctx);
    x[i] = xm;
    double lm = loss(ctx);
    x[i] = x0;
    return (lp - lm) / ((double)xp - (double)xm);
}

/* The elements to check: all of them, or `samples` distinct ones drawn with tag. Returns how
 * many were written to idx (capacity: count when that is at most full_limit or samples,
 * otherwise samples). */
static inline size_t gc_pick(size_t *idx, size_t count, uint32_t tag, const GcOptions *o) {
    if (count <= o->full_limit || count <= o->samples) {
        for (size_t i = 0; i < count; i++) idx[i] = i;
        return count;
    }
    size_t got = 0;
    for (uint32_t attempt = 0; got < o->samples; attempt++) {
        size_t i = rng_below((uint32_t)count, GC_SEED, RNG_TEST, tag, attempt);
        int seen = 0;
        for (size_t j = 0; j < got && !seen; j++) seen = idx[j] == i;
        if (!seen) idx[got++] = i;
    }
    return got;
}

/* Compare the analytic gradient of L with respect to x [count] against central differences
 * (extrapolated when o->richardson). x is perturbed in place and restored bit for bit. */
static inline GcResult gc_check(const char *name, float *x, size_t count, const float *analytic,
                                GcLossFn loss, void *ctx, uint32_t tag, const GcOptions *o) {
    GcResult r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.count = count;
    size_t cap = count <= o->full_limit || count <= o->samples ? count : o->samples;
    size_t *idx = xmalloc((cap + 1) * sizeof *idx);
    size_t m = gc_pick(idx, count, tag, o);
    double diff2 = 0.0, num2 = 0.0;
    for (size_t j = 0; j < m; j++) {
        size_t i = idx[j];
        double h = o->step * fmax(1.0, fabs((double)x[i]));
        double n = gc_central(x, i, h, loss, ctx);
        if (o->richardson) n = (4.0 * n - gc_central(x, i, 2.0 * h, loss, ctx)) / 3.0;
        double a = (double)analytic[i];
        double e = fabs(a - n) / fmax(fmax(fabs(a), fabs(n)), o->floor);
        if (j == 0 || (!isnan(r.worst) && !(e <= r.worst))) { /* a NaN error sticks */
            r.worst = e;
            r.worst_index = i;
            r.worst_analytic = a;
            r.worst_numeric = n;
        }
        r.max_diff = fmax(r.max_diff, fabs(a - n));
        diff2 += (a - n) * (a - n);
        num2 += n * n;
    }
    r.checked = m;
    r.global = sqrt(diff2) / fmax(sqrt(num2), o->floor);
    r.rms = m ? sqrt(num2 / (double)m) : 0.0;
    free(idx);
    return r;
}

static inline int gc_ok(const GcResult *r, const GcOptions *o) {
    return r->worst <= o->elem_tol && r->global <= o->global_tol;
}

static inline void gc_print(const GcResult *r) {
    print_message("  %-40s %6zu/%-6zu worst %.2e at [%zu] (analytic %+.6e numeric %+.6e) "
                  "global %.2e max|a-n| %.1e rms %.1e\n",
                  r->name, r->checked, r->count, r->worst, r->worst_index, r->worst_analytic,
                  r->worst_numeric, r->global, r->max_diff, r->rms);
}

/* GRADCHECK_VERBOSE=1 prints every tensor's result, not only failures. */
static inline int gc_verbose(void) {
    const char *v = getenv("GRADCHECK_VERBOSE");
    return v != NULL && v[0] != '\0' && v[0] != '0';
}

/* Print when verbose, fail the test when the result is over either bound. */
static inline void gc_assert(const GcResult *r, const GcOptions *o) {
    if (gc_verbose()) gc_print(r);
    if (!gc_ok(r, o)) {
        gc_print(r);
        fail_msg("%s: gradient check failed (element bound %.1e, global bound %.1e)", r->name,
                 o->elem_tol, o->global_tol);
    }
}

/* gc_check, then gc_assert; returns the result for whoever tracks the worst one. */
static inline GcResult gc_check_assert(const char *name, float *x, size_t count,
                                       const float *analytic, GcLossFn loss, void *ctx,
                                       uint32_t tag, const GcOptions *o) {
    GcResult r = gc_check(name, x, count, analytic, loss, ctx, tag, o);
    gc_assert(&r, o);
    return r;
}

/* The accumulate contract of every backward: run into a buffer pre-filled with `prefill`, the
 * result must equal prefill + fresh (fresh = the gradient computed into zeros), up to the
 * rounding of the sum: 1e-5 of the larger magnitude involved. */
static inline void gc_assert_accumulated(const float *got, const float *prefill,
                                         const float *fresh, size_t count, const char *what) {
    double scale = fmax(gc_maxabs(prefill, count), gc_maxabs(fresh, count));
    double tol = 1e-5 * fmax(scale, 1e-6);
    for (size_t i = 0; i < count; i++) {
        double want = (double)prefill[i] + (double)fresh[i];
        if (!(fabs((double)got[i] - want) <= tol))
            fail_msg("%s[%zu]: backward into %g gave %g, want %g + %g (backward must accumulate)",
                     what, i, (double)prefill[i], (double)got[i], (double)prefill[i],
                     (double)fresh[i]);
    }
}

#endif
