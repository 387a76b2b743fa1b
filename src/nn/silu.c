/* silu.c: out = x * sigmoid(x); d/dx = s (1 + x (1 - s)) with s = sigmoid(x). */
#include <math.h>

#include "nn.h"

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void silu_forward(float *out, const float *inp, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) out[i] = inp[i] * sigmoid(inp[i]);
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) {
        float s = sigmoid(inp[i]);
        dinp[i] += dout[i] * s * (1.0f + inp[i] * (1.0f - s));
    }
}
