/* trainer.c: epochs of shuffled batches -> noising -> forward -> MSE -> backward -> gradient
 * sum over ranks -> Adam -> EMA, with checkpoints, metrics and sample grids in the run directory.
 *
 * Data parallelism: every rank holds the whole state and the whole dataset. Each global batch of
 * B images is cut into contiguous shares (dist_share); rank r noises, runs forward and backward
 * on its share only, with the noise and timestep of each image keyed by its index in the global
 * batch. The MSE gradient is divided by the global element count, so the sum of the ranks'
 * gradients (grad_sync) is the gradient of the global batch, and every rank applies the same
 * Adam update to the same weights. Rank 0 writes every file. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adam.h"
#include "checkpoint.h"
#include "dataset.h"
#include "dist.h"
#include "evaluate.h"
#include "grad_sync.h"
#include "metrics.h"
#include "model.h"
#include "ordered_sum.h"
#include "rng.h"
#include "stop_signal.h"
#include "train_outputs.h"
#include "util.h"

typedef struct {
    const Config *cfg;
    Dataset data;
    Model m;
    Arenas a;
    TrainState st;
    Schedule sched;
    GradSync sync;
    int B;              /* global batch */
    long first, count;  /* this rank's share of every batch */
    long spe, total;    /* steps per epoch, last step */
    size_t dim;         /* floats per image */
    float *x0, *eps, *xt, *dout;
    float *v; /* [diffusion] prediction = v: the target; NULL when the target is eps */
    int *t, *y, *perm; /* timesteps, class labels (conditional), data order */
    long order_epoch;   /* the epoch perm holds */
    char latest[1200];
    long perturb_rank, perturb_step; /* test hook DDPM_TEST_PERTURB=RANK:STEP */
    long nan_first, nan_last;        /* test hook DDPM_TEST_NAN=FIRST:LAST (steps, from 1) */
    double compute_seconds; /* this rank's forward + backward, before waiting for the others */
} Trainer;

/* The epoch's order: a Fisher-Yates shuffle keyed by (seed, epoch), the same on every rank. */
static void epoch_order(int *perm, int n, uint64_t seed, long epoch) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below((uint32_t)i + 1, seed, RNG_SHUFFLE, (uint32_t)epoch, (uint32_t)i);
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

/* The first tensor holding a NaN or Inf, or NULL. */
static const char *first_nonfinite(const ParamTable *t, const float *arena) {
    for (int i = 0; i < t->count; i++) {
        const ParamEntry *e = &t->entries[i];
        for (size_t j = 0; j < e->size; j++)
            if (!isfinite(arena[e->offset + j])) return e->name;
    }
    return NULL;
}

/* Where a non-finite loss or gradient first shows: the first op whose output is non-finite (on
 * this rank's share), or the first parameter tensor whose gradient is. */
static void describe_nonfinite(char *buf, size_t len, const Trainer *tr, double loss) {
    if (!isfinite(loss)) {
        const char *op = model_first_nonfinite_op(&tr->m, (int)tr->count);
        if (op) snprintf(buf, len, "the loss (first in the output of %s)", op);
        else snprintf(buf, len, "the loss");
        return;
    }
    const char *grad = first_nonfinite(&tr->m.table, tr->a.grads);
    snprintf(buf, len, "the gradient of %s", grad ? grad : "(none found)");
}

/* All ranks must hold bit-identical weights: compare a hash of params and EMA. */
static void check_ranks_agree(const Trainer *tr, long step) {
    if (dist()->size == 1) return;
    const size_t n = tr->m.table.total;
    const uint64_t h = float_bits_hash(tr->a.params, n) * 31u + float_bits_hash(tr->a.ema, n);
    if (!dist_all_equal_u64(h))
        die("step %ld: the ranks no longer hold the same weights (their checksums differ); "
            "stopped without writing a checkpoint (%s is untouched). Ranks must run the same "
            "binary on the same kind of CPU", step, tr->latest);
}

/* The EMA decay of the update after step index n (0-based): train.ema, or with warm-up
 * min(ema, (1+n)/(10+n)). */
static double ema_decay(const TrainConfig *tc, long n) {
    const double warm = (1.0 + n) / (10.0 + n);
    return tc->ema_warmup && warm < tc->ema ? warm : tc->ema;
}

/* An EMA decay that suits runs of 10^5+ steps misleads in a short run: without warm-up the average
 * still holds decay^steps of the random initial weights at the end; with warm-up the decay
 * min(ema, (1+n)/(10+n)) may end far below the configured value (results/recipe.md, the ema
 * row). Both are worth a note at the start, as the x_T note above is. */
static void ema_note(const TrainConfig *tc, long total) {
    if (tc->ema <= 0) return;
    if (!tc->ema_warmup) {
        const double init_share = pow(tc->ema, (double)total);
        if (init_share > 0.01)
            printf("note: train.ema = %g over %ld steps leaves %.0f%% of the EMA weights at their "
                   "random start (ema^steps); use a smaller decay or train.ema_warmup = 1\n",
                   tc->ema, total, 100 * init_share);
        return;
    }
    /* the last update's decay; noted when it averages over less than half the configured window */
    const double last = ema_decay(tc, total - 1), reach = (10 * tc->ema - 1) / (1 - tc->ema);
    if (1 - last > 2 * (1 - tc->ema))
        printf("note: with train.ema_warmup the decay reaches train.ema = %g only after about %.0f "
               "steps; this run ends after %ld, at decay %.5f\n",
               tc->ema, reach, total, last);
}

static void trainer_open(Trainer *tr, const Config *cfg, const TrainOptions *opt) {
    const TrainConfig *tc = &cfg->train;
    memset(tr, 0, sizeof *tr);
    tr->cfg = cfg;
    char path[1200];
    /* a run's history (checkpoints, metrics.h5) is never overwritten by a new run started in
     * its directory: a requeued job that lost --resume stops here instead */
    const char *history[] = {"checkpoints/latest.h5", "metrics.h5"};
    for (int i = 0; i < 2 && !opt->resume; i++) {
        snprintf(path, sizeof path, "%s/%s", opt->run_dir, history[i]);
        if (access(path, F_OK) == 0)
            die("%s: the run directory holds a run already (%s): continue it with --resume, or "
                "train into another --out (or remove the directory to start over)",
                opt->run_dir, history[i]);
    }
    snprintf(path, sizeof path, "%s/checkpoints", opt->run_dir);
    make_dirs(path);
    snprintf(path, sizeof path, "%s/samples", opt->run_dir);
    make_dirs(path);
    if (access(opt->run_dir, W_OK) != 0) die("%s: run directory is not writable", opt->run_dir);

    dataset_load_or_die(&tr->data, cfg->data.dir, "train");
    const Dataset *d = &tr->data;
    if (d->rows != cfg->model.image_size || d->cols != cfg->model.image_size)
        die("%s: images are %dx%d, the model expects %dx%d", cfg->data.dir, d->rows, d->cols,
            cfg->model.image_size, cfg->model.image_size);
    if (tc->eval_every > 0) {
        if (access(tc->eval_classifier, R_OK) != 0)
            die("[train] eval_classifier = %s: cannot read it (ddpm classifier train makes one; "
                "or set [train] eval_every = 0)", tc->eval_classifier);
        if (cfg->model.image_size != 28 || cfg->model.in_channels != 1)
            die("[train] eval_every: the classifier scores 28x28 grey images only");
        evaluate_check_inputs(tc->eval_classifier, cfg->data.dir); /* now, not after an epoch */
    }
    tr->B = tc->batch;
    if (tr->B > d->count) die("[train] batch %d exceeds the %d training images", tr->B, d->count);
    if (tr->B < dist()->size)
        die("[train] batch %d is smaller than the %d MPI ranks: every rank needs at least one "
            "image per step", tr->B, dist()->size);
    dist_share(tr->B, dist()->rank, dist()->size, &tr->first, &tr->count);
    tr->spe = d->count / tr->B; /* the last partial batch of an epoch is dropped */
    tr->total = (long)tc->epochs * tr->spe;
    if (tc->max_steps > 0 && tc->max_steps < tr->total) tr->total = tc->max_steps;

    long most = 0, first;
    dist_share(tr->B, 0, dist()->size, &first, &most); /* rank 0 holds the largest share */
    model_build(&tr->m, &cfg->model, (int)most);
    arenas_alloc(&tr->a, &tr->m.table);
    tr->st = (TrainState){.step = 0, .steps_per_epoch = tr->spe, .nan_skips = 0};
    snprintf(tr->latest, sizeof tr->latest, "%s/checkpoints/latest.h5", opt->run_dir);
    /* every rank resumes, or none: a checkpoint some ranks cannot see (node-local disk, a
     * lagging network file system) would start them at other steps */
    const int found = opt->resume ? dist_file_exists(tr->latest, "run directory") : 0;
    if (found) {
        Config saved;
        char why[2 * CONFIG_STR_MAX];
        checkpoint_read_config(tr->latest, &saved);
        if (config_resume_mismatch(cfg, &saved, why, sizeof why))
            die("%s: cannot resume with another config: %s", tr->latest, why);
        checkpoint_load(tr->latest, &tr->m.table, &tr->a, &tr->st, CKPT_FULL);
        /* one file for every rank, not a copy per node (they would part ways) */
        const uint64_t h = float_bits_hash(tr->a.params, tr->m.table.total) * 31u +
                           (uint64_t)tr->st.step;
        if (!dist_all_equal_u64(h))
            die("%s: the ranks read different checkpoints (step %ld here): the run directory "
                "must be on a file system every rank shares", tr->latest, tr->st.step);
        if (tr->st.steps_per_epoch != tr->spe)
            die("%s: saved with %ld steps per epoch, this config gives %ld (batch or data "
                "changed)", tr->latest, tr->st.steps_per_epoch, tr->spe);
        if (dist_is_root())
            printf("resuming %s at step %ld (in epoch %ld)\n", tr->latest, tr->st.step,
                   tr->st.step / tr->spe + 1);
    } else {
        if (opt->resume && dist_is_root()) printf("no %s yet: starting a new run\n", tr->latest);
        params_initialise(&tr->m.table, tr->a.params, (uint64_t)tc->seed);
        memcpy(tr->a.ema, tr->a.params, tr->m.table.total * sizeof(float));
    }
    schedule_build(&tr->sched, (ScheduleKind)cfg->diffusion.schedule, cfg->diffusion.T,
                   cfg->diffusion.beta_start, cfg->diffusion.beta_end);
    /* Sampling starts from pure noise; a schedule whose x_T still holds part of the image trains
     * the network on x_T unlike that start, and its samples drift (results/recipe.md). */
    const double kept = sqrt(tr->sched.abar[cfg->diffusion.T - 1]);
    if (kept > 0.05 && dist_is_root())
        printf("note: this schedule leaves sqrt(abar_T) = %.3f of the image in x_T, but sampling "
               "starts from pure noise, so samples drift; linear betas scaled by 1000/T or the "
               "cosine schedule leave about 0\n",
               kept);
    if (dist_is_root()) ema_note(tc, tr->total);
    grad_sync_init(&tr->sync, tr->a.grads, tr->m.table.total,
                   tc->allreduce == 1 ? 0 : (size_t)tc->bucket_kb * 1024 / sizeof(float));
    tr->m.on_grads_final = grad_sync_ready;
    tr->m.on_grads_final_ctx = &tr->sync;

    for (int i = 0; i < d->count && cfg->model.classes > 0; i++) /* before any step is spent */
        if (d->labels[i] >= cfg->model.classes)
            die("%s: training image %d has label %d; [model] classes = %d allows 0..%d",
                cfg->data.dir, i, d->labels[i], cfg->model.classes, cfg->model.classes - 1);
    tr->dim = (size_t)cfg->model.in_channels * d->rows * d->cols;
    const size_t n = tr->dim * (size_t)tr->count;
    tr->x0 = floats_alloc(n), tr->eps = floats_alloc(n), tr->xt = floats_alloc(n);
    tr->v = cfg->diffusion.prediction == PREDICT_V ? floats_alloc(n) : NULL;
    tr->dout = floats_alloc(n);
    tr->t = xcalloc((size_t)tr->count, sizeof(int));
    tr->y = xcalloc((size_t)tr->count, sizeof(int));
    tr->perm = xcalloc((size_t)d->count, sizeof(int));
    tr->order_epoch = -1;
    tr->perturb_rank = tr->perturb_step = -1;
    const char *hook = getenv("DDPM_TEST_PERTURB");
    if (hook && sscanf(hook, "%ld:%ld", &tr->perturb_rank, &tr->perturb_step) != 2)
        die("DDPM_TEST_PERTURB=%s: expected RANK:STEP", hook);
    /* a corrupt input: the first pixel of this rank's share is NaN in steps FIRST..LAST */
    tr->nan_first = tr->nan_last = -1;
    const char *nan_hook = getenv("DDPM_TEST_NAN");
    if (nan_hook && sscanf(nan_hook, "%ld:%ld", &tr->nan_first, &tr->nan_last) != 2)
        die("DDPM_TEST_NAN=%s: expected FIRST:LAST", nan_hook);
}

static void trainer_close(Trainer *tr) {
    free(tr->v), free(tr->x0), free(tr->eps), free(tr->xt), free(tr->dout), free(tr->t), free(tr->y), free(tr->perm);
    grad_sync_free(&tr->sync);
    schedule_free(&tr->sched);
    arenas_free(&tr->a);
    model_free(&tr->m);
    dataset_free(&tr->data);
}

/* Forward and backward of this rank's share of step `step`, gradients summed over the ranks.
 * Returns the loss of the global batch; *gn is the norm of the global gradient. */
static double forward_backward(Trainer *tr, long step, double *gn) {
    const long epoch = step / tr->spe, pos = step % tr->spe;
    const uint64_t seed = (uint64_t)tr->cfg->train.seed;
    if (epoch != tr->order_epoch) {
        epoch_order(tr->perm, tr->data.count, seed, epoch);
        tr->order_epoch = epoch;
    }
    const int n = (int)tr->count;
    const size_t dim = tr->dim;
    const double start = now_seconds();
    dataset_images_to_float(tr->x0, &tr->data, tr->perm + pos * tr->B + tr->first, n);
    if (step + 1 >= tr->nan_first && step + 1 <= tr->nan_last && n > 0) tr->x0[0] = NAN;
    for (int i = 0; i < n; i++) { /* keyed by the global image index of this step */
        const uint32_t g = (uint32_t)(tr->first + i);
        tr->t[i] = (int)rng_below((uint32_t)tr->sched.T, seed, RNG_TIMESTEP, (uint32_t)step, g);
        rng_normal(tr->eps + (size_t)i * dim, dim, seed, RNG_NOISE, (uint32_t)step, g);
    }
    const int K = tr->cfg->model.classes;
    if (K > 0) { /* the image's digit, or with probability p_uncond the null label K */
        const int *idx = tr->perm + pos * tr->B + tr->first;
        const uint32_t cut = (uint32_t)(tr->cfg->train.p_uncond * 16777216.0 + 0.5);
        for (int i = 0; i < n; i++) {
            const int label = tr->data.labels[idx[i]]; /* < K: checked when the data was opened */
            const uint32_t u = rng_below(16777216u, seed, RNG_LABEL_DROP, (uint32_t)step,
                                         (uint32_t)(tr->first + i));
            tr->y[i] = u < cut ? K : label;
        }
    }
    diffusion_noise(tr->xt, tr->x0, tr->eps, tr->t, n, dim, &tr->sched);
    const float *target = tr->eps;
    if (tr->v) {
        diffusion_v_target(tr->v, tr->x0, tr->eps, tr->t, n, dim, &tr->sched);
        target = tr->v;
    }
    model_set_dropout_key(&tr->m, seed, (uint32_t)step, tr->first);
    const float *pred = model_forward(&tr->m, tr->a.params, tr->xt, tr->t,
                                      K > 0 ? tr->y : NULL, n);
    const double share = mse_sum(pred, target, dim * n);
    memset(tr->dout, 0, dim * n * sizeof(float));
    mse_backward_over(tr->dout, pred, target, dim * n, dim * (size_t)tr->B);
    memset(tr->a.grads, 0, tr->m.table.total * sizeof(float));
    grad_sync_begin(&tr->sync);
    model_backward(&tr->m, tr->a.params, tr->a.grads, tr->dout, n);
    model_dropout_off(&tr->m); /* the epoch grids and FIDs sample with this model */
    tr->compute_seconds += now_seconds() - start;
    grad_sync_finish(&tr->sync);
    *gn = sqrt(ordered_sum_squares(tr->a.grads, tr->m.table.total));
    return dist_sum(share) / ((double)dim * tr->B);
}

/* Clip, Adam and EMA: the same arithmetic on every rank. */
static void update(Trainer *tr, long step, double gn, const AdamConfig *adam) {
    const TrainConfig *tc = &tr->cfg->train;
    const size_t n = tr->m.table.total;
    if (tc->grad_clip > 0 && gn > tc->grad_clip) {
        const float scale = (float)(tc->grad_clip / gn);
        for (size_t i = 0; i < n; i++) tr->a.grads[i] *= scale;
    }
    /* Adam's bias correction counts the updates its moments have seen: skipped steps
     * ([train] nan_policy = skip) are not among them */
    adam_step(tr->a.params, tr->a.grads, tr->a.adam_m, tr->a.adam_v, n, adam,
              step + 1 - tr->st.nan_skips);
    ema_update(tr->a.ema, tr->a.params, n, (float)ema_decay(tc, step));
    if (step + 1 == tr->perturb_step && dist()->rank == tr->perturb_rank) tr->a.params[0] += 1e-3f;
}

/* A non-finite loss or gradient: stop (keeping the last good checkpoint) or count a skip. */
static void on_nonfinite(Trainer *tr, TrainOutputs *out, long step, double loss) {
    char where[PARAM_NAME_MAX + 64];
    describe_nonfinite(where, sizeof where, tr, loss);
    if (tr->cfg->train.nan_policy != 1) {
        train_outputs_flush(out);
        /* every rank dies here; under MPI the first to die aborts the others: wait until rank
         * 0 has its rows on disk */
        dist_barrier();
        if (access(tr->latest, F_OK) == 0)
            die("step %ld: non-finite value in %s; stopped without saving: the last good "
                "checkpoint %s is untouched ([train] nan_policy = skip skips such steps)",
                step + 1, where, tr->latest);
        die("step %ld: non-finite value in %s; stopped before any checkpoint was written "
            "([train] nan_policy = skip skips such steps)", step + 1, where);
    }
    tr->st.nan_skips++;
    if (dist_is_root())
        fprintf(stderr, "ddpm: step %ld: non-finite value in %s: update skipped (%ld so far)\n",
                step + 1, where, tr->st.nan_skips);
}

int train_run(const Config *cfg, const TrainOptions *opt) {
    const TrainConfig *tc = &cfg->train;
    Trainer tr;
    trainer_open(&tr, cfg, opt);
    dist_print_layout(stdout); /* collective; rank 0 prints */
    TrainOutputs out;
    train_outputs_open(&out, cfg, opt->run_dir, &tr.m, tr.st.step, tr.spe, tr.total);
    stop_signal_install(); /* main installs it for `ddpm train`; this covers other callers */
    int status = 0;
    const AdamConfig adam = {(float)tc->lr, 0.9f, 0.999f, 1e-8f};
    double epoch_loss, last_time = now_seconds(), timed = 0.0;
    long epoch_count, timed_steps = 0;
    train_outputs_epoch_so_far(&out, tr.st.step, &epoch_loss, &epoch_count);
    const long start_step = tr.st.step;
    /* a run stopped during an epoch's samples or FID makes them first */
    if (train_outputs_resume_epoch(&out, &tr.m, &tr.a, &tr.st, &tr.sched)) {
        train_outputs_stop(&out, &tr.m, &tr.a, &tr.st, dist_max_int(stop_signal_pending()));
        status = TRAIN_EXIT_STOPPED;
    }

    for (long step = tr.st.step; step < tr.total && status == 0; step++) {
        const double step_start = now_seconds();
        double gn;
        const double loss = forward_backward(&tr, step, &gn);
        const int finite = isfinite(loss) && isfinite(gn); /* the same on every rank */
        if (!finite) on_nonfinite(&tr, &out, step, loss);
        AdamConfig step_adam = adam;
        if (tc->warmup_steps > 0 && step < tc->warmup_steps)
            step_adam.lr = (float)(tc->lr * (double)(step + 1) / tc->warmup_steps);
        if (finite) { /* a skipped step leaves weights, moments and EMA as they were */
            update(&tr, step, gn, &step_adam);
            epoch_loss += loss;
            epoch_count++;
        }
        tr.st.step = step + 1;
        const double now = now_seconds();
        if (step == start_step) { /* the first step warms caches and MPI up: not timed */
            tr.sync.wait_seconds = tr.sync.call_seconds = tr.compute_seconds = 0.0;
        } else {
            timed += now - step_start;
            timed_steps++;
        }
        train_outputs_step(&out, tr.st.step, tr.total, loss, step_adam.lr, gn,
                           tr.B / (now - last_time));
        last_time = now;
        const int checkpoint = tc->checkpoint_every > 0 && tr.st.step % tc->checkpoint_every == 0;
        const int epoch_end = tr.st.step % tr.spe == 0 || tr.st.step == tr.total;
        const int checked = checkpoint || epoch_end ||
                            (tc->check_every > 0 && tr.st.step % tc->check_every == 0);
        if (checked) check_ranks_agree(&tr, tr.st.step);
        if (checkpoint && !epoch_end) { /* at an epoch's end, after its row (save_epoch) */
            train_outputs_flush(&out); /* rows first: a checkpoint never runs ahead */
            if (dist_is_root())
                checkpoint_save(tr.latest, &tr.m.table, &tr.a, &tr.st, cfg, CKPT_FULL);
        }
        int cut = 0; /* a stop signal cut the epoch's samples or FID short */
        if (epoch_end) {
            const long done_epoch = (tr.st.step - 1) / tr.spe + 1; /* 1-based */
            cut = train_outputs_epoch(&out, &tr.m, &tr.a, &tr.st, &tr.sched, done_epoch,
                                      epoch_count ? epoch_loss / epoch_count : 0.0,
                                      tr.st.step % tr.spe == 0);
            epoch_loss = 0.0;
            epoch_count = 0;
            last_time = now_seconds();
        }
        const int sig = dist_max_int(stop_signal_pending()); /* all ranks stop together */
        if (sig && (tr.st.step < tr.total || cut)) {
            if (!checked) check_ranks_agree(&tr, tr.st.step); /* before every checkpoint */
            train_outputs_stop(&out, &tr.m, &tr.a, &tr.st, sig);
            status = TRAIN_EXIT_STOPPED;
            break;
        }
    }
    train_outputs_timing(&out, timed_steps, timed, tr.compute_seconds, &tr.sync);
    if (status == 0 && train_outputs_finish(&out, &tr.m, &tr.a, &tr.st, &tr.sched)) {
        train_outputs_stop(&out, &tr.m, &tr.a, &tr.st, dist_max_int(stop_signal_pending()));
        status = TRAIN_EXIT_STOPPED;
    }
    train_outputs_close(&out);
    trainer_close(&tr);
    return status;
}
