/* silu_math.h: the sigmoid and SiLU derivative shared by silu.c and groupnorm_silu.c (both built
 * with -ffast-math). */
#ifndef DDPM_SILU_MATH_H
#define DDPM_SILU_MATH_H

#include <math.h>

/* exp's argument capped at 80: exp(80) is finite, and beyond it the sigmoid is 0 to float
 * precision anyway. Without the cap exp overflows to inf below x = -88.7, and under -ffast-math
 * GCC computes 1 / (1 + inf) with an approximate reciprocal and a Newton step, which gives NaN. */
static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(fminf(-x, 80.0f))); }

/* The derivative s (1 + x (1 - s)) with 1 - s taken as e s (e = exp(-x)), not by subtraction:
 * for large x the approximate reciprocal may leave s one ulp above 1, and x (1 - s) would
 * multiply that rounding by x (1e-5 at x = 175 on some CPUs); e s is 0 there. */
static inline float silu_grad(float x) {
    const float e = expf(fminf(-x, 80.0f)), s = 1.0f / (1.0f + e);
    return s * (1.0f + x * (e * s));
}

#endif
