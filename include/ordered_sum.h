/* ordered_sum.h: reductions whose result does not depend on the thread count.
 *
 * Ranks of one run may run different numbers of threads; the values every rank decides on
 * (the gradient norm that clipping uses) must then still agree bit for bit. */
#ifndef DDPM_ORDERED_SUM_H
#define DDPM_ORDERED_SUM_H

#include <stddef.h>
#include <stdint.h>

/* Sum of x[i]^2 in double: a fixed number of blocks, each summed in order, then the block sums
 * in order; threads only decide who computes which block. */
double ordered_sum_squares(const float *x, size_t n);
/* Sum of (x[i] - y[i])^2 in double, in the same fixed blocks (the MSE loss). */
double ordered_sum_squared_differences(const float *x, const float *y, size_t n);
/* A 64-bit hash of the exact bits of x (FNV-1a over 32-bit words): equal bits, equal hash. */
uint64_t float_bits_hash(const float *x, size_t n);

#endif
