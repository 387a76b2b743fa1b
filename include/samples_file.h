/* samples_file.h: generated images in HDF5: dataset /samples float32 [N, C, S, S] in [-1, 1]
 * with attributes kind = "ddpm-samples", step, sampler, steps, eta, spacing, clip, eps_scale,
 * seed, weights, T, schedule, source (checkpoint path); for a conditional model /labels int32
 * [N] (the class each image was asked to be) and the attribute guidance; optional /trajectory
 * [images, frames, C, S, S] with /trajectory_t (the timestep of each frame, -1 = final).
 * Written to a temporary name and renamed. Under MPI all ranks write their own rows of the one
 * file. */
#ifndef DDPM_SAMPLES_FILE_H
#define DDPM_SAMPLES_FILE_H

#include <hdf5.h>

#include "sampling.h"

typedef struct {
    long step;
    const char *weights; /* "ema" or "model" */
    const char *source;  /* checkpoint path or "training run" */
    int T;
    const char *schedule;
    int conditional; /* 1: the images have classes (/labels, and the attribute guidance) */
    double guidance; /* conditional: the guidance scale W */
} SamplesMeta;

/* A samples file being written, piece by piece, so that no rank holds all its images at once. */
typedef struct {
    hid_t f;
    char tmp[1100], path[1100];
    int n, c, s, conditional;
} SamplesFile;

/* Create path's temporary file for n images [c, s, s]. Collective. */
void samples_begin(SamplesFile *sf, const char *path, int n, int c, int s, int conditional);
/* This rank's images [first, first + count) (count may be 0) and, for a conditional file, their
 * classes. Collective: every rank makes the same number of calls. */
void samples_put(SamplesFile *sf, const float *x, const int *labels, long first, long count);
/* The attributes and, with a trajectory, the frames of this rank's images among the first
 * traj->images (its share: images [first, first + count)); then the file takes its name once
 * every rank is done. Collective. */
void samples_end(SamplesFile *sf, const SamplerSpec *spec, const SamplesMeta *meta,
                 const Trajectory *traj, long first, long count);

/* All at once: every rank passes its share x = images [first, first + count) of the n (count
 * may be 0), with their labels for a conditional model (else NULL). Collective. */
void samples_write(const char *path, const float *x, const int *labels, int first, int count,
                   int n, int c, int s, const SamplerSpec *spec, const SamplesMeta *meta,
                   const Trajectory *traj);

#endif
