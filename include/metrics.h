/* metrics.h: the training metrics file (HDF5), readable while a run is still writing it.
 *
 * Layout (every dataset 1-D, chunked by 1024 rows, extendible, with a "description" attribute
 * giving its meaning and unit):
 *   /step          int64    optimizer step of the row
 *   /loss          float64  training loss at that step
 *   /lr            float64  learning rate used for that step
 *   /grad_norm     float64  global gradient L2 norm at that step
 *   /images_per_s  float64  training throughput
 *   /epoch/epoch      int64    epoch number
 *   /epoch/mean_loss  float64  mean training loss over that epoch
 *   /epoch/fid        float64  FID of [train] eval_n samples after that epoch; NaN when the
 *                              epoch was not evaluated (eval_every) or in files from before it
 * Root attributes: format_version = 1 (int), kind = "ddpm-metrics" (string).
 *
 * Rows are buffered in memory and written on metrics_flush, or when METRICS_BUFFER rows of a
 * kind are waiting; every write ends in H5Fflush, so another process that opens the file
 * read-only (h5py with HDF5_USE_FILE_LOCKING=FALSE) sees all flushed rows.
 *
 * Resume: a checkpoint's step says how many step rows it logged, and its step / steps per
 * epoch how many epoch rows (call metrics_sync first, so that the file on disk holds them); the
 * resumed run passes them to metrics_open, which drops the rows logged after the checkpoint. Every failure calls die() with one line naming the file.
 * One process (rank 0) owns the file; the calls are serial HDF5. */
#ifndef DDPM_METRICS_H
#define DDPM_METRICS_H

#include <hdf5.h>

#define METRICS_BUFFER 256  /* buffered rows (per kind) that trigger a write */
#define METRICS_STEP_COLS 5 /* step, loss, lr, grad_norm, images_per_s */
#define METRICS_EPOCH_COLS 3 /* epoch, mean_loss, fid */

typedef struct {
    hid_t file;
    hid_t epoch_group;
    hid_t step_ds[METRICS_STEP_COLS];   /* in the order of the layout above */
    hid_t epoch_ds[METRICS_EPOCH_COLS];
    long rows;          /* per-step rows logged so far: written plus buffered */
    long epoch_rows;    /* per-epoch rows logged so far: written plus buffered */
    long rows_written;  /* per-step rows in the file */
    long epoch_rows_written;
    /* Buffered rows: column 0 is the step (or epoch) number, the rest are the values. */
    int pending, epoch_pending;
    long step_buf[METRICS_BUFFER];
    double step_val[METRICS_STEP_COLS - 1][METRICS_BUFFER];
    long epoch_buf[METRICS_BUFFER];
    double epoch_val[METRICS_EPOCH_COLS - 1][METRICS_BUFFER];
    char *path;
} Metrics;

/* keep_rows == 0: create (truncate) path. keep_rows > 0: open the existing file and shrink the
 * per-step datasets to keep_rows rows and the per-epoch ones to keep_epoch_rows; rows it lacks
 * (lost in a crash) are added as NaN rows with a note, and so is the whole file when path does
 * not exist. Dies if it is not a metrics file. */
void metrics_open(Metrics *m, const char *path, long keep_rows, long keep_epoch_rows);
/* metrics_flush, then force the file to disk: before a checkpoint that counts its rows is
 * published, so that a machine crash cannot leave the checkpoint ahead of the file. */
void metrics_sync(Metrics *m);

void metrics_append_step(Metrics *m, long step, double loss, double lr, double grad_norm,
                         double images_per_s);
void metrics_append_epoch(Metrics *m, long epoch, double mean_loss); /* fid: NaN */
/* Set the FID of the last epoch row (written through to the file and flushed). */
void metrics_set_epoch_fid(Metrics *m, double fid);
/* The FID in the last epoch row (NaN: none, or no epoch row). */
double metrics_last_epoch_fid(Metrics *m);

/* Sum and count of the finite /loss values in rows [first, first + count) of the file (rows
 * already written): a resumed run's partial epoch mean. */
void metrics_sum_losses(Metrics *m, long first, long count, double *sum, long *finite);

/* Write every buffered row, then flush the file to disk for readers. */
void metrics_flush(Metrics *m);

/* Flush, close every handle and free m's memory. */
void metrics_close(Metrics *m);

#endif
