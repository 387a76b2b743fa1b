/* sampling.c: the reverse-process loop over chunks of images. */
#include "sampling.h"

#include <string.h>

#include "rng.h"
#include "util.h"

const char *sampler_name(SamplerKind kind) {
    return kind == SAMPLER_DDIM ? "ddim" : kind == SAMPLER_DPMPP2M ? "dpmpp2m" : "ddpm";
}

SamplerSpec sampler_spec_from_config(const Config *cfg) {
    const SampleConfig *c = &cfg->sample;
    return (SamplerSpec){.kind = (SamplerKind)c->sampler, .steps = c->steps, .eta = c->eta,
                         .spacing = c->spacing, .clip = c->clip, .seed = (uint64_t)c->seed,
                         .guidance = c->guidance, .prediction = cfg->diffusion.prediction,
                         .eps_scale = 1.0};
}

int sampler_evaluations(const SamplerSpec *spec, int T) {
    return spec->kind == SAMPLER_DDPM ? T : spec->steps;
}

void sample_initial_noise(float *x, int n, int first, size_t dim, uint64_t seed) {
    for (int i = 0; i < n; i++)
        rng_normal(x + (size_t)i * dim, dim, seed, RNG_SAMPLE, 0, (uint32_t)(first + i));
}

int trajectory_images_held(const Trajectory *t, int first, int count) {
    int held = t->images - first;
    if (held > count) held = count;
    return held > 0 ? held : 0;
}

/* Record frame f of the images of this chunk that the trajectory follows; the chunk's images
 * are first + first_local + i globally, first_local + i in this call. */
static void record(Trajectory *tr, int f, int t, const float *x, int first, int first_local,
                   int n, size_t dim) {
    if (!tr || f >= tr->frames) return;
    tr->timesteps[f] = t;
    for (int i = 0; i < n; i++) {
        int img = first_local + i;
        if (first + img >= tr->images) break;
        memcpy(tr->out + ((size_t)img * tr->frames + f) * dim, x + (size_t)i * dim,
               dim * sizeof(float));
    }
}

void sample_class_labels(int *labels, int lo, int k, int n, int first, int count) {
    for (int i = 0; i < count; i++) labels[i] = lo + (int)((long long)(first + i) * k / n);
}

/* whether the spec divides the noise estimate (0, as a zero-initialised spec, and 1 do not) */
static int eps_scaled(const SamplerSpec *spec) {
    return spec->eps_scale > 0 && spec->eps_scale != 1.0;
}

/* The noise prediction for chunk xc, all at timestep t: plain or classifier-free guided (two
 * evaluations), and for a v-prediction network the eps its output implies (guidance is linear
 * in the output, so guiding v and converting equals converting and guiding eps). `work` holds
 * the result when it is not the network's own output buffer. */
static const float *predict(Model *m, const float *params, const float *xc, const int *tbuf,
                            const int *labels, int nb, const SamplerSpec *spec, const Schedule *s,
                            float *work, size_t dim) {
    const float *out = model_forward(m, params, xc, tbuf, labels, nb);
    const size_t count = (size_t)nb * dim;
    if (labels && spec->guidance != 0) {
        memcpy(work, out, count * sizeof(float));
        const float *uncond = model_forward(m, params, xc, tbuf, NULL, nb);
        const float a = (float)(1.0 + spec->guidance), b = (float)spec->guidance;
        for (size_t j = 0; j < count; j++) work[j] = a * work[j] - b * uncond[j];
        out = work;
    }
    if (spec->prediction == PREDICT_V) {
        if (out != work) memcpy(work, out, count * sizeof(float));
        diffusion_eps_from_v(work, xc, tbuf[0], count, s);
        out = work;
    }
    if (eps_scaled(spec)) {
        if (out != work) memcpy(work, out, count * sizeof(float));
        const float inv = (float)(1.0 / spec->eps_scale);
        for (size_t j = 0; j < count; j++) work[j] *= inv;
        out = work;
    }
    return out;
}

void sample_run(Model *m, const float *params, const Schedule *s, const SamplerSpec *spec,
                float *x, const int *labels, int n, int first, Trajectory *traj) {
    sample_run_part(m, params, s, spec, x, labels, n, first, traj, NULL, 0, NULL);
}

/* Whether a trajectory of `frames` frames takes a snapshot after `taken` of nsteps steps:
 * about evenly spaced, frames - 2 in between x_T and the final sample. */
static int snapshot_after(int taken, int nsteps, int frames) {
    if (frames <= 2 || taken >= nsteps) return 0;
    const int between = frames - 2;
    return (long)taken * (between + 1) / nsteps != (long)(taken - 1) * (between + 1) / nsteps;
}

int sample_run_part(Model *m, const float *params, const Schedule *s, const SamplerSpec *spec,
                    float *x, const int *labels, int n, int first, Trajectory *traj, float *prev,
                    int done, int (*stop)(void)) {
    const ModelConfig *c = &m->cfg;
    const size_t dim = (size_t)c->in_channels * c->image_size * c->image_size;
    const int T = s->T;
    const int nsteps = sampler_evaluations(spec, T);
    int *ts = xcalloc((size_t)nsteps, sizeof(int));
    if (spec->kind == SAMPLER_DDPM)
        for (int i = 0; i < T; i++) ts[i] = i;
    else if (spec->spacing == 1) ddim_timesteps_quadratic(ts, nsteps, T);
    else ddim_timesteps(ts, nsteps, T);
    const int second_order = spec->kind == SAMPLER_DPMPP2M;
    float *z = floats_alloc(dim * (size_t)m->max_batch);
    float *x0_prev = second_order && !prev ? floats_alloc(dim * (size_t)m->max_batch) : NULL;
    int *tbuf = xcalloc((size_t)m->max_batch, sizeof(int));
    const int own = (labels && spec->guidance != 0) || spec->prediction == PREDICT_V ||
                    eps_scaled(spec);
    float *work = own ? floats_alloc(dim * (size_t)m->max_batch) : NULL;
    /* a part-way start or stop needs one chunk, and dpmpp2m its previous x0 estimate kept */
    const int single = n <= m->max_batch && (!second_order || prev);
    if (done < 0 || done >= nsteps || (done > 0 && !single))
        die("sample_run_part: cannot start after %d of %d steps here", done, nsteps); /* a bug */
    if (!single) stop = NULL;
    int applied = nsteps;
    for (int c0 = 0; c0 < n; c0 += m->max_batch) {
        const int nb = n - c0 < m->max_batch ? n - c0 : m->max_batch;
        float *xc = x + (size_t)c0 * dim;
        float *xp = prev ? prev : x0_prev; /* one chunk when prev is given */
        int frame = 1;
        if (!done) record(traj, 0, T, xc, first, c0, nb, dim);
        else if (traj) { /* the frames up to step `done` are the caller's; their timesteps here */
            traj->timesteps[0] = T;
            for (int taken = 1; taken <= done; taken++)
                if (snapshot_after(taken, nsteps, traj->frames) && frame < traj->frames)
                    traj->timesteps[frame++] = ts[nsteps - taken - 1];
        }
        for (int k = nsteps - 1 - done; k >= 0; k--) {
            if (stop && k < nsteps - 1 - done && stop()) { /* after at least one step here */
                applied = nsteps - 1 - k;
                break;
            }
            const int t = ts[k];
            for (int i = 0; i < nb; i++) tbuf[i] = t;
            const float *eps = predict(m, params, xc, tbuf, labels ? labels + c0 : NULL, nb,
                                       spec, s, work, dim);
            const uint32_t step_key = (uint32_t)(nsteps - k); /* 1..nsteps, 0 is x_T */
            const int noisy = spec->kind == SAMPLER_DDPM   ? t > 0
                              : spec->kind == SAMPLER_DDIM ? (spec->eta > 0 && k > 0)
                                                           : 0;
            if (noisy)
                for (int i = 0; i < nb; i++)
                    rng_normal(z + (size_t)i * dim, dim, spec->seed, RNG_SAMPLE, step_key,
                               (uint32_t)(first + c0 + i));
            if (spec->kind == SAMPLER_DDPM)
                ddpm_step(xc, eps, z, t, spec->clip, (size_t)nb * dim, s);
            else if (second_order)
                /* second order except on the first step (no earlier estimate) and on the last
                 * two: the step into ts[0] spans far more of lambda = log(alpha/sigma) than the
                 * one before it (cosine, T = 300, 10 steps: 2.7 against 0.7), so extrapolating
                 * the x0 estimates over it overshoots, and the final one lands on x0 */
                dpmpp2m_step(xc, eps, xp, k < nsteps - 1 && k > 1 ? ts[k + 1] : -1, t,
                             k > 0 ? ts[k - 1] : -1, spec->clip, (size_t)nb * dim, s);
            else
                ddim_step(xc, eps, noisy ? z : NULL, t, k > 0 ? ts[k - 1] : -1,
                          noisy ? spec->eta : 0.0, spec->clip, (size_t)nb * dim, s);
            if (traj && snapshot_after(nsteps - k, nsteps, traj->frames))
                record(traj, frame++, ts[k - 1], xc, first, c0, nb, dim);
        }
        if (applied < nsteps) break; /* stopped part-way: x_t as it stands, unclamped */
        clamp_unit(xc, (size_t)nb * dim);
        record(traj, traj ? traj->frames - 1 : 0, -1, xc, first, c0, nb, dim);
    }
    free(ts);
    free(z);
    free(x0_prev);
    free(tbuf);
    free(work);
    return applied;
}
