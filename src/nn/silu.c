/* silu.c: out = x * sigmoid(x); d/dx = s (1 + x (1 - s)) with s = sigmoid(x). */
#include <math.h>

#include "nn.h"
#include "silu_math.h"

void silu_forward(float *out, const float *inp, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) out[i] = inp[i] * sigmoid(inp[i]);
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) {
        dinp[i] += dout[i] * silu_grad(inp[i]);
    }
}
