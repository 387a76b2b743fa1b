/* diffusion.h: noise schedules, forward noising and the DDPM / DDIM reverse steps.
 *
 * Timesteps are 0..T-1. Schedules are precomputed in double:
 *   linear  beta_t = beta_start + (beta_end - beta_start) t / (T - 1)   (Ho et al.)
 *   cosine  abar(t) = f(t) / f(0), f(t) = cos^2(((t/T) + s) / (1 + s) pi/2), s = 0.008,
 *           beta_t = min(1 - abar(t+1)/abar(t), 0.999)                 (Nichol & Dhariwal)
 * and alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s. */
#ifndef DDPM_DIFFUSION_H
#define DDPM_DIFFUSION_H

#include <stddef.h>

typedef enum { SCHEDULE_LINEAR, SCHEDULE_COSINE } ScheduleKind;

/* What the network is trained to output ([diffusion] prediction): the noise eps (Ho et al.), or
 * v = sqrt(abar_t) eps - sqrt(1-abar_t) x0 (Salimans & Ho 2022), whose implied x0 estimate,
 * sqrt(abar_t) x_t - sqrt(1-abar_t) v, does not divide by sqrt(abar_t): near t = T, where abar_t
 * is tiny, eps's x0 estimate multiplies the network's error by up to 1/sqrt(abar_t). */
typedef enum { PREDICT_EPS, PREDICT_V } PredictionKind;

typedef struct {
    ScheduleKind kind;
    int T;
    double *beta, *alpha, *abar; /* [T] each */
} Schedule;

void schedule_build(Schedule *s, ScheduleKind kind, int T, double beta_start, double beta_end);
void schedule_free(Schedule *s);
const char *schedule_name(ScheduleKind kind);

/* x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, per image (t [n]; each image has `dim` floats). */
void diffusion_noise(float *xt, const float *x0, const float *eps, const int *t, int n,
                     size_t dim, const Schedule *s);

/* The training target of a v-prediction network: v = sqrt(abar_t) eps - sqrt(1-abar_t) x0, per
 * image (t [n]; each image has `dim` floats). */
void diffusion_v_target(float *v, const float *x0, const float *eps, const int *t, int n,
                        size_t dim, const Schedule *s);

/* The noise a v prediction implies at x_t (every value at timestep t), in place over v:
 * eps = sqrt(abar_t) v + sqrt(1-abar_t) x_t, so that the samplers run as for eps. Their x0
 * estimate from it, (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t), equals sqrt(abar_t) x_t -
 * sqrt(1-abar_t) v: the network's error is not amplified, only eps's float rounding (about
 * 1e-7 / sqrt(abar_t): 1e-3 at the last step of the cosine schedule with T = 300). */
void diffusion_eps_from_v(float *v, const float *xt, int t, size_t count, const Schedule *s);

/* One DDPM ancestral step from t to t-1 for every image (all at the same t):
 * x <- (x - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z, no noise at t = 0.
 * With clip, the same posterior mean written through the predicted x0, clamped to [-1, 1]
 * first (as Ho et al.'s sampler does): x0 = (x - sqrt(1-abar_t) eps) / sqrt(abar_t),
 * x <- sqrt(abar_{t-1}) beta_t / (1-abar_t) x0 + sqrt(alpha_t) (1-abar_{t-1}) / (1-abar_t) x
 *      + sqrt(beta_t) z.
 * The cosine schedule needs it: its last betas are 0.999, and the unclamped step multiplies
 * the network's error by 1/sqrt(alpha_t) = 32 there. */
void ddpm_step(float *x, const float *eps, const float *z, int t, int clip, size_t count,
               const Schedule *s);

/* One DDIM step from t to t_prev (t_prev = -1 means abar_prev = 1, the last step):
 * x0 = (x - sqrt(1-abar_t) eps) / sqrt(abar_t) (when clip: clamped to [-1,1], and eps
 * re-derived from the clamped x0),
 * x <- sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z,
 * sigma = eta sqrt((1-abar_prev)/(1-abar_t)) sqrt(1 - abar_t/abar_prev). z may be NULL when
 * eta = 0. */
void ddim_step(float *x, const float *eps, const float *z, int t, int t_prev, double eta,
               int clip, size_t count, const Schedule *s);

/* One step of DPM-Solver++(2M) (Lu et al. 2022), deterministic, from t to t_next (-1: the last
 * step, to abar = 1). With lambda = log(sqrt(abar) / sqrt(1 - abar)), h = lambda_next - lambda_t
 * and x0 = (x - sqrt(1-abar_t) eps) / sqrt(abar_t) (clamped to [-1, 1] when clip):
 *   x <- sqrt((1-abar_next)/(1-abar_t)) x + sqrt(abar_next) (1 - e^-h) D,
 *   D = x0 on the first step (t_before = -1; this is DDIM with eta 0) and on the last,
 *   D = (1 + h/(2 h_before)) x0 - h/(2 h_before) x0_prev otherwise, where h_before is the
 *   previous step's lambda increment (from t_before to t) and x0_prev its x0 estimate.
 * x0_prev [count] holds that estimate on entry and this step's on exit (NULL: first-order
 * only, t_before must be -1). Second order in h where DDIM is first: fewer steps for the
 * same accuracy of the deterministic path. */
void dpmpp2m_step(float *x, const float *eps, float *x0_prev, int t_before, int t, int t_next,
                  int clip, size_t count, const Schedule *s);

/* DDIM timesteps t_i = round(i (T-1)/(K-1)), i = 0..K-1 (K >= 2), ascending, into out[K]. */
void ddim_timesteps(int *out, int K, int T);
/* A quadratic spacing (Song et al. square a linspace up to sqrt(0.8 T); this one spans 0..T-1):
 * t_i = round((i/(K-1))^2 (T-1)), raised where needed to stay strictly ascending (several low
 * i round to the same t): denser near t = 0, where the details form. Still 0 first and T-1
 * last. */
void ddim_timesteps_quadratic(int *out, int K, int T);

/* Clamp every value to [-1, 1]. */
void clamp_unit(float *x, size_t count);

#endif
