/* train.h: the training loop (one process; MPI data parallelism is added at its edges). */
#ifndef DDPM_TRAIN_H
#define DDPM_TRAIN_H

#include "config.h"

typedef struct {
    const char *run_dir; /* results/runs/NAME */
    int resume;          /* continue from run_dir/checkpoints/latest.h5 */
} TrainOptions;

/* Train; returns the process exit status. */
int train_run(const Config *cfg, const TrainOptions *opt);

#endif
