/* upsample.c: nearest-neighbour 2x upsampling; backward sums each 2x2 block. */
#include "nn.h"

void upsample2x_forward(float *out, const float *inp, int n, int c, int h, int w) {
    const int w2 = 2 * w;
#pragma omp parallel for schedule(static)
    for (int plane = 0; plane < n * c; plane++) {
        const float *x = inp + (size_t)plane * h * w;
        float *y = out + (size_t)plane * 4 * h * w;
        for (int iy = 0; iy < h; iy++) {
            float *r0 = y + (size_t)(2 * iy) * w2, *r1 = r0 + w2;
            for (int ix = 0; ix < w; ix++) {
                float v = x[iy * w + ix];
                r0[2 * ix] = r0[2 * ix + 1] = r1[2 * ix] = r1[2 * ix + 1] = v;
            }
        }
    }
}

void upsample2x_backward(float *dinp, const float *dout, int n, int c, int h, int w) {
    const int w2 = 2 * w;
#pragma omp parallel for schedule(static)
    for (int plane = 0; plane < n * c; plane++) {
        float *dx = dinp + (size_t)plane * h * w;
        const float *dy = dout + (size_t)plane * 4 * h * w;
        for (int iy = 0; iy < h; iy++) {
            const float *r0 = dy + (size_t)(2 * iy) * w2, *r1 = r0 + w2;
            for (int ix = 0; ix < w; ix++)
                dx[iy * w + ix] += r0[2 * ix] + r0[2 * ix + 1] + r1[2 * ix] + r1[2 * ix + 1];
        }
    }
}
