/* checkpoint.c: save and load the tensor table's arenas with the training state. */
#include "checkpoint.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "util.h"

static const char *const KIND = "ddpm-checkpoint";

/* "<group>/<dotted name>" and the entry's shape as HDF5 dimensions. */
static void entry_path_dims(char *path, size_t len, long long *dims, const char *group,
                            const ParamEntry *e) {
    for (int d = 0; d < e->ndim; d++) dims[d] = e->shape[d];
    snprintf(path, len, "%s/%s", group, e->name);
}

void checkpoint_write_group(hid_t f, const char *group, const ParamTable *t, const float *arena) {
    for (int i = 0; i < t->count; i++) {
        const ParamEntry *e = &t->entries[i];
        char path[256];
        long long dims[PARAM_MAX_DIMS];
        entry_path_dims(path, sizeof path, dims, group, e);
        h5t_write_f32(f, path, arena + e->offset, e->ndim, dims);
        hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
        h5a_write_long(ds, "index", i);
        H5Dclose(ds);
    }
}

/* Refuse a checkpoint that cannot fit before HDF5 meets the full disk (Debian's HDF5 1.10
 * crashes in its exit handler after a failed flush, status 139 instead of 1). The estimate is a
 * lower bound, the tensors' bytes plus 256 bytes of metadata each (measured: about 400), so a
 * write that fits is never refused; one that fails later is still reported by the flush. The
 * space of a stale tmp (left by a kill) counts as free: the write truncates it. */
static void check_room(const char *path, const char *tmp, const ParamTable *t, int groups) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return;
    struct statvfs v;
    if (statvfs(dirname(dir), &v) != 0 || v.f_blocks == 0)
        return; /* cannot tell (a file system that reports no sizes): let the write find out */
    double free_bytes = (double)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * (double)v.f_frsize;
    struct stat st;
    if (stat(tmp, &st) == 0 && S_ISREG(st.st_mode)) free_bytes += (double)st.st_blocks * 512.0;
    const double need = (double)groups * ((double)t->total * sizeof(float) + 256.0 * t->count);
    if (free_bytes < need)
        die("%s: not enough disk space for the checkpoint: it needs at least %.2f MB, %.2f MB "
            "are free%s", path, need / 1e6, free_bytes / 1e6,
            access(path, F_OK) == 0 ? " (the previous checkpoint is kept)" : "");
}

void checkpoint_save_from(const char *path, const ParamTable *t, const Arenas *a,
                          const TrainState *s, const Config *cfg, CheckpointContent content,
                          const char *attrs_from) {
    char tmp[1100];
    tmp_file_begin(tmp, sizeof tmp, path); /* checkpoint_publish ends it */
    check_room(path, tmp, t, content == CKPT_FULL ? 4 : 2);
    hid_t f = h5t_create(tmp);
    char *text = config_text(cfg);
    h5a_write_string(f, "kind", KIND);
    h5a_write_long(f, "format_version", CHECKPOINT_FORMAT_VERSION);
    h5a_write_string(f, "code_version", DDPM_VERSION);
    h5a_write_string(f, "content", content == CKPT_FULL ? "full" : "weights");
    h5a_write_long(f, "step", s->step);
    h5a_write_long(f, "steps_per_epoch", s->steps_per_epoch);
    h5a_write_long(f, "epoch", s->steps_per_epoch ? s->step / s->steps_per_epoch : 0);
    h5a_write_long(f, "data_position", s->steps_per_epoch ? s->step % s->steps_per_epoch : 0);
    h5a_write_long(f, "nan_skips", s->nan_skips);
    h5a_write_long(f, "batch", cfg->train.batch);
    h5a_write_long(f, "seed", cfg->train.seed);
    h5a_write_long(f, "T", cfg->diffusion.T);
    h5a_write_string(f, "schedule", schedule_name((ScheduleKind)cfg->diffusion.schedule));
    h5a_write_string(f, "config", text);
    free(text);
    checkpoint_write_group(f, "/params", t, a->params);
    checkpoint_write_group(f, "/ema", t, a->ema);
    if (content == CKPT_FULL) {
        checkpoint_write_group(f, "/adam/m", t, a->adam_m);
        checkpoint_write_group(f, "/adam/v", t, a->adam_v);
    }
    if (attrs_from) {
        hid_t from = h5t_open_read(attrs_from);
        h5a_copy_missing(from, f);
        h5t_close(from);
    }
    checkpoint_publish(f, tmp, path);
}

void checkpoint_save(const char *path, const ParamTable *t, const Arenas *a, const TrainState *s,
                     const Config *cfg, CheckpointContent content) {
    checkpoint_save_from(path, t, a, s, cfg, content, NULL);
}

void checkpoint_publish(hid_t f, const char *tmp, const char *path) {
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) die("%s: cannot flush (disk full?)", tmp);
    h5t_close(f);
    sync_file(tmp);
    if (rename(tmp, path) != 0) die("%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    tmp_file_done(tmp);
    sync_dir_of(path);
}

/* Open a checkpoint and check it is one this program can read. */
static hid_t open_checkpoint(const char *path) {
    hid_t f = h5t_open_read(path);
    char *kind = h5a_read_string(f, "kind");
    if (!kind || strcmp(kind, KIND))
        die("%s: not a ddpm checkpoint (an HDF5 file of another kind: attribute kind is %s%s%s)",
            path, kind ? "'" : "missing or not one string", kind ? kind : "", kind ? "'" : "");
    free(kind);
    long long version = 0;
    if (!h5a_read_long(f, "format_version", &version))
        die("%s: checkpoint has no format_version attribute", path);
    if (version > CHECKPOINT_FORMAT_VERSION)
        die("%s: checkpoint format_version %lld is newer than this ddpm reads (%d): upgrade ddpm",
            path, version, CHECKPOINT_FORMAT_VERSION);
    return f;
}

void checkpoint_read_config(const char *path, Config *cfg) {
    hid_t f = open_checkpoint(path);
    char *text = h5a_read_string(f, "config");
    if (!text) die("%s: checkpoint has no config attribute", path);
    config_defaults(cfg);
    char origin[1100];
    snprintf(origin, sizeof origin, "%s (config attribute)", path);
    config_load_text(cfg, text, origin);
    config_validate(cfg, origin);
    free(text);
    h5t_close(f);
}

void checkpoint_read_group(hid_t f, const char *group, const ParamTable *t, float *arena) {
    for (int i = 0; i < t->count; i++) {
        const ParamEntry *e = &t->entries[i];
        char path[256];
        long long dims[PARAM_MAX_DIMS];
        entry_path_dims(path, sizeof path, dims, group, e);
        h5t_read_f32(f, path, arena + e->offset, e->ndim, dims);
    }
}

void checkpoint_read_state(const char *path, TrainState *s) {
    hid_t f = open_checkpoint(path);
    long long step = 0, spe = 0, skips = 0;
    if (!h5a_read_long(f, "step", &step) || !h5a_read_long(f, "steps_per_epoch", &spe) ||
        !h5a_read_long(f, "nan_skips", &skips) || step < 0 || spe < 1)
        die("%s: checkpoint attributes step/steps_per_epoch/nan_skips missing or invalid", path);
    s->step = (long)step;
    s->steps_per_epoch = (long)spe;
    s->nan_skips = (long)skips;
    h5t_close(f);
}

void checkpoint_load(const char *path, const ParamTable *t, Arenas *a, TrainState *s,
                     CheckpointContent content) {
    hid_t f = open_checkpoint(path);
    checkpoint_read_group(f, "/params", t, a->params);
    checkpoint_read_group(f, "/ema", t, a->ema);
    if (content == CKPT_FULL) {
        char *what = h5a_read_string(f, "content");
        int full = what && !strcmp(what, "full");
        free(what);
        if (!full) die("%s: holds weights only (no optimiser state): cannot resume from it", path);
        checkpoint_read_group(f, "/adam/m", t, a->adam_m);
        checkpoint_read_group(f, "/adam/v", t, a->adam_v);
    }
    h5t_close(f);
    if (content == CKPT_FULL) checkpoint_read_state(path, s);
}
