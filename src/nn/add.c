/* add.c: residual add, and the per-channel broadcast add of the time embedding. */
#include "nn.h"

void add_forward(float *out, const float *a, const float *b, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) out[i] = a[i] + b[i];
}

void add_backward(float *da, float *db, const float *dout, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

void add_channel_forward(float *out, const float *x, const float *e, int n, int c, int hw) {
#pragma omp parallel for schedule(static)
    for (int plane = 0; plane < n * c; plane++) {
        const float v = e[plane]; /* e is [n, c]: plane index = image * c + channel */
        const float *xp = x + (size_t)plane * hw;
        float *yp = out + (size_t)plane * hw;
        for (int p = 0; p < hw; p++) yp[p] = xp[p] + v;
    }
}

void add_channel_backward(float *dx, float *de, const float *dout, int n, int c, int hw) {
#pragma omp parallel for schedule(static)
    for (int plane = 0; plane < n * c; plane++) {
        const float *dy = dout + (size_t)plane * hw;
        float acc = 0.0f; /* one accumulator per vector lane, combined in a fixed order */
#pragma omp simd reduction(+ : acc)
        for (int p = 0; p < hw; p++) acc += dy[p];
        if (dx) {
            float *dxp = dx + (size_t)plane * hw;
            for (int p = 0; p < hw; p++) dxp[p] += dy[p];
        }
        if (de) de[plane] += acc;
    }
}
