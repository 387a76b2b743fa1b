/* cmd_predict.c: `ddpm predict --checkpoint FILE --x X.h5 --t T --out EPS.h5`: one network
 * evaluation, the noise the U-Net predicts for images x_t at timestep t. For checking the
 * network against another implementation (tools/torch_load.py) and for looking inside. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "diffusion.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "model.h"
#include "util.h"

/* images per network evaluation */
#define PREDICT_BATCH 128

static void usage(FILE *f) {
    fprintf(f, "usage: ddpm predict --checkpoint FILE --x X.h5 --t T --out EPS.h5\n"
               "                    [--weights ema|model] [--class K]\n"
               "\n"
               "One evaluation of the noise-prediction network: reads x_t from dataset /x\n"
               "[N, C, S, S] of X.h5, writes eps_theta(x_t, t) to /eps of EPS.h5 (same shape);\n"
               "for a v-prediction network ([diffusion] prediction = v) /eps is the noise its\n"
               "output implies, and /v the output itself.\n"
               "  --checkpoint FILE   a checkpoint or weights-only file (ddpm train / export)\n"
               "  --x X.h5            the inputs x_t: dataset /x, float32 [N, C, S, S]\n"
               "  --t T               timestep 0..T-1 of the checkpoint's schedule, for every image\n"
               "  --out EPS.h5        the output file (/eps, and /v for a v-prediction network)\n"
               "  --weights ema|model the EMA weights (default) or the raw trained weights\n"
               "  --class K           conditional models: class K for every image (K = [model]\n"
               "                      classes is the null label, the default)\n");
}

int cmd_predict(int argc, char **argv) {
    const char *ckpt = NULL, *xpath = NULL, *out = NULL, *weights = "ema";
    long t = -1, cls = -1;
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("predict", argc, argv, &i)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--checkpoint")) ckpt = TAKE_VALUE();
        else if (!strcmp(a, "--x")) xpath = TAKE_VALUE();
        else if (!strcmp(a, "--out")) out = TAKE_VALUE();
        else if (!strcmp(a, "--weights")) weights = TAKE_VALUE();
        else if (!strcmp(a, "--class")) cls = cli_int("predict", a, TAKE_VALUE(), 0, 100000);
        else if (!strcmp(a, "--t")) t = cli_int("predict", a, TAKE_VALUE(), 0, 2147483647);
        else {
            return cli_unexpected("predict", a);
        }
    }
#undef TAKE_VALUE
    if (!ckpt || !xpath || !out || t < 0) die("predict: --checkpoint, --x, --t and --out are required");
    if (strcmp(weights, "ema") && strcmp(weights, "model")) die("predict: --weights %s: expected ema or model", weights);
    cli_output_file("predict", "--out", out, (const char *const[]){ckpt, xpath, NULL});
    Config cfg;
    checkpoint_read_config(ckpt, &cfg);
    if (t >= cfg.diffusion.T) die("predict: --t %ld: must be in 0..%d (the checkpoint's T is %d)", t,
                                      cfg.diffusion.T - 1, cfg.diffusion.T);
    if (cls >= 0 && cfg.model.classes == 0)
        die("predict: --class: the checkpoint's model is unconditional ([model] classes = 0)");
    if (cls > cfg.model.classes)
        die("predict: --class %ld: expected 0..%d (%d = the null label)", cls, cfg.model.classes,
            cfg.model.classes);
    const int C = cfg.model.in_channels, S = cfg.model.image_size;
    hid_t f = h5t_open_read(xpath);
    int nd = 0;
    long long dims[H5T_MAX_DIMS];
    if (!h5t_dims(f, "/x", &nd, dims)) die("%s: no dataset /x", xpath);
    if (nd != 4 || dims[0] < 1 || dims[1] != C || dims[2] != S || dims[3] != S)
        die("%s: /x must be [N, %d, %d, %d]", xpath, C, S, S);
    if (dims[0] > 1000000)
        die("%s: /x holds %lld images; predict takes at most 1000000 at a time", xpath, dims[0]);
    const int n = (int)dims[0];
    float *x = floats_alloc((size_t)n * C * S * S);
    h5t_read_f32(f, "/x", x, 4, dims);
    h5t_close(f);
    /* the network over chunks of at most PREDICT_BATCH images: its activations are sized for
     * one chunk, not for all of /x */
    const int nb = n < PREDICT_BATCH ? n : PREDICT_BATCH;
    Model m;
    model_build_inference(&m, &cfg.model, nb);
    Arenas a;
    arenas_alloc(&a, &m.table);
    TrainState st = {0};
    checkpoint_load(ckpt, &m.table, &a, &st, CKPT_WEIGHTS);
    int *ts = xcalloc((size_t)nb, sizeof(int));
    int *ys = xcalloc((size_t)nb, sizeof(int));
    for (int i = 0; i < nb; i++) ts[i] = (int)t, ys[i] = (int)cls;
    const size_t dim = (size_t)C * S * S, count = (size_t)n * dim;
    const int v_net = cfg.diffusion.prediction == PREDICT_V;
    float *net = floats_alloc(count), *eps = v_net ? floats_alloc(count) : net; /* v: converted */
    for (int c0 = 0; c0 < n; c0 += nb) {
        const int k = n - c0 < nb ? n - c0 : nb;
        const float *o = model_forward(&m, strcmp(weights, "ema") ? a.params : a.ema,
                                       x + (size_t)c0 * dim, ts, cls >= 0 ? ys : NULL, k);
        memcpy(net + (size_t)c0 * dim, o, (size_t)k * dim * sizeof(float));
    }
    Schedule sched;
    schedule_build(&sched, (ScheduleKind)cfg.diffusion.schedule, cfg.diffusion.T,
                   cfg.diffusion.beta_start, cfg.diffusion.beta_end);
    if (v_net) {
        memcpy(eps, net, count * sizeof(float));
        diffusion_eps_from_v(eps, x, (int)t, count, &sched);
    }
    schedule_free(&sched);
    char tmp[1100];
    tmp_file_begin(tmp, sizeof tmp, out);
    hid_t g = h5t_create(tmp);
    h5t_write_f32(g, "/eps", eps, 4, dims);
    if (v_net) h5t_write_f32(g, "/v", net, 4, dims);
    h5a_write_string(g, "kind", "ddpm-prediction");
    h5a_write_long(g, "t", t);
    h5a_write_string(g, "weights", weights);
    h5a_write_string(g, "source", ckpt);
    if (cls >= 0) h5a_write_long(g, "class", cls);
    h5t_close(g);
    if (rename(tmp, out) != 0) die("%s: cannot rename %s over it: %s", out, tmp, strerror(errno));
    tmp_file_done(tmp);
    printf("predicted the noise of %d images at t = %ld (%s weights): %s (%s)\n", n, t, weights,
           out, v_net ? "/v, the network's output, and /eps" : "/eps");
    if (v_net) free(eps);
    free(x), free(ts), free(ys), free(net);
    arenas_free(&a);
    model_free(&m);
    return 0;
}
