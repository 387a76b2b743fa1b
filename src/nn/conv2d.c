/* conv2d.c: 2-D convolution (k x k, stride 1 or 2, zero padding k/2, bias) on BLIS sgemm.
 *
 * Per image, in the orientation BLIS runs fastest here:
 *   forward   out[cout, P] = W[cout, K] x col[K, P] + bias        (K = cin*k*k, P = hout*wout)
 *   backward  dW[cout, K] += dout[cout, P] x col[K, P]^T
 *             stride 1: dinp[cin, P] += Wf[cin, cout*k*k] x im2col(dout)[cout*k*k, P], the
 *               input gradient as a convolution of dout with the flipped, transposed kernel
 *               Wf[ci, co, ky, kx] = W[co, ci, k-1-ky, k-1-kx] (a long inner dimension, no col2im)
 *             stride 2: dcol[K, P] = W[cout, K]^T x dout[cout, P], then col2im adds it into dinp
 * A 1x1 stride-1 convolution uses the input itself as col and skips im2col/col2im.
 *
 * Threading: one OpenMP thread per image (static schedule), BLIS single-threaded inside the
 * parallel region. Each thread owns one im2col matrix and one partial weight/bias gradient in
 * the caller's workspace; the partials are summed in thread order, so for a given thread count
 * the result is deterministic. */
#include <omp.h>
#include <string.h>

#include "cblas.h"
#include "nn.h"

ConvShape conv_shape(int n, int cin, int h, int w, int cout, int k, int stride) {
    ConvShape s = {.n = n, .cin = cin, .h = h, .w = w, .cout = cout, .k = k, .stride = stride};
    s.pad = k / 2;
    s.hout = (h + 2 * s.pad - k) / stride + 1;
    s.wout = (w + 2 * s.pad - k) / stride + 1;
    return s;
}

static size_t col_floats(const ConvShape *s) {
    return (size_t)s->cin * s->k * s->k * (size_t)s->hout * s->wout;
}

/* The im2col matrix of dout used by the stride-1 input gradient: cout*k*k rows. */
static size_t dcol_floats(const ConvShape *s) {
    return (size_t)s->cout * s->k * s->k * (size_t)s->hout * s->wout;
}

static size_t col_slice_floats(const ConvShape *s) {
    size_t a = col_floats(s), b = dcol_floats(s);
    return a > b ? a : b;
}

static size_t weight_floats(const ConvShape *s) { return (size_t)s->cout * s->cin * s->k * s->k; }

/* Per thread: one im2col matrix, one weight-gradient partial and one bias-gradient partial. */
static size_t per_thread_floats(const ConvShape *s) {
    size_t floats = col_slice_floats(s) + weight_floats(s) + (size_t)s->cout;
    return (floats + 15) / 16 * 16; /* keep every thread's slice on its own cache lines */
}

/* ... after the per-thread slices, one flipped kernel shared by all threads. */
size_t conv_workspace_floats(const ConvShape *s, int threads) {
    return (size_t)threads * per_thread_floats(s) + weight_floats(s);
}

static int is_pointwise(const ConvShape *s) { return s->k == 1 && s->stride == 1; }

/* Output columns [lo, hi) whose input column ox*stride + kx - pad lies inside [0, w). */
static void valid_columns(int *lo, int *hi, int kx, const ConvShape *s) {
    const int off = kx - s->pad, st = s->stride;
    int a = off < 0 ? (-off + st - 1) / st : 0;    /* first ox with ox*st + off >= 0 */
    int b = (s->w - 1 - off) / st + 1;              /* first ox with ox*st + off >= w */
    if (s->w - 1 - off < 0) b = 0;
    *lo = a < s->wout ? a : s->wout;
    *hi = b < s->wout ? b : s->wout;
    if (*hi < *lo) *hi = *lo;
}

/* col[(ci*k + ky)*k + kx, oy*wout + ox] = inp[ci, oy*stride + ky - pad, ox*stride + kx - pad]
 * (zero outside the image). The valid column range of each (kx) is computed once, so the inner
 * loop is a plain copy (memcpy at stride 1) with zeroed margins. */
static void im2col(float *col, const float *inp, const ConvShape *s) {
    const int k = s->k, st = s->stride, pad = s->pad, P = s->hout * s->wout, wo = s->wout;
    for (int ci = 0; ci < s->cin; ci++) {
        const float *plane = inp + (size_t)ci * s->h * s->w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(ci * k + ky) * k + kx) * P;
                int lo, hi;
                valid_columns(&lo, &hi, kx, s);
                const int ix0 = lo * st + kx - pad;
                for (int oy = 0; oy < s->hout; oy++) {
                    const int iy = oy * st + ky - pad;
                    float *dst = row + (size_t)oy * wo;
                    if (iy < 0 || iy >= s->h) {
                        memset(dst, 0, (size_t)wo * sizeof(float));
                        continue;
                    }
                    const float *src = plane + (size_t)iy * s->w + ix0;
                    for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                    if (st == 1) {
                        memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        for (int ox = lo; ox < hi; ox++) dst[ox] = src[(ox - lo) * st];
                    }
                    for (int ox = hi; ox < wo; ox++) dst[ox] = 0.0f;
                }
            }
        }
    }
}

/* The adjoint of im2col: dinp[ci, iy, ix] += dcol[...] for every place the pixel was copied. */
static void col2im_add(float *dinp, const float *dcol, const ConvShape *s) {
    const int k = s->k, st = s->stride, pad = s->pad, P = s->hout * s->wout, wo = s->wout;
    for (int ci = 0; ci < s->cin; ci++) {
        float *plane = dinp + (size_t)ci * s->h * s->w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                const float *row = dcol + ((size_t)(ci * k + ky) * k + kx) * P;
                int lo, hi;
                valid_columns(&lo, &hi, kx, s);
                const int ix0 = lo * st + kx - pad;
                for (int oy = 0; oy < s->hout; oy++) {
                    const int iy = oy * st + ky - pad;
                    if (iy < 0 || iy >= s->h) continue;
                    const float *src = row + (size_t)oy * wo;
                    float *dst = plane + (size_t)iy * s->w + ix0;
                    for (int ox = lo; ox < hi; ox++) dst[(ox - lo) * st] += src[ox];
                }
            }
        }
    }
}

/* Wf[ci, co, ky, kx] = W[co, ci, k-1-ky, k-1-kx] */
static void flip_kernel(float *wf, const float *w, const ConvShape *s) {
    const int k = s->k, kk = k * k;
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int j = 0; j < kk; j++)
                wf[((size_t)ci * s->cout + co) * kk + j] = w[((size_t)co * s->cin + ci) * kk + kk - 1 - j];
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const ConvShape *s, float *ws) {
    const int K = s->cin * s->k * s->k, P = s->hout * s->wout;
    const size_t in_stride = (size_t)s->cin * s->h * s->w, out_stride = (size_t)s->cout * P;
#pragma omp parallel
    {
        float *col = ws + (size_t)omp_get_thread_num() * per_thread_floats(s);
#pragma omp for schedule(static)
        for (int n = 0; n < s->n; n++) {
            const float *x = inp + n * in_stride;
            float *y = out + n * out_stride;
            const float *b = x;
            if (!is_pointwise(s)) {
                im2col(col, x, s);
                b = col;
            }
            for (int co = 0; co < s->cout; co++) {
                float bv = bias ? bias[co] : 0.0f;
                for (int p = 0; p < P; p++) y[(size_t)co * P + p] = bv;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, P, K, 1.0f, weight, K,
                        b, P, 1.0f, y, P);
        }
    }
}

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, const ConvShape *s, float *ws) {
    const int K = s->cin * s->k * s->k, P = s->hout * s->wout;
    const size_t in_stride = (size_t)s->cin * s->h * s->w, out_stride = (size_t)s->cout * P;
    const size_t slice = per_thread_floats(s), wsize = weight_floats(s);
    const size_t partial_at = col_slice_floats(s); /* dW partial's place inside a slice */
    /* stride 1: dinp is the convolution of dout (cout channels at hout x wout) with wf */
    const ConvShape ts = conv_shape(1, s->cout, s->hout, s->wout, s->cin, s->k, 1);
    const int stride1 = s->stride == 1 && !is_pointwise(s);
    float *wf = NULL;
    int threads = 1;
#pragma omp parallel
    {
#pragma omp single
        {
            threads = omp_get_num_threads();
            wf = ws + (size_t)threads * slice;
            if (dinp && stride1) flip_kernel(wf, weight, s);
        }
        float *col = ws + (size_t)omp_get_thread_num() * slice;
        float *dw = col + partial_at, *db = dw + wsize;
        memset(dw, 0, (wsize + (size_t)s->cout) * sizeof(float));
#pragma omp for schedule(static)
        for (int n = 0; n < s->n; n++) {
            const float *x = inp + n * in_stride;
            const float *dy = dout + n * out_stride;
            for (int co = 0; co < s->cout; co++) {
                float acc = 0.0f;
                for (int p = 0; p < P; p++) acc += dy[(size_t)co * P + p];
                db[co] += acc;
            }
            const float *b = x;
            if (!is_pointwise(s)) {
                im2col(col, x, s);
                b = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, K, P, 1.0f, dy, P, b, P,
                        1.0f, dw, K);
            if (!dinp) continue;
            float *dx = dinp + n * in_stride;
            if (is_pointwise(s)) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, s->cout, 1.0f, weight,
                            K, dy, P, 1.0f, dx, P);
            } else if (stride1) {
                const int KT = s->cout * s->k * s->k;
                im2col(col, dy, &ts);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cin, P, KT, 1.0f, wf,
                            KT, col, P, 1.0f, dx, P);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, s->cout, 1.0f, weight,
                            K, dy, P, 0.0f, col, P);
                col2im_add(dx, col, s);
            }
        }
        /* implicit barrier: every partial is complete; sum them in thread order */
#pragma omp for schedule(static)
        for (size_t i = 0; i < wsize + (size_t)s->cout; i++) {
            float acc = 0.0f;
            for (int t = 0; t < threads; t++) acc += ws[(size_t)t * slice + partial_at + i];
            if (i < wsize) {
                if (dweight) dweight[i] += acc;
            } else if (dbias) {
                dbias[i - wsize] += acc;
            }
        }
    }
}
