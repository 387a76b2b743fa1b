/* conv2d.c: 2-D convolution (k x k, stride 1 or 2, zero padding k/2, bias): the entry points,
 * and the im2col + BLIS sgemm path.
 *
 * Convolutions with odd k >= 3 go to the paths without an im2col matrix where they apply
 * (conv_direct.c: forward and stride-1 input gradient; conv_input_grad_s2.c: stride-2 input
 * gradient; conv_weight_grad.c: weight and bias gradients; see the *_applies functions: stride 2
 * and small channel counts need the vector engine of AVX-512 builds); everything else (1x1, and
 * what does not apply) runs here, as does everything after conv2d_set_direct(0).
 *
 * Images are processed in groups of g side by side, so that one GEMM has at least
 * GEMM_COLUMNS columns even at 7x7 (g = 1 at 28x28, 3 at 14x14, 8 at 7x7). With L = g*P
 * columns (P = hout*wout) and K = cin*k*k, in the orientation BLIS runs fastest here:
 *   forward   y[cout, L] = W[cout, K] x col[K, L] (+ bias), col = im2col of the g images
 *   backward  dW^T[K, cout] += col[K, L] x dy[cout, L]^T (this orientation runs 1.4-1.8x
 *               faster in BLIS than dW = dy x col^T; the transpose is folded into the final
 *               sum of the per-thread partials), db += row sums of dy
 *             stride 1: dx[cin, L] = Wf[cin, cout*k*k] x im2col(dy), the input gradient as a
 *               convolution of dout with the flipped, transposed kernel
 *               Wf[ci, co, ky, kx] = W[co, ci, k-1-ky, k-1-kx] (long inner dimension, no col2im)
 *             stride 2: dcol[K, L] = W^T x dy, then col2im adds it into dinp
 * A group of one image works in place: the GEMM writes the NCHW output (and reads dout,
 * accumulates dinp) directly, and a 1x1 stride-1 convolution uses the input as col.
 *
 * Threading: OpenMP threads take whole groups (static schedule); BLIS runs single-threaded
 * inside the parallel region. Each thread owns its im2col matrix, its group buffers and a
 * partial weight/bias gradient in the caller's workspace; partials are summed in thread order,
 * so for a given thread count the result is deterministic. */
#include <omp.h>
#include <string.h>

#include "cblas.h"
#include "conv_direct.h"
#include "im2col.h"
#include "nn.h"

#define GEMM_COLUMNS 384

ConvShape conv_shape(int n, int cin, int h, int w, int cout, int k, int stride) {
    ConvShape s = {.n = n, .cin = cin, .h = h, .w = w, .cout = cout, .k = k, .stride = stride};
    s.pad = k / 2;
    s.hout = (h + 2 * s.pad - k) / stride + 1;
    s.wout = (w + 2 * s.pad - k) / stride + 1;
    return s;
}

static int is_pointwise(const ConvShape *s) { return s->k == 1 && s->stride == 1; }
static int is_stride1(const ConvShape *s) { return s->stride == 1 && !is_pointwise(s); }
static size_t pixels(const ConvShape *s) { return (size_t)s->hout * s->wout; }
static size_t weight_floats(const ConvShape *s) { return (size_t)s->cout * s->cin * s->k * s->k; }
static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* Images per GEMM: enough for GEMM_COLUMNS columns (at most the batch). */
static int group_max(const ConvShape *s) {
    int g = (int)((GEMM_COLUMNS + pixels(s) - 1) / pixels(s));
    return g < 1 ? 1 : g;
}
static int group_size(const ConvShape *s) { return group_max(s) < s->n ? group_max(s) : s->n; }

/* Per-thread slice: [col: rows x gP][dy, dx: (cout + cin) x gP when g > 1][dW partial][db]. */
static size_t col_rows(const ConvShape *s) {
    size_t k2 = (size_t)s->k * s->k, rows = (size_t)s->cin * k2;
    if (is_stride1(s) && (size_t)s->cout * k2 > rows) rows = (size_t)s->cout * k2;
    return rows;
}
static size_t col_floats(const ConvShape *s, int g) { return round16(col_rows(s) * g * pixels(s)); }
static size_t group_floats(const ConvShape *s, int g) {
    return g > 1 ? round16((size_t)(s->cout + s->cin) * g * pixels(s)) : 0;
}
static size_t slice_floats(const ConvShape *s, int g) {
    return col_floats(s, g) + group_floats(s, g) + round16(weight_floats(s) + (size_t)s->cout);
}

static int direct_on = 1;
void conv2d_set_direct(int on) { direct_on = on; }

static int forward_is_direct(const ConvShape *s) { return direct_on && conv_direct_applies(s); }
/* The input gradient of a stride-1 convolution is itself one (dout convolved with the flipped
 * kernel): its shape, and whether conv_direct runs it. */
static ConvShape input_gradient_shape(const ConvShape *s) {
    return conv_shape(s->n, s->cout, s->hout, s->wout, s->cin, s->k, 1);
}
static int input_gradient_is_direct(const ConvShape *s) {
    const ConvShape ts = input_gradient_shape(s);
    if (s->stride == 2) return direct_on && conv_input_grad_s2_applies(s);
    return direct_on && s->stride == 1 && conv_direct_applies(&ts);
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

size_t conv_workspace_floats(const ConvShape *s, int threads) {
    const int g = group_max(s); /* the largest group any batch up to s->n can use */
    size_t need = (size_t)threads * slice_floats(s, g) + weight_floats(s);
    /* every direct path the shape may take, whichever engine is switched on when it runs (tests
     * and benchmarks switch after sizing) */
    if (s->k % 2 == 1 && s->stride <= 2) {
        need = max_size(need, conv_direct_workspace_floats(s, threads));
        need = max_size(need, conv_weight_grad_workspace_floats(s, threads));
        if (s->stride == 1) {
            const ConvShape ts = input_gradient_shape(s);
            need = max_size(need, conv_direct_workspace_floats(&ts, threads));
        } else {
            need = max_size(need, conv_input_grad_s2_workspace_floats(s, threads));
        }
    }
    return need;
}

/* Wf[ci, co, ky, kx] = W[co, ci, k-1-ky, k-1-kx] */
static void flip_kernel(float *wf, const float *w, const ConvShape *s) {
    const int kk = s->k * s->k;
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int j = 0; j < kk; j++)
                wf[((size_t)ci * s->cout + co) * kk + j] =
                    w[((size_t)co * s->cin + ci) * kk + kk - 1 - j];
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const ConvShape *s, float *ws) {
    if (forward_is_direct(s)) {
        conv_direct(out, 0, inp, weight, bias, 0, s, ws);
        return;
    }
    const int K = s->cin * s->k * s->k, g = group_size(s), groups = (s->n + g - 1) / g;
    const size_t P = pixels(s), in_stride = (size_t)s->cin * s->h * s->w,
                 out_stride = (size_t)s->cout * P, slice = slice_floats(s, g);
#pragma omp parallel
    {
        float *col = ws + (size_t)omp_get_thread_num() * slice, *tmp = col + col_floats(s, g);
#pragma omp for schedule(static)
        for (int grp = 0; grp < groups; grp++) {
            const int n0 = grp * g, gn = s->n - n0 < g ? s->n - n0 : g;
            const size_t L = (size_t)gn * P;
            const float *b = inp + n0 * in_stride;
            if (gn > 1 || !is_pointwise(s)) {
                for (int j = 0; j < gn; j++) im2col(col + j * P, L, inp + (n0 + j) * in_stride, s);
                b = col;
            }
            if (gn == 1) { /* in place: bias first, then accumulate the GEMM */
                float *y = out + n0 * out_stride;
                for (int co = 0; co < s->cout; co++)
                    for (size_t p = 0; p < P; p++) y[co * P + p] = bias ? bias[co] : 0.0f;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, (int)P, K, 1.0f,
                            weight, K, b, (int)P, 1.0f, y, (int)P);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, (int)L, K, 1.0f, weight,
                        K, b, (int)L, 0.0f, tmp, (int)L);
            for (int j = 0; j < gn; j++)
                for (int co = 0; co < s->cout; co++) {
                    const float *src = tmp + co * L + j * P, bv = bias ? bias[co] : 0.0f;
                    float *dst = out + (n0 + j) * out_stride + co * P;
                    for (size_t p = 0; p < P; p++) dst[p] = src[p] + bv;
                }
        }
    }
}

/* dx[cin, L] (group layout) added into the NCHW input gradient of images n0..n0+gn-1. */
static void scatter_add(float *dinp, const float *dx, int n0, int gn, size_t P, int cin) {
    const size_t L = (size_t)gn * P;
    for (int j = 0; j < gn; j++)
        for (int ci = 0; ci < cin; ci++) {
            const float *src = dx + ci * L + j * P;
            float *dst = dinp + ((size_t)(n0 + j) * cin + ci) * P;
            for (size_t p = 0; p < P; p++) dst[p] += src[p];
        }
}

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const ConvShape *s, float *ws) {
    conv2d_backward_ex(dinp, 0, dweight, dbias, dout, inp, weight, s, ws);
}

void conv2d_backward_ex(float *dinp, int set_dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const ConvShape *s, float *ws) {
    if (direct_on && conv_weight_grad_applies(s) && (!dinp || input_gradient_is_direct(s))) {
        conv_weight_grad(dweight, dbias, dout, inp, s, ws);
        if (!dinp) return;
        const ConvShape ts = input_gradient_shape(s);
        if (s->stride == 2)
            conv_input_grad_s2(dinp, set_dinp, dout, weight, s, ws);
        else
            conv_direct(dinp, !set_dinp, dout, weight, NULL, 1, &ts, ws);
        return;
    }
    if (dinp && set_dinp) /* the GEMMs below accumulate */
        memset(dinp, 0, (size_t)s->n * s->cin * s->h * s->w * sizeof(float));
    const int K = s->cin * s->k * s->k, KT = s->cout * s->k * s->k;
    const int g = group_size(s), groups = (s->n + g - 1) / g;
    const size_t P = pixels(s), in_stride = (size_t)s->cin * s->h * s->w,
                 out_stride = (size_t)s->cout * P, slice = slice_floats(s, g);
    const size_t wsize = weight_floats(s), partial_at = col_floats(s, g) + group_floats(s, g);
    /* stride 1: dinp is the convolution of dout (cout channels at hout x wout) with wf */
    const ConvShape ts = conv_shape(1, s->cout, s->hout, s->wout, s->cin, s->k, 1);
    float *wf = NULL;
    int threads = 1;
#pragma omp parallel
    {
#pragma omp single
        {
            threads = omp_get_num_threads();
            wf = ws + (size_t)threads * slice;
            if (dinp && is_stride1(s)) flip_kernel(wf, weight, s);
        }
        float *col = ws + (size_t)omp_get_thread_num() * slice;
        float *dyg = col + col_floats(s, g), *dxg = dyg + (size_t)s->cout * g * P;
        float *dw = col + partial_at, *db = dw + wsize;
        memset(dw, 0, (wsize + (size_t)s->cout) * sizeof(float));
#pragma omp for schedule(static)
        for (int grp = 0; grp < groups; grp++) {
            const int n0 = grp * g, gn = s->n - n0 < g ? s->n - n0 : g;
            const size_t L = (size_t)gn * P;
            const float *dy = dout + n0 * out_stride;
            if (gn > 1) { /* gather dout of the group into [cout, L] */
                for (int j = 0; j < gn; j++)
                    for (int co = 0; co < s->cout; co++)
                        memcpy(dyg + co * L + j * P, dout + (n0 + j) * out_stride + co * P,
                               P * sizeof(float));
                dy = dyg;
            }
            for (int co = 0; co < s->cout; co++) {
                float acc = 0.0f; /* one accumulator per vector lane, combined in a fixed order */
#pragma omp simd reduction(+ : acc)
                for (size_t q = 0; q < L; q++) acc += dy[co * L + q];
                db[co] += acc;
            }
            const float *b = inp + n0 * in_stride;
            if (gn > 1 || !is_pointwise(s)) {
                for (int j = 0; j < gn; j++) im2col(col + j * P, L, inp + (n0 + j) * in_stride, s);
                b = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, s->cout, (int)L, 1.0f, b,
                        (int)L, dy, (int)L, 1.0f, dw, s->cout);
            if (!dinp) continue;
            float *dx = dinp + n0 * in_stride;
            if (is_pointwise(s)) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->cin, (int)L, s->cout, 1.0f,
                            weight, K, dy, (int)L, gn > 1 ? 0.0f : 1.0f, gn > 1 ? dxg : dx, (int)L);
                if (gn > 1) scatter_add(dinp, dxg, n0, gn, P, s->cin);
            } else if (is_stride1(s)) {
                for (int j = 0; j < gn; j++)
                    im2col(col + j * P, L, dout + (n0 + j) * out_stride, &ts);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cin, (int)L, KT, 1.0f, wf,
                            KT, col, (int)L, gn > 1 ? 0.0f : 1.0f, gn > 1 ? dxg : dx, (int)L);
                if (gn > 1) scatter_add(dinp, dxg, n0, gn, P, s->cin);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, (int)L, s->cout, 1.0f,
                            weight, K, dy, (int)L, 0.0f, col, (int)L);
                for (int j = 0; j < gn; j++)
                    col2im_add(dinp + (n0 + j) * in_stride, col + j * P, L, s);
            }
        }
        /* implicit barrier: every partial is complete; sum them in thread order, transposing
         * dW^T[K, cout] back to dW[cout, K] */
#pragma omp for schedule(static)
        for (size_t i = 0; i < wsize + (size_t)s->cout; i++) {
            const size_t at = i < wsize ? (i % K) * s->cout + i / K : i;
            float acc = 0.0f;
            for (int t = 0; t < threads; t++) acc += ws[(size_t)t * slice + partial_at + at];
            if (i < wsize) {
                if (dweight) dweight[i] += acc;
            } else if (dbias) {
                dbias[i - wsize] += acc;
            }
        }
    }
}
