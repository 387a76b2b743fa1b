/* im2col.c: patch matrices for convolution as GEMM, and their adjoint. The valid column range
 * of each kernel column is computed once, so the inner loops are plain copies (memcpy at
 * stride 1) with zeroed margins. */
#include "im2col.h"

#include <string.h>

/* Output columns [lo, hi) whose input column ox*stride + kx - pad lies inside [0, w). */
static void valid_columns(int *lo, int *hi, int kx, const ConvShape *s) {
    const int off = kx - s->pad, st = s->stride;
    int a = off < 0 ? (-off + st - 1) / st : 0;     /* first ox with ox*st + off >= 0 */
    int b = s->w - 1 - off < 0 ? 0 : (s->w - 1 - off) / st + 1; /* first ox past the edge */
    *lo = a < s->wout ? a : s->wout;
    *hi = b < s->wout ? b : s->wout;
    if (*hi < *lo) *hi = *lo;
}

/* Stride 1 with "same" padding: each row of col is the input plane shifted by (dy, dx) with
 * zeros shifted in. In row-major order that is one contiguous copy of the plane at offset
 * dy*w + dx, after which the |dx| columns that wrapped around from the neighbouring row are
 * zeroed: one memcpy per kernel position instead of one per output row. */
static void shifted_plane(float *dst, const float *src, int h, int w, int dy, int dx) {
    const int oy0 = dy < 0 ? -dy : 0, oy1 = dy > 0 ? h - dy : h;
    if (oy1 <= oy0) {
        memset(dst, 0, (size_t)h * w * sizeof(float));
        return;
    }
    memset(dst, 0, (size_t)oy0 * w * sizeof(float));
    memset(dst + (size_t)oy1 * w, 0, (size_t)(h - oy1) * w * sizeof(float));
    const size_t first = (size_t)oy0 * w, count = (size_t)(oy1 - oy0) * w;
    const float *from = src + (size_t)(oy0 + dy) * w;
    if (dx >= 0) {
        memcpy(dst + first, from + dx, (count - (size_t)dx) * sizeof(float));
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = w - dx; ox < w; ox++) dst[(size_t)oy * w + ox] = 0.0f;
    } else {
        memcpy(dst + first - dx, from, (count + (size_t)dx) * sizeof(float));
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = 0; ox < -dx; ox++) dst[(size_t)oy * w + ox] = 0.0f;
    }
}

void im2col(float *col, size_t ld, const float *inp, const ConvShape *s) {
    const int k = s->k, st = s->stride, pad = s->pad, wo = s->wout;
    if (st == 1 && s->hout == s->h && s->wout == s->w && pad < s->w) {
        for (int ci = 0; ci < s->cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    shifted_plane(col + ((size_t)(ci * k + ky) * k + kx) * ld,
                                  inp + (size_t)ci * s->h * s->w, s->h, s->w, ky - pad, kx - pad);
        return;
    }
    for (int ci = 0; ci < s->cin; ci++) {
        const float *plane = inp + (size_t)ci * s->h * s->w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(ci * k + ky) * k + kx) * ld;
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
                    if (st == 1)
                        memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int ox = lo; ox < hi; ox++) dst[ox] = src[(ox - lo) * st];
                    for (int ox = hi; ox < wo; ox++) dst[ox] = 0.0f;
                }
            }
        }
    }
}

void col2im_add(float *dinp, const float *dcol, size_t ld, const ConvShape *s) {
    const int k = s->k, st = s->stride, pad = s->pad, wo = s->wout;
    for (int ci = 0; ci < s->cin; ci++) {
        float *plane = dinp + (size_t)ci * s->h * s->w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                const float *row = dcol + ((size_t)(ci * k + ky) * k + kx) * ld;
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
