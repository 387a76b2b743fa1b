/* groupnorm.c: GroupNorm over [n, c, hw] with `groups` groups of c/groups channels.
 *
 * forward   xhat = (x - mean_g) * rstd_g,  out = gamma_c xhat + beta_c
 * backward  with g = gamma_c dout and M = (c/groups) * hw elements per group:
 *           dx = rstd_g (g - mean(g) - xhat mean(g xhat)),
 *           dgamma_c += sum dout xhat,  dbeta_c += sum dout.
 * with mean(g) = sum_c gamma_c S_c / M and mean(g xhat) = sum_c gamma_c X_c / M, where S_c and
 * X_c, the per-image sums of dout and dout xhat over channel c, are also that image's share of
 * dbeta_c and dgamma_c: one pass over the group gives both, a second writes dx. The shares go to
 * the caller's scratch and are added per channel in image order.
 * Statistics are accumulated in double. Input gradients are threaded over (image, group),
 * gamma/beta gradients over channels, so neither needs a reduction across threads. The sums
 * are `omp simd` reductions: one double accumulator per vector lane instead of one serial
 * chain of dependent additions (which ran at a quarter of an element per cycle); the lanes are
 * combined in a fixed order, so results stay the same from run to run. */
#include <math.h>
#include <stdint.h>

#include "nn.h"

void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta, int n, int c, int hw, int groups) {
    const int cpg = c / groups;
    const size_t m = (size_t)cpg * hw;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < n * groups; ng++) {
        const int g = ng % groups;
        const float *x = inp + (size_t)ng * m; /* a group's channels are contiguous */
        float *y = out + (size_t)ng * m;
        double sum = 0.0, sq = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < m; i++) sum += x[i];
        double mu = sum / (double)m;
#pragma omp simd reduction(+ : sq)
        for (size_t i = 0; i < m; i++) {
            double d = x[i] - mu;
            sq += d * d;
        }
        float r = (float)(1.0 / sqrt(sq / (double)m + GROUPNORM_EPS));
        float mf = (float)mu;
        mean[ng] = mf;
        rstd[ng] = r;
        for (int cc = 0; cc < cpg; cc++) {
            const int ch = g * cpg + cc;
            const float a = gamma[ch] * r, b = beta[ch] - mf * a;
            const float *xc = x + (size_t)cc * hw;
            float *yc = y + (size_t)cc * hw;
            for (int p = 0; p < hw; p++) yc[p] = xc[p] * a + b;
        }
    }
}

size_t groupnorm_workspace_floats(int n, int c) { return 4 * (size_t)n * c + 2; }

void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *rstd,
                        const float *gamma, int n, int c, int hw, int groups, float *ws) {
    const int cpg = c / groups;
    const size_t m = (size_t)cpg * hw;
    /* per (image, channel): sum of dout and of dout * xhat, in double (8-byte aligned) */
    double *part = (double *)(((uintptr_t)ws + 7) & ~(uintptr_t)7);
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < n * groups; ng++) {
        const int g = ng % groups, img = ng / groups;
        const float *x = inp + (size_t)ng * m, *dy = dout + (size_t)ng * m;
        const float mu = mean[ng], r = rstd[ng];
        double sg = 0.0, sgx = 0.0; /* sums of g = gamma dout and of g * xhat */
        for (int cc = 0; cc < cpg; cc++) {
            const int ch = g * cpg + cc;
            const float *xc = x + (size_t)cc * hw, *dyc = dy + (size_t)cc * hw;
            double sb = 0.0, sx = 0.0;
#pragma omp simd reduction(+ : sb, sx)
            for (int p = 0; p < hw; p++) {
                sb += dyc[p];
                sx += (double)dyc[p] * ((xc[p] - mu) * r);
            }
            part[((size_t)img * c + ch) * 2] = sb;
            part[((size_t)img * c + ch) * 2 + 1] = sx;
            sg += gamma[ch] * sb;
            sgx += gamma[ch] * sx;
        }
        if (dinp)
            groupnorm_group_dx(dinp + (size_t)ng * m, 0, x, dy, gamma + g * cpg, mu, r, sg, sgx,
                               cpg, hw);
    }
    groupnorm_add_param_grads(dgamma, dbeta, part, n, c);
}

void groupnorm_group_dx(float *dx, int set, const float *x, const float *dy, const float *gamma,
                        float mu, float r, double sg, double sgx, int cpg, int hw) {
    const double m = (double)cpg * hw;
    const float mg = (float)(sg / m), mgx = (float)(sgx / m);
    for (int cc = 0; cc < cpg; cc++) {
        const float gm = gamma[cc];
        const size_t o = (size_t)cc * hw;
#pragma omp simd
        for (int p = 0; p < hw; p++) {
            const float xhat = (x[o + p] - mu) * r;
            const float v = r * (gm * dy[o + p] - mg - xhat * mgx);
            dx[o + p] = set ? v : dx[o + p] + v;
        }
    }
}

void groupnorm_add_param_grads(float *dgamma, float *dbeta, const double *part, int n, int c) {
    if (!dgamma && !dbeta) return;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) { /* images in order: the same sums on any thread count */
        double sb = 0.0, sx = 0.0;
        for (int i = 0; i < n; i++) {
            sb += part[((size_t)i * c + ch) * 2];
            sx += part[((size_t)i * c + ch) * 2 + 1];
        }
        if (dgamma) dgamma[ch] += (float)sx;
        if (dbeta) dbeta[ch] += (float)sb;
    }
}
