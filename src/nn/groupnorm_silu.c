/* groupnorm_silu.c: z = silu(gn(x)), the pair every residual block and the output head apply, as
 * one op. Both halves are memory-bound at this model's sizes (a few flops per float moved), so the
 * pair costs what it moves: separately, the forward reads x three times, writes y = gn(x), reads
 * it again and writes z; the backward reads y and dz and writes dy (SiLU), then reads x and dy
 * twice and updates dx (GroupNorm). Here y is never stored: the forward reads x for the statistics
 * and once more to write z, and the backward recomputes y from x and the statistics, keeps
 * dy = dz silu'(y) of one (image, group) in a per-thread scratch that stays in cache between its
 * two passes, and reads x and dz once from memory. It also saves the activation y per op.
 *
 * The arithmetic is groupnorm.c's and silu.c's (same statistics in double, same backward
 * formulas; see those files), so results match the unfused pair to rounding. */
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "nn.h"
#include "silu_math.h"

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

void groupnorm_silu_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *gamma, const float *beta, int n, int c, int hw,
                            int groups) {
    const int cpg = c / groups;
    const size_t m = (size_t)cpg * hw;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < n * groups; ng++) {
        const int g = ng % groups;
        const float *x = inp + (size_t)ng * m; /* a group's channels are contiguous */
        float *z = out + (size_t)ng * m;
        double sum = 0.0, sq = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < m; i++) sum += x[i];
        const double mu = sum / (double)m;
#pragma omp simd reduction(+ : sq)
        for (size_t i = 0; i < m; i++) {
            const double d = x[i] - mu;
            sq += d * d;
        }
        const float r = (float)(1.0 / sqrt(sq / (double)m + GROUPNORM_EPS)), mf = (float)mu;
        mean[ng] = mf;
        rstd[ng] = r;
        for (int cc = 0; cc < cpg; cc++) {
            const int ch = g * cpg + cc;
            const float a = gamma[ch] * r, b = beta[ch] - mf * a;
            const float *xc = x + (size_t)cc * hw;
            float *zc = z + (size_t)cc * hw;
#pragma omp simd
            for (int p = 0; p < hw; p++) {
                const float y = xc[p] * a + b;
                zc[p] = y * sigmoid(y);
            }
        }
    }
}

size_t groupnorm_silu_workspace_floats(int n, int c, int hw, int groups, int threads) {
    return 4 * (size_t)n * c + 2 + (size_t)threads * round16((size_t)(c / groups) * hw) + 16;
}

void groupnorm_silu_backward(float *dinp, int set_dinp, float *dgamma, float *dbeta,
                             const float *dout, const float *inp, const float *mean,
                             const float *rstd, const float *gamma, const float *beta, int n, int c,
                             int hw, int groups, float *ws) {
    const int cpg = c / groups;
    const size_t m = (size_t)cpg * hw;
    /* per (image, channel): sum of dy and of dy * xhat, in double (8-byte aligned); then one
     * group's dy per thread */
    double *part = (double *)(((uintptr_t)ws + 7) & ~(uintptr_t)7);
    float *scratch = (float *)(part + 2 * (size_t)n * c);
#pragma omp parallel
    {
        float *dy = scratch + (size_t)omp_get_thread_num() * round16(m);
#pragma omp for schedule(static)
        for (int ng = 0; ng < n * groups; ng++) {
            const int g = ng % groups, img = ng / groups;
            const float *x = inp + (size_t)ng * m, *dz = dout + (size_t)ng * m;
            const float mu = mean[ng], r = rstd[ng];
            double sg = 0.0, sgx = 0.0; /* sums of gamma dy and of gamma dy xhat */
            for (int cc = 0; cc < cpg; cc++) {
                const int ch = g * cpg + cc;
                const float a = gamma[ch] * r, b = beta[ch] - mu * a;
                const size_t o = (size_t)cc * hw;
                double sb = 0.0, sx = 0.0;
#pragma omp simd reduction(+ : sb, sx)
                for (int p = 0; p < hw; p++) {
                    const float y = x[o + p] * a + b;
                    const float d = dz[o + p] * silu_grad(y);
                    dy[o + p] = d;
                    sb += d;
                    sx += (double)d * ((x[o + p] - mu) * r);
                }
                part[((size_t)img * c + ch) * 2] = sb;
                part[((size_t)img * c + ch) * 2 + 1] = sx;
                sg += gamma[ch] * sb;
                sgx += gamma[ch] * sx;
            }
            if (dinp)
                groupnorm_group_dx(dinp + (size_t)ng * m, set_dinp, x, dy, gamma + g * cpg, mu, r,
                                   sg, sgx, cpg, hw);
        }
    }
    groupnorm_add_param_grads(dgamma, dbeta, part, n, c);
}
