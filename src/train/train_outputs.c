/* train_outputs.c: progress, metrics, checkpoints and sample grids of a training run. */
#include "train_outputs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "evaluate.h"
#include "png_grid.h"
#include "samples_file.h"
#include "stop_signal.h"
#include "util.h"

#define GRID_COLUMNS 8
#define GRID_SCALE 2

/* One row per class when the grid holds every class equally often, else GRID_COLUMNS. */
static int grid_columns(const Config *cfg) {
    const int n = cfg->sample.n, K = cfg->model.classes;
    return K > 0 && n % K == 0 ? n / K : GRID_COLUMNS;
}

static void join(char *buf, size_t len, const char *dir, const char *name) {
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len) die("path too long: %s/%s", dir, name);
}

void train_outputs_open(TrainOutputs *o, const Config *cfg, const char *run_dir, const Model *m,
                        long step, long steps_per_epoch, long total) {
    memset(o, 0, sizeof *o);
    o->cfg = cfg;
    o->run_dir = run_dir;
    /* mpirun gives rank 0 a pseudo-terminal even when its own output goes to a file: under MPI
     * print plain lines */
    o->tty = isatty(STDOUT_FILENO) && !dist()->mpi;
    o->start = now_seconds();
    o->first_step = step;
    o->steps_per_epoch = steps_per_epoch;
    o->root = dist_is_root();
    if (!o->root) return;
    char path[1200], tmp[1300];
    join(path, sizeof path, run_dir, "config.ini");
    tmp_file_begin(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "w");
    if (!f) die("%s: cannot write: %s", tmp, strerror(errno));
    fprintf(f, "; effective config of this run (defaults, file and --set overrides)\n");
    config_write(cfg, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) die("%s: cannot write: %s", path, strerror(errno));
    tmp_file_done(tmp);
    join(path, sizeof path, run_dir, "metrics.h5");
    /* one row per finished epoch, and the partial epoch's of a run that ended mid-epoch (it
     * is written again only when the run goes on past it) */
    const long epoch_rows = step / steps_per_epoch + (step % steps_per_epoch && step >= total);
    metrics_open(&o->metrics, path, step, epoch_rows);
    /* a grid too large for a PNG is skipped at every epoch: say so now, not after an epoch */
    char err[1400];
    join(path, sizeof path, run_dir, "samples/generated.png");
    if (png_grid_check(path, cfg->sample.n, cfg->model.in_channels, cfg->model.image_size,
                       cfg->model.image_size, grid_columns(cfg), GRID_SCALE, err, sizeof err))
        fprintf(stderr, "ddpm: warning: %s; [sample] n = %d: each epoch's samples go to the .h5 "
                "only\n", err, cfg->sample.n);
    printf("training: %zu parameters, batch %d, %ld steps per epoch, %d epochs%s; run dir %s\n",
           m->table.total, cfg->train.batch, steps_per_epoch, cfg->train.epochs,
           cfg->train.max_steps ? " (max_steps set)" : "", run_dir);
    fflush(stdout);
}

void train_outputs_epoch_so_far(TrainOutputs *o, long step, double *sum, long *count) {
    *sum = 0.0;
    *count = 0;
    const long done = step % o->steps_per_epoch; /* steps of the current epoch already run */
    if (o->root && done > 0 && step <= o->metrics.rows_written)
        metrics_sum_losses(&o->metrics, step - done, done, sum, count);
}

void train_outputs_flush(TrainOutputs *o) {
    if (o->root) metrics_sync(&o->metrics);
}

static void format_duration(char *buf, size_t len, double s) {
    long v = (long)(s + 0.5);
    if (v >= 3600) snprintf(buf, len, "%ldh%02ldm", v / 3600, v % 3600 / 60);
    else snprintf(buf, len, "%ldm%02lds", v / 60, v % 60);
}

void train_outputs_step(TrainOutputs *o, long step, long total, double loss, double lr,
                        double grad_norm, double images_per_s) {
    if (!o->root) return;
    metrics_append_step(&o->metrics, step, loss, lr, grad_norm, images_per_s);
    const double elapsed = now_seconds() - o->start;
    const double rate = (double)(step - o->first_step) / (elapsed > 0 ? elapsed : 1e-9);
    char eta[32];
    format_duration(eta, sizeof eta, rate > 0 ? (double)(total - step) / rate : 0.0);
    const long epoch = (step - 1) / o->steps_per_epoch + 1;
    if (o->tty) {
        printf("\repoch %ld  step %ld/%ld  loss %.4f  %.0f img/s  ETA %s   ", epoch, step, total,
               loss, images_per_s, eta);
        fflush(stdout);
    } else if (step % o->cfg->train.log_every == 0 || step == total) {
        printf("epoch %ld step %ld/%ld loss %.5f grad_norm %.3f lr %.3g img/s %.1f eta %s\n",
               epoch, step, total, loss, grad_norm, lr, images_per_s, eta);
        fflush(stdout);
    }
    if (step % o->cfg->train.log_every == 0) metrics_flush(&o->metrics);
}

/* Conditional models: the classes of images first..first+count-1 of n, every class in turn
 * (one grid row per class when the classes divide n); NULL for unconditional models. */
static int *grid_labels(const Config *cfg, int n, long first, long count) {
    if (cfg->model.classes == 0) return NULL;
    int *labels = xcalloc((size_t)count + 1, sizeof(int));
    sample_class_labels(labels, 0, cfg->model.classes, n, (int)first, (int)count);
    return labels;
}

/* Sample this rank's share (count images from `first` of n) in chunks of the model's batch,
 * asking all ranks before each chunk whether a stop signal came (a Slurm time limit's warning
 * must not wait for a long evaluation). Every rank takes part in as many chunks as the largest
 * share needs. Returns 1 when stopped (x then incomplete), else 0. Images do not depend on the
 * chunking: image i's noise is keyed by first + i. */
static int sample_share(Model *m, const float *params, const Schedule *s, const SamplerSpec *spec,
                        float *x, const int *labels, long count, long first, long n) {
    const long B = m->max_batch, P = dist()->size, largest = (n + P - 1) / P;
    const size_t dim = (size_t)m->cfg.in_channels * m->cfg.image_size * m->cfg.image_size;
    for (long off = 0; off < largest; off += B) {
        if (dist_max_int(stop_signal_pending())) return 1;
        const long k = count - off < B ? count - off : B;
        if (k > 0)
            sample_run(m, params, s, spec, x + (size_t)off * dim, labels ? labels + off : NULL,
                       (int)k, (int)(first + off), NULL);
    }
    return 0;
}

/* Generate the fixed-seed grid images with the EMA weights and write NAME.h5 / NAME.png. Every
 * rank samples its share of the images; rank 0 draws the grid. Returns 1 (nothing written)
 * when a stop signal came first. */
static int write_samples(TrainOutputs *o, Model *m, const Arenas *a, const Schedule *s,
                         long step, const char *name) {
    const Config *cfg = o->cfg;
    const int n = cfg->sample.n, c = cfg->model.in_channels, S = cfg->model.image_size;
    const size_t dim = (size_t)c * S * S;
    SamplerSpec spec = sampler_spec_from_config(cfg);
    long first, count;
    dist_share(n, dist()->rank, dist()->size, &first, &count);
    float *mine = floats_alloc(dim * (size_t)count);
    int *labels = grid_labels(cfg, n, first, count);
    sample_initial_noise(mine, (int)count, (int)first, dim, spec.seed);
    if (sample_share(m, a->ema, s, &spec, mine, labels, count, first, n)) {
        free(mine);
        free(labels);
        return 1;
    }
    char path[1200], err[1400], file[256];
    SamplesMeta meta = {.step = step, .weights = "ema", .source = "training run", .T = s->T,
                        .schedule = schedule_name(s->kind), .conditional = labels != NULL,
                        .guidance = spec.guidance};
    snprintf(file, sizeof file, "samples/%s.h5", name);
    join(path, sizeof path, o->run_dir, file);
    samples_write(path, mine, labels, (int)first, (int)count, n, c, S, &spec, &meta, NULL);
    float *all = o->root ? floats_alloc(dim * (size_t)n) : NULL;
    dist_gather_shares(all, mine, n, dim);
    snprintf(file, sizeof file, "samples/%s.png", name);
    join(path, sizeof path, o->run_dir, file);
    if (o->root && png_write_grid(path, all, n, c, S, S, grid_columns(cfg), GRID_SCALE, err, sizeof err))
        fprintf(stderr, "ddpm: %s (training goes on; the samples are in the .h5)\n", err);
    free(all);
    free(mine);
    free(labels);
    return 0;
}

/* Rank 0: the epoch's metrics row, latest.h5, and for a complete epoch epoch_NNN.h5 (keeping
 * the newest K). */
static void save_epoch(TrainOutputs *o, const Model *m, const Arenas *a, const TrainState *st,
                       long epoch, double mean_loss, int complete) {
    if (o->tty) printf("\n");
    printf("epoch %ld done: mean loss %.5f, step %ld\n", epoch, mean_loss, st->step);
    fflush(stdout);
    metrics_append_epoch(&o->metrics, epoch, mean_loss);
    metrics_sync(&o->metrics);
    char path[1200], name[64];
    join(path, sizeof path, o->run_dir, "checkpoints/latest.h5");
    checkpoint_save(path, &m->table, a, st, o->cfg, CKPT_FULL);
    if (!complete) return;
    snprintf(name, sizeof name, "checkpoints/epoch_%03ld.h5", epoch);
    join(path, sizeof path, o->run_dir, name);
    checkpoint_save(path, &m->table, a, st, o->cfg, CKPT_FULL);
    const long old = epoch - o->cfg->train.keep_checkpoints;
    if (old >= 1) {
        snprintf(name, sizeof name, "checkpoints/epoch_%03ld.h5", old);
        join(path, sizeof path, o->run_dir, name);
        if (unlink(path) != 0 && errno != ENOENT)
            fprintf(stderr, "ddpm: cannot remove old checkpoint %s: %s\n", path, strerror(errno));
    }
}

/* [train] eval_every: FID of eval_n fresh samples (the [sample] sampler, EMA weights), into the
 * epoch's row of metrics.h5. Every rank samples its share. Returns 1 (no FID) when a stop
 * signal came first. */
static int evaluate_epoch(TrainOutputs *o, Model *m, const Arenas *a, const Schedule *s,
                           long epoch) {
    const Config *cfg = o->cfg;
    const int n = cfg->train.eval_n;
    const size_t dim = (size_t)cfg->model.in_channels * cfg->model.image_size * cfg->model.image_size;
    SamplerSpec spec = sampler_spec_from_config(cfg);
    spec.seed += 1; /* not the grid's noise */
    long first, count;
    dist_share(n, dist()->rank, dist()->size, &first, &count);
    float *x = floats_alloc(dim * (size_t)count + 1);
    int *labels = grid_labels(cfg, n, first, count); /* every class equally often */
    const double t0 = now_seconds();
    sample_initial_noise(x, (int)count, (int)first, dim, spec.seed);
    const int stopped = sample_share(m, a->ema, s, &spec, x, labels, count, first, n);
    free(labels);
    if (stopped) {
        free(x);
        return 1;
    }
    const double fid = evaluate_fid(cfg->train.eval_classifier, cfg->data.dir, x, count);
    free(x);
    if (!o->root) return 0;
    metrics_set_epoch_fid(&o->metrics, fid);
    printf("epoch %ld: FID %.3f (N = %d, %s, EMA weights; %.0f s)\n", epoch, fid, n,
           sampler_name(spec.kind), now_seconds() - t0);
    fflush(stdout);
    return 0;
}

static int eval_due(const TrainOutputs *o, long epoch) {
    return o->cfg->train.eval_every > 0 && epoch % o->cfg->train.eval_every == 0;
}

/* The samples and FID of a complete epoch (what a stop signal left out of them, on resume). */
static int epoch_pictures(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                          const Schedule *s, long epoch, int samples, int fid) {
    char name[64];
    snprintf(name, sizeof name, "epoch_%03ld", epoch);
    int stopped = samples && write_samples(o, m, a, s, st->step, name); /* every rank */
    if (!stopped && fid) stopped = evaluate_epoch(o, m, a, s, epoch);
    if (stopped && o->root) {
        printf("epoch %ld: its %s not made (stop signal): a resumed run makes %s first\n", epoch,
               samples ? "samples were" : "FID was", samples ? "them" : "it");
        fflush(stdout);
    }
    return stopped;
}

int train_outputs_epoch(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                        const Schedule *s, long epoch, double mean_loss, int complete) {
    if (o->root) save_epoch(o, m, a, st, epoch, mean_loss, complete); /* checkpoints first */
    if (!complete) return 0;
    return epoch_pictures(o, m, a, st, s, epoch, 1, eval_due(o, epoch));
}

int train_outputs_resume_epoch(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                               const Schedule *s) {
    if (st->step == 0 || st->step % o->steps_per_epoch != 0) return 0;
    const long epoch = st->step / o->steps_per_epoch;
    int samples = 0, fid = 0;
    if (o->root) { /* rank 0's view of the files decides */
        char path[1200], file[256];
        snprintf(file, sizeof file, "samples/epoch_%03ld.h5", epoch);
        join(path, sizeof path, o->run_dir, file);
        samples = access(path, F_OK) != 0;
        fid = eval_due(o, epoch) && isnan(metrics_last_epoch_fid(&o->metrics));
    }
    samples = dist_max_int(samples);
    fid = dist_max_int(fid);
    if (!samples && !fid) return 0;
    if (o->root) {
        printf("epoch %ld: its %s missing (a stop during them): making them now\n", epoch,
               samples && fid ? "samples and FID are" : samples ? "samples are" : "FID is");
        fflush(stdout);
    }
    return epoch_pictures(o, m, a, st, s, epoch, samples, fid);
}

void train_outputs_stop(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st, int sig) {
    if (!o->root) return;
    char path[1200];
    metrics_sync(&o->metrics);
    join(path, sizeof path, o->run_dir, "checkpoints/latest.h5");
    checkpoint_save(path, &m->table, a, st, o->cfg, CKPT_FULL);
    if (o->tty) printf("\n");
    printf("stopped by %s after step %ld: checkpoint %s written; continue with --resume "
           "(exit status %d)\n", strsignal(sig), st->step, path, TRAIN_EXIT_STOPPED);
    fflush(stdout);
}

int train_outputs_finish(TrainOutputs *o, Model *m, const Arenas *a, const TrainState *st,
                         const Schedule *s) {
    if (write_samples(o, m, a, s, st->step, "generated")) return 1; /* every rank takes part */
    if (!o->root) return 0;
    printf("done: step %ld; samples in %s/samples/generated.{h5,png}\n", st->step, o->run_dir);
    return 0;
}

void train_outputs_timing(TrainOutputs *o, long steps, double seconds, double compute_seconds,
                          const GradSync *g) {
    const double blocking = grad_sync_blocking_seconds(g, 5); /* collective */
    double fastest, slowest;
    dist_min_max(compute_seconds, &fastest, &slowest);
    const double rss = dist_sum(peak_rss_mib()); /* collective: every rank's peak so far */
    if (!o->root || steps < 1) return;
    const double per = seconds / steps;
    printf("timing: %ld steps after the first: %.1f img/s, %.1f ms/step", steps,
           o->cfg->train.batch / per, 1e3 * per);
    if (dist()->size > 1)
        printf("; compute per rank %.1f..%.1f ms/step; gradient sum over %d ranks: %.2f ms/step "
               "waiting after backward, %.2f ms/step in MPI calls during it (%d bucket%s); one "
               "blocking allreduce alone: %.2f ms",
               1e3 * fastest / steps, 1e3 * slowest / steps, dist()->size,
               1e3 * g->wait_seconds / steps, 1e3 * g->call_seconds / steps, g->buckets,
               g->buckets == 1 ? "" : "s", 1e3 * blocking);
    printf("; peak RSS %.0f MiB%s\n", rss, dist()->size > 1 ? " (all ranks together)" : "");
    fflush(stdout);
}

void train_outputs_close(TrainOutputs *o) {
    if (o->root) metrics_close(&o->metrics);
}
