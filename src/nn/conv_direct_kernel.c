/* conv_direct_kernel.c: the register-blocked inner loop of conv_direct.c's vector engine, reading
 * the patch rows straight from the zero-bordered planes (no packed copy of them).
 *
 * For a panel of 16 * nv consecutive output positions (q0 .. q0 + 16nv - 1 on the Wp-wide grid) and
 * 8 output channels: C[j][i] = bias[j] + sum over patch rows r of B[r][j] * A[r][i], where the
 * patch row is A[r][i] = pad[off[r] + q0 + i] (off[r] = ci*plane + ky*Wp + kx): nv unaligned
 * vector loads per row. The weights are conv_direct.c's packed panels, 8 floats per row, each
 * broadcast once and used nv times. 8 x nv vector accumulators (24 at nv = 3) stay in registers,
 * so a row costs nv loads and 8 broadcasts for 8nv fused multiply-adds (the BLIS micro-kernel this
 * replaces does 2 loads and 12 broadcasts for 24, after a copy of every row into its packed
 * format).
 *
 * Built only where the compiler targets AVX-512 (32 vector registers of 16 floats); elsewhere
 * conv_vec_kernel_built() is 0 and conv_direct.c keeps the BLIS micro-kernel. */
#include "conv_direct.h"

#ifdef __AVX512F__

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4))); /* unaligned loads */

int conv_vec_kernel_built(void) { return 1; }

static inline __attribute__((always_inline)) void
panel(float *c, size_t ldc, const float *a, const int *off, int K, const float *b, int nv) {
    v16 acc[CONV_VEC_NR][3];
    for (int j = 0; j < CONV_VEC_NR; j++) /* row K of the packed weights: the bias */
        for (int v = 0; v < nv; v++) acc[j][v] = (v16){0} + b[(size_t)K * CONV_VEC_NR + j];
    for (int r = 0; r < K; r++) {
        const float *ar = a + off[r];
        const float *br = b + (size_t)r * CONV_VEC_NR;
        v16 x[3];
        for (int v = 0; v < nv; v++) {
            x[v] = *(const v16u *)(ar + 16 * v);
            /* one load, eight uses: without this GCC folds the load into every multiply-add */
            __asm__("" : "+v"(x[v]));
        }
        for (int j = 0; j < CONV_VEC_NR; j++) {
            const float w = br[j];
            for (int v = 0; v < nv; v++) acc[j][v] += x[v] * w;
        }
    }
    for (int j = 0; j < CONV_VEC_NR; j++)
        for (int v = 0; v < nv; v++) *(v16u *)(c + j * ldc + 16 * v) = acc[j][v];
}

void conv_vec_panel(float *c, size_t ldc, const float *a, const int *off, int K, const float *b,
                    int nv) {
    /* a constant nv in each call: the loops over v unroll and acc stays in registers */
    if (nv == 3)
        panel(c, ldc, a, off, K, b, 3);
    else if (nv == 2)
        panel(c, ldc, a, off, K, b, 2);
    else
        panel(c, ldc, a, off, K, b, 1);
}

#else

int conv_vec_kernel_built(void) { return 0; }

void conv_vec_panel(float *c, size_t ldc, const float *a, const int *off, int K, const float *b,
                    int nv) {
    (void)c, (void)ldc, (void)a, (void)off, (void)K, (void)b, (void)nv; /* never called */
}

#endif
