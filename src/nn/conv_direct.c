/* conv_direct.c: k x k convolution (odd k, zero padding k/2) without an im2col matrix and without
 * BLIS's own packing, on one of two engines: the vector kernel of conv_direct_kernel.c, which
 * reads the patch rows in place from the padded planes (AVX-512 builds; the default there, 5-9%
 * faster training steps than the BLIS engine on this project's machine; stride 1 and 2, any
 * channel counts, 1x1 on large images), or BLIS's own micro-kernel fed with panels packed here
 * (everywhere else; stride 1, k >= 3). Stride 2 reads the four parity planes of conv_direct.h,
 * on which the patch rows are contiguous again; the description below is stride 1's.
 *
 * Why: the im2col path writes the whole patch matrix [cin*k*k, P] to memory and BLIS then reads it
 * again to pack it; at unet-s sizes that ran the convolutions at 100-140 GFLOP/s on two cores whose
 * micro-kernel alone reaches over 200 per core. Here the patches go straight into the
 * micro-kernel's packed format, a few cache lines at a time.
 *
 * The trick that makes every patch row one contiguous copy: the image is first copied into a
 * zero-bordered plane of width Wp = w + k - 1 (and h + k - 1 rows). Output positions are counted on
 * that wider grid, q = y*Wp + x (x < Wp), so the input that patch row (ci, ky, kx) needs for
 * positions q..q+MR-1 is pad[ci][q + ky*Wp + kx ...], MR consecutive floats. Positions with x >= w
 * are computed and dropped (k-1 of every Wp columns: 7% at 28x28, 22% at 7x7).
 *
 * Vector engine: per image, panel of up to 48 positions and block of 8 output channels, one call of
 * conv_vec_panel with the patch rows' offsets into the planes; the weights packed 8 per row.
 *
 * BLIS engine: per image and per panel of MR positions, A[r][i] (r over the K = cin*k*k patch rows,
 * plus one row of ones that carries the bias) is packed from the padded plane, MR contiguous floats
 * per row; the weights, packed once per call as NR-column panels B[r][j] = W[n0 + j][r] (bias in
 * row K), multiply it in one micro-kernel call per NR output channels. C (positions x channels) is
 * column-stored, the layout the kernel writes fastest, straight into the image's output on the
 * Wp-wide grid; the grid's valid columns are then copied (or added) into the NCHW output row by
 * row. OpenMP threads take whole images. (The other orientation, weights as A and positions as B,
 * packs NR = 12 floats per patch row for one kernel call at 32 output channels instead of 32 floats
 * for three, and writes C row-stored: 14% slower at 28x28 on this project's machine.)
 *
 * The same routine runs the input gradient of a stride-1 convolution: dinp = conv(dout, Wf) with
 * the flipped, transposed kernel Wf[ci][co][ky][kx] = W[co][ci][k-1-ky][k-1-kx], accumulated. */
#include <omp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "blis.h"
#include "conv_direct.h"

typedef void (*GemmKernel)(dim_t m, dim_t n, dim_t k, float *alpha, float *a, float *b, float *beta,
                           float *c, inc_t rs_c, inc_t cs_c, auxinfo_t *aux, cntx_t *cntx);

typedef struct {
    GemmKernel kernel;
    cntx_t *cntx;
    int mr, nr;
} MicroKernel;

/* ---- BLIS engine ---- */

/* BLIS's native single-precision micro-kernel for the running CPU and its register block. Only used
 * when the block is small enough for the fixed-size buffers below and the packed panels' leading
 * dimensions (PACKMR, PACKNR: BLIS's maximum block sizes) equal the register block, as this file
 * packs them. */
static int micro_kernel(MicroKernel *mk) {
    static MicroKernel cached;
    static atomic_int state; /* 0 not asked yet, 1 usable, -1 not usable; release/acquire below */
    int st = atomic_load_explicit(&state, memory_order_acquire);
    if (st == 0) {
#pragma omp critical(conv_direct_kernel)
        if (atomic_load_explicit(&state, memory_order_relaxed) == 0) {
            bli_init();
            cntx_t *cntx = bli_gks_query_cntx();
            cached.cntx = cntx;
            cached.kernel = (GemmKernel)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx);
            cached.mr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, cntx);
            cached.nr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, cntx);
            const int ok = cached.kernel && cached.mr > 0 && cached.nr > 0 &&
                           cached.mr <= CONV_DIRECT_MAX_MR && cached.nr <= CONV_DIRECT_MAX_NR &&
                           bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_MR, cntx) == cached.mr &&
                           bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_NR, cntx) == cached.nr;
            atomic_store_explicit(&state, ok ? 1 : -1, memory_order_release);
        }
        st = atomic_load_explicit(&state, memory_order_acquire);
    }
    if (st < 0) return 0;
    *mk = cached;
    return 1;
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }
static size_t kdim(const ConvShape *s) { return (size_t)s->cin * s->k * s->k + 1; }
static size_t packed_weight_floats(const ConvShape *s) {
    return round16(((size_t)s->cout + CONV_DIRECT_MAX_NR) * kdim(s));
}
size_t conv_direct_pad_floats(const ConvShape *s) {
    return round16(conv_direct_planes(s) * conv_direct_plane_floats(s) + CONV_DIRECT_MAX_MR + s->k +
                   16);
}
/* The output of one image on the Wp-wide grid: rows of whole panels, one per output channel of
 * whole NR blocks. */
static size_t grid_floats(const ConvShape *s) {
    const size_t q = (size_t)s->hout * conv_direct_padded_width(s) + CONV_DIRECT_MAX_MR;
    return round16(((size_t)s->cout + CONV_DIRECT_MAX_NR) * q);
}
/* per thread: the padded image, one A panel (BLIS engine) or the patch rows' offsets (vector
 * engine), the output grid */
static size_t thread_floats(const ConvShape *s) {
    return conv_direct_pad_floats(s) + round16(kdim(s) * CONV_DIRECT_MAX_MR) + grid_floats(s);
}

static int vector_on = 1;
void conv_direct_set_vector(int on) { vector_on = on; }
int conv_direct_vector_engine(void) { return vector_on && conv_vec_kernel_built(); }

int conv_direct_applies(const ConvShape *s) {
    MicroKernel mk;
    if (s->stride > 2 || s->k % 2 == 0 ||
        conv_direct_planes(s) * conv_direct_plane_floats(s) >= (1u << 30)) /* int offsets */
        return 0;
    if (s->k == 1) return s->stride == 1 && conv_direct_vector_engine() && conv_direct_pointwise_pays(s);
    /* The vector engine wins at any channel count (out_conv's single output channel wastes 7 of
     * its 8 but still ran 2.5x faster than im2col); the BLIS engine's calls are too short below
     * 16 output or 8 input channels, and it packs stride-1 patches only. */
    return conv_direct_vector_engine() ||
           (s->stride == 1 && s->cout >= 16 && s->cin >= 8 && micro_kernel(&mk));
}

size_t conv_direct_workspace_floats(const ConvShape *s, int threads) {
    return packed_weight_floats(s) + (size_t)threads * thread_floats(s) + 16; /* + alignment */
}

/* B panels: for output-channel block b, B[b][r][j] = weight of output channel b*nr + j at patch row
 * r (zero past cout), row K = bias (zero when none). flip: the weight is [cin][cout][k][k] read as
 * the input gradient's kernel Wf, i.e. the convolution's own [cout][cin] weight swapped and rotated
 * by 180 degrees (s describes the gradient's convolution). */
static void pack_weights(float *bp, const float *w, const float *bias, int flip, const ConvShape *s,
                         int nr) {
    const int kk = s->k * s->k;
    const size_t K = kdim(s) - 1, blocks = ((size_t)s->cout + nr - 1) / nr;
    for (size_t b = 0; b < blocks; b++)
        for (size_t r = 0; r <= K; r++)
            for (int j = 0; j < nr; j++) {
                const size_t m = b * nr + j;
                float v = 0.0f;
                if ((int)m < s->cout) {
                    if (r == K) {
                        v = bias ? bias[m] : 0.0f;
                    } else if (!flip) {
                        v = w[m * K + r];
                    } else { /* r = (co*k + ky)*k + kx of Wf; W is [cin_g = m][...]
                                swapped */
                        const size_t co = r / kk, i = r % kk;
                        v = w[(co * s->cout + m) * kk + (kk - 1 - i)];
                    }
                }
                bp[(b * (K + 1) + r) * nr + j] = v;
            }
}

/* One image [cin][h][w] into the planes (conv_direct.h): stride 1, a zero-bordered copy (only the
 * border and the overrun after the last plane are zeroed); stride 2, the bordered image's four
 * parity planes per channel. */
void conv_direct_pad_image(float *pad, const float *img, const ConvShape *s) {
    const int p = s->k / 2, wp = conv_direct_padded_width(s);
    const size_t plane = conv_direct_plane_floats(s);
    for (int c = 0; c < s->cin && s->stride == 1; c++) {
        float *pl = pad + c * plane;
        memset(pl, 0, (size_t)p * wp * sizeof(float));
        for (int y = 0; y < s->h; y++) {
            float *row = pl + (size_t)(y + p) * wp;
            memset(row, 0, (size_t)p * sizeof(float));
            const float *src = img + ((size_t)c * s->h + y) * s->w;
#pragma omp simd /* rows of 7-28 floats: a loop beats a call to memcpy */
            for (int x = 0; x < s->w; x++) row[p + x] = src[x];
            memset(row + p + s->w, 0, (size_t)(wp - p - s->w) * sizeof(float));
        }
        memset(pl + (size_t)(s->h + p) * wp, 0, (size_t)(s->k - 1 - p) * wp * sizeof(float));
    }
    const int rows = (int)(plane / wp);
    for (int c = 0; c < s->cin && s->stride == 2; c++)
        for (int py = 0; py < 2; py++)
            for (int px = 0; px < 2; px++) {
                float *pl = pad + ((size_t)c * 4 + py * 2 + px) * plane;
                for (int a = 0; a < rows; a++) {
                    float *row = pl + (size_t)a * wp;
                    const int y = 2 * a + py - p;
                    if (y < 0 || y >= s->h) {
                        memset(row, 0, (size_t)wp * sizeof(float));
                        continue;
                    }
                    /* x = 2b + px - p inside the image for b in [b0, b1) */
                    const float *src = img + ((size_t)c * s->h + y) * s->w;
                    const int shift = px - p;
                    const int b0 = (p - px + 1) / 2, b1m = (s->w - 1 + p - px) / 2 + 1;
                    const int b1 = b1m < wp ? b1m : wp;
                    for (int b = 0; b < b0; b++) row[b] = 0.0f;
                    for (int b = b0; b < b1; b++) row[b] = src[2 * b + shift];
                    for (int b = b1; b < wp; b++) row[b] = 0.0f;
                }
            }
    memset(pad + conv_direct_planes(s) * plane, 0,
           (CONV_DIRECT_MAX_MR + s->k + 16) * sizeof(float));
}

/* A[r][i] = pad[ci][q0 + ky*Wp + kx + i] for patch row r = (ci*k + ky)*k + kx, i < mr. */
static inline __attribute__((always_inline)) void
pack_panel(float *a, const float *pad_q0, int mr, size_t plane, int wp, const ConvShape *s) {
    const int k = s->k;
    for (int ci = 0; ci < s->cin; ci++)
        for (int ky = 0; ky < k; ky++) {
            const float *src = pad_q0 + ci * plane + (size_t)ky * wp;
            float *row = a + ((size_t)(ci * k + ky) * k) * mr;
            for (int kx = 0; kx < k; kx++) memcpy(row + kx * mr, src + kx, mr * sizeof(float));
        }
}

/* The grid's first w of every Wp columns into the image's NCHW output (or added to it). */
static void grid_to_output(float *y, int accumulate, const float *grid, size_t QP,
                           const ConvShape *s) {
    const int wp = conv_direct_padded_width(s);
    const size_t P = (size_t)s->hout * s->wout;
    for (int co = 0; co < s->cout; co++)
        for (int yy = 0; yy < s->hout; yy++) {
            const float *src = grid + co * QP + (size_t)yy * wp;
            float *dst = y + co * P + (size_t)yy * s->wout;
            if (accumulate) {
#pragma omp simd
                for (int x = 0; x < s->wout; x++) dst[x] += src[x];
            } else {
#pragma omp simd
                for (int x = 0; x < s->wout; x++) dst[x] = src[x];
            }
        }
}

/* BLIS engine: every panel packed into the micro-kernel's A format, one call per NR channels. */
static void run_blis(float *out, int accumulate, const float *inp, float *ws, const ConvShape *s,
                     const MicroKernel *mk) {
    const int mr = mk->mr, nr = mk->nr, wp = conv_direct_padded_width(s);
    const size_t K1 = kdim(s), plane = conv_direct_plane_floats(s), P = (size_t)s->h * s->w;
    const size_t Q = (size_t)s->h * wp, panels = (Q + mr - 1) / mr, QP = panels * mr;
    const size_t blocks = ((size_t)s->cout + nr - 1) / nr;
    const float *bw = ws;
#pragma omp parallel
    {
        float *pad = ws + packed_weight_floats(s) + (size_t)omp_get_thread_num() * thread_floats(s);
        float *a = pad + conv_direct_pad_floats(s);
        float *grid = a + round16(kdim(s) * CONV_DIRECT_MAX_MR);
        float one = 1.0f, zero = 0.0f;
        auxinfo_t aux;
        memset(&aux, 0, sizeof aux);
        bli_auxinfo_set_schema_a(BLIS_PACKED_ROW_PANELS, &aux);
        bli_auxinfo_set_schema_b(BLIS_PACKED_COL_PANELS, &aux);
        bli_auxinfo_set_is_a(1, &aux);
        bli_auxinfo_set_is_b(1, &aux);
        for (int i = 0; i < mr; i++) a[(K1 - 1) * mr + i] = 1.0f; /* the bias row */
#pragma omp for schedule(static)
        for (int n = 0; n < s->n; n++) {
            conv_direct_pad_image(pad, inp + (size_t)n * s->cin * s->h * s->w, s);
            for (size_t pn = 0; pn < panels; pn++) {
                const size_t q0 = pn * mr;
                if (mr == 32) /* a constant size: the copies compile to a few vector moves */
                    pack_panel(a, pad + q0, 32, plane, wp, s);
                else if (mr == 6)
                    pack_panel(a, pad + q0, 6, plane, wp, s);
                else
                    pack_panel(a, pad + q0, mr, plane, wp, s);
                bli_auxinfo_set_next_a(a, &aux);
                for (size_t blk = 0; blk < blocks; blk++) { /* C columns straight into the grid */
                    float *bblk = (float *)bw + blk * K1 * nr;
                    bli_auxinfo_set_next_b(blk + 1 < blocks ? bblk + K1 * nr : (float *)bw, &aux);
                    mk->kernel(mr, nr, (dim_t)K1, &one, a, bblk, &zero, grid + blk * nr * QP + q0,
                               1, (inc_t)QP, &aux, mk->cntx);
                }
            }
            grid_to_output(out + (size_t)n * s->cout * P, accumulate, grid, QP, s);
        }
    }
}

/* Vector engine: panels of up to CONV_VEC_MR positions read in place from the planes. */
static void run_vector(float *out, int accumulate, const float *inp, float *ws,
                       const ConvShape *s) {
    const int wp = conv_direct_padded_width(s), K = (int)kdim(s) - 1;
    const size_t P = (size_t)s->hout * s->wout, Q = (size_t)s->hout * wp, QP = round16(Q);
    const size_t blocks = ((size_t)s->cout + CONV_VEC_NR - 1) / CONV_VEC_NR;
    const float *bw = ws;
#pragma omp parallel
    {
        float *pad = ws + packed_weight_floats(s) + (size_t)omp_get_thread_num() * thread_floats(s);
        int *off = (int *)(pad + conv_direct_pad_floats(s));
        float *grid = pad + conv_direct_pad_floats(s) + round16(kdim(s) * CONV_DIRECT_MAX_MR);
        for (int r = 0; r < K; r++) off[r] = (int)conv_direct_offset(s, (size_t)r);
#pragma omp for schedule(static)
        for (int n = 0; n < s->n; n++) {
            conv_direct_pad_image(pad, inp + (size_t)n * s->cin * s->h * s->w, s);
            for (size_t q0 = 0; q0 < Q; q0 += CONV_VEC_MR) {
                const size_t left = (Q - q0 + 15) / 16;
                const int nv = left < 3 ? (int)left : 3;
                for (size_t blk = 0; blk < blocks; blk++)
                    conv_vec_panel(grid + blk * CONV_VEC_NR * QP + q0, QP, pad + q0, off, K,
                                   bw + blk * (size_t)(K + 1) * CONV_VEC_NR, nv);
            }
            grid_to_output(out + (size_t)n * s->cout * P, accumulate, grid, QP, s);
        }
    }
}

void conv_direct(float *out, int accumulate, const float *inp, const float *weight,
                 const float *bias, int flip, const ConvShape *s, float *ws) {
    /* every panel on a 64-byte boundary: the kernel's vector loads then never split a cache line
     * (the caller's scratch comes from calloc; unaligned, the whole step ran 8% slower) */
    ws = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    if (conv_direct_vector_engine()) {
        pack_weights(ws, weight, bias, flip, s, CONV_VEC_NR);
        run_vector(out, accumulate, inp, ws, s);
        return;
    }
    MicroKernel mk;
    if (!micro_kernel(&mk)) return; /* callers check conv_direct_applies first */
    pack_weights(ws, weight, bias, flip, s, mk.nr);
    run_blis(out, accumulate, inp, ws, s, &mk);
}
