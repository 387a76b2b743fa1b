/* add.c: residual add, and the per-channel broadcast add of the time embedding. */
#include "nn.h"

void add_forward(float *out, const float *a, const float *b, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) out[i] = a[i] + b[i];
}

void add_backward_ex(float *da, int set_a, float *db, int set_b, const float *dout, size_t count) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) {
        if (da) da[i] = set_a ? dout[i] : da[i] + dout[i];
        if (db) db[i] = set_b ? dout[i] : db[i] + dout[i];
    }
}

void add_backward(float *da, float *db, const float *dout, size_t count) {
    add_backward_ex(da, 0, db, 0, dout, count);
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

void add_channel_backward_ex(float *dx, int set_x, float *de, int set_e, const float *dout, int n,
                             int c, int hw) {
#pragma omp parallel for schedule(static)
    for (int plane = 0; plane < n * c; plane++) {
        const float *dy = dout + (size_t)plane * hw;
        float acc = 0.0f; /* one accumulator per vector lane, combined in a fixed order */
#pragma omp simd reduction(+ : acc)
        for (int p = 0; p < hw; p++) acc += dy[p];
        if (dx) {
            float *dxp = dx + (size_t)plane * hw;
            if (set_x)
                for (int p = 0; p < hw; p++) dxp[p] = dy[p];
            else
                for (int p = 0; p < hw; p++) dxp[p] += dy[p];
        }
        if (de) de[plane] = set_e ? acc : de[plane] + acc;
    }
}

void add_channel_backward(float *dx, float *de, const float *dout, int n, int c, int hw) {
    add_channel_backward_ex(dx, 0, de, 0, dout, n, c, hw);
}
