/* train_outputs.h: what a training run writes and prints: progress lines, metrics.h5,
 * checkpoints (latest and per epoch) and sample grids. Every rank calls every function: the
 * sample grids are drawn by all ranks together; files and lines are rank 0's business. */
#ifndef DDPM_TRAIN_OUTPUTS_H
#define DDPM_TRAIN_OUTPUTS_H

#include "checkpoint.h"
#include "config.h"
#include "diffusion.h"
#include "grad_sync.h"
#include "metrics.h"
#include "model.h"

typedef struct {
    const Config *cfg;
    const char *run_dir;
    Metrics metrics;
    int tty;          /* live progress line instead of periodic log lines */
    double start;     /* wall clock at open */
    long first_step;  /* step the run (or resumed run) started at */
    long steps_per_epoch;
    int root;         /* this rank writes the files */
} TrainOutputs;

/* Open metrics.h5 (dropping rows after `step` on resume) and write config.ini. total: the
 * run's last step (a run resumed at its end keeps the row of its last, partial epoch). */
void train_outputs_open(TrainOutputs *o, const Config *cfg, const char *run_dir, const Model *m,
                        long step, long steps_per_epoch, long total);
void train_outputs_step(TrainOutputs *o, long step, long total, double loss, double lr,
                        double grad_norm, double images_per_s);
/* End of an epoch (or of a run that stops mid-epoch): epoch metrics, latest.h5, and when the
 * epoch is complete epoch_NNN.h5 (keeping the newest K), samples/epoch_NNN.{h5,png} and the
 * FID when [train] eval_every asks. The sampling asks before each chunk whether a stop signal
 * came: then it returns 1 with the samples or FID not made (the checkpoint is saved). */
int train_outputs_epoch(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                        const Schedule *s, long epoch, double mean_loss, int complete);
/* A run resumed at the end of a complete epoch: that epoch's samples or FID when they are
 * missing (a stop came during them). Returns 1 when a stop signal cut them short again. */
int train_outputs_resume_epoch(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                               const Schedule *s);
/* Stopped early by signal sig: metrics flushed, latest.h5 written, a line saying how to resume. */
void train_outputs_stop(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st, int sig);
/* End of the run (after the last epoch's outputs, which saved latest.h5): the samples
 * samples/generated.{h5,png}; 1 when a stop signal cut them short (nothing written). */
int train_outputs_finish(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                         const Schedule *s);
/* A run resumed mid-epoch: the sum and count of the finite losses its epoch already logged (one
 * metrics row per step), so the epoch's mean covers the whole epoch. Rank 0; others get 0. */
void train_outputs_epoch_so_far(TrainOutputs *o, long step, double *sum, long *count);
/* Write pending metrics rows (before a checkpoint: a checkpoint never runs ahead of them). */
void train_outputs_flush(TrainOutputs *o);
/* The speed line: images/s over `steps` timed steps and, under MPI, the fastest and slowest
 * rank's compute (forward + backward) per step, the gradient sum's cost and one blocking
 * allreduce timed alone. Collective. */
void train_outputs_timing(TrainOutputs *o, long steps, double seconds, double compute_seconds,
                          const GradSync *g);
void train_outputs_close(TrainOutputs *o);

#endif
