/* train_outputs.h: what a training run writes and prints: progress lines, metrics.h5,
 * checkpoints (latest and per epoch) and sample grids. Rank 0's business only. */
#ifndef DDPM_TRAIN_OUTPUTS_H
#define DDPM_TRAIN_OUTPUTS_H

#include "checkpoint.h"
#include "config.h"
#include "diffusion.h"
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
} TrainOutputs;

/* Open metrics.h5 (dropping rows after `step` on resume) and write config.ini. */
void train_outputs_open(TrainOutputs *o, const Config *cfg, const char *run_dir, const Model *m,
                        long step, long steps_per_epoch);
void train_outputs_step(TrainOutputs *o, long step, long total, double loss, double lr,
                        double grad_norm, double images_per_s);
/* End of an epoch (or of a run that stops mid-epoch): epoch metrics, latest.h5, and when the
 * epoch is complete epoch_NNN.h5 (keeping the newest K) and samples/epoch_NNN.{h5,png}. */
void train_outputs_epoch(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                         const Schedule *s, long epoch, double mean_loss, int complete);
/* Stopped early by signal sig: metrics flushed, latest.h5 written, a line saying how to resume. */
void train_outputs_stop(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st, int sig);
/* End of the run: latest.h5 and samples/generated.{h5,png}. */
void train_outputs_finish(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                          const Schedule *s);
void train_outputs_close(TrainOutputs *o);

#endif
