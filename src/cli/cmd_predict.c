/* cmd_predict.c: `ddpm predict --checkpoint FILE --x X.h5 --t T --out EPS.h5`: one network
 * evaluation, the noise the U-Net predicts for images x_t at timestep t. For checking the
 * network against another implementation (tools/torch_load.py) and for looking inside. */
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
    const int n = (int)dims[0];
    float *x = floats_alloc((size_t)n * C * S * S);
    h5t_read_f32(f, "/x", x, 4, dims);
    h5t_close(f);
    Model m;
    model_build_inference(&m, &cfg.model, n);
    Arenas a;
    arenas_alloc(&a, &m.table);
    TrainState st = {0};
    checkpoint_load(ckpt, &m.table, &a, &st, CKPT_WEIGHTS);
    int *ts = xcalloc((size_t)n, sizeof(int));
    int *ys = xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) ts[i] = (int)t, ys[i] = (int)cls;
    const float *out_net = model_forward(&m, strcmp(weights, "ema") ? a.params : a.ema, x, ts,
                                         cls >= 0 ? ys : NULL, n);
    const size_t count = (size_t)n * C * S * S;
    float *eps = floats_alloc(count);
    memcpy(eps, out_net, count * sizeof(float));
    Schedule sched;
    schedule_build(&sched, (ScheduleKind)cfg.diffusion.schedule, cfg.diffusion.T,
                   cfg.diffusion.beta_start, cfg.diffusion.beta_end);
    if (cfg.diffusion.prediction == PREDICT_V) diffusion_eps_from_v(eps, x, (int)t, count, &sched);
    schedule_free(&sched);
    char tmp[1100];
    tmp_file_begin(tmp, sizeof tmp, out);
    hid_t g = h5t_create(tmp);
    h5t_write_f32(g, "/eps", eps, 4, dims);
    if (cfg.diffusion.prediction == PREDICT_V) h5t_write_f32(g, "/v", out_net, 4, dims);
    h5a_write_string(g, "kind", "ddpm-prediction");
    h5a_write_long(g, "t", t);
    h5a_write_string(g, "weights", weights);
    h5a_write_string(g, "source", ckpt);
    if (cls >= 0) h5a_write_long(g, "class", cls);
    h5t_close(g);
    if (rename(tmp, out) != 0) die("%s: cannot rename %s over it", out, tmp);
    tmp_file_done(tmp);
    printf("predicted the noise of %d images at t = %ld (%s weights): %s\n", n, t, weights, out);
    free(x), free(ts), free(ys), free(eps);
    arenas_free(&a);
    model_free(&m);
    return 0;
}
