/* ordered_sum.c: thread-count independent reductions. */
#include "ordered_sum.h"

#include <string.h>

#define BLOCKS 64

/* Sum over i of (x[i] - y[i])^2 in double (y NULL: of x[i]^2) in BLOCKS fixed blocks. */
static double blocked_sum_squares(const float *x, const float *y, size_t n) {
    double part[BLOCKS];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < BLOCKS; b++) {
        const size_t lo = n * (size_t)b / BLOCKS, hi = n * (size_t)(b + 1) / BLOCKS;
        double sum = 0.0;
        for (size_t i = lo; i < hi; i++) {
            const double d = y ? (double)x[i] - y[i] : (double)x[i];
            sum += d * d;
        }
        part[b] = sum;
    }
    double total = 0.0;
    for (int b = 0; b < BLOCKS; b++) total += part[b];
    return total;
}

double ordered_sum_squares(const float *x, size_t n) { return blocked_sum_squares(x, NULL, n); }

double ordered_sum_squared_differences(const float *x, const float *y, size_t n) {
    return blocked_sum_squares(x, y, n);
}

uint64_t float_bits_hash(const float *x, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        h = (h ^ bits) * 1099511628211ull;
    }
    return h;
}
