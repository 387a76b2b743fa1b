/* samplers.c: the DDPM ancestral step, the DDIM step (Song et al.) and the second-order
 * multistep DPM-Solver++(2M) step (Lu et al.). */
#include <math.h>

#include "diffusion.h"
#include "util.h"

void ddpm_step(float *x, const float *eps, const float *z, int t, int clip, size_t count,
               const Schedule *s) {
    const float sigma = t > 0 ? (float)sqrt(s->beta[t]) : 0.0f;
    if (!clip) {
        const float c_eps = (float)(s->beta[t] / sqrt(1.0 - s->abar[t]));
        const float c_x = (float)(1.0 / sqrt(s->alpha[t]));
        for (size_t i = 0; i < count; i++) {
            float v = (x[i] - c_eps * eps[i]) * c_x;
            x[i] = sigma > 0.0f ? v + sigma * z[i] : v;
        }
        return;
    }
    /* the same mean written through x0, which is clamped first */
    const double at = s->abar[t], ap = t > 0 ? s->abar[t - 1] : 1.0;
    const float sa = (float)sqrt(at), sb = (float)sqrt(1.0 - at);
    const float c0 = (float)(sqrt(ap) * s->beta[t] / (1.0 - at));
    const float cx = (float)(sqrt(s->alpha[t]) * (1.0 - ap) / (1.0 - at));
    for (size_t i = 0; i < count; i++) {
        float x0 = (x[i] - sb * eps[i]) / sa;
        x0 = x0 < -1.0f ? -1.0f : x0 > 1.0f ? 1.0f : x0;
        float v = c0 * x0 + cx * x[i];
        x[i] = sigma > 0.0f ? v + sigma * z[i] : v;
    }
}

void ddim_step(float *x, const float *eps, const float *z, int t, int t_prev, double eta,
               int clip, size_t count, const Schedule *s) {
    const double at = s->abar[t], ap = t_prev >= 0 ? s->abar[t_prev] : 1.0;
    const double sigma = eta * sqrt((1.0 - ap) / (1.0 - at)) * sqrt(1.0 - at / ap);
    double dir2 = 1.0 - ap - sigma * sigma;
    const float c_dir = (float)sqrt(dir2 > 0.0 ? dir2 : 0.0);
    const float sa = (float)sqrt(at), sb = (float)sqrt(1.0 - at), sp = (float)sqrt(ap);
    const float fs = (float)sigma;
    if (fs > 0.0f && !z) die("ddim_step: eta > 0 needs noise");
    for (size_t i = 0; i < count; i++) {
        float x0 = (x[i] - sb * eps[i]) / sa, e = eps[i];
        if (clip && (x0 < -1.0f || x0 > 1.0f)) {
            /* clamp x0 and re-derive the noise that is consistent with it */
            x0 = x0 < -1.0f ? -1.0f : 1.0f;
            e = (x[i] - sa * x0) / sb;
        }
        float v = sp * x0 + c_dir * e;
        x[i] = fs > 0.0f ? v + fs * z[i] : v;
    }
}

/* half the log signal-to-noise ratio, log(sqrt(abar) / sqrt(1 - abar)) */
static double half_log_snr(double abar) { return 0.5 * log(abar / (1.0 - abar)); }

void dpmpp2m_step(float *x, const float *eps, float *x0_prev, int t_before, int t, int t_next,
                  int clip, size_t count, const Schedule *s) {
    const double at = s->abar[t];
    const float sa = (float)sqrt(at), sb = (float)sqrt(1.0 - at);
    /* D = w x0 + (1 - w) x0_prev: the data estimate extrapolated to the middle of the step */
    float w = 1.0f, c_x = 0.0f, c_d = 1.0f; /* the last step (sigma_next = 0): x <- x0 */
    if (t_next >= 0) {
        const double an = s->abar[t_next];
        const double h = half_log_snr(an) - half_log_snr(at);
        if (!(h > 0.0)) die("dpmpp2m_step: t_next = %d is not less noisy than t = %d", t_next, t);
        c_x = (float)sqrt((1.0 - an) / (1.0 - at));
        c_d = (float)(-sqrt(an) * expm1(-h));
        if (t_before >= 0) {
            if (!x0_prev) die("dpmpp2m_step: a second-order step needs the previous x0");
            const double h_before = half_log_snr(at) - half_log_snr(s->abar[t_before]);
            if (!(h_before > 0.0))
                die("dpmpp2m_step: t_before = %d is not noisier than t = %d", t_before, t);
            w = (float)(1.0 + 0.5 * h / h_before);
        }
    }
    for (size_t i = 0; i < count; i++) {
        float x0 = (x[i] - sb * eps[i]) / sa;
        if (clip) x0 = x0 < -1.0f ? -1.0f : x0 > 1.0f ? 1.0f : x0;
        const float d = w == 1.0f ? x0 : w * x0 + (1.0f - w) * x0_prev[i];
        if (x0_prev) x0_prev[i] = x0;
        x[i] = c_x * x[i] + c_d * d;
    }
}

void ddim_timesteps(int *out, int K, int T) {
    if (K < 2 || K > T) die("ddim: --steps must be in 2..T=%d (got %d)", T, K);
    for (int i = 0; i < K; i++) out[i] = (int)lround((double)i * (T - 1) / (double)(K - 1));
}

void ddim_timesteps_quadratic(int *out, int K, int T) {
    if (K < 2 || K > T) die("ddim: --steps must be in 2..T=%d (got %d)", T, K);
    for (int i = 0; i < K; i++) {
        const double u = (double)i / (K - 1);
        out[i] = (int)lround(u * u * (T - 1));
        if (i > 0 && out[i] <= out[i - 1]) out[i] = out[i - 1] + 1;
    }
    /* the raised run never reaches past T-1 (K <= T), but rounding must not either */
    for (int i = K - 1; i >= 0; i--)
        if (out[i] > T - K + i) out[i] = T - K + i;
}
