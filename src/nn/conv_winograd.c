/* conv_winograd.c: 3x3 stride-1 convolutions (zero padding 1) by Winograd's minimal filtering
 * F(2x2, 3x3): 16 GEMMs of the channel dimensions over 4x4 transformed tiles replace the 36
 * multiplies per 2x2 outputs of a direct convolution with 16 (2.25x fewer FLOPs).
 *
 * The output is cut into 2x2 tiles (th x tw of them; odd sizes are padded with zeros and
 * cropped), each read from a 4x4 input patch d. With the 4x4 transform xi = 4i + j:
 *   U[xi][co][ci] = (G g G^T)[i][j]       weights, g = the 3x3 kernel of (co, ci)
 *   V[xi][ci][t]  = (B^T d B)[i][j]       input patches, t = tile index within a group
 *   M[xi]         = U[xi] x V[xi]         16 GEMMs [cout x cin] x [cin x L]
 *   y (2x2)       = A^T m A               per (co, t)
 * Backward is the exact adjoint of those four steps (not a second convolution):
 *   Dh[xi][co][t] = (A dy A^T)[i][j]      dout tiles transformed once, used twice:
 *   dU[xi]       += Dh[xi] x V[xi]^T      weight gradient (long inner dimension L), then
 *   dg           += G^T dU G              per (co, ci)
 *   dV[xi]        = U[xi]^T x Dh[xi]      input gradient, then
 *   dd (4x4)      = B dV B^T              added into the overlapping input patches.
 * with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 * A^T = [1 1 1 0; 0 1 -1 -1].
 *
 * The transforms run as vectors over a row of tiles: the zero-padded input plane is split into
 * its even and odd columns (E[y][x] = padded[y][2x], O[y][x] = padded[y][2x+1]), so the four
 * columns of tile tx are E[.][tx], O[.][tx], E[.][tx+1], O[.][tx+1], contiguous across tx.
 *
 * Threading as conv2d.c: threads take groups of g images (g*th*tw >= WINOGRAD_COLUMNS GEMM
 * columns), BLIS single-threaded inside; per-thread weight-gradient partials summed in thread
 * order. */
#include "conv_winograd.h"

#include <omp.h>
#include <string.h>

#include "cblas.h"

#define WINOGRAD_COLUMNS 384
#define TXB 16 /* tiles per vector block */

typedef struct {
    int th, tw, T; /* tiles: th x tw = T per image */
    int hp, ew;    /* padded input plane: hp rows, ew columns in each of E and O */
} Tiling;

static Tiling tiling(const ConvShape *s) {
    Tiling t = {.th = (s->h + 1) / 2, .tw = (s->w + 1) / 2};
    t.T = t.th * t.tw;
    t.hp = 2 * t.th + 2;
    t.ew = t.tw + 1;
    return t;
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }
static int max_int(int a, int b) { return a > b ? a : b; }

static int group_max(const Tiling *t) {
    int g = (WINOGRAD_COLUMNS + t->T - 1) / t->T;
    return g < 1 ? 1 : g;
}
static int group_size(const ConvShape *s, const Tiling *t) {
    return group_max(t) < s->n ? group_max(t) : s->n;
}

/* Per-thread slice: [plane: 2 hp ew][V: 16 cin L][M or dV: 16 max(cin, cout) L][Dh: 16 cout L]
 * [dU partial: 16 cout cin][db partial: cout]; after all slices the shared U. */
typedef struct {
    size_t plane, v, m, dh, du, db, slice;
} Layout;

static Layout layout(const ConvShape *s, const Tiling *t, int g) {
    const size_t L = (size_t)g * t->T;
    Layout l;
    l.plane = 0;
    l.v = l.plane + round16((size_t)2 * t->hp * t->ew);
    l.m = l.v + round16(16 * (size_t)s->cin * L);
    l.dh = l.m + round16(16 * (size_t)max_int(s->cin, s->cout) * L);
    l.du = l.dh + round16(16 * (size_t)s->cout * L);
    l.db = l.du + 16 * (size_t)s->cout * s->cin;
    l.slice = round16(l.db + (size_t)s->cout);
    return l;
}

int conv_winograd_applies(const ConvShape *s) { return s->k == 3 && s->stride == 1; }

size_t conv_winograd_workspace_floats(const ConvShape *s, int threads) {
    const Tiling t = tiling(s);
    const Layout l = layout(s, &t, group_max(&t));
    return (size_t)threads * l.slice + 16 * (size_t)s->cout * s->cin;
}

/* U[xi][co][ci] = G g G^T */
static void weight_transform(float *U, const float *w, int cout, int cin) {
    const size_t plane = (size_t)cout * cin;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            const float *g = w + ((size_t)co * cin + ci) * 9;
            float r[4][3];
            for (int c = 0; c < 3; c++) {
                r[0][c] = g[c];
                r[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
                r[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
                r[3][c] = g[6 + c];
            }
            float *u = U + (size_t)co * cin + ci;
            for (int i = 0; i < 4; i++) {
                u[(4 * i + 0) * plane] = r[i][0];
                u[(4 * i + 1) * plane] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
                u[(4 * i + 2) * plane] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
                u[(4 * i + 3) * plane] = r[i][2];
            }
        }
}

/* dweight[co][ci] += G^T dU G, dU summed over the threads' partials in thread order. */
static void weight_adjoint(float *dweight, const float *ws, size_t slice, size_t du_at,
                           int threads, int cout, int cin) {
    const size_t plane = (size_t)cout * cin;
#pragma omp for schedule(static)
    for (size_t p = 0; p < plane; p++) {
        float u[4][4];
        for (int xi = 0; xi < 16; xi++) {
            float acc = 0.0f;
            for (int t = 0; t < threads; t++) acc += ws[(size_t)t * slice + du_at + xi * plane + p];
            u[xi / 4][xi % 4] = acc;
        }
        float r[4][3];
        for (int i = 0; i < 4; i++) {
            r[i][0] = u[i][0] + 0.5f * (u[i][1] + u[i][2]);
            r[i][1] = 0.5f * (u[i][1] - u[i][2]);
            r[i][2] = 0.5f * (u[i][1] + u[i][2]) + u[i][3];
        }
        float *dg = dweight + p * 9;
        for (int c = 0; c < 3; c++) {
            dg[c] += r[0][c] + 0.5f * (r[1][c] + r[2][c]);
            dg[3 + c] += 0.5f * (r[1][c] - r[2][c]);
            dg[6 + c] += 0.5f * (r[1][c] + r[2][c]) + r[3][c];
        }
    }
}

/* E/O planes of one zero-padded input channel: E[y][x] = in[y-1][2x-1], O[y][x] = in[y-1][2x]. */
static void split_plane(float *E, float *O, const float *in, int h, int w, const Tiling *t) {
    for (int y = 0; y < t->hp; y++) {
        float *e = E + (size_t)y * t->ew, *o = O + (size_t)y * t->ew;
        const int iy = y - 1;
        if (iy < 0 || iy >= h) {
            memset(e, 0, (size_t)t->ew * sizeof(float));
            memset(o, 0, (size_t)t->ew * sizeof(float));
            continue;
        }
        const float *r = in + (size_t)iy * w;
        for (int x = 0; x < t->ew; x++) {
            const int xe = 2 * x - 1, xo = 2 * x;
            e[x] = xe >= 0 && xe < w ? r[xe] : 0.0f;
            o[x] = xo < w ? r[xo] : 0.0f;
        }
    }
}

/* V[xi][ci][col0 + t] = B^T d B for every tile of one image (ld: the row length L of V). */
static void input_transform(float *V, size_t ld, size_t col0, const float *img, int cin,
                            int h, int w, const Tiling *t, float *plane) {
    float *E = plane, *O = plane + (size_t)t->hp * t->ew;
    const size_t xs = (size_t)cin * ld; /* distance between the 16 matrices */
    for (int ci = 0; ci < cin; ci++) {
        split_plane(E, O, img + (size_t)ci * h * w, h, w, t);
        for (int ty = 0; ty < t->th; ty++)
            for (int x0 = 0; x0 < t->tw; x0 += TXB) {
                const int nb = t->tw - x0 < TXB ? t->tw - x0 : TXB;
                float r[4][4][TXB];
                for (int i = 0; i < 4; i++) {
                    const float *e = E + (size_t)(2 * ty + i) * t->ew + x0;
                    const float *o = O + (size_t)(2 * ty + i) * t->ew + x0;
#pragma omp simd
                    for (int v = 0; v < nb; v++) {
                        const float d0 = e[v], d1 = o[v], d2 = e[v + 1], d3 = o[v + 1];
                        r[i][0][v] = d0 - d2;
                        r[i][1][v] = d1 + d2;
                        r[i][2][v] = d2 - d1;
                        r[i][3][v] = d1 - d3;
                    }
                }
                float *dst = V + (size_t)ci * ld + col0 + (size_t)ty * t->tw + x0;
                for (int j = 0; j < 4; j++)
#pragma omp simd
                    for (int v = 0; v < nb; v++) {
                        const float a0 = r[0][j][v], a1 = r[1][j][v], a2 = r[2][j][v],
                                    a3 = r[3][j][v];
                        dst[(0 + j) * xs + v] = a0 - a2;
                        dst[(4 + j) * xs + v] = a1 + a2;
                        dst[(8 + j) * xs + v] = a2 - a1;
                        dst[(12 + j) * xs + v] = a1 - a3;
                    }
            }
    }
}

/* out (one image, cout planes) = A^T m A (+ bias), or += when accumulate. */
static void output_transform(float *out, const float *M, size_t ld, size_t col0,
                             const float *bias, int accumulate, int cout, int h, int w,
                             const Tiling *t, float *plane) {
    const size_t xs = (size_t)cout * ld, pw = (size_t)2 * t->tw;
    for (int co = 0; co < cout; co++) {
        for (int ty = 0; ty < t->th; ty++)
            for (int x0 = 0; x0 < t->tw; x0 += TXB) {
                const int nb = t->tw - x0 < TXB ? t->tw - x0 : TXB;
                const float *m = M + (size_t)co * ld + col0 + (size_t)ty * t->tw + x0;
                float s[4][2][TXB];
                for (int i = 0; i < 4; i++)
#pragma omp simd
                    for (int v = 0; v < nb; v++) {
                        const float m0 = m[(4 * i) * xs + v], m1 = m[(4 * i + 1) * xs + v],
                                    m2 = m[(4 * i + 2) * xs + v], m3 = m[(4 * i + 3) * xs + v];
                        s[i][0][v] = m0 + m1 + m2;
                        s[i][1][v] = m1 - m2 - m3;
                    }
                float *y0 = plane + (size_t)(2 * ty) * pw + 2 * x0, *y1 = y0 + pw;
#pragma omp simd
                for (int v = 0; v < nb; v++) {
                    y0[2 * v] = s[0][0][v] + s[1][0][v] + s[2][0][v];
                    y0[2 * v + 1] = s[0][1][v] + s[1][1][v] + s[2][1][v];
                    y1[2 * v] = s[1][0][v] - s[2][0][v] - s[3][0][v];
                    y1[2 * v + 1] = s[1][1][v] - s[2][1][v] - s[3][1][v];
                }
            }
        const float b = bias ? bias[co] : 0.0f;
        float *o = out + (size_t)co * h * w;
        for (int y = 0; y < h; y++) {
            const float *src = plane + (size_t)y * pw;
            float *dst = o + (size_t)y * w;
            if (accumulate) {
#pragma omp simd
                for (int x = 0; x < w; x++) dst[x] += src[x];
            } else {
#pragma omp simd
                for (int x = 0; x < w; x++) dst[x] = src[x] + b;
            }
        }
    }
}

/* Dh[xi][co][col0 + t] = A dy A^T for every tile of one image's output gradient. */
static void dout_transform(float *Dh, size_t ld, size_t col0, const float *dy, int cout, int h,
                           int w, const Tiling *t, float *plane) {
    const size_t xs = (size_t)cout * ld, pw = (size_t)t->tw;
    float *Ye = plane, *Yo = plane + (size_t)2 * t->th * pw; /* even / odd columns, zero-padded */
    for (int co = 0; co < cout; co++) {
        const float *src = dy + (size_t)co * h * w;
        for (int y = 0; y < 2 * t->th; y++)
            for (int x = 0; x < t->tw; x++) {
                const int xe = 2 * x, xo = 2 * x + 1;
                Ye[y * pw + x] = y < h ? src[(size_t)y * w + xe] : 0.0f;
                Yo[y * pw + x] = y < h && xo < w ? src[(size_t)y * w + xo] : 0.0f;
            }
        for (int ty = 0; ty < t->th; ty++)
            for (int x0 = 0; x0 < t->tw; x0 += TXB) {
                const int nb = t->tw - x0 < TXB ? t->tw - x0 : TXB;
                const float *a = Ye + (size_t)(2 * ty) * pw + x0, *b = Yo + (size_t)(2 * ty) * pw + x0;
                const float *c = a + pw, *d = b + pw;
                float *dst = Dh + (size_t)co * ld + col0 + (size_t)ty * t->tw + x0;
#pragma omp simd
                for (int v = 0; v < nb; v++) {
                    /* rows: (p, p+q, p-q, -q) of (a, b) and of (c, d); then the same down columns */
                    const float r0[4] = {a[v], a[v] + b[v], a[v] - b[v], -b[v]};
                    const float r1[4] = {c[v], c[v] + d[v], c[v] - d[v], -d[v]};
                    for (int j = 0; j < 4; j++) {
                        dst[(0 + j) * xs + v] = r0[j];
                        dst[(4 + j) * xs + v] = r0[j] + r1[j];
                        dst[(8 + j) * xs + v] = r0[j] - r1[j];
                        dst[(12 + j) * xs + v] = -r1[j];
                    }
                }
            }
    }
}

/* dimg (one image, cin planes) += the adjoint of input_transform applied to dV. */
static void input_adjoint(float *dimg, const float *dV, size_t ld, size_t col0, int cin, int h,
                          int w, const Tiling *t, float *plane) {
    float *E = plane, *O = plane + (size_t)t->hp * t->ew;
    const size_t xs = (size_t)cin * ld;
    for (int ci = 0; ci < cin; ci++) {
        memset(plane, 0, (size_t)2 * t->hp * t->ew * sizeof(float));
        for (int ty = 0; ty < t->th; ty++)
            for (int x0 = 0; x0 < t->tw; x0 += TXB) {
                const int nb = t->tw - x0 < TXB ? t->tw - x0 : TXB;
                const float *v16 = dV + (size_t)ci * ld + col0 + (size_t)ty * t->tw + x0;
                float q[4][4][TXB]; /* q[patch row][transformed column] */
                for (int j = 0; j < 4; j++)
#pragma omp simd
                    for (int v = 0; v < nb; v++) {
                        const float a0 = v16[(0 + j) * xs + v], a1 = v16[(4 + j) * xs + v],
                                    a2 = v16[(8 + j) * xs + v], a3 = v16[(12 + j) * xs + v];
                        q[0][j][v] = a0;
                        q[1][j][v] = a1 - a2 + a3;
                        q[2][j][v] = a1 + a2 - a0;
                        q[3][j][v] = -a3;
                    }
                for (int i = 0; i < 4; i++) {
                    float *e = E + (size_t)(2 * ty + i) * t->ew + x0;
                    float *o = O + (size_t)(2 * ty + i) * t->ew + x0;
                    /* columns 0, 1 of tile tx land on E/O[tx]; columns 2, 3 on E/O[tx + 1]:
                     * two passes so that no vector writes a location twice */
#pragma omp simd
                    for (int v = 0; v < nb; v++) {
                        e[v] += q[i][0][v];
                        o[v] += q[i][1][v] - q[i][2][v] + q[i][3][v];
                    }
#pragma omp simd
                    for (int v = 0; v < nb; v++) {
                        e[v + 1] += q[i][2][v] + q[i][1][v] - q[i][0][v];
                        o[v + 1] -= q[i][3][v];
                    }
                }
            }
        float *d = dimg + (size_t)ci * h * w;
        for (int y = 0; y < h; y++) {
            const float *e = E + (size_t)(y + 1) * t->ew, *o = O + (size_t)(y + 1) * t->ew;
            float *row = d + (size_t)y * w;
            for (int x = 0; x < w; x++) row[x] += (x & 1) ? e[(x + 1) / 2] : o[x / 2];
        }
    }
}

void conv_winograd_forward(float *out, const float *inp, const float *weight, const float *bias,
                           const ConvShape *s, float *ws) {
    const Tiling t = tiling(s);
    const int g = group_size(s, &t), groups = (s->n + g - 1) / g;
    const Layout l = layout(s, &t, g);
    const size_t in_stride = (size_t)s->cin * s->h * s->w, out_stride = (size_t)s->cout * s->h * s->w;
    int threads = 1;
    float *U = NULL;
#pragma omp parallel
    {
#pragma omp single
        {
            threads = omp_get_num_threads();
            U = ws + (size_t)threads * l.slice;
            weight_transform(U, weight, s->cout, s->cin);
        }
        float *slice = ws + (size_t)omp_get_thread_num() * l.slice;
        float *plane = slice + l.plane, *V = slice + l.v, *M = slice + l.m;
#pragma omp for schedule(static)
        for (int grp = 0; grp < groups; grp++) {
            const int n0 = grp * g, gn = s->n - n0 < g ? s->n - n0 : g;
            const size_t L = (size_t)gn * t.T;
            for (int j = 0; j < gn; j++)
                input_transform(V, L, (size_t)j * t.T, inp + (n0 + j) * in_stride, s->cin, s->h,
                                s->w, &t, plane);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, (int)L, s->cin,
                            1.0f, U + (size_t)xi * s->cout * s->cin, s->cin,
                            V + (size_t)xi * s->cin * L, (int)L, 0.0f,
                            M + (size_t)xi * s->cout * L, (int)L);
            for (int j = 0; j < gn; j++)
                output_transform(out + (n0 + j) * out_stride, M, L, (size_t)j * t.T, bias, 0,
                                 s->cout, s->h, s->w, &t, plane);
        }
    }
}

void conv_winograd_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const ConvShape *s,
                            float *ws) {
    const Tiling t = tiling(s);
    const int g = group_size(s, &t), groups = (s->n + g - 1) / g;
    const Layout l = layout(s, &t, g);
    const size_t P = (size_t)s->h * s->w, in_stride = (size_t)s->cin * P,
                 out_stride = (size_t)s->cout * P, nu = 16 * (size_t)s->cout * s->cin;
    int threads = 1;
    float *U = NULL;
#pragma omp parallel
    {
#pragma omp single
        {
            threads = omp_get_num_threads();
            U = ws + (size_t)threads * l.slice;
            if (dinp) weight_transform(U, weight, s->cout, s->cin);
        }
        float *slice = ws + (size_t)omp_get_thread_num() * l.slice;
        float *plane = slice + l.plane, *V = slice + l.v, *dV = slice + l.m, *Dh = slice + l.dh;
        float *dU = slice + l.du, *db = slice + l.db;
        memset(dU, 0, (nu + (size_t)s->cout) * sizeof(float));
#pragma omp for schedule(static)
        for (int grp = 0; grp < groups; grp++) {
            const int n0 = grp * g, gn = s->n - n0 < g ? s->n - n0 : g;
            const size_t L = (size_t)gn * t.T;
            for (int j = 0; j < gn; j++) {
                const float *dy = dout + (n0 + j) * out_stride;
                for (int co = 0; co < s->cout; co++) {
                    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                    for (size_t p = 0; p < P; p++) acc += dy[co * P + p];
                    db[co] += acc;
                }
                dout_transform(Dh, L, (size_t)j * t.T, dy, s->cout, s->h, s->w, &t, plane);
                input_transform(V, L, (size_t)j * t.T, inp + (n0 + j) * in_stride, s->cin, s->h,
                                s->w, &t, plane);
            }
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, s->cin, (int)L,
                            1.0f, Dh + (size_t)xi * s->cout * L, (int)L,
                            V + (size_t)xi * s->cin * L, (int)L, 1.0f,
                            dU + (size_t)xi * s->cout * s->cin, s->cin);
            if (!dinp) continue;
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->cin, (int)L, s->cout,
                            1.0f, U + (size_t)xi * s->cout * s->cin, s->cin,
                            Dh + (size_t)xi * s->cout * L, (int)L, 0.0f,
                            dV + (size_t)xi * s->cin * L, (int)L);
            for (int j = 0; j < gn; j++)
                input_adjoint(dinp + (n0 + j) * in_stride, dV, L, (size_t)j * t.T, s->cin, s->h,
                              s->w, &t, plane);
        }
        /* implicit barrier: every partial is complete */
        if (dweight) weight_adjoint(dweight, ws, l.slice, l.du, threads, s->cout, s->cin);
        if (dbias) {
#pragma omp for schedule(static)
            for (int co = 0; co < s->cout; co++) {
                float acc = 0.0f;
                for (int th = 0; th < threads; th++) acc += ws[(size_t)th * l.slice + l.db + co];
                dbias[co] += acc;
            }
        }
    }
}
