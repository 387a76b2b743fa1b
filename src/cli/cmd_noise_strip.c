/* cmd_noise_strip.c: `ddpm noise-strip`: the forward process x_t = sqrt(abar_t) x0 +
 * sqrt(1-abar_t) eps on real digits, as a PNG strip (rows: images, columns: t) and HDF5. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "png_grid.h"
#include "rng.h"
#include "util.h"

int cmd_noise_strip(int argc, char **argv) {
    Config cfg;
    config_defaults(&cfg);
    const char *png = NULL, *h5 = NULL;
    int n = 8, frames = 10, seed = 0, nsets = 0;
    const char *sets[64]; /* --set overrides, applied after --config wherever they stand */
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("noise-strip", argc, argv, &i)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: ddpm noise-strip --out FILE.png [--config FILE] [--set section.key=v ...]\n"
                   "                        [--n 8] [--frames 10] [--seed 0] [--h5 FILE.h5]\n\n"
                   "Noise the first N training images of [data] dir at FRAMES timesteps evenly\n"
                   "spaced over 0..T-1 with the config's schedule (default: unet-s's linear\n"
                   "T = 300) and write a strip: one row per image, noise growing to the right.\n"
                   "  --config FILE        the INI config whose [diffusion] and [data] are used\n"
                   "  --set section.key=v  override one config key (repeatable; after --config; the last of a key applies)\n"
                   "  --n N                images, the first N of the training set (1..1000)\n"
                   "  --frames F           timesteps per image, first 0 and last T-1 (2..1000)\n"
                   "  --seed S             seed of the noise eps\n"
                   "  --h5 FILE.h5         also write /x_t [N, FRAMES, 1, 28, 28] and /t [FRAMES]\n");
            return 0;
        }
        if (!strcmp(a, "--out")) png = TAKE_VALUE();
        else if (!strcmp(a, "--h5")) h5 = TAKE_VALUE();
        else if (!strcmp(a, "--config")) config_load(&cfg, TAKE_VALUE());
        else if (!strcmp(a, "--set")) {
            if (nsets == (int)ARRAY_LEN(sets)) die("noise-strip: too many --set options");
            sets[nsets++] = TAKE_VALUE();
        }
        else if (!strcmp(a, "--n")) n = (int)cli_int("noise-strip", a, TAKE_VALUE(), 1, 1000);
        else if (!strcmp(a, "--frames")) frames = (int)cli_int("noise-strip", a, TAKE_VALUE(), 2, 1000);
        else if (!strcmp(a, "--seed")) seed = (int)cli_int("noise-strip", a, TAKE_VALUE(), 0, 2147483647);
        else return cli_unexpected("noise-strip", a);
    }
#undef TAKE_VALUE
    if (!png) die("noise-strip: --out FILE.png is required");
    if (h5) cli_output_file("noise-strip", "--h5", h5, (const char *const[]){png, NULL});
    config_set_all(&cfg, sets, nsets, 1);
    config_validate(&cfg, "noise-strip");
    if (frames > cfg.diffusion.T)
        die("noise-strip: --frames %d: at most T = %d (one per timestep)", frames, cfg.diffusion.T);
    Dataset d;
    dataset_load_or_die(&d, cfg.data.dir, "train");
    if (n > d.count) n = d.count;
    char err[1400];
    if (png_grid_check(png, n * frames, 1, d.rows, d.cols, frames, 2, err, sizeof err) != 0)
        die("noise-strip: --out %s", err);
    Schedule s;
    schedule_build(&s, (ScheduleKind)cfg.diffusion.schedule, cfg.diffusion.T,
                   cfg.diffusion.beta_start, cfg.diffusion.beta_end);
    const size_t dim = (size_t)d.rows * d.cols;
    float *x0 = floats_alloc(dim * n), *eps = floats_alloc(dim * n),
          *out = floats_alloc(dim * n * frames);
    int *idx = xcalloc((size_t)n, sizeof(int)), *ts = xcalloc((size_t)frames, sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    dataset_images_to_float(x0, &d, idx, n);
    for (int i = 0; i < n; i++) rng_normal(eps + i * dim, dim, (uint64_t)seed, RNG_NOISE, 0, (uint32_t)i);
    for (int f = 0; f < frames; f++) {
        ts[f] = (int)((long)f * (s.T - 1) / (frames - 1));
        for (int i = 0; i < n; i++) {
            int t = ts[f];
            diffusion_noise(out + ((size_t)i * frames + f) * dim, x0 + i * dim, eps + i * dim, &t,
                            1, dim, &s);
        }
    }
    if (png_write_strip(png, out, n, frames, 1, d.rows, d.cols, 2, err, sizeof err)) die("%s", err);
    if (h5) {
        char tmp[1100];
        tmp_file_begin(tmp, sizeof tmp, h5);
        hid_t f = h5t_create(tmp);
        h5t_write_f32(f, "/x_t", out, 5, (long long[]){n, frames, 1, d.rows, d.cols});
        h5t_write_i32(f, "/t", ts, 1, (long long[]){frames});
        h5a_write_string(f, "kind", "ddpm-noise-strip");
        h5a_write_long(f, "format_version", 1);
        h5a_describe(f, "/x_t", "x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps of each image "
                                "(row) at each timestep of /t (column), [N, frames, C, H, W]");
        h5a_describe(f, "/t", "the timestep of each column of /x_t, [frames]");
        h5a_write_string(f, "schedule", schedule_name(s.kind));
        h5a_write_long(f, "T", s.T);
        h5t_close(f);
        if (rename(tmp, h5) != 0) die("%s: cannot rename %s over it: %s", h5, tmp, strerror(errno));
        tmp_file_done(tmp);
    }
    printf("forward process of %d images at t =", n);
    for (int f = 0; f < frames; f++) printf(" %d", ts[f]);
    printf(" (%s, T = %d): %s\n", schedule_name(s.kind), s.T, png);
    free(x0), free(eps), free(out), free(idx), free(ts);
    schedule_free(&s);
    dataset_free(&d);
    return 0;
}
