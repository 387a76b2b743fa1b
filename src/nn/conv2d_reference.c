/* conv2d_reference.c: the plain direct convolution the BLIS path is tested against. */
#include "nn.h"

void conv2d_forward_reference(float *out, const float *inp, const float *weight,
                              const float *bias, const ConvShape *s) {
    const int k = s->k;
    for (int n = 0; n < s->n; n++)
        for (int co = 0; co < s->cout; co++)
            for (int oy = 0; oy < s->hout; oy++)
                for (int ox = 0; ox < s->wout; ox++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s->stride + ky - s->pad;
                                int ix = ox * s->stride + kx - s->pad;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                acc += (double)weight[((co * s->cin + ci) * k + ky) * k + kx] *
                                       inp[(((size_t)n * s->cin + ci) * s->h + iy) * s->w + ix];
                            }
                    out[(((size_t)n * s->cout + co) * s->hout + oy) * s->wout + ox] = (float)acc;
                }
}
