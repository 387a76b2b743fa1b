/* checkpoint.h: training state in HDF5, one dataset per tensor by its dotted name.
 *
 *   /params/<name>, /ema/<name>, /adam/m/<name>, /adam/v/<name>  float32, PyTorch layouts,
 *     each with an integer attribute `index` (its place in the tensor table)
 *   root attributes: kind = "ddpm-checkpoint", format_version, code_version, step, epoch,
 *     steps_per_epoch, data_position, batch, seed, T, schedule, nan_skips, config (INI text)
 *
 * Written to PATH.tmp, flushed, fsynced, renamed over PATH and the directory fsynced: a crash
 * leaves either the old file or the new one, never a broken one. */
#ifndef DDPM_CHECKPOINT_H
#define DDPM_CHECKPOINT_H

#include "config.h"
#include "params.h"

#define CHECKPOINT_FORMAT_VERSION 1

typedef struct {
    long step;            /* optimiser steps completed */
    long steps_per_epoch; /* with the data order a pure function of (seed, epoch), step and
                             steps_per_epoch give the exact position in the data */
    long nan_skips;       /* updates skipped for a non-finite loss or gradient */
} TrainState;

typedef enum { CKPT_WEIGHTS = 0, CKPT_FULL = 1 } CheckpointContent; /* weights = params + EMA */

void checkpoint_save(const char *path, const ParamTable *t, const Arenas *a, const TrainState *s,
                     const Config *cfg, CheckpointContent content);
/* checkpoint_save, and then the root attributes of the file attrs_from (NULL: none) that it
 * does not write itself, e.g. the provenance another tool recorded (ddpm export). */
void checkpoint_save_from(const char *path, const ParamTable *t, const Arenas *a,
                          const TrainState *s, const Config *cfg, CheckpointContent content,
                          const char *attrs_from);

/* The config a checkpoint was trained with (dies when the file is not a ddpm checkpoint). */
void checkpoint_read_config(const char *path, Config *cfg);

/* step, steps_per_epoch and nan_skips of any checkpoint (full or weights-only). */
void checkpoint_read_state(const char *path, TrainState *s);

/* Load into arenas laid out by t (built from the checkpoint's config): params and EMA always,
 * Adam moments and the state when content is CKPT_FULL. Dies naming the file and the tensor on
 * any mismatch. */
void checkpoint_load(const char *path, const ParamTable *t, Arenas *a, TrainState *s,
                     CheckpointContent content);

/* Building blocks, also for other files of tensors (the evaluation classifier): every tensor of
 * the table under GROUP/<name> with its `index` attribute; read back with exact shape checks;
 * flush, close, fsync, rename tmp over path and fsync the directory. */
#include <hdf5.h>
void checkpoint_write_group(hid_t f, const char *group, const ParamTable *t, const float *arena);
void checkpoint_read_group(hid_t f, const char *group, const ParamTable *t, float *arena);
void checkpoint_publish(hid_t f, const char *tmp, const char *path);

#endif
