/* schedule.c: beta schedules and the closed-form forward process. */
#include <math.h>

#include "diffusion.h"
#include "util.h"

const char *schedule_name(ScheduleKind kind) { return kind == SCHEDULE_COSINE ? "cosine" : "linear"; }

void schedule_build(Schedule *s, ScheduleKind kind, int T, double beta_start, double beta_end) {
    if (T < 2) die("diffusion: T must be at least 2 (got %d)", T);
    s->kind = kind;
    s->T = T;
    s->beta = xcalloc((size_t)T, sizeof(double));
    s->alpha = xcalloc((size_t)T, sizeof(double));
    s->abar = xcalloc((size_t)T, sizeof(double));
    const double cs = 0.008, half_pi = 1.5707963267948966;
    for (int t = 0; t < T; t++) {
        if (kind == SCHEDULE_LINEAR) {
            s->beta[t] = beta_start + (beta_end - beta_start) * t / (double)(T - 1);
        } else {
            double f0 = cos((t / (double)T + cs) / (1 + cs) * half_pi);
            double f1 = cos(((t + 1) / (double)T + cs) / (1 + cs) * half_pi);
            double b = 1.0 - (f1 * f1) / (f0 * f0);
            s->beta[t] = b < 0.999 ? b : 0.999;
        }
        s->alpha[t] = 1.0 - s->beta[t];
        s->abar[t] = (t ? s->abar[t - 1] : 1.0) * s->alpha[t];
    }
}

void schedule_free(Schedule *s) {
    free(s->beta);
    free(s->alpha);
    free(s->abar);
    s->beta = s->alpha = s->abar = NULL;
}

void diffusion_noise(float *xt, const float *x0, const float *eps, const int *t, int n,
                     size_t dim, const Schedule *s) {
    for (int i = 0; i < n; i++) {
        const float a = (float)sqrt(s->abar[t[i]]), b = (float)sqrt(1.0 - s->abar[t[i]]);
        const size_t o = (size_t)i * dim;
        for (size_t j = 0; j < dim; j++) xt[o + j] = a * x0[o + j] + b * eps[o + j];
    }
}

void diffusion_v_target(float *v, const float *x0, const float *eps, const int *t, int n,
                        size_t dim, const Schedule *s) {
    for (int i = 0; i < n; i++) {
        const float a = (float)sqrt(s->abar[t[i]]), b = (float)sqrt(1.0 - s->abar[t[i]]);
        const size_t o = (size_t)i * dim;
        for (size_t j = 0; j < dim; j++) v[o + j] = a * eps[o + j] - b * x0[o + j];
    }
}

void diffusion_eps_from_v(float *v, const float *xt, int t, size_t count, const Schedule *s) {
    const float a = (float)sqrt(s->abar[t]), b = (float)sqrt(1.0 - s->abar[t]);
    for (size_t j = 0; j < count; j++) v[j] = a * v[j] + b * xt[j];
}

void clamp_unit(float *x, size_t count) {
    for (size_t i = 0; i < count; i++) x[i] = x[i] < -1.0f ? -1.0f : (x[i] > 1.0f ? 1.0f : x[i]);
}
