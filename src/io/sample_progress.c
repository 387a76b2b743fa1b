/* sample_progress.c: a sampling run's completed chunks in OUT.part (see sample_progress.h). */
#include "sample_progress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "h5attr.h"
#include "h5shared.h"
#include "h5tensor.h"
#include "util.h"

#define KIND "ddpm-sample-progress"

/* Everything written so far is on disk (not only handed to the OS): a machine crash after it
 * keeps it. */
static void flush(const SampleProgress *p) {
    if (H5Fflush(p->f, H5F_SCOPE_GLOBAL) < 0) die("%s: cannot flush (disk full?)", p->path);
    if (dist_is_root()) sync_file(p->path);
}

/* The first item (", "-separated) in which two keys differ, as "name value" each. */
static void first_difference(const char *a, const char *b, char *ia, char *ib, size_t len) {
    for (;;) {
        const size_t na = strcspn(a, ","), nb = strcspn(b, ",");
        if (na != nb || strncmp(a, b, na) || !a[na] || !b[nb]) {
            snprintf(ia, len, "%.*s", (int)na, a);
            snprintf(ib, len, "%.*s", (int)nb, b);
            return;
        }
        a += na + 1 + (a[na + 1] == ' ');
        b += nb + 1 + (b[nb + 1] == ' ');
    }
}

/* Every rank: the done flags of an existing progress file, after checking that it is one and
 * that it belongs to this run (its key). */
static void read_existing(SampleProgress *p, const char *key) {
    if (H5Fis_hdf5(p->path) <= 0)
        die("%s exists but cannot be read as HDF5 (cut short by a crash or a full disk?): remove "
            "it to start the run over",
            p->path);
    hid_t f = h5t_open_read(p->path);
    char *kind = h5a_read_string(f, "kind");
    char *held = h5a_read_string(f, "resume_key");
    if (!kind || strcmp(kind, KIND) || !held)
        die("%s exists but is not a ddpm sampling progress file; move it away", p->path);
    if (strcmp(held, key)) {
        const size_t len = strlen(held) + strlen(key) + 1;
        char *its = xmalloc(len), *this = xmalloc(len);
        first_difference(held, key, its, this, len);
        die("%s holds the progress of another sampling run (%s, where this one has %s): rerun "
            "with that run's options to finish it, or remove the file to start over",
            p->path, its, this);
    }
    int nd = 0;
    long long dims[H5T_MAX_DIMS];
    if (!h5t_dims(f, "/done_chunks", &nd, dims) || nd != 1 || dims[0] != p->nchunks)
        die("%s: /done_chunks is missing or not [%d] (a damaged progress file): remove it to start "
            "the run over",
            p->path, p->nchunks);
    h5t_read_i32(f, "/done_chunks", p->done, 1, (long long[]){p->nchunks});
    if (h5t_dims(f, "/steps_done", &nd, dims)) { /* absent in files of older builds: none */
        if (nd != 1 || dims[0] != p->nchunks)
            die("%s: /steps_done is not [%d] (a damaged progress file): remove it to start the "
                "run over", p->path, p->nchunks);
        h5t_read_i32(f, "/steps_done", p->steps_done, 1, (long long[]){p->nchunks});
    }
    free(kind);
    free(held);
    h5t_close(f);
}

/* /steps_done with this rank's chunk's entry (chunk -1: none). Created when missing (a new
 * file, or one of a build before it), every entry written: 0, none started part-way. */
static void write_steps_done(SampleProgress *p, int chunk, int steps) {
    if (H5Lexists(p->f, "/steps_done", H5P_DEFAULT) <= 0) {
        int *zeros = xcalloc((size_t)p->nchunks, sizeof(int));
        h5s_write_rows_i32(p->f, "/steps_done", zeros, 1, (long long[]){p->nchunks}, 0,
                           dist_is_root() ? p->nchunks : 0);
        free(zeros);
        h5a_describe(p->f, "/steps_done",
                     "of a chunk not yet done, the sampler steps applied to its rows of /samples "
                     "(x_t, a chunk stopped part-way); 0: not started, [chunks]");
    }
    h5s_write_rows_i32(p->f, "/steps_done", &steps, 1, (long long[]){p->nchunks},
                       chunk >= 0 ? chunk : 0, chunk >= 0);
}

void progress_open(SampleProgress *p, const char *out, const char *key, int n, int batch, int c,
                   int s, const Trajectory *traj) {
    memset(p, 0, sizeof *p);
    if (snprintf(p->path, sizeof p->path, "%s.part", out) >= (int)sizeof p->path)
        die("%s: path too long", out);
    p->n = n, p->batch = batch, p->c = c, p->s = s;
    p->nchunks = (n + batch - 1) / batch;
    if (traj) p->traj_images = traj->images, p->traj_frames = traj->frames;
    p->done = xcalloc((size_t)p->nchunks, sizeof(int));
    p->steps_done = xcalloc((size_t)p->nchunks, sizeof(int));
    const int exists = dist_file_exists(p->path, "output");
    if (exists) {
        p->resumed = 1;
        read_existing(p, key);
        /* one file for every rank, not a copy per node: the same chunks done and part-way */
        uint64_t h = 1469598103934665603u;
        for (int i = 0; i < p->nchunks; i++)
            h = (h ^ (uint64_t)(p->done[i] + 2 * (uint64_t)p->steps_done[i])) * 1099511628211u;
        if (!dist_all_equal_u64(h))
            die("%s: the ranks read different progress files (other chunks done or part-way): "
                "the output must be on a file system every rank shares", p->path);
        dist_barrier(); /* every rank has closed it before it is opened for writing */
        p->f = h5s_open_rw(p->path);
        return;
    }
    p->f = h5s_create(p->path);
    h5a_write_string(p->f, "kind", KIND);
    h5a_write_long(p->f, "format_version", 1);
    h5a_write_string(p->f, "description",
                     "the images of an unfinished `ddpm sample` run, chunk by chunk; rerun the "
                     "same command to finish it");
    h5a_write_string(p->f, "resume_key", key);
    h5a_write_long(p->f, "n", n);
    h5a_write_long(p->f, "batch", batch);
    h5s_write_rows_f32(p->f, "/samples", NULL, 4, (long long[]){n, c, s, s}, 0, 0);
    h5a_describe(p->f, "/samples", "generated images of the chunks marked done, [N, C, H, W]");
    h5s_write_rows_i32(p->f, "/done_chunks", p->done, 1, (long long[]){p->nchunks}, 0,
                       dist_is_root() ? p->nchunks : 0);
    h5a_describe(p->f, "/done_chunks",
             "1 where chunk c (images c batch .. (c+1) batch - 1) is in /samples, [chunks]");
    write_steps_done(p, -1, 0);
    if (traj) {
        h5s_write_rows_f32(p->f, "/trajectory", NULL, 5,
                           (long long[]){traj->images, traj->frames, c, s, s}, 0, 0);
        h5a_describe(p->f, "/trajectory", "x_t along the reverse process for the first images, "
                                      "once their chunks are done (the frames so far of a "
                                      "chunk stopped part-way)");
        h5s_write_rows_i32(p->f, "/trajectory_t", NULL, 1, (long long[]){traj->frames}, 0, 0);
        h5a_describe(p->f, "/trajectory_t", "timestep of each frame, once the first chunk is done");
    }
    flush(p);
}

void progress_write_round(SampleProgress *p, int chunk, const float *x, const Trajectory *traj,
                          const float *prev, int partial) {
    const int first = chunk >= 0 ? chunk * p->batch : 0;
    const int count = chunk >= 0 ? progress_chunk_images(p, chunk) : 0;
    const int C = p->c, S = p->s;
    /* a chunk that was part-way: its step count goes back to 0 before its rows change, so that
     * a crash in between leaves a chunk to start over (exactly), never new rows read as x_t of
     * the old step */
    const int was_part = chunk >= 0 && p->steps_done[chunk] > 0;
    if (dist_max_int(was_part)) {
        write_steps_done(p, was_part ? chunk : -1, 0);
        flush(p);
    }
    h5s_write_rows_f32(p->f, "/samples", x, 4, (long long[]){p->n, C, S, S}, first, count);
    if (p->traj_images) {
        const int held = traj ? trajectory_images_held(traj, first, count) : 0;
        h5s_write_rows_f32(p->f, "/trajectory", traj ? traj->out : NULL, 5,
                           (long long[]){p->traj_images, p->traj_frames, C, S, S},
                           held ? first : 0, held);
        /* the frame timesteps from a finished chunk (a part-way one has not set them all) */
        const int full = held && !partial;
        h5s_write_rows_i32(p->f, "/trajectory_t", full ? traj->timesteps : NULL, 1,
                           (long long[]){p->traj_frames}, 0, full ? p->traj_frames : 0);
    }
    /* dpmpp2m: the previous x0 estimate of a chunk stopped part-way (made with the first one) */
    const int keep = chunk >= 0 && prev && partial;
    if (dist_max_int(keep)) {
        const int fresh = H5Lexists(p->f, "/x0_prev", H5P_DEFAULT) <= 0;
        h5s_write_rows_f32(p->f, "/x0_prev", keep ? prev : NULL, 4, (long long[]){p->n, C, S, S},
                           first, keep ? count : 0);
        if (fresh)
            h5a_describe(p->f, "/x0_prev",
                         "dpmpp2m: of a chunk stopped part-way, the x0 estimate of its last step "
                         "(the next one extrapolates from it), [N, C, H, W]");
    }
    flush(p); /* the images are on disk before their chunk is marked done (or part-way) */
    const int one = 1, finished = chunk >= 0 && !partial;
    h5s_write_rows_i32(p->f, "/done_chunks", &one, 1, (long long[]){p->nchunks},
                       finished ? chunk : 0, finished);
    write_steps_done(p, partial ? chunk : -1, partial);
    flush(p);
    /* every rank learns which chunks the others finished or left part-way (and at which step) */
    const size_t nc = (size_t)p->nchunks;
    double *flags = xcalloc(2 * nc, sizeof(double)), *parts = flags + nc;
    if (finished) flags[chunk] = 1;
    if (chunk >= 0) parts[chunk] = partial + 1; /* 1: in this round, not left part-way */
    dist_sum_doubles(flags, 2 * nc);
    for (size_t r = 0; r < nc; r++) {
        p->done[r] = p->done[r] || flags[r] > 0;
        if (parts[r] > 0) p->steps_done[r] = (int)parts[r] - 1;
    }
    free(flags);
}

void progress_close(SampleProgress *p) {
    h5t_close(p->f);
    p->f = -1;
    dist_barrier();
}

void progress_read_rows(const SampleProgress *p, float *x, long first, long count) {
    hid_t f = h5t_open_read(p->path);
    h5s_read_rows_f32(f, "/samples", x, 4, (long long[]){p->n, p->c, p->s, p->s}, first, count);
    h5t_close(f);
}

void progress_read_chunk(const SampleProgress *p, int chunk, float *x, Trajectory *traj,
                         float *prev) {
    const int first = chunk * p->batch, count = progress_chunk_images(p, chunk);
    const long long dims[] = {p->n, p->c, p->s, p->s};
    h5s_read_rows_f32(p->f, "/samples", x, 4, dims, first, count);
    const int held = traj ? trajectory_images_held(traj, first, count) : 0;
    if (held)
        h5s_read_rows_f32(p->f, "/trajectory", traj->out, 5,
                          (long long[]){p->traj_images, p->traj_frames, p->c, p->s, p->s}, first,
                          held);
    if (prev) {
        if (H5Lexists(p->f, "/x0_prev", H5P_DEFAULT) <= 0)
            die("%s: chunk %d is part-way but /x0_prev, which dpmpp2m continues from, is missing "
                "(a damaged progress file): remove it to start the run over", p->path, chunk);
        h5s_read_rows_f32(p->f, "/x0_prev", prev, 4, dims, first, count);
    }
}

void progress_read_trajectory(const SampleProgress *p, Trajectory *traj, long first, long count) {
    hid_t f = h5t_open_read(p->path);
    const int held = trajectory_images_held(traj, (int)first, (int)count);
    h5s_read_rows_f32(f, "/trajectory", traj->out, 5,
                      (long long[]){p->traj_images, p->traj_frames, p->c, p->s, p->s},
                      held ? first : 0, held);
    h5t_read_i32(f, "/trajectory_t", traj->timesteps, 1, (long long[]){p->traj_frames});
    h5t_close(f);
}

void progress_remove(SampleProgress *p) {
    if (dist_is_root() && unlink(p->path) != 0)
        die("%s: cannot remove: %s", p->path, strerror(errno));
    free(p->done);
    free(p->steps_done);
    p->done = p->steps_done = NULL;
}
