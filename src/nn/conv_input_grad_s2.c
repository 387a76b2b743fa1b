/* conv_input_grad_s2.c: the input gradient of a k x k stride-2 convolution (odd k, zero padding
 * p = k/2) on conv_direct.c's vector engine, without im2col's column matrix and col2im.
 *
 * In the zero-bordered coordinates of the input (Y = y + p), output row yo reaches Y = 2yo + ky.
 * Split the gradient by the parity of Y and X: for Y = 2a + py only the taps ky = py + 2m reach it,
 * from output row yo = a - m, so each of the four parity planes of the gradient is a small stride-1
 * correlation of dout:
 *   dpad[py][px][a][b] = sum over co, m, n of W[co][ci][py + 2m][px + 2n] * dout[co][a - m][b - n]
 * (k = 3: taps 2x2, 2x1, 1x2 and 1x1). dout goes into zero-bordered planes, M = k/2 on each side
 * and Wd = wout + 2M wide; on a grid of that width, position q = a*Wd + b reads tap (co, m, n) at
 * q + co*plane + (M - m)*Wd + (M - n), contiguous along q, which is what conv_vec_panel takes. Each
 * phase's grid is then added into the pixels (2a + py - p, 2b + px - p) of dinp that exist.
 * Threads take whole images. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "conv_direct.h"

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

typedef struct {
    int M, wd, rows_a, cols_a; /* border, dout plane width, grid rows and used columns per phase */
    size_t plane, qp;          /* floats per dout plane; grid row stride (whole vectors) */
    int taps[2]; /* taps of each parity along one axis: (k + 1)/2 even, (k - 1)/2 odd */
    size_t kmax; /* patch rows of the largest phase (cout * taps[0]^2) */
} Geometry;

static Geometry geometry(const ConvShape *s) {
    Geometry g;
    g.M = s->k / 2;
    g.wd = s->wout + 2 * g.M;
    g.plane = (size_t)(s->hout + 2 * g.M) * g.wd;
    g.rows_a = s->hout + g.M;
    g.cols_a = s->wout + g.M;
    g.qp = round16((size_t)g.rows_a * g.wd);
    g.taps[0] = (s->k + 1) / 2;
    g.taps[1] = (s->k - 1) / 2;
    g.kmax = (size_t)s->cout * g.taps[0] * g.taps[0];
    return g;
}

/* per phase: packed weights, 8 output channels (input channels of the convolution) per block,
 * each block kmax + 1 rows (the last the zero bias) */
static size_t phase_weight_floats(const ConvShape *s, const Geometry *g) {
    return round16(((size_t)s->cin + CONV_VEC_NR) * (g->kmax + 1));
}
static size_t pad_floats(const ConvShape *s, const Geometry *g) {
    return round16((size_t)s->cout * g->plane + CONV_VEC_MR + s->k + 16);
}
static size_t grid_floats(const ConvShape *s, const Geometry *g) {
    return round16(((size_t)s->cin + CONV_VEC_NR) * g->qp);
}
static size_t shared_floats(const ConvShape *s, const Geometry *g) { /* weights and offsets */
    return 4 * (phase_weight_floats(s, g) + round16(g->kmax));
}

int conv_input_grad_s2_applies(const ConvShape *s) {
    if (s->stride != 2 || s->k < 3 || s->k % 2 == 0 || !conv_direct_vector_engine()) return 0;
    const Geometry g = geometry(s);
    return (size_t)s->cout * g.plane < (1u << 30); /* int offsets */
}

size_t conv_input_grad_s2_workspace_floats(const ConvShape *s, int threads) {
    const Geometry g = geometry(s);
    return shared_floats(s, &g) + (size_t)threads * (pad_floats(s, &g) + grid_floats(s, &g)) + 16;
}

/* Phase (py, px): B[blk][r][j] = W[co][blk*8 + j][py + 2m][px + 2n] for r = (co*ty + m)*tx + n,
 * row K (and channels past cin) zero; off[r] the tap's place in the dout planes. Returns K. */
static int pack_phase(float *b, int *off, const float *w, int py, int px, const ConvShape *s,
                      const Geometry *g) {
    const int k = s->k, ty = g->taps[py], tx = g->taps[px], K = s->cout * ty * tx;
    const int blocks = (s->cin + CONV_VEC_NR - 1) / CONV_VEC_NR;
    memset(b, 0, (size_t)blocks * (K + 1) * CONV_VEC_NR * sizeof(float));
    for (int co = 0; co < s->cout; co++)
        for (int m = 0; m < ty; m++)
            for (int n = 0; n < tx; n++) {
                const int r = (co * ty + m) * tx + n, ky = py + 2 * m, kx = px + 2 * n;
                off[r] = (int)((size_t)co * g->plane) + (g->M - m) * g->wd + (g->M - n);
                for (int ci = 0; ci < s->cin; ci++)
                    b[((size_t)(ci / CONV_VEC_NR) * (K + 1) + r) * CONV_VEC_NR + ci % CONV_VEC_NR] =
                        w[(((size_t)co * s->cin + ci) * k + ky) * k + kx];
            }
    return K;
}

/* dout of one image [cout][hout][wout] into planes bordered by M zeros, then the overrun. */
static void pad_dout(float *pad, const float *dy, const ConvShape *s, const Geometry *g) {
    memset(pad, 0, pad_floats(s, g) * sizeof(float));
    for (int co = 0; co < s->cout; co++)
        for (int yo = 0; yo < s->hout; yo++)
            memcpy(pad + co * g->plane + (size_t)(yo + g->M) * g->wd + g->M,
                   dy + ((size_t)co * s->hout + yo) * s->wout, (size_t)s->wout * sizeof(float));
}

void conv_input_grad_s2(float *dinp, int set, const float *dout, const float *weight,
                        const ConvShape *s, float *ws) {
    const Geometry g = geometry(s);
    ws = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    float *bw[4];
    int *offs[4], K[4];
    for (int ph = 0; ph < 4; ph++) {
        bw[ph] = ws + ph * phase_weight_floats(s, &g);
        offs[ph] = (int *)(ws + 4 * phase_weight_floats(s, &g) + ph * round16(g.kmax));
        K[ph] = pack_phase(bw[ph], offs[ph], weight, ph >> 1, ph & 1, s, &g);
    }
    const size_t Qa = (size_t)g.rows_a * g.wd, P = (size_t)s->h * s->w;
    const int blocks = (s->cin + CONV_VEC_NR - 1) / CONV_VEC_NR, p = s->k / 2;
#pragma omp parallel
    {
        float *pad = ws + shared_floats(s, &g) +
                     (size_t)omp_get_thread_num() * (pad_floats(s, &g) + grid_floats(s, &g));
        float *grid = pad + pad_floats(s, &g);
#pragma omp for schedule(static)
        for (int n = 0; n < s->n; n++) {
            pad_dout(pad, dout + (size_t)n * s->cout * s->hout * s->wout, s, &g);
            float *dx = dinp + (size_t)n * s->cin * P;
            for (int ph = 0; ph < 4; ph++) {
                const int py = ph >> 1, px = ph & 1;
                for (size_t q0 = 0; q0 < Qa; q0 += CONV_VEC_MR) {
                    const size_t left = (Qa - q0 + 15) / 16;
                    const int nv = left < 3 ? (int)left : 3;
                    for (int blk = 0; blk < blocks; blk++)
                        conv_vec_panel(grid + (size_t)blk * CONV_VEC_NR * g.qp + q0, g.qp, pad + q0,
                                       offs[ph], K[ph],
                                       bw[ph] + (size_t)blk * (K[ph] + 1) * CONV_VEC_NR, nv);
                }
                /* grid position (a, b) is input pixel (2a + py - p, 2b + px - p) */
                const int a0 = (p - py + 1) / 2, b0 = (p - px + 1) / 2; /* first in the image */
                for (int ci = 0; ci < s->cin; ci++)
                    for (int a = a0; a < g.rows_a && 2 * a + py - p < s->h; a++) {
                        const float *src = grid + ci * g.qp + (size_t)a * g.wd;
                        float *dst = dx + ci * P + (size_t)(2 * a + py - p) * s->w;
                        if (set) /* every pixel lies in exactly one phase */
                            for (int b = b0; b < g.cols_a && 2 * b + px - p < s->w; b++)
                                dst[2 * b + px - p] = src[b];
                        else
                            for (int b = b0; b < g.cols_a && 2 * b + px - p < s->w; b++)
                                dst[2 * b + px - p] += src[b];
                    }
            }
        }
    }
}
