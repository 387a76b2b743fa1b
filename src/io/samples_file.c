/* samples_file.c: write generated images (and an optional trajectory) to HDF5, every rank its
 * own rows of one shared file. */
#include "samples_file.h"

#include <stdio.h>

#include "dist.h"
#include "h5attr.h"
#include "h5shared.h"
#include "h5tensor.h"
#include "util.h"

void samples_write(const char *path, const float *x, int first, int count, int n, int c, int s,
                   const SamplerSpec *spec, const SamplesMeta *meta, const Trajectory *traj) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = h5s_create(tmp);
    h5s_write_rows_f32(f, "/samples", x, 4, (long long[]){n, c, s, s}, first, count);
    hid_t ds = H5Dopen2(f, "/samples", H5P_DEFAULT);
    h5a_write_string(ds, "description", "generated images, float32 in [-1, 1], [N, C, H, W]");
    H5Dclose(ds);
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
    if (meta->labels) {
        h5s_write_rows_i32(f, "/labels", meta->labels, 1, (long long[]){n}, first, count);
        hid_t ls = H5Dopen2(f, "/labels", H5P_DEFAULT);
        h5a_write_string(ls, "description", "the class each image was generated for, [N]");
        H5Dclose(ls);
        h5a_write_double(f, "guidance", meta->guidance);
    }
    if (traj) {
        const int held = trajectory_images_held(traj, first, count);
        h5s_write_rows_f32(f, "/trajectory", traj->out, 5,
                           (long long[]){traj->images, traj->frames, c, s, s}, held ? first : 0,
                           held);
        hid_t tr = H5Dopen2(f, "/trajectory", H5P_DEFAULT);
        h5a_write_string(tr, "description",
                         "x_t along the reverse process for the first images: [images, frames, "
                         "C, H, W], frame 0 = pure noise, last = the sample");
        H5Dclose(tr);
        /* the frame timesteps are the same on every rank: rank 0 writes them */
        h5s_write_rows_i32(f, "/trajectory_t", traj->timesteps, 1, (long long[]){traj->frames},
                           0, dist_is_root() ? traj->frames : 0);
        hid_t td = H5Dopen2(f, "/trajectory_t", H5P_DEFAULT);
        h5a_write_string(td, "description", "timestep of each frame; T = pure noise, -1 = final");
        H5Dclose(td);
    }
    h5s_close_and_publish(f, tmp, path);
}
