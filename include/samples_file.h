/* samples_file.h: generated images in HDF5: dataset /samples float32 [N, C, S, S] in [-1, 1]
 * with attributes kind = "ddpm-samples", step, sampler, steps, eta, spacing, clip, eps_scale,
 * seed, weights, T, schedule, source (checkpoint path); for a conditional model /labels int32
 * [N] (the class each image was asked to be) and the attribute guidance; optional /trajectory
 * [images, frames, C, S, S] with /trajectory_t (the timestep of each frame, -1 = final).
 * Written to a temporary name and renamed. Under MPI all ranks write their own rows of the one
 * file. */
#ifndef DDPM_SAMPLES_FILE_H
#define DDPM_SAMPLES_FILE_H

#include "sampling.h"

typedef struct {
    long step;
    const char *weights; /* "ema" or "model" */
    const char *source;  /* checkpoint path or "training run" */
    int T;
    const char *schedule;
    const int *labels; /* conditional samples: this rank's count labels (NULL: unconditional) */
    double guidance;   /* with labels: the guidance scale W */
} SamplesMeta;

/* Every rank passes its share x = images [first, first + count) of the n (count may be 0) and,
 * with a trajectory, the frames of those of its images among the first traj->images. Collective
 * under MPI (one shared file, parallel HDF5); renamed into place once every rank is done. */
void samples_write(const char *path, const float *x, int first, int count, int n, int c, int s,
                   const SamplerSpec *spec, const SamplesMeta *meta, const Trajectory *traj);

#endif
