/* bench_step.c: one number per process for `make bench-compare` (bench/compare.sh), reported,
 * never asserted.
 *
 *   bin/bench/bench_step train  [--batch 128] [--iters 5]   forward + MSE + backward + Adam
 *   bin/bench/bench_step sample [--batch 256] [--iters 5]   one network evaluation (no grads)
 *   bin/bench/bench_step sgemm                              BLIS sgemm 1024^3 on all threads
 *
 * Prints `mode=... batch=... ms=<median> per_s=<images or image-steps per second>
 * gflops=<3x or 1x forward FLOPs> rss_mib=<peak RSS>` (sgemm: gflops only). Network: configs'
 * unet-s defaults. Threads: OMP_NUM_THREADS. The first iteration warms up and is not timed. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "blis.h"
#include "cblas.h"
#include "config.h"
#include "model.h"
#include "rng.h"
#include "util.h"

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void sgemm(void) {
    const int n = 1024;
    float *a = floats_alloc((size_t)n * n), *b = floats_alloc((size_t)n * n), *c = floats_alloc((size_t)n * n);
    rng_uniform(a, (size_t)n * n, -1, 1, 1, RNG_TEST, 0, 0);
    rng_uniform(b, (size_t)n * n, -1, 1, 1, RNG_TEST, 1, 0);
    bli_thread_set_num_threads(omp_get_max_threads()); /* here BLIS threads itself */
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        const double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        const double dt = now_seconds() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    printf("mode=sgemm threads=%d gflops=%.1f\n", omp_get_max_threads(), 2.0 * n * n * (double)n / best / 1e9);
    free(a), free(b), free(c);
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: bench_step train|sample|sgemm [--batch B] [--iters N]");
    const char *mode = argv[1];
    if (!strcmp(mode, "sgemm")) {
        sgemm();
        return 0;
    }
    const int train = !strcmp(mode, "train");
    if (!train && strcmp(mode, "sample")) die("bench_step: mode %s: expected train, sample or sgemm", mode);
    int batch = train ? 128 : 256, iters = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else die("bench_step: unknown option %s", argv[i]);
    }
    if (batch < 1 || iters < 1 || iters > 100) die("bench_step: bad --batch or --iters");
    Config cfg;
    config_defaults(&cfg);
    Model m;
    if (train) model_build(&m, &cfg.model, batch);
    else model_build_inference(&m, &cfg.model, batch);
    Arenas a;
    arenas_alloc(&a, &m.table);
    params_initialise(&m.table, a.params, 1);
    const size_t img = (size_t)cfg.model.image_size * cfg.model.image_size * cfg.model.in_channels;
    float *x = floats_alloc(img * batch), *eps = floats_alloc(img * batch), *dout = floats_alloc(img * batch);
    int *t = xcalloc((size_t)batch, sizeof(int));
    rng_uniform(x, img * batch, -1, 1, 1, RNG_TEST, 10, 0);
    rng_normal(eps, img * batch, 1, RNG_TEST, 11, 0);
    for (int i = 0; i < batch; i++) t[i] = (i * 37) % cfg.diffusion.T;
    const AdamConfig adam = {2e-4f, 0.9f, 0.999f, 1e-8f};
    double *ms = xcalloc((size_t)iters, sizeof(double));
    for (int it = 0; it <= iters; it++) {
        const double t0 = now_seconds();
        const float *out = model_forward(&m, a.params, x, t, NULL, batch);
        if (train) {
            memset(dout, 0, img * batch * sizeof(float));
            mse_backward(dout, out, eps, img * batch);
            memset(a.grads, 0, m.table.total * sizeof(float));
            model_backward(&m, a.params, a.grads, dout, batch);
            adam_step(a.params, a.grads, a.adam_m, a.adam_v, m.table.total, &adam, it + 1);
        }
        if (it > 0) ms[it - 1] = 1e3 * (now_seconds() - t0);
    }
    qsort(ms, (size_t)iters, sizeof(double), by_value);
    const double med = iters % 2 ? ms[iters / 2] : 0.5 * (ms[iters / 2 - 1] + ms[iters / 2]);
    const double per_s = batch / (med / 1e3), flops = model_flops_per_image(&m) * (train ? 3 : 1);
    printf("mode=%s batch=%d threads=%d ms=%.1f per_s=%.1f gflops=%.1f rss_mib=%.0f\n", mode, batch,
           omp_get_max_threads(), med, per_s, flops * per_s / 1e9, peak_rss_mib());
    free(x), free(eps), free(dout), free(t), free(ms);
    arenas_free(&a);
    model_free(&m);
    return 0;
}
