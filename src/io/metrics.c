/* metrics.c: per-step and per-epoch training metrics in an extendible HDF5 file.
 *
 * Each metric is its own 1-D dataset (not one compound table) so that a reader gets plain
 * arrays: h5py's f["loss"][:] is a float64 vector, and a plot script needs no field names.
 * Rows are buffered per kind and appended with one hyperslab write per dataset; every write ends
 * in H5Fflush so the file on disk is consistent between writes. HDF5's error stack printing is
 * switched off: each failure is reported once, through die(), naming the file and dataset. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>

#include <string.h>
#include <unistd.h>

#include "util.h"

#define CHUNK_ROWS 1024

typedef struct {
    const char *name;        /* link name inside its group */
    const char *full;        /* absolute path, for messages */
    int is_int;              /* int64 (the row's step/epoch number) or float64 */
    const char *description; /* the "description" attribute */
} Column;

static const Column STEP_COLUMNS[METRICS_STEP_COLS] = {
    {"step", "/step", 1, "optimizer step number of this row; count"},
    {"loss", "/loss", 0,
     "training loss at this step: mean squared error between the network's output and its "
     "target (the noise; v with [diffusion] prediction = v), "
     "averaged over the global batch; unitless"},
    {"lr", "/lr", 0, "learning rate used for the update of this step; unitless"},
    {"grad_norm", "/grad_norm", 0,
     "global L2 norm over all parameters of the averaged gradient at this step; unitless"},
    {"images_per_s", "/images_per_s", 0,
     "training throughput at this step, summed over all ranks; images per second"},
};

static const Column EPOCH_COLUMNS[METRICS_EPOCH_COLS] = {
    {"epoch", "/epoch/epoch", 1, "epoch number of this row (one pass over the training set)"},
    {"mean_loss", "/epoch/mean_loss", 0,
     "mean training loss over the steps of this epoch; unitless"},
    {"fid", "/epoch/fid", 0,
     "FID (ddpm eval protocol) of [train] eval_n samples after this epoch; NaN: not evaluated"},
};

static void set_string_attr(Metrics *m, hid_t obj, const char *what, const char *name,
                            const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    hid_t space = H5Screate(H5S_SCALAR);
    int ok = type >= 0 && space >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(type, H5T_CSET_UTF8) >= 0;
    hid_t attr = ok ? H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = attr >= 0 && H5Awrite(attr, type, &value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (!ok) die("%s: cannot write attribute %s of %s", m->path, name, what);
}

static hid_t create_column(Metrics *m, hid_t loc, const Column *c) {
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = CHUNK_ROWS;
    hid_t space = H5Screate_simple(1, &zero, &unlimited);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    const double nan = NAN; /* rows never written read as NaN ("not measured") */
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &chunk) >= 0 &&
        (c->is_int || H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan) >= 0))
        ds = H5Dcreate2(loc, c->name, c->is_int ? H5T_STD_I64LE : H5T_IEEE_F64LE, space,
                        H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (ds < 0) die("%s: cannot create dataset %s", m->path, c->full);
    set_string_attr(m, ds, c->full, "description", c->description);
    return ds;
}

static void create_file(Metrics *m) {
    m->file = H5Fcreate(m->path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (m->file < 0)
        die("%s: cannot create metrics file (missing directory, no permission, or open in "
            "another program?)",
            m->path);
    int version = 1;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(m->file, "format_version", H5T_STD_I32LE, space, H5P_DEFAULT,
                            H5P_DEFAULT);
    int ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT, &version) >= 0;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    if (!ok) die("%s: cannot write attribute format_version", m->path);
    set_string_attr(m, m->file, "/", "kind", "ddpm-metrics");
    m->epoch_group = H5Gcreate2(m->file, "epoch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (m->epoch_group < 0) die("%s: cannot create group /epoch", m->path);
    for (int i = 0; i < METRICS_STEP_COLS; i++)
        m->step_ds[i] = create_column(m, m->file, &STEP_COLUMNS[i]);
    for (int i = 0; i < METRICS_EPOCH_COLS; i++)
        m->epoch_ds[i] = create_column(m, m->epoch_group, &EPOCH_COLUMNS[i]);
}

/* Open an existing column and cut it to keep rows; dies if it is not a 1-D dataset holding at
 * least keep rows. */
/* Rows [from, rows) of a column standing for steps the run logged but the file lost (with
 * the file, or in a crash before they reached the disk): the step/epoch numbers from + 1..rows,
 * the measured values NaN (the fill value). */
static void pad_column(Metrics *m, hid_t ds, const Column *c, long from, long rows) {
    hsize_t n = (hsize_t)rows, start = (hsize_t)from, count = (hsize_t)(rows - from);
    if (H5Dset_extent(ds, &n) < 0) die("%s: cannot extend dataset %s", m->path, c->full);
    if (!c->is_int || count == 0) return;
    long long *v = xmalloc((size_t)count * sizeof *v);
    for (long i = from; i < rows; i++) v[i - from] = i + 1;
    hid_t fspace = H5Dget_space(ds), mspace = H5Screate_simple(1, &count, NULL);
    int ok = fspace >= 0 && mspace >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
             H5Dwrite(ds, H5T_NATIVE_LLONG, mspace, fspace, H5P_DEFAULT, v) >= 0;
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (!ok) die("%s: cannot write dataset %s (disk full?)", m->path, c->full);
    free(v);
}

/* Open column c, cut to keep rows, or padded to them when it holds fewer (*held: the fewest
 * rows found). */
static hid_t open_column(Metrics *m, hid_t loc, const Column *c, long keep, long *held) {
    if (H5Lexists(loc, c->name, H5P_DEFAULT) <= 0)
        die("%s: not a ddpm metrics file (no dataset %s)", m->path, c->full);
    hid_t ds = H5Dopen2(loc, c->name, H5P_DEFAULT);
    if (ds < 0) die("%s: cannot open dataset %s", m->path, c->full);
    hid_t space = H5Dget_space(ds);
    hsize_t len = 0;
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank == 1) H5Sget_simple_extent_dims(space, &len, NULL);
    if (space >= 0) H5Sclose(space);
    if (rank != 1) die("%s: dataset %s is not 1-D (not a ddpm metrics file?)", m->path, c->full);
    if ((long)len < *held) *held = (long)len;
    if ((hsize_t)keep > len) { /* rows lost: a crash before they reached the disk */
        pad_column(m, ds, c, (long)len, keep);
        return ds;
    }
    hsize_t want = (hsize_t)keep;
    if (want < len && H5Dset_extent(ds, &want) < 0)
        die("%s: cannot shrink dataset %s to %ld rows", m->path, c->full, keep);
    return ds;
}

static void open_file(Metrics *m, long keep_rows, long keep_epoch_rows) {
    if (H5Fis_hdf5(m->path) <= 0)
        die("%s: not an HDF5 file (expected a ddpm metrics file)", m->path);
    m->file = H5Fopen(m->path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (m->file < 0)
        die("%s: cannot open metrics file for writing (no permission, or open in another "
            "program?)",
            m->path);
    if (H5Lexists(m->file, "epoch", H5P_DEFAULT) <= 0)
        die("%s: not a ddpm metrics file (no group /epoch)", m->path);
    m->epoch_group = H5Gopen2(m->file, "epoch", H5P_DEFAULT);
    if (m->epoch_group < 0) die("%s: cannot open group /epoch", m->path);
    long held = keep_rows, epochs_held = keep_epoch_rows;
    for (int i = 0; i < METRICS_STEP_COLS; i++)
        m->step_ds[i] = open_column(m, m->file, &STEP_COLUMNS[i], keep_rows, &held);
    for (int i = 0; i < METRICS_EPOCH_COLS; i++) {
        const Column *c = &EPOCH_COLUMNS[i];
        if (i == 2 && H5Lexists(m->epoch_group, c->name, H5P_DEFAULT) <= 0) {
            /* a file from before /epoch/fid existed: add it, NaN for the rows so far */
            m->epoch_ds[i] = create_column(m, m->epoch_group, c);
            hsize_t rows = (hsize_t)keep_epoch_rows;
            if (H5Dset_extent(m->epoch_ds[i], &rows) < 0) die("%s: cannot extend %s", m->path, c->full);
        } else {
            m->epoch_ds[i] = open_column(m, m->epoch_group, c, keep_epoch_rows, &epochs_held);
        }
    }
    if (held < keep_rows || epochs_held < keep_epoch_rows)
        printf("note: %s held %ld of the %ld steps (%ld of %ld epochs) the resumed checkpoint "
               "logged (lost in a crash before they reached the disk?): kept as NaN rows\n",
               m->path, held, keep_rows, epochs_held, keep_epoch_rows);
    m->rows = m->rows_written = keep_rows;
    m->epoch_rows = m->epoch_rows_written = keep_epoch_rows;
}

void metrics_open(Metrics *m, const char *path, long keep_rows, long keep_epoch_rows) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (keep_rows < 0 || keep_epoch_rows < 0)
        die("%s: negative row counts to keep (%ld, %ld)", path, keep_rows, keep_epoch_rows);
    memset(m, 0, sizeof *m);
    m->file = m->epoch_group = -1;
    size_t len = strlen(path) + 1;
    m->path = xmalloc(len);
    memcpy(m->path, path, len);
    if (keep_rows > 0 && access(path, F_OK) != 0) {
        /* a resumed run whose metrics file is gone: the rows it had are kept as empty rows, so
         * that row i stays step i + 1 for this and every later resume */
        create_file(m);
        for (int i = 0; i < METRICS_STEP_COLS; i++)
            pad_column(m, m->step_ds[i], &STEP_COLUMNS[i], 0, keep_rows);
        for (int i = 0; i < METRICS_EPOCH_COLS; i++)
            pad_column(m, m->epoch_ds[i], &EPOCH_COLUMNS[i], 0, keep_epoch_rows);
        if (H5Fflush(m->file, H5F_SCOPE_LOCAL) < 0) die("%s: cannot flush (disk full?)", path);
        m->rows = m->rows_written = keep_rows;
        m->epoch_rows = m->epoch_rows_written = keep_epoch_rows;
        printf("note: %s was missing: made again, steps 1..%ld (logged before it was lost) "
               "as NaN rows\n", path, keep_rows);
    } else if (keep_rows == 0 || access(path, F_OK) != 0) {
        create_file(m);
    } else {
        open_file(m, keep_rows, keep_epoch_rows);
    }
}

/* Append count values (memory type mtype) at row offset of ds. */
static void append_column(Metrics *m, hid_t ds, const Column *c, long offset, int count,
                          hid_t mtype, const void *buf) {
    hsize_t start = (hsize_t)offset, n = (hsize_t)count, total = start + n;
    if (H5Dset_extent(ds, &total) < 0)
        die("%s: cannot extend dataset %s to %llu rows (disk full?)", m->path, c->full,
            (unsigned long long)total);
    hid_t fspace = H5Dget_space(ds);
    hid_t mspace = H5Screate_simple(1, &n, NULL);
    int ok = fspace >= 0 && mspace >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &n, NULL) >= 0 &&
             H5Dwrite(ds, mtype, mspace, fspace, H5P_DEFAULT, buf) >= 0;
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (!ok) die("%s: cannot write %d rows to dataset %s (disk full?)", m->path, count, c->full);
}

void metrics_flush(Metrics *m) {
    if (m->file < 0) return;
    if (m->pending > 0) {
        append_column(m, m->step_ds[0], &STEP_COLUMNS[0], m->rows_written, m->pending,
                      H5T_NATIVE_LONG, m->step_buf);
        for (int i = 1; i < METRICS_STEP_COLS; i++)
            append_column(m, m->step_ds[i], &STEP_COLUMNS[i], m->rows_written, m->pending,
                          H5T_NATIVE_DOUBLE, m->step_val[i - 1]);
        m->rows_written += m->pending;
        m->pending = 0;
    }
    if (m->epoch_pending > 0) {
        append_column(m, m->epoch_ds[0], &EPOCH_COLUMNS[0], m->epoch_rows_written,
                      m->epoch_pending, H5T_NATIVE_LONG, m->epoch_buf);
        for (int i = 1; i < METRICS_EPOCH_COLS; i++)
            append_column(m, m->epoch_ds[i], &EPOCH_COLUMNS[i], m->epoch_rows_written,
                          m->epoch_pending, H5T_NATIVE_DOUBLE, m->epoch_val[i - 1]);
        m->epoch_rows_written += m->epoch_pending;
        m->epoch_pending = 0;
    }
    if (H5Fflush(m->file, H5F_SCOPE_GLOBAL) < 0)
        die("%s: cannot flush metrics file to disk (disk full?)", m->path);
}

void metrics_append_step(Metrics *m, long step, double loss, double lr, double grad_norm,
                         double images_per_s) {
    if (m->file < 0) die("metrics_append_step: the metrics file is not open");
    int k = m->pending++;
    m->step_buf[k] = step;
    m->step_val[0][k] = loss;
    m->step_val[1][k] = lr;
    m->step_val[2][k] = grad_norm;
    m->step_val[3][k] = images_per_s;
    m->rows++;
    if (m->pending == METRICS_BUFFER) metrics_flush(m);
}

void metrics_append_epoch(Metrics *m, long epoch, double mean_loss) {
    if (m->file < 0) die("metrics_append_epoch: the metrics file is not open");
    int k = m->epoch_pending++;
    m->epoch_buf[k] = epoch;
    m->epoch_val[0][k] = mean_loss;
    m->epoch_val[1][k] = NAN;
    m->epoch_rows++;
    if (m->epoch_pending == METRICS_BUFFER) metrics_flush(m);
}

void metrics_sum_losses(Metrics *m, long first, long count, double *sum, long *finite) {
    *sum = 0.0;
    *finite = 0;
    if (m->file < 0 || count <= 0) return;
    if (first < 0 || first + count > m->rows_written)
        die("%s: rows [%ld, %ld) asked for, %ld written", m->path, first, first + count, m->rows_written);
    double *v = xcalloc((size_t)count, sizeof(double));
    hsize_t start = (hsize_t)first, n = (hsize_t)count;
    hid_t fspace = H5Dget_space(m->step_ds[1]);
    hid_t mspace = H5Screate_simple(1, &n, NULL);
    int ok = fspace >= 0 && mspace >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &n, NULL) >= 0 &&
             H5Dread(m->step_ds[1], H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, v) >= 0;
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (!ok) die("%s: cannot read %s", m->path, STEP_COLUMNS[1].full);
    for (long i = 0; i < count; i++)
        if (isfinite(v[i])) *sum += v[i], (*finite)++;
    free(v);
}

/* Read or write (write != 0) the FID of the last epoch row; 1 on success. */
static int last_fid_io(Metrics *m, double *fid, int write) {
    metrics_flush(m);
    hsize_t start = (hsize_t)(m->epoch_rows_written - 1), one = 1;
    hid_t fspace = H5Dget_space(m->epoch_ds[2]);
    hid_t mspace = H5Screate_simple(1, &one, NULL);
    const hid_t ds = m->epoch_ds[2], mem = H5T_NATIVE_DOUBLE;
    int ok = fspace >= 0 && mspace >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &one, NULL) >= 0 &&
             (write ? H5Dwrite(ds, mem, mspace, fspace, H5P_DEFAULT, fid)
                    : H5Dread(ds, mem, mspace, fspace, H5P_DEFAULT, fid)) >= 0;
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return ok;
}

void metrics_set_epoch_fid(Metrics *m, double fid) {
    if (m->file < 0 || m->epoch_rows < 1) die("metrics_set_epoch_fid: no epoch row to set");
    if (!last_fid_io(m, &fid, 1) || H5Fflush(m->file, H5F_SCOPE_GLOBAL) < 0)
        die("%s: cannot write %s (disk full?)", m->path, EPOCH_COLUMNS[2].full);
}

double metrics_last_epoch_fid(Metrics *m) {
    double fid = NAN;
    if (m->file < 0 || m->epoch_rows < 1) return fid;
    if (!last_fid_io(m, &fid, 0)) die("%s: cannot read %s", m->path, EPOCH_COLUMNS[2].full);
    return fid;
}

void metrics_sync(Metrics *m) {
    if (m->file < 0) return;
    metrics_flush(m);
    sync_file(m->path);
}

void metrics_close(Metrics *m) {
    if (m->file < 0) return;
    metrics_flush(m);
    for (int i = 0; i < METRICS_STEP_COLS; i++) H5Dclose(m->step_ds[i]);
    for (int i = 0; i < METRICS_EPOCH_COLS; i++) H5Dclose(m->epoch_ds[i]);
    H5Gclose(m->epoch_group);
    if (H5Fclose(m->file) < 0) die("%s: error closing metrics file (disk full?)", m->path);
    m->file = m->epoch_group = -1;
    free(m->path);
    m->path = NULL;
}
