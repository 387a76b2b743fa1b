/* dropout.c: inverted dropout with a mask drawn from the counter-based RNG.
 *
 * Element e of image i is kept with probability 1 - p and then scaled by 1/(1 - p), so the
 * expectation is unchanged and inference is the identity. The mask of image i is a function of
 * (seed, step, key_i) only: the same whatever the batch split over ranks or threads, and the
 * same in backward, which reads it back from where forward stored it. */
#include "nn.h"
#include "rng.h"

void dropout_forward(float *out, float *mask, const float *inp, int n, size_t per_image, double p,
                     uint64_t seed, uint32_t step, const uint32_t *keys) {
    const float keep = (float)(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *mi = mask + (size_t)i * per_image;
        rng_uniform(mi, per_image, 0.0f, 1.0f, seed, RNG_DROPOUT, step, keys[i]);
        const float *xi = inp + (size_t)i * per_image;
        float *yi = out + (size_t)i * per_image;
        for (size_t e = 0; e < per_image; e++) {
            mi[e] = mi[e] < (float)p ? 0.0f : keep;
            yi[e] = xi[e] * mi[e];
        }
    }
}

void dropout_backward(float *dinp, const float *dout, const float *mask, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t e = 0; e < count; e++) dinp[e] += dout[e] * mask[e];
}
