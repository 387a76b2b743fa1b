/* sample_progress.h: the completed chunks of a `ddpm sample` run, kept in OUT.part so that a
 * run stopped by a signal (a Slurm preemption, a time limit) or killed outright resumes where
 * it left off instead of starting again.
 *
 * The images are sampled in chunks of `batch` (chunk c: images [c batch, (c+1) batch) of n);
 * after every round of chunks (one per rank) their rows of /samples and their flags in
 * /done_chunks are written and synced to disk (the images before their flags), so at most one
 * round is lost, also to a machine crash. The file's resume_key
 * attribute names everything the images depend on (checkpoint, sampler settings, n, batch, seed,
 * classes, initial noise): a rerun with the same options resumes, one with other options is
 * refused rather than mixing two runs' images. Since each image's noise is keyed by its index,
 * a resumed run's images are bit-identical to those of an uninterrupted one, for any rank
 * counts before and after. A chunk stopped part-way by a signal keeps x_t in its rows of
 * /samples and the number of sampler steps applied in /steps_done (optional in a file: absent
 * reads as none), with its trajectory frames so far and for dpmpp2m its last x0 estimate in
 * /x0_prev, and a resumed run continues it from that step. All calls are collective
 * under MPI, except progress_read_chunk. */
#ifndef DDPM_SAMPLE_PROGRESS_H
#define DDPM_SAMPLE_PROGRESS_H

#include <hdf5.h>

#include "sampling.h"

typedef struct {
    hid_t f;
    char path[1100];
    int n, batch, nchunks, c, s;
    int resumed;                  /* the file existed: this run continues it */
    int traj_images, traj_frames; /* 0: no trajectory kept */
    int *done;                     /* [nchunks]: 1 = the chunk's images are in the file */
    int *steps_done;               /* [nchunks]: of a chunk not done, the sampler steps its rows
                                    * hold (0: not started) */
} SampleProgress;

/* Open out's progress file (out + ".part"), resuming it when it holds the same key, or create
 * it. traj: the trajectory's shape when one is asked for (NULL: none). */
void progress_open(SampleProgress *p, const char *out, const char *key, int n, int batch, int c,
                   int s, const Trajectory *traj);
/* Images in chunk c: batch, or fewer in the last chunk. */
static inline int progress_chunk_images(const SampleProgress *p, int c) {
    return c * p->batch + p->batch <= p->n ? p->batch : p->n - c * p->batch;
}
/* Images in the chunks marked done. */
static inline long progress_images_done(const SampleProgress *p) {
    long held = 0;
    for (int c = 0; c < p->nchunks; c++)
        if (p->done[c]) held += progress_chunk_images(p, c);
    return held;
}
/* One round: this rank's chunk (-1: none this round) with its images x, and, when the chunk
 * held trajectory images, traj (else NULL). partial: 0 when the chunk is finished (it is marked
 * done), else the sampler steps applied to x, a chunk stopped part-way; its trajectory frames
 * so far are kept, and prev (dpmpp2m's previous x0 estimate of the chunk; NULL for the other
 * samplers) in /x0_prev. Flushes. */
void progress_write_round(SampleProgress *p, int chunk, const float *x, const Trajectory *traj,
                          const float *prev, int partial);
/* The rows of a chunk stopped part-way (x_t after steps_done[chunk] steps), into x, and with
 * traj (NULL: none) the trajectory frames its images have so far, with prev (dpmpp2m) its
 * previous x0 estimate. */
void progress_read_chunk(const SampleProgress *p, int chunk, float *x, Trajectory *traj,
                         float *prev);
/* Close the file (collective). */
void progress_close(SampleProgress *p);
/* Once every chunk is done and the file is closed: images [first, first + count) into x. */
void progress_read_rows(const SampleProgress *p, float *x, long first, long count);
/* Likewise the trajectory: the frames of this rank's images among them (its share: images
 * [first, first + count)) and the frame timesteps, into traj. */
void progress_read_trajectory(const SampleProgress *p, Trajectory *traj, long first, long count);
/* Remove the progress file (rank 0), after the samples file is in place. */
void progress_remove(SampleProgress *p);

#endif
