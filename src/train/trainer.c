/* trainer.c: epochs of shuffled batches -> noising -> forward -> MSE -> backward -> Adam -> EMA,
 * with checkpoints, metrics and per-epoch sample grids in the run directory. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adam.h"
#include "checkpoint.h"
#include "dataset.h"
#include "metrics.h"
#include "model.h"
#include "rng.h"
#include "stop_signal.h"
#include "train_outputs.h"
#include "util.h"

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

/* Per-thread partial sums added in thread order: the same value on every run with the same
 * thread count (an OpenMP reduction may combine in arrival order), so clipping stays exact. */
static double grad_norm(const float *g, size_t n) {
    const int max_threads = omp_get_max_threads();
    double part[max_threads];
    int threads = 1;
#pragma omp parallel
    {
        const int t = omp_get_thread_num();
#pragma omp single
        threads = omp_get_num_threads();
        double sum = 0.0;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) sum += (double)g[i] * g[i];
        part[t] = sum;
    }
    double total = 0.0;
    for (int t = 0; t < threads; t++) total += part[t];
    return sqrt(total);
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

/* Where a non-finite loss or gradient first shows: the first op whose output is non-finite, or
 * the first parameter tensor whose gradient is. */
static void describe_nonfinite(char *buf, size_t len, const Model *m, const Arenas *a, int n,
                               double loss) {
    if (!isfinite(loss)) {
        const char *op = model_first_nonfinite_op(m, n);
        if (op) snprintf(buf, len, "the loss (first in the output of %s)", op);
        else snprintf(buf, len, "the loss");
        return;
    }
    const char *grad = first_nonfinite(&m->table, a->grads);
    snprintf(buf, len, "the gradient of %s", grad ? grad : "(none found)");
}

int train_run(const Config *cfg, const TrainOptions *opt) {
    const TrainConfig *tc = &cfg->train;
    char path[1200];
    snprintf(path, sizeof path, "%s/checkpoints", opt->run_dir);
    make_dirs(path);
    snprintf(path, sizeof path, "%s/samples", opt->run_dir);
    make_dirs(path);
    if (access(opt->run_dir, W_OK) != 0) die("%s: run directory is not writable", opt->run_dir);

    Dataset data;
    dataset_load_or_die(&data, cfg->data.dir, "train");
    if (data.rows != cfg->model.image_size || data.cols != cfg->model.image_size)
        die("%s: images are %dx%d, the model expects %dx%d", cfg->data.dir, data.rows, data.cols,
            cfg->model.image_size, cfg->model.image_size);
    const int B = tc->batch;
    if (B > data.count) die("[train] batch %d exceeds the %d training images", B, data.count);
    const long spe = data.count / B; /* the last partial batch of an epoch is dropped */
    long total = (long)tc->epochs * spe;
    if (tc->max_steps > 0 && tc->max_steps < total) total = tc->max_steps;

    Model m;
    model_build(&m, &cfg->model, B);
    Arenas a;
    arenas_alloc(&a, &m.table);
    TrainState st = {.step = 0, .steps_per_epoch = spe, .nan_skips = 0};
    snprintf(path, sizeof path, "%s/checkpoints/latest.h5", opt->run_dir);
    if (opt->resume && access(path, F_OK) == 0) {
        Config saved;
        char why[2 * CONFIG_STR_MAX];
        checkpoint_read_config(path, &saved);
        if (config_resume_mismatch(cfg, &saved, why, sizeof why))
            die("%s: cannot resume with another config: %s", path, why);
        checkpoint_load(path, &m.table, &a, &st, CKPT_FULL);
        if (st.steps_per_epoch != spe)
            die("%s: saved with %ld steps per epoch, this config gives %ld (batch or data changed)",
                path, st.steps_per_epoch, spe);
        printf("resuming %s at step %ld (epoch %ld)\n", path, st.step, st.step / spe);
    } else {
        if (opt->resume) printf("no %s yet: starting a new run\n", path);
        params_initialise(&m.table, a.params, (uint64_t)tc->seed);
        memcpy(a.ema, a.params, m.table.total * sizeof(float));
    }
    TrainOutputs out;
    train_outputs_open(&out, cfg, opt->run_dir, &m, st.step, spe);
    stop_signal_install();
    int status = 0;

    Schedule sched;
    schedule_build(&sched, (ScheduleKind)cfg->diffusion.schedule, cfg->diffusion.T,
                   cfg->diffusion.beta_start, cfg->diffusion.beta_end);
    const size_t dim = (size_t)cfg->model.in_channels * data.rows * data.cols;
    float *x0 = floats_alloc(dim * B), *eps = floats_alloc(dim * B), *xt = floats_alloc(dim * B),
          *dout = floats_alloc(dim * B);
    int *t = xcalloc((size_t)B, sizeof(int)), *perm = xcalloc((size_t)data.count, sizeof(int));
    const AdamConfig adam = {(float)tc->lr, 0.9f, 0.999f, 1e-8f};
    const uint64_t seed = (uint64_t)tc->seed;
    long order_epoch = -1;
    double epoch_loss = 0.0;
    long epoch_count = 0;
    double last_time = now_seconds();

    for (long step = st.step; step < total; step++) {
        const long epoch = step / spe, pos = step % spe;
        if (epoch != order_epoch) {
            epoch_order(perm, data.count, seed, epoch);
            order_epoch = epoch;
        }
        dataset_images_to_float(x0, &data, perm + pos * B, B);
        for (int i = 0; i < B; i++) { /* keyed by the global image index of this step */
            const uint32_t g = (uint32_t)i;
            t[i] = (int)rng_below((uint32_t)sched.T, seed, RNG_TIMESTEP, (uint32_t)step, g);
            rng_normal(eps + (size_t)i * dim, dim, seed, RNG_NOISE, (uint32_t)step, g);
        }
        diffusion_noise(xt, x0, eps, t, B, dim, &sched);
        const float *pred = model_forward(&m, a.params, xt, t, B);
        const double loss = mse_forward(pred, eps, dim * B);
        memset(dout, 0, dim * B * sizeof(float));
        mse_backward(dout, pred, eps, dim * B);
        memset(a.grads, 0, m.table.total * sizeof(float));
        model_backward(&m, a.params, a.grads, dout, B);
        double gn = grad_norm(a.grads, m.table.total);

        const int finite = isfinite(loss) && isfinite(gn);
        if (!finite) {
            char where[PARAM_NAME_MAX + 64];
            describe_nonfinite(where, sizeof where, &m, &a, B, loss);
            if (tc->nan_policy != 1) {
                metrics_flush(&out.metrics);
                if (access(path, F_OK) == 0)
                    die("step %ld: non-finite value in %s; stopped without saving: the last good "
                        "checkpoint %s is untouched ([train] nan_policy = skip skips such steps)",
                        step + 1, where, path);
                die("step %ld: non-finite value in %s; stopped before any checkpoint was written "
                    "([train] nan_policy = skip skips such steps)", step + 1, where);
            }
            st.nan_skips++;
            fprintf(stderr, "ddpm: step %ld: non-finite value in %s: update skipped (%ld so far)\n",
                    step + 1, where, st.nan_skips);
        }
        AdamConfig step_adam = adam;
        if (tc->warmup_steps > 0 && step < tc->warmup_steps)
            step_adam.lr = (float)(tc->lr * (double)(step + 1) / tc->warmup_steps);
        if (finite) { /* a skipped step leaves weights, moments and EMA as they were */
            if (tc->grad_clip > 0 && gn > tc->grad_clip) {
                const float scale = (float)(tc->grad_clip / gn);
                for (size_t i = 0; i < m.table.total; i++) a.grads[i] *= scale;
            }
            adam_step(a.params, a.grads, a.adam_m, a.adam_v, m.table.total, &step_adam, step + 1);
            double decay = tc->ema;
            if (tc->ema_warmup) {
                double warm = (1.0 + step) / (10.0 + step);
                if (warm < decay) decay = warm;
            }
            ema_update(a.ema, a.params, m.table.total, (float)decay);
            epoch_loss += loss;
            epoch_count++;
        }
        st.step = step + 1;
        const double now = now_seconds();
        train_outputs_step(&out, st.step, total, loss, step_adam.lr, gn, B / (now - last_time));
        last_time = now;
        if (tc->checkpoint_every > 0 && st.step % tc->checkpoint_every == 0) {
            metrics_flush(&out.metrics); /* rows first: a checkpoint never runs ahead */
            checkpoint_save(path, &m.table, &a, &st, cfg, CKPT_FULL);
        }
        if (st.step % spe == 0 || st.step == total) {
            const long done_epoch = (st.step - 1) / spe + 1; /* 1-based */
            train_outputs_epoch(&out, &m, &a, &st, &sched, done_epoch,
                                epoch_count ? epoch_loss / epoch_count : 0.0,
                                st.step % spe == 0);
            epoch_loss = 0.0;
            epoch_count = 0;
            last_time = now_seconds();
        }
        const int sig = stop_signal_pending();
        if (sig && st.step < total) {
            train_outputs_stop(&out, &m, &a, &st, sig);
            status = TRAIN_EXIT_STOPPED;
            break;
        }
    }
    if (status == 0) train_outputs_finish(&out, &m, &a, &st, &sched);
    train_outputs_close(&out);

    free(x0), free(eps), free(xt), free(dout), free(t), free(perm);
    schedule_free(&sched);
    arenas_free(&a);
    model_free(&m);
    dataset_free(&data);
    return status;
}
