/* rng.c: Philox4x32-10 streams keyed by (seed, stream) with counter (a, b, block). */
#include "rng.h"

#include <math.h>
#include <Random123/philox.h>

void rng_words(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, uint32_t block,
               uint32_t out[4]) {
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    philox4x32_ctr_t ctr = {{a, b, block, (uint32_t)stream}};
    philox4x32_ctr_t r = philox4x32(ctr, key);
    for (int i = 0; i < 4; i++) out[i] = r.v[i];
}

/* 24 random bits -> [0, 1) exactly representable in float. */
static inline float unit_float(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

void rng_uniform(float *out, size_t n, float lo, float hi, uint64_t seed, RngStream stream,
                 uint32_t a, uint32_t b) {
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w[4];
        rng_words(seed, stream, a, b, (uint32_t)(i / 4), w);
        for (size_t j = 0; j < 4 && i + j < n; j++) out[i + j] = lo + (hi - lo) * unit_float(w[j]);
    }
}

/* Box-Muller on pairs of words; u1 in (0, 1] so the log is finite. */
void rng_normal(float *out, size_t n, uint64_t seed, RngStream stream, uint32_t a, uint32_t b) {
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w[4];
        rng_words(seed, stream, a, b, (uint32_t)(i / 4), w);
        for (int p = 0; p < 2; p++) {
            double u1 = ((double)w[2 * p] + 1.0) / 4294967296.0;
            double u2 = (double)w[2 * p + 1] / 4294967296.0;
            double r = sqrt(-2.0 * log(u1));
            if (i + 2 * p < n) out[i + 2 * p] = (float)(r * cos(two_pi * u2));
            if (i + 2 * p + 1 < n) out[i + 2 * p + 1] = (float)(r * sin(two_pi * u2));
        }
    }
}

uint32_t rng_below(uint32_t n, uint64_t seed, RngStream stream, uint32_t a, uint32_t b) {
    uint32_t w[4];
    rng_words(seed, stream, a, b, 0, w);
    uint64_t wide = ((uint64_t)w[0] << 32) | w[1];
    return (uint32_t)(wide % n); /* bias below 2^-32 for n < 2^32 */
}
