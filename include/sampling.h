/* sampling.h: generate images by running the reverse process with a trained network. */
#ifndef DDPM_SAMPLING_H
#define DDPM_SAMPLING_H

#include <stdint.h>

#include "config.h"
#include "diffusion.h"
#include "model.h"

/* the order of the [sample] sampler config choices "ddpm|ddim|dpmpp2m" */
typedef enum { SAMPLER_DDPM = 0, SAMPLER_DDIM = 1, SAMPLER_DPMPP2M = 2 } SamplerKind;

typedef struct {
    SamplerKind kind;
    int steps;  /* DDIM, DPM++ 2M: number of network evaluations; DDPM: always T */
    double eta; /* DDIM noise scale (DPM++ 2M is deterministic) */
    int spacing; /* DDIM, DPM++ 2M timesteps: 0 uniform, 1 quadratic (ddim_timesteps_quadratic) */
    int clip;   /* clamp the predicted x0 to [-1, 1] (every sampler) */
    uint64_t seed;
    double guidance; /* with labels: eps = (1 + W) eps(x, t, c) - W eps(x, t, null) */
    int prediction;  /* PredictionKind of the network ([diffusion] prediction) */
    double eps_scale; /* the noise estimate is divided by this (0 or 1: unchanged; > 1: Ning et al.'s
                       * epsilon scaling against the sampler's drift off the training inputs) */
} SamplerSpec;

/* The sampler a config's [sample] section describes, for its network ([diffusion] prediction). */
SamplerSpec sampler_spec_from_config(const Config *cfg);

/* Optional record of x_t along the way for the first `images` images (by global index):
 * `frames` snapshots from x_T to the final sample, and the timestep of each (-1 = final).
 * out[k][frames][C*S*S] holds the k-th such image that this call samples (image first + k). */
typedef struct {
    int images, frames;
    float *out;
    int *timesteps;
} Trajectory;

/* How many of the trajectory's images fall in [first, first + count). */
int trajectory_images_held(const Trajectory *t, int first, int count);

/* Initial noise x_T for images first..first+n-1: a pure function of (seed, image index). */
void sample_initial_noise(float *x, int n, int first, size_t dim, uint64_t seed);

/* Run the reverse process on x [n, C, S, S] (x_T on entry, the sample in [-1, 1] on exit), in
 * chunks of the model's batch. Image i draws its noise from (seed, step, first + i), so a
 * sample does not depend on how the images are chunked or on which process draws them.
 * labels [n]: the class of each image for a conditional model (NULL: unconditional, or the
 * null label); with spec->guidance > 0 each step evaluates the network twice (c and null).
 * dpmpp2m takes second-order steps except the first, the one into t = 0 and the last. */
void sample_run(Model *m, const float *params, const Schedule *s, const SamplerSpec *spec,
                float *x, const int *labels, int n, int first, Trajectory *traj);
/* sample_run for one chunk that may be stopped part-way (ddpm sample under preemption): start
 * after `done` of the sampler's steps (x then holds x_t after them, unclamped), and before each
 * later step ask stop() (NULL: never); on yes, return the number of steps applied so far with x
 * as it stands. Returns sampler_evaluations() when the sample is finished (and clamped). Only
 * single chunks (n at most the model's batch) start or stop part-way, and for dpmpp2m only with
 * prev: [n, C, S, S], its previous x0 estimate (read after `done` steps, left as it stands on a
 * stop; NULL: kept inside, never stopped). A trajectory's frames of the first `done` steps are
 * the caller's to restore in traj->out; their timesteps are set here. */
int sample_run_part(Model *m, const float *params, const Schedule *s, const SamplerSpec *spec,
                    float *x, const int *labels, int n, int first, Trajectory *traj, float *prev,
                    int done, int (*stop)(void));

/* The classes of images first..first+count-1 of n when classes lo..lo+k-1 are asked for: image
 * i gets lo + i k / n, so each class holds a contiguous run (a row of the grid when k divides
 * n). */
void sample_class_labels(int *labels, int lo, int k, int n, int first, int count);

const char *sampler_name(SamplerKind kind);
/* The network evaluations of one image (per guidance pass): T for DDPM, the steps otherwise. */
int sampler_evaluations(const SamplerSpec *spec, int T);

#endif
