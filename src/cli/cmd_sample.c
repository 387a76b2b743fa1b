/* cmd_sample.c: `ddpm sample --checkpoint FILE --out FILE.h5 [options]` */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "dist.h"
#include "cli.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "ordered_sum.h"
#include "png_grid.h"
#include "sample_progress.h"
#include "samples_file.h"
#include "stop_signal.h"
#include "util.h"

#define TRAJ_IMAGES 8
#define TRAJ_FRAMES 10
/* chunks of images a rank copies from OUT.part to OUT at a time, when all are sampled */
#define ASSEMBLY_CHUNKS 32

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm sample --checkpoint FILE --out FILE.h5 [options]\n"
            "\n"
            "Generate images from pure noise with a checkpoint's weights. Defaults come from the\n"
            "checkpoint's [sample] config section. Under mpirun -np P the ranks share the work\n"
            "and write one file together; the images do not depend on P.\n"
            "\n"
            "Finished chunks of --batch images are kept in FILE.h5.part as the run goes. On\n"
            "SIGTERM, SIGINT or SIGUSR1 it stops the chunks in flight at the next step and keeps\n"
            "them part-way there, then exits with status 75; the same command run again (any\n"
            "number of ranks) resumes from FILE.h5.part, as it does after a crash, and writes\n"
            "the images an uninterrupted run would have.\n"
            "A FILE.h5.part of other options is refused, naming the difference.\n"
            "\n"
            "  --checkpoint FILE    latest.h5, epoch_NNN.h5 or a weights-only file (final.h5)\n"
            "  --out FILE.h5        samples: /samples float32 [N,1,28,28] in [-1,1] + attributes,\n"
            "                       and /labels int32 [N] for class-conditional samples\n"
            "  --png FILE.png       also an image grid (8 columns; one row per class with\n"
            "                       --classes when the classes divide N)\n"
            "  --n N                number of images\n"
            "  --sampler S          ddpm: DDPM ancestral (T steps); ddim: DDIM; dpmpp2m:\n"
            "                       DPM-Solver++(2M), deterministic, second order\n"
            "  --steps K            DDIM / dpmpp2m steps, t_i = round(i (T-1)/(K-1))\n"
            "  --eta E              DDIM noise: 1 stochastic, 0 deterministic\n"
            "  --spacing S          DDIM / dpmpp2m timesteps: uniform (t_i above) or quadratic,\n"
            "                       t_i = round((i/(K-1))^2 (T-1)), denser near t = 0\n"
            "  --clip, --no-clip    clamp the predicted x0 to [-1, 1] at every step, every\n"
            "                       sampler (as Ho et al.'s sampler; the cosine schedule needs\n"
            "                       it), or not (default: the checkpoint's [sample] clip)\n"
            "  --seed S             noise seed\n"
            "  --class K            conditional models: every image of class K\n"
            "  --classes A-B        conditional models: classes A..B in turn, one grid row each\n"
            "                       (without either, a conditional model samples unconditionally)\n"
            "  --guidance W         classifier-free guidance with --class/--classes:\n"
            "                       eps = (1+W) eps(x,class) - W eps(x,null); 0 = plain conditional\n"
            "                       (default: the checkpoint's [sample] guidance)\n"
            "  --eps-scale S        divide the network's noise estimate by S at every step, every\n"
            "                       sampler, S in 0.5..2 (Ning et al.'s epsilon scaling;\n"
            "                       default 1: none)\n"
            "  --weights ema|model  EMA weights (default) or the raw trained weights\n"
            "  --init FILE.h5       x_T from dataset /x [N,1,28,28] instead of the seed\n"
            "  --trajectory         also record x_t at %d points for the first %d images\n"
            "                       (/trajectory in the output, and FILE_trajectory.png with --png)\n"
            "  --batch B            images per network evaluation (default 128); under MPI each\n"
            "                       rank takes whole chunks of B images\n"
            "  --progress S         a progress line (images done, image-steps/s, time left) at\n"
            "                       most every S seconds while chunks remain (default 60; 0:\n"
            "                       after every round of chunks)\n"
            "  --help               this text\n",
            TRAJ_FRAMES, TRAJ_IMAGES);
}

/* The stop check before each step of a chunk. The hidden test hook DDPM_TEST_STOP_CHECK=K
 * raises SIGUSR1 in this process at its K-th check, so that the tests stop a chunk part-way
 * at a known step (K after the step it started from) instead of racing a signal against the
 * start of a round. */
static long stop_checks, stop_check_hook;
static int stop_check(void) {
    if (stop_check_hook > 0 && ++stop_checks == stop_check_hook) raise(SIGUSR1);
    return stop_signal_pending();
}

/* Rank 0: "progress: D of N images (...)", the rate of this invocation and the time it implies
 * for the rest. work: network evaluations x images this invocation made in dt seconds (steps
 * of chunks left part-way included); rest: those still to make. */
static void print_progress(long held, int n, double work, double rest, double dt) {
    const double rate = dt > 0 ? work / dt : 0; /* image-steps/s */
    const long left = rate > 0 ? (long)(rest / rate + 0.5) : 0;
    printf("progress: %ld of %d images, %.0f image-steps/s, about %ldh%02ldm%02lds left\n", held,
           n, rate, left / 3600, left / 60 % 60, left % 60);
    fflush(stdout); /* batch logs are files: show it now, not at exit */
}

/* Rank 0, when every image is written: what this invocation sampled, at what rate. */
static void print_summary(int n, long fresh, const SamplerSpec *spec, int evals, double work,
                          double dt, const char *out) {
    const int P = dist()->size;
    if (fresh == 0) {
        printf("wrote %d images sampled by earlier runs (all in the progress file): %s\n", n, out);
        return;
    }
    printf("sampled %ld images with %s (%d network evaluations each) in %.1f s (%.0f "
           "image-steps/s) on %d rank%s",
           fresh, sampler_name(spec->kind), evals, dt, dt > 0 ? work / dt : 0.0,
           P, P == 1 ? "" : "s");
    if (fresh < n) printf("; with %ld from earlier runs", n - fresh);
    printf(": %d images in %s\n", n, out);
}

static int parse_int(const char *flag, const char *v, int lo, int hi) {
    return (int)cli_int("sample", flag, v, lo, hi);
}

/* The trajectory strip beside the grid: FILE.png -> FILE_trajectory.png. */
static void strip_path(const char *png, char *strip, size_t size) {
    const size_t len = strlen(png);
    const int stem = (int)(len > 4 && !strcmp(png + len - 4, ".png") ? len - 4 : len);
    if ((size_t)snprintf(strip, size, "%.*s_trajectory.png", stem, png) >= size)
        die("sample: --png %s: path too long for its trajectory strip (at most %zu characters)",
            png, size - sizeof "_trajectory.png");
}

/* Rank 0: the PNG grid (and trajectory strip) of the file just written, read back from it. */
static void draw_pictures(const char *out, const char *png, int n, int C, int S, int columns,
                          const Trajectory *tp) {
    if (!png) return;
    char err[1400];
    hid_t f = h5t_open_read(out);
    float *all = floats_alloc((size_t)n * C * S * S);
    h5t_read_f32(f, "/samples", all, 4, (long long[]){n, C, S, S});
    if (png_write_grid(png, all, n, C, S, S, columns, 2, err, sizeof err) != 0)
        die("%s (the samples are saved in %s)", err, out);
    free(all);
    if (tp) {
        const size_t frames = (size_t)tp->images * tp->frames;
        float *tr = floats_alloc(frames * C * S * S);
        h5t_read_f32(f, "/trajectory", tr, 5, (long long[]){tp->images, tp->frames, C, S, S});
        char strip[4096];
        strip_path(png, strip, sizeof strip);
        if (png_write_strip(strip, tr, tp->images, tp->frames, C, S, S, 2, err, sizeof err))
            die("%s (the samples are saved in %s)", err, out);
        printf("trajectory strip: %s\n", strip);
        free(tr);
    }
    h5t_close(f);
}

int cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *png = NULL, *init = NULL, *weights = "ema";
    const char *sampler = NULL, *class_one = NULL, *class_range = NULL, *spacing = NULL;
    int n = -1, steps = -1, seed = -1, clip = -1, trajectory = 0, batch = 128;
    double eta = -1, guidance = -1, eps_scale = 1.0, every = 60;
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("sample", argc, argv, &i)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--clip")) clip = 1;
        else if (!strcmp(a, "--no-clip")) clip = 0;
        else if (!strcmp(a, "--trajectory")) trajectory = 1;
        else if (!strcmp(a, "--checkpoint")) ckpt = TAKE_VALUE();
        else if (!strcmp(a, "--out")) out = TAKE_VALUE();
        else if (!strcmp(a, "--png")) png = TAKE_VALUE();
        else if (!strcmp(a, "--init")) init = TAKE_VALUE();
        else if (!strcmp(a, "--weights")) weights = TAKE_VALUE();
        else if (!strcmp(a, "--sampler")) sampler = TAKE_VALUE();
        else if (!strcmp(a, "--spacing")) spacing = TAKE_VALUE();
        else if (!strcmp(a, "--n")) n = parse_int(a, TAKE_VALUE(), 1, 10000000);
        else if (!strcmp(a, "--steps")) steps = parse_int(a, TAKE_VALUE(), 2, 1000000);
        else if (!strcmp(a, "--seed")) seed = parse_int(a, TAKE_VALUE(), 0, 2147483647);
        else if (!strcmp(a, "--batch")) batch = parse_int(a, TAKE_VALUE(), 1, 65536);
        else if (!strcmp(a, "--class")) class_one = TAKE_VALUE();
        else if (!strcmp(a, "--classes")) class_range = TAKE_VALUE();
        else if (!strcmp(a, "--guidance")) guidance = cli_double("sample", a, TAKE_VALUE(), 0, 1000);
        else if (!strcmp(a, "--eps-scale"))
            eps_scale = cli_double("sample", a, TAKE_VALUE(), 0.5, 2.0);
        else if (!strcmp(a, "--eta")) eta = cli_double("sample", a, TAKE_VALUE(), 0, 1);
        else if (!strcmp(a, "--progress")) every = cli_double("sample", a, TAKE_VALUE(), 0, 86400);
        else {
            return cli_unexpected("sample", a);
        }
    }
#undef TAKE_VALUE
    if (!ckpt) die("sample: --checkpoint FILE is required");
    if (!out) die("sample: --out FILE.h5 is required");
    if (strcmp(weights, "ema") && strcmp(weights, "model"))
        die("sample: --weights %s: expected ema or model", weights);

    Config cfg;
    checkpoint_read_config(ckpt, &cfg);
    SamplerSpec spec = sampler_spec_from_config(&cfg);
    if (sampler) {
        if (!strcmp(sampler, "ddpm")) spec.kind = SAMPLER_DDPM;
        else if (!strcmp(sampler, "ddim")) spec.kind = SAMPLER_DDIM;
        else if (!strcmp(sampler, "dpmpp2m")) spec.kind = SAMPLER_DPMPP2M;
        else die("sample: --sampler %s: expected ddpm, ddim or dpmpp2m", sampler);
    }
    if (steps > 0) spec.steps = steps;
    if (eta >= 0) spec.eta = eta;
    if (clip >= 0) spec.clip = clip;
    if (seed >= 0) spec.seed = (uint64_t)seed;
    spec.eps_scale = eps_scale;
    if (spacing) {
        if (!strcmp(spacing, "uniform")) spec.spacing = 0;
        else if (!strcmp(spacing, "quadratic")) spec.spacing = 1;
        else die("sample: --spacing %s: expected uniform or quadratic", spacing);
    }
    if (spec.kind == SAMPLER_DDPM && (steps > 0 || eta >= 0 || spacing))
        die("sample: --steps, --eta and --spacing apply to --sampler ddim or dpmpp2m (DDPM uses "
            "all T=%d steps)",
            cfg.diffusion.T);
    if (spec.kind == SAMPLER_DPMPP2M && eta >= 0)
        die("sample: --eta applies to --sampler ddim (dpmpp2m is deterministic)");
    if (spec.kind != SAMPLER_DDPM && spec.steps > cfg.diffusion.T)
        die("sample: %s %d exceeds the checkpoint's T = %d%s", steps > 0 ? "--steps" : "[sample] steps",
            spec.steps, cfg.diffusion.T, steps > 0 ? "" : " (the checkpoint's; give --steps)");

    /* classes lo..lo+k-1 in turn (k = 0: unconditional) */
    const int K = cfg.model.classes;
    int lo = 0, k = 0;
    if (class_one && class_range) die("sample: --class and --classes are alternatives");
    if ((class_one || class_range) && K == 0)
        die("sample: %s: the checkpoint's model is unconditional ([model] classes = 0)",
            class_one ? "--class" : "--classes");
    if (class_one) {
        lo = parse_int("--class", class_one, 0, K - 1);
        k = 1;
    } else if (class_range) {
        int a, b, used = 0;
        if (sscanf(class_range, "%d-%d%n", &a, &b, &used) != 2 || class_range[used] || a < 0 ||
            b < a || b >= K)
            die("sample: --classes %s: expected A-B with 0 <= A <= B <= %d", class_range, K - 1);
        lo = a, k = b - a + 1;
    }
    if (guidance >= 0 && k == 0)
        die("sample: --guidance needs --class or --classes (guidance steers towards a class)");
    spec.guidance = k > 0 ? (guidance >= 0 ? guidance : cfg.sample.guidance) : 0.0;
    /* with p_uncond = 0 the null label's embedding was never trained: eps(x, null), which both
     * guidance and unconditional samples of a conditional model use, is noise */
    if (K > 0 && cfg.train.p_uncond == 0 && spec.guidance > 0)
        die("sample: --guidance %g needs the null label, which this checkpoint never trained "
            "([train] p_uncond = 0): use --guidance 0", spec.guidance);
    if (K > 0 && cfg.train.p_uncond == 0 && k == 0)
        die("sample: this conditional model never trained its null label ([train] p_uncond = "
            "0), so it has no unconditional samples: give --class or --classes");

    const int C = cfg.model.in_channels, S = cfg.model.image_size;
    const size_t dim = (size_t)C * S * S;
    float *init_x = NULL;
    if (init) {
        hid_t f = h5t_open_read(init);
        int nd = 0;
        long long dims[H5T_MAX_DIMS];
        if (!h5t_dims(f, "/x", &nd, dims)) die("%s: no dataset /x (the initial noise x_T)", init);
        if (nd != 4 || dims[1] != C || dims[2] != S || dims[3] != S || dims[0] < 1)
            die("%s: /x must be [N, %d, %d, %d]", init, C, S, S);
        if (n > 0 && n != dims[0]) die("sample: --n %d but %s holds %lld images", n, init, dims[0]);
        n = (int)dims[0];
        init_x = floats_alloc(dim * (size_t)n);
        h5t_read_f32(f, "/x", init_x, 4, dims);
        h5t_close(f);
    } else if (n < 0) {
        n = cfg.sample.n;
    }
    const int columns = k > 1 && n % k == 0 ? n / k : 8; /* grid columns of --png */
    if (png) { /* refuse an impossible or unwritable picture now, not after hours of sampling */
        char err[1400];
        if (png_grid_check(png, n, C, S, S, columns, 2, err, sizeof err) != 0)
            die("sample: --png %s", err);
        if (trajectory) {
            char strip[4096];
            strip_path(png, strip, sizeof strip);
            const int images = n < TRAJ_IMAGES ? n : TRAJ_IMAGES;
            if (png_grid_check(strip, images * TRAJ_FRAMES, C, S, S, TRAJ_FRAMES, 2, err,
                               sizeof err) != 0)
                die("sample: --trajectory %s", err);
        }
    }
    Model m;
    const int nb = n < batch ? n : batch; /* images per network evaluation */
    model_build_inference(&m, &cfg.model, nb);
    Arenas a;
    arenas_alloc(&a, &m.table);
    TrainState st = {0};
    checkpoint_load(ckpt, &m.table, &a, &st, CKPT_WEIGHTS);
    const float *w = strcmp(weights, "ema") ? a.params : a.ema;
    TrainState saved;
    checkpoint_read_state(ckpt, &saved);
    Schedule sched;
    schedule_build(&sched, (ScheduleKind)cfg.diffusion.schedule, cfg.diffusion.T,
                   cfg.diffusion.beta_start, cfg.diffusion.beta_end);
    Trajectory traj = {0}, *tp = NULL;
    if (trajectory) {
        traj.images = n < TRAJ_IMAGES ? n : TRAJ_IMAGES;
        const int nsteps = sampler_evaluations(&spec, cfg.diffusion.T);
        traj.frames = nsteps + 1 < TRAJ_FRAMES ? nsteps + 1 : TRAJ_FRAMES; /* one per step at most */
        traj.out = floats_alloc(dim * (size_t)traj.images * traj.frames);
        traj.timesteps = xcalloc((size_t)traj.frames, sizeof(int));
        tp = &traj;
    }

    /* Chunks of `batch` images, one per rank per round, each written to OUT.part as it is
     * done: a stopped run resumes there. A chunk is the same network input for any rank count
     * and each image's noise is keyed by its index, so the samples are bit-identical for any
     * number of ranks and any interruptions. */
    /* the initial noise: its file and a checksum of its values */
    char *init_id = xmalloc((init ? strlen(init) : 0) + 40);
    if (init)
        sprintf(init_id, "%s checksum %016llx", init,
                (unsigned long long)float_bits_hash(init_x, dim * (size_t)n));
    else strcpy(init_id, "-");
    const size_t key_len = strlen(ckpt) + strlen(init_id) + 600;
    char *key = xmalloc(key_len);
    const int used = snprintf(
        key, key_len,
        "checkpoint %s, step %ld, weights %s, checksum %016llx, sampler %s, steps %d, eta %.17g, "
        "spacing %d, clip %d, eps_scale %.17g, seed %llu, n %d, batch %d, classes %d+%d, "
        "guidance %.17g, init %s, trajectory %d",
        ckpt, saved.step, weights, (unsigned long long)float_bits_hash(w, m.table.total),
        sampler_name(spec.kind), sampler_evaluations(&spec, cfg.diffusion.T), spec.eta,
        spec.spacing, spec.clip, spec.eps_scale, (unsigned long long)spec.seed, n, batch, lo, k,
        spec.guidance, init_id, trajectory);
    if (used < 0 || (size_t)used >= key_len) die("sample: the resume key does not fit"); /* a bug */
    stop_signal_install(); /* main installs it for `ddpm sample`; this covers other callers */
    SampleProgress prog;
    progress_open(&prog, out, key, n, batch, C, S, tp);
    free(key);
    free(init_id);
    int *todo = xcalloc((size_t)prog.nchunks, sizeof(int)), nt = 0;
    for (int c = 0; c < prog.nchunks; c++)
        if (!prog.done[c]) todo[nt++] = c;
    const int nsteps = sampler_evaluations(&spec, cfg.diffusion.T);
    if (dist_is_root() && prog.resumed) {
        int part = 0, lo_step = nsteps, hi_step = 0;
        for (int i = 0; i < nt; i++) {
            const int d = prog.steps_done[todo[i]];
            if (!d) continue;
            part++;
            if (d < lo_step) lo_step = d;
            if (d > hi_step) hi_step = d;
        }
        printf("resuming %s: %d of %d chunks of %d images already done", prog.path,
               prog.nchunks - nt, prog.nchunks, batch);
        if (part == 1) printf(", 1 part-way (step %d of %d)", hi_step, nsteps);
        else if (part > 1) printf(", %d part-way (steps %d-%d of %d)", part, lo_step, hi_step, nsteps);
        printf("\n");
    }
    dist_print_layout(stdout); /* collective; rank 0 prints */
    float *xc = floats_alloc(dim * (size_t)nb);
    /* dpmpp2m: the chunk's previous x0 estimate, kept with a chunk stopped part-way */
    float *prev = spec.kind == SAMPLER_DPMPP2M ? floats_alloc(dim * (size_t)nb) : NULL;
    int *lc = k > 0 ? xcalloc((size_t)nb, sizeof(int)) : NULL;
    const int P = dist()->size;
    /* network evaluations per image (guidance evaluates the network twice per step) */
    const int evals = sampler_evaluations(&spec, cfg.diffusion.T) *
                      (k > 0 && spec.guidance != 0 ? 2 : 1);
    /* images sampled by this invocation; images in OUT.part */
    long fresh = 0, held = progress_images_done(&prog);
    /* a signal stops the chunks in flight at their next step and keeps them part-way in
     * OUT.part */
    const char *hook = getenv("DDPM_TEST_STOP_CHECK");
    stop_check_hook = hook ? atol(hook) : 0;
    int stopped = 0;
    double work = 0; /* network evaluations x images made by this invocation, all ranks */
    const double t0 = now_seconds();
    double shown = t0; /* when the last progress line was printed */
    for (int j = 0; j * P < nt; j++) {
        /* a signal (on any rank) stops every rank before the next round */
        if ((stopped = dist_max_int(stop_signal_pending() != 0))) break;
        const int mine = j * P + dist()->rank;
        const int chunk = mine < nt ? todo[mine] : -1;
        Trajectory *tc = NULL;
        int partial = 0; /* steps applied to a chunk stopped part-way */
        double made = 0; /* network evaluations x images of this rank's chunk in this round */
        if (chunk >= 0) {
            const int first = chunk * batch, count = progress_chunk_images(&prog, chunk);
            const int before = prog.steps_done[chunk];
            if (tp && trajectory_images_held(tp, first, count)) tc = tp;
            if (before > 0) progress_read_chunk(&prog, chunk, xc, tc, prev);
            else if (init_x)
                memcpy(xc, init_x + (size_t)first * dim, dim * (size_t)count * sizeof(float));
            else sample_initial_noise(xc, count, first, dim, spec.seed);
            if (lc) sample_class_labels(lc, lo, k, n, first, count);
            const int applied = sample_run_part(&m, w, &sched, &spec, xc, lc, count, first, tc,
                                                prev, before, stop_check);
            if (applied < nsteps) partial = applied;
            made = (double)(applied - before) * count * (evals / nsteps);
        }
        progress_write_round(&prog, chunk, xc, tc, prev, partial);
        fresh = progress_images_done(&prog) - held;
        work += dist_sum(made);
        const double t = now_seconds();
        if (dist_is_root() && (j + 1) * P < nt && t - shown >= every) {
            double rest = 0; /* network evaluations x images still to make */
            for (int c = 0; c < prog.nchunks; c++)
                if (!prog.done[c])
                    rest += (double)progress_chunk_images(&prog, c) * (nsteps - prog.steps_done[c]) *
                            (evals / nsteps);
            print_progress(held + fresh, n, work, rest, t - t0);
            shown = t;
        }
    }
    const double dt = now_seconds() - t0;
    /* a chunk stopped part-way in the last round: as stopped as a run that did not get there */
    for (int c = 0; c < prog.nchunks && !stopped; c++) stopped = !prog.done[c];
    progress_close(&prog);
    free(xc);
    free(prev);
    free(lc);
    free(init_x);
    free(todo);
    if (stopped) {
        int part = 0; /* chunks part-way (every rank holds every chunk's state) */
        for (int c = 0; c < prog.nchunks; c++) part += !prog.done[c] && prog.steps_done[c] > 0;
        char extra[64] = "";
        if (part) snprintf(extra, sizeof extra, " and %d chunk%s part-way", part, part == 1 ? "" : "s");
        if (dist_is_root())
            printf("stopped by a signal with %ld of %d images done%s (%s); run the same command "
                   "again to finish\n", held + fresh, n, extra, prog.path);
        free(prog.done);
        free(prog.steps_done);
    } else {
        /* every chunk is in OUT.part: into the samples file, each rank its contiguous share,
         * at most ASSEMBLY_CHUNKS chunks at a time (not its whole share at once) */
        long first, count;
        dist_share_chunks(n, batch, dist()->rank, dist()->size, &first, &count);
        const long piece = (long)ASSEMBLY_CHUNKS * batch;
        const int pieces = dist_max_int((int)((count + piece - 1) / piece));
        const long most = count < piece ? count : piece;
        float *x = floats_alloc(dim * (size_t)(most > 0 ? most : 1));
        int *labels = k > 0 ? xcalloc((size_t)most + 1, sizeof(int)) : NULL;
        SamplesFile sf;
        samples_begin(&sf, out, n, C, S, k > 0);
        for (int i = 0; i < pieces; i++) { /* the same number of (collective) writes on every rank */
            const long left = count - i * piece, got = left <= 0 ? 0 : left < piece ? left : piece;
            const long at = got > 0 ? first + i * piece : 0;
            progress_read_rows(&prog, x, at, got);
            if (labels && got > 0) sample_class_labels(labels, lo, k, n, (int)at, (int)got);
            samples_put(&sf, x, labels, at, got);
        }
        if (tp) progress_read_trajectory(&prog, tp, first, count);
        SamplesMeta meta = {.step = saved.step, .weights = weights, .source = ckpt,
                            .T = cfg.diffusion.T, .schedule = schedule_name(sched.kind),
                            .conditional = k > 0, .guidance = spec.guidance};
        samples_end(&sf, &spec, &meta, tp, first, count);
        progress_remove(&prog);
        if (dist_is_root()) draw_pictures(out, png, n, C, S, columns, tp);
        if (dist_is_root() && k > 0)
            printf("classes %d..%d, guidance %g\n", lo, lo + k - 1, spec.guidance);
        if (dist_is_root()) print_summary(n, fresh, &spec, evals, work, dt, out);
        free(x);
        free(labels);
    }
    free(traj.out);
    free(traj.timesteps);
    schedule_free(&sched);
    arenas_free(&a);
    model_free(&m);
    return stopped ? TRAIN_EXIT_STOPPED : 0;
}
