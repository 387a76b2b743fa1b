/* cmd_sample.c: `ddpm sample --checkpoint FILE --out FILE.h5 [options]` */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "png_grid.h"
#include "samples_file.h"
#include "util.h"

#define TRAJ_IMAGES 8
#define TRAJ_FRAMES 10

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm sample --checkpoint FILE --out FILE.h5 [options]\n"
            "\n"
            "Generate images from pure noise with a checkpoint's weights. Defaults come from the\n"
            "checkpoint's [sample] config section.\n"
            "\n"
            "  --checkpoint FILE    latest.h5, epoch_NNN.h5 or a weights-only file (final.h5)\n"
            "  --out FILE.h5        samples: /samples float32 [N,1,28,28] in [-1,1] + attributes\n"
            "  --png FILE.png       also an image grid (8 columns)\n"
            "  --n N                number of images\n"
            "  --sampler ddpm|ddim  DDPM ancestral (T steps) or DDIM\n"
            "  --steps K            DDIM steps, t_i = round(i (T-1)/(K-1))\n"
            "  --eta E              DDIM noise: 1 stochastic, 0 deterministic\n"
            "  --clip               DDIM: clamp the predicted x0 to [-1, 1]\n"
            "  --seed S             noise seed\n"
            "  --weights ema|model  EMA weights (default) or the raw trained weights\n"
            "  --init FILE.h5       x_T from dataset /x [N,1,28,28] instead of the seed\n"
            "  --trajectory         also record x_t at %d points for the first %d images\n"
            "                       (/trajectory in the output, and FILE_trajectory.png with --png)\n"
            "  --batch B            images per network evaluation (default 128)\n"
            "  --help               this text\n",
            TRAJ_FRAMES, TRAJ_IMAGES);
}

static int parse_int(const char *flag, const char *v, int lo, int hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end || x < lo || x > hi) die("sample: %s %s: expected an integer %d..%d", flag, v, lo, hi);
    return (int)x;
}

int cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *png = NULL, *init = NULL, *weights = "ema";
    const char *sampler = NULL;
    int n = -1, steps = -1, seed = -1, clip = -1, trajectory = 0, batch = 128;
    double eta = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--clip")) clip = 1;
        else if (!strcmp(a, "--trajectory")) trajectory = 1;
        else if (!v) die("sample: %s needs a value (try ddpm sample --help)", a);
        else if (!strcmp(a, "--checkpoint")) ckpt = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--png")) png = argv[++i];
        else if (!strcmp(a, "--init")) init = argv[++i];
        else if (!strcmp(a, "--weights")) weights = argv[++i];
        else if (!strcmp(a, "--sampler")) sampler = argv[++i];
        else if (!strcmp(a, "--n")) n = parse_int(a, argv[++i], 1, 10000000);
        else if (!strcmp(a, "--steps")) steps = parse_int(a, argv[++i], 2, 1000000);
        else if (!strcmp(a, "--seed")) seed = parse_int(a, argv[++i], 0, 2147483647);
        else if (!strcmp(a, "--batch")) batch = parse_int(a, argv[++i], 1, 65536);
        else if (!strcmp(a, "--eta")) {
            char *end;
            eta = strtod(argv[++i], &end);
            if (*end || !(eta >= 0 && eta <= 1)) die("sample: --eta %s: expected 0..1", argv[i]);
        } else {
            fprintf(stderr, "ddpm sample: unexpected argument '%s' (try ddpm sample --help)\n", a);
            return 2;
        }
    }
    if (!ckpt) die("sample: --checkpoint FILE is required");
    if (!out) die("sample: --out FILE.h5 is required");
    if (strcmp(weights, "ema") && strcmp(weights, "model"))
        die("sample: --weights %s: expected ema or model", weights);

    Config cfg;
    checkpoint_read_config(ckpt, &cfg);
    SamplerSpec spec = {.kind = (SamplerKind)cfg.sample.sampler, .steps = cfg.sample.steps,
                        .eta = cfg.sample.eta, .clip = cfg.sample.clip,
                        .seed = (uint64_t)cfg.sample.seed};
    if (sampler) {
        if (!strcmp(sampler, "ddpm")) spec.kind = SAMPLER_DDPM;
        else if (!strcmp(sampler, "ddim")) spec.kind = SAMPLER_DDIM;
        else die("sample: --sampler %s: expected ddpm or ddim", sampler);
    }
    if (steps > 0) spec.steps = steps;
    if (eta >= 0) spec.eta = eta;
    if (clip > 0) spec.clip = 1;
    if (seed >= 0) spec.seed = (uint64_t)seed;
    if (spec.kind == SAMPLER_DDPM && (steps > 0 || eta >= 0 || clip > 0))
        die("sample: --steps, --eta and --clip apply to --sampler ddim (DDPM uses all T=%d steps)",
            cfg.diffusion.T);
    if (spec.kind == SAMPLER_DDIM && spec.steps > cfg.diffusion.T)
        die("sample: --steps %d exceeds the checkpoint's T = %d", spec.steps, cfg.diffusion.T);

    const int C = cfg.model.in_channels, S = cfg.model.image_size;
    const size_t dim = (size_t)C * S * S;
    float *x = NULL;
    if (init) {
        hid_t f = h5t_open_read(init);
        int nd = 0;
        long long dims[H5T_MAX_DIMS];
        if (!h5t_dims(f, "/x", &nd, dims)) die("%s: no dataset /x (the initial noise x_T)", init);
        if (nd != 4 || dims[1] != C || dims[2] != S || dims[3] != S || dims[0] < 1)
            die("%s: /x must be [N, %d, %d, %d]", init, C, S, S);
        if (n > 0 && n != dims[0]) die("sample: --n %d but %s holds %lld images", n, init, dims[0]);
        n = (int)dims[0];
        x = floats_alloc(dim * (size_t)n);
        h5t_read_f32(f, "/x", x, 4, dims);
        h5t_close(f);
    } else {
        if (n < 0) n = cfg.sample.n;
        x = floats_alloc(dim * (size_t)n);
        sample_initial_noise(x, n, 0, dim, spec.seed);
    }

    Model m;
    model_build(&m, &cfg.model, n < batch ? n : batch);
    Arenas a;
    arenas_alloc(&a, &m.table);
    TrainState st = {0};
    checkpoint_load(ckpt, &m.table, &a, &st, CKPT_WEIGHTS);
    Schedule sched;
    schedule_build(&sched, (ScheduleKind)cfg.diffusion.schedule, cfg.diffusion.T,
                   cfg.diffusion.beta_start, cfg.diffusion.beta_end);
    Trajectory traj = {0}, *tp = NULL;
    if (trajectory) {
        traj.images = n < TRAJ_IMAGES ? n : TRAJ_IMAGES;
        const int evals = spec.kind == SAMPLER_DDIM ? spec.steps : cfg.diffusion.T;
        traj.frames = evals + 1 < TRAJ_FRAMES ? evals + 1 : TRAJ_FRAMES; /* one per step at most */
        traj.out = floats_alloc(dim * traj.images * traj.frames);
        traj.timesteps = xcalloc((size_t)traj.frames, sizeof(int));
        tp = &traj;
    }
    const double t0 = now_seconds();
    sample_run(&m, strcmp(weights, "ema") ? a.params : a.ema, &sched, &spec, x, n, 0, tp);
    const double dt = now_seconds() - t0;
    long long step = 0;
    {
        hid_t f = h5t_open_read(ckpt);
        h5a_read_long(f, "step", &step);
        h5t_close(f);
    }
    SamplesMeta meta = {.step = (long)step, .weights = weights, .source = ckpt,
                        .T = cfg.diffusion.T, .schedule = schedule_name(sched.kind)};
    samples_write(out, x, n, C, S, &spec, &meta, tp);
    char err[1400];
    if (png && png_write_grid(png, x, n, C, S, S, 8, 2, err, sizeof err) != 0) die("%s", err);
    if (png && tp) {
        char strip[1100];
        snprintf(strip, sizeof strip, "%.*s_trajectory.png",
                 (int)(strlen(png) > 4 && !strcmp(png + strlen(png) - 4, ".png") ? strlen(png) - 4 : strlen(png)), png);
        if (png_write_strip(strip, traj.out, traj.images, traj.frames, C, S, S, 2, err, sizeof err))
            die("%s", err);
        printf("trajectory strip: %s\n", strip);
    }
    const int evals = spec.kind == SAMPLER_DDIM ? spec.steps : cfg.diffusion.T;
    printf("sampled %d images with %s (%d network evaluations each) in %.1f s (%.0f image-steps/s): %s\n",
           n, sampler_name(spec.kind), evals, dt, (double)n * evals / dt, out);
    free(x);
    free(traj.out);
    free(traj.timesteps);
    schedule_free(&sched);
    arenas_free(&a);
    model_free(&m);
    return 0;
}
