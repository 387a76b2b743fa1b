/* samples_file.c: write generated images (and an optional trajectory) to HDF5, every rank its
 * own rows of one shared file. */
#include "samples_file.h"

#include <stdio.h>

#include "dist.h"
#include "h5attr.h"
#include "h5shared.h"
#include "h5tensor.h"
#include "util.h"

void samples_begin(SamplesFile *sf, const char *path, int n, int c, int s, int conditional) {
    if (snprintf(sf->path, sizeof sf->path, "%s", path) >= (int)sizeof sf->path)
        die("%s: path too long", path);
    sf->n = n, sf->c = c, sf->s = s, sf->conditional = conditional;
    tmp_file_begin(sf->tmp, sizeof sf->tmp, path); /* h5s_close_and_publish ends it */
    sf->f = h5s_create(sf->tmp);
    /* the datasets exist from the start, whatever rows come */
    h5s_write_rows_f32(sf->f, "/samples", NULL, 4, (long long[]){n, c, s, s}, 0, 0);
    h5a_describe(sf->f, "/samples", "generated images, float32 in [-1, 1], [N, C, H, W]");
    if (conditional) {
        h5s_write_rows_i32(sf->f, "/labels", NULL, 1, (long long[]){n}, 0, 0);
        h5a_describe(sf->f, "/labels", "the class each image was generated for, [N]");
    }
}

void samples_put(SamplesFile *sf, const float *x, const int *labels, long first, long count) {
    h5s_write_rows_f32(sf->f, "/samples", x, 4, (long long[]){sf->n, sf->c, sf->s, sf->s}, first,
                       count);
    if (sf->conditional) {
        if (count > 0 && !labels) die("%s: conditional samples without their labels", sf->path);
        h5s_write_rows_i32(sf->f, "/labels", labels, 1, (long long[]){sf->n}, first, count);
    }
}

void samples_end(SamplesFile *sf, const SamplerSpec *spec, const SamplesMeta *meta,
                 const Trajectory *traj, long first, long count) {
    hid_t f = sf->f;
    h5a_write_string(f, "kind", "ddpm-samples");
    h5a_write_long(f, "format_version", 1);
    h5a_write_long(f, "step", meta->step);
    h5a_write_string(f, "sampler", sampler_name(spec->kind));
    h5a_write_long(f, "steps", sampler_evaluations(spec, meta->T));
    /* DDPM's noise is DDIM's eta 1, DPM++ 2M is deterministic */
    h5a_write_double(f, "eta", spec->kind == SAMPLER_DDIM ? spec->eta
                               : spec->kind == SAMPLER_DDPM ? 1.0 : 0.0);
    /* DDPM visits every step: the uniform spacing with K = T */
    h5a_write_string(f, "spacing",
                     spec->kind != SAMPLER_DDPM && spec->spacing ? "quadratic" : "uniform");
    h5a_write_long(f, "clip", spec->clip);
    h5a_write_double(f, "eps_scale", spec->eps_scale);
    h5a_write_long(f, "seed", (long long)spec->seed);
    h5a_write_string(f, "weights", meta->weights);
    h5a_write_string(f, "source", meta->source);
    h5a_write_long(f, "T", meta->T);
    h5a_write_string(f, "schedule", meta->schedule);
    if (sf->conditional) h5a_write_double(f, "guidance", meta->guidance);
    if (traj) {
        const int held = trajectory_images_held(traj, (int)first, (int)count);
        const int c = sf->c, s = sf->s;
        h5s_write_rows_f32(f, "/trajectory", traj->out, 5,
                           (long long[]){traj->images, traj->frames, c, s, s}, held ? first : 0,
                           held);
        h5a_describe(f, "/trajectory",
                 "x_t along the reverse process for the first images: [images, frames, C, H, W], "
                 "frame 0 = pure noise, last = the sample");
        /* the frame timesteps are the same on every rank: rank 0 writes them */
        h5s_write_rows_i32(f, "/trajectory_t", traj->timesteps, 1, (long long[]){traj->frames},
                           0, dist_is_root() ? traj->frames : 0);
        h5a_describe(f, "/trajectory_t", "timestep of each frame; T = pure noise, -1 = final");
    }
    h5s_close_and_publish(f, sf->tmp, sf->path);
    sf->f = -1;
}

void samples_write(const char *path, const float *x, const int *labels, int first, int count,
                   int n, int c, int s, const SamplerSpec *spec, const SamplesMeta *meta,
                   const Trajectory *traj) {
    SamplesFile sf;
    samples_begin(&sf, path, n, c, s, meta->conditional);
    samples_put(&sf, x, labels, first, count);
    samples_end(&sf, spec, meta, traj, first, count);
}
