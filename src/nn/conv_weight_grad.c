/* conv_weight_grad.c: weight and bias gradients of a k x k convolution of stride 1 or 2 (odd k,
 * zero padding k/2) as dot products along the image, without an im2col matrix.
 *
 * dW[co][ci][ky][kx] = sum over output pixels (y, x) of dout[co][y][x] * inp[ci][sy+ky-p][sx+kx-p]
 * (s the stride). On conv_direct.h's planes (Wg wide; stride 2: the four parity planes), with dout
 * copied onto the same Wg-wide grid (zeros in the extra columns and after the last row), this is
 *   dW[co][r] = sum_q dy[co][q] * pad[q + conv_direct_offset(r)],   r = (ci*k + ky)*k + kx,
 * a dot product of two contiguous rows: no packing, only unaligned loads. A block of 4 output
 * channels x 6 patch rows keeps 24 vector accumulators in registers; each step of 16 positions
 * loads 10 vectors for 24 fused multiply-adds. (An im2col + GEMM formulation writes the K x P patch
 * matrix and then BLIS repacks it transposed, since the contraction runs over pixels.)
 *
 * Small images go in groups (GROUP_POSITIONS), one dot product running over every image of the
 * group. OpenMP threads take whole groups, each into its own partial; the partials are added in
 * thread order, so for a given thread count the result is deterministic. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "conv_direct.h"

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4))); /* unaligned loads */

#define CO_BLOCK 4
#define R_BLOCK 6

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }
/* dout rows on the Wp-wide grid, rounded up to whole vectors */
static size_t grid_floats(const ConvShape *s) {
    return round16((size_t)s->hout * conv_direct_padded_width(s));
}
static size_t kdim(const ConvShape *s) { return (size_t)s->cin * s->k * s->k; }
static size_t partial_floats(const ConvShape *s) {
    return round16((size_t)s->cout * kdim(s) + s->cout);
}
/* Images per group: enough for GROUP_POSITIONS positions per dot product, so that the fixed cost of
 * a block (zeroing and summing 24 accumulators) is spread over enough multiply-adds: one image at
 * 28x28 (848 positions), 4 at 14x14 (224 each), 12 at 7x7 (64 each). */
#define GROUP_POSITIONS 768
static int group_max(const ConvShape *s) {
    return (int)((GROUP_POSITIONS + grid_floats(s) - 1) / grid_floats(s));
}
static size_t image_floats(const ConvShape *s) { /* one image's padded planes and dout grid */
    return conv_direct_pad_floats(s) + round16((size_t)s->cout * grid_floats(s));
}
static size_t thread_floats(const ConvShape *s) { /* a group of images, the partial */
    return (size_t)group_max(s) * image_floats(s) + partial_floats(s);
}

int conv_weight_grad_applies(const ConvShape *s) {
    if (s->k == 1) return s->stride == 1 && conv_direct_pointwise_pays(s);
    return (s->stride == 1 || s->stride == 2) && s->k >= 3 && s->k % 2 == 1;
}

size_t conv_weight_grad_workspace_floats(const ConvShape *s, int threads) {
    return (size_t)threads * thread_floats(s) + 16; /* + 16: room to align to 64 bytes */
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

/* Sum of the 16 lanes, by halves (a fixed order). */
static inline float hsum(v16 v) {
    const v8 h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                 __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const v4 f =
        __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
    return (f[0] + f[2]) + (f[1] + f[3]);
}

/* dw[co][r] += sum over the g images of dy[co] . row r, for co in [c0, c0 + nc) and r in [r0, r0 +
 * nrr); rows[r] points at patch row r of the first image, image j's data lies j * step further on
 * (dout grids and planes alike). Full blocks take the register-blocked loop. */
static void dot_block(float *dw, size_t K, const float *dy, size_t G, const float *const *rows,
                      int g, size_t step, int c0, int nc, size_t r0, int nrr) {
    if (nc == CO_BLOCK && nrr == R_BLOCK) {
        v16 acc[CO_BLOCK][R_BLOCK];
        for (int i = 0; i < CO_BLOCK; i++)
            for (int j = 0; j < R_BLOCK; j++) acc[i][j] = (v16){0};
        for (int img = 0; img < g; img++) {
            const size_t o = (size_t)img * step;
            const float *a0 = dy + o + (size_t)c0 * G, *a1 = a0 + G, *a2 = a1 + G, *a3 = a2 + G;
            const float *b0 = rows[r0] + o, *b1 = rows[r0 + 1] + o, *b2 = rows[r0 + 2] + o,
                        *b3 = rows[r0 + 3] + o, *b4 = rows[r0 + 4] + o, *b5 = rows[r0 + 5] + o;
            for (size_t q = 0; q < G; q += 16) {
                const v16 x0 = *(const v16 *)(a0 + q), x1 = *(const v16 *)(a1 + q),
                          x2 = *(const v16 *)(a2 + q), x3 = *(const v16 *)(a3 + q);
                const float *b[R_BLOCK] = {b0 + q, b1 + q, b2 + q, b3 + q, b4 + q, b5 + q};
                for (int j = 0; j < R_BLOCK; j++) {
                    v16 y = *(const v16u *)b[j];
                    /* one load into a register, four uses: without this GCC folds the (unaligned)
                     * load into each of the four multiply-adds, and the loads become the limit */
#ifdef __AVX512F__ /* the constraint needs a 64-byte register */
                    __asm__("" : "+v"(y));
#endif
                    acc[0][j] += x0 * y;
                    acc[1][j] += x1 * y;
                    acc[2][j] += x2 * y;
                    acc[3][j] += x3 * y;
                }
            }
        }
        for (int i = 0; i < CO_BLOCK; i++)
            for (int j = 0; j < R_BLOCK; j++) dw[(size_t)(c0 + i) * K + r0 + j] += hsum(acc[i][j]);
        return;
    }
    for (int i = 0; i < nc; i++)
        for (int j = 0; j < nrr; j++) {
            v16 acc = {0};
            for (int img = 0; img < g; img++) {
                const float *a = dy + (size_t)img * step + (size_t)(c0 + i) * G,
                            *b = rows[r0 + j] + (size_t)img * step;
                for (size_t q = 0; q < G; q += 16)
                    acc += *(const v16 *)(a + q) * *(const v16u *)(b + q);
            }
            dw[(size_t)(c0 + i) * K + r0 + j] += hsum(acc);
        }
}

/* dout of one image onto the Wp-wide grid: [cout][G], zeros outside the image */
static void grid_dout(float *g, const float *dout, const ConvShape *s) {
    const int wp = conv_direct_padded_width(s);
    const size_t G = grid_floats(s);
    for (int co = 0; co < s->cout; co++) {
        float *row = g + co * G;
        for (int y = 0; y < s->hout; y++) {
            memcpy(row + (size_t)y * wp, dout + ((size_t)co * s->hout + y) * s->wout,
                   (size_t)s->wout * sizeof(float));
            memset(row + (size_t)y * wp + s->wout, 0, (size_t)(wp - s->wout) * sizeof(float));
        }
        memset(row + (size_t)s->hout * wp, 0, (G - (size_t)s->hout * wp) * sizeof(float));
    }
}

void conv_weight_grad(float *dweight, float *dbias, const float *dout, const float *inp,
                      const ConvShape *s, float *ws) {
    const size_t K = kdim(s), G = grid_floats(s), P = (size_t)s->h * s->w,
                 Pout = (size_t)s->hout * s->wout, slice = thread_floats(s), step = image_floats(s);
    const int g = group_max(s) < s->n ? group_max(s) : s->n, groups = (s->n + g - 1) / g;
    float *base = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63); /* aligned dout grids */
    const size_t partial_at = (size_t)group_max(s) * step;
    int threads = 1;
#pragma omp parallel
    {
#pragma omp single
        threads = omp_get_num_threads();
        /* image j of the group: its planes at pad + j*step, its dout grid after them */
        float *pad = base + (size_t)omp_get_thread_num() * slice;
        float *grid = pad + conv_direct_pad_floats(s);
        float *dw = pad + partial_at, *db = dw + (size_t)s->cout * K;
        memset(dw, 0, partial_floats(s) * sizeof(float));
        const float *rows[K];
        for (size_t r = 0; r < K; r++) rows[r] = pad + conv_direct_offset(s, r);
#pragma omp for schedule(static)
        for (int grp = 0; grp < groups; grp++) {
            const int n0 = grp * g, gn = s->n - n0 < g ? s->n - n0 : g;
            for (int j = 0; j < gn; j++) {
                conv_direct_pad_image(pad + j * step, inp + (size_t)(n0 + j) * s->cin * P, s);
                grid_dout(grid + j * step, dout + (size_t)(n0 + j) * s->cout * Pout, s);
                for (int co = 0; co < s->cout; co++) {
                    v16 acc = {0};
                    for (size_t q = 0; q < G; q += 16)
                        acc += *(const v16 *)(grid + j * step + co * G + q);
                    db[co] += hsum(acc);
                }
            }
            for (int c0 = 0; c0 < s->cout; c0 += CO_BLOCK) {
                const int nc = s->cout - c0 < CO_BLOCK ? s->cout - c0 : CO_BLOCK;
                for (size_t r0 = 0; r0 < K; r0 += R_BLOCK) {
                    const int nrr = K - r0 < R_BLOCK ? (int)(K - r0) : R_BLOCK;
                    dot_block(dw, K, grid, G, rows, gn, step, c0, nc, r0, nrr);
                }
            }
        }
        /* implicit barrier: every partial is complete; add them in thread order */
#pragma omp for schedule(static)
        for (size_t i = 0; i < K * s->cout + s->cout; i++) {
            float acc = 0.0f;
            for (int t = 0; t < threads; t++) acc += base[(size_t)t * slice + partial_at + i];
            if (i < K * s->cout) {
                if (dweight) dweight[i] += acc;
            } else if (dbias) {
                dbias[i - K * s->cout] += acc;
            }
        }
    }
}
