/* bench_unet.c: speed of unet-s (or any config) on this machine, reported, never asserted.
 *
 *   bin/bench/bench_unet [--config FILE] [--batch 128] [--iters 5] [--conv direct|im2col]
 *
 * Prints images/s and GFLOP/s for forward, backward and a whole training step (forward, MSE,
 * backward, Adam; 3x forward FLOPs per image), next to the BLIS sgemm rate measured in the same
 * run on (a) a square 1024 GEMM using all threads and (b) the conv GEMMs the model itself runs
 * (one single-threaded GEMM per image, images spread over the threads), then a per-op-kind time
 * table and peak RSS. Threads: OMP_NUM_THREADS. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "blis.h"
#include "cblas.h"
#include "config.h"
#include "conv_direct.h"
#include "model.h"
#include "rng.h"
#include "util.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of one M x K by K x N sgemm using BLIS's own threading, on as many threads as the
 * model runs (BLIS alone would take one unless BLIS_NUM_THREADS or OMP_NUM_THREADS is set). */
static double sgemm_square(int size, int reps) {
    const int saved = bli_thread_get_num_threads();
    bli_thread_set_num_threads(omp_get_max_threads());
    float *a = floats_alloc((size_t)size * size), *b = floats_alloc((size_t)size * size),
          *c = floats_alloc((size_t)size * size);
    rng_uniform(a, (size_t)size * size, -1, 1, 1, RNG_TEST, 0, 0);
    rng_uniform(b, (size_t)size * size, -1, 1, 1, RNG_TEST, 1, 0);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b,
                    size, 0.0f, c, size);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
    }
    free(a), free(b), free(c);
    bli_thread_set_num_threads(saved);
    return 2.0 * size * size * (double)size / best / 1e9;
}

/* GFLOP/s of `images` W[M,K] x col[K,N] GEMMs, one per image, threads over images: the shape
 * and threading of conv2d_forward. */
static double sgemm_conv_like(int M, int K, int N, int images, int reps) {
    int threads = omp_get_max_threads();
    float *w = floats_alloc((size_t)M * K), *col = floats_alloc((size_t)K * N * threads),
          *out = floats_alloc((size_t)M * N * images);
    rng_uniform(w, (size_t)M * K, -1, 1, 1, RNG_TEST, 2, 0);
    rng_uniform(col, (size_t)K * N * threads, -1, 1, 1, RNG_TEST, 3, 0);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
#pragma omp parallel for schedule(static)
        for (int i = 0; i < images; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, w, K,
                        col + (size_t)omp_get_thread_num() * K * N, N, 0.0f,
                        out + (size_t)i * M * N, N);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
    }
    free(w), free(col), free(out);
    return 2.0 * M * K * (double)N * images / best / 1e9;
}

int main(int argc, char **argv) {
    Config cfg;
    config_defaults(&cfg);
    int batch = 128, iters = 5;
    const char *config_path = "configs/unet-s.ini (built-in defaults)";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config_load(&cfg, config_path = argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--conv") && i + 1 < argc && !strcmp(argv[i + 1], "direct")) i++;
        else if (!strcmp(argv[i], "--conv") && i + 1 < argc && !strcmp(argv[i + 1], "blis")) {
            conv_direct_set_vector(0);
            i++;
        } else if (!strcmp(argv[i], "--conv") && i + 1 < argc && !strcmp(argv[++i], "im2col"))
            conv2d_set_direct(0);
        else
            die("usage: bench_unet [--config FILE] [--batch N] [--iters N] "
                "[--conv direct|blis|im2col]");
    }
    if (batch < 1 || iters < 1 || iters > 100) die("bench_unet: bad --batch or --iters");
    config_validate(&cfg, config_path);
    const int threads = omp_get_max_threads();

    Model m;
    model_build(&m, &cfg.model, batch);
    Arenas a;
    arenas_alloc(&a, &m.table);
    params_initialise(&m.table, a.params, 42);
    const int S = cfg.model.image_size, C = cfg.model.in_channels;
    const size_t img = (size_t)C * S * S;
    float *x = floats_alloc(img * batch), *eps = floats_alloc(img * batch),
          *dout = floats_alloc(img * batch);
    int *t = xcalloc((size_t)batch, sizeof(int));
    rng_normal(x, img * batch, 7, RNG_TEST, 0, 0);
    rng_normal(eps, img * batch, 7, RNG_TEST, 1, 0);
    for (int i = 0; i < batch; i++) t[i] = (int)rng_below(300, 7, RNG_TEST, 2, (uint32_t)i);
    AdamConfig adam = {2e-4f, 0.9f, 0.999f, 1e-8f};
    double flops = model_flops_per_image(&m);

    double sq = sgemm_square(1024, 5);
    double conv28 = sgemm_conv_like(32, 288, 784, batch, 3);
    double conv14 = sgemm_conv_like(64, 576, 196, batch, 3);

    double fw[100], bw[100], step[100];
    m.op_seconds = xcalloc(2 * (size_t)m.nops, sizeof(double));
    for (int it = -1; it < iters; it++) { /* iteration -1 warms up */
        double t0 = now_seconds();
        const float *out = model_forward(&m, a.params, x, t, NULL, batch);
        double t1 = now_seconds();
        memset(dout, 0, img * batch * sizeof(float));
        mse_backward(dout, out, eps, img * batch);
        memset(a.grads, 0, m.table.total * sizeof(float));
        double t2 = now_seconds();
        model_backward(&m, a.params, a.grads, dout, batch);
        double t3 = now_seconds();
        adam_step(a.params, a.grads, a.adam_m, a.adam_v, m.table.total, &adam, it + 2);
        double t4 = now_seconds();
        if (it < 0) {
            memset(m.op_seconds, 0, 2 * (size_t)m.nops * sizeof(double));
            continue;
        }
        fw[it] = t1 - t0;
        bw[it] = t3 - t2;
        step[it] = t4 - t0;
    }
    double f = median(fw, iters), b = median(bw, iters), s = median(step, iters);

    printf("ddpm bench: %s, batch %d, %d threads, %d timed iterations (medians)\n", config_path,
           batch, threads, iters);
    printf("model: %zu parameters, %.2f forward MFLOP per image; BLIS %s, kernels '%s'\n\n",
           m.table.total, flops / 1e6, bli_info_get_version_str(),
           bli_arch_string(bli_arch_query_id()));
    printf("%-28s %10s %10s %10s\n", "", "ms", "images/s", "GFLOP/s");
    printf("%-28s %10.1f %10.1f %10.1f\n", "forward", 1e3 * f, batch / f, flops * batch / f / 1e9);
    printf("%-28s %10.1f %10.1f %10.1f\n", "backward (2x forward FLOPs)", 1e3 * b, batch / b,
           2 * flops * batch / b / 1e9);
    printf("%-28s %10.1f %10.1f %10.1f\n", "training step (3x forward)", 1e3 * s, batch / s,
           3 * flops * batch / s / 1e9);
    printf("\nBLIS sgemm in this run: square 1024 (BLIS on %d threads) %.1f GFLOP/s;\n",
           omp_get_max_threads(), sq);
    printf("  per-image conv GEMMs, threads over images: 32x288x784 %.1f, 64x576x196 %.1f GFLOP/s\n",
           conv28, conv14);
    printf("  training step at %.0f%% of the square sgemm rate\n", 100 * 3 * flops * batch / s / 1e9 / sq);

    /* time per op kind, forward and backward, per timed iteration */
    static const char *kinds[OP_KIND_COUNT] = {
        [OP_TEMB] = "temb",           [OP_LINEAR] = "linear",   [OP_SILU] = "silu",
        [OP_CONV] = "conv",           [OP_GROUPNORM] = "groupnorm", [OP_ADD] = "add",
        [OP_ADD_CHANNEL] = "add_channel", [OP_CONCAT] = "concat", [OP_UPSAMPLE] = "upsample",
        [OP_EMBED] = "embed",         [OP_ATTENTION] = "attention", [OP_DROPOUT] = "dropout",
        [OP_GN_SILU] = "gn_silu"};
    double kf[OP_KIND_COUNT] = {0}, kb[OP_KIND_COUNT] = {0};
    for (int i = 0; i < m.nops; i++) {
        kf[m.ops[i].kind] += m.op_seconds[i] / iters;
        kb[m.ops[i].kind] += m.op_seconds[m.nops + i] / iters;
    }
    printf("\n%-12s %12s %12s\n", "op kind", "forward ms", "backward ms");
    for (int k = 0; k < OP_KIND_COUNT; k++)
        if (kf[k] + kb[k] > 0) printf("%-12s %12.1f %12.1f\n", kinds[k], 1e3 * kf[k], 1e3 * kb[k]);
    /* every conv: forward and backward ms and GFLOP/s (backward does 2x the forward FLOPs) */
    printf("\n%-28s %-12s %9s %9s %9s %9s\n", "conv layer", "out [C,H,W]", "fwd ms", "GFLOP/s",
           "bwd ms", "GFLOP/s");
    for (int i = 0; i < m.nops; i++) {
        const Op *op = &m.ops[i];
        if (op->kind != OP_CONV) continue;
        const Slot *in = &m.slots[op->in0], *o = &m.slots[op->out];
        double f1 = 2.0 * o->c * in->c * op->k * op->k * (double)o->h * o->w * batch;
        double tf = m.op_seconds[i] / iters, tb = m.op_seconds[m.nops + i] / iters;
        char shape[32];
        snprintf(shape, sizeof shape, "[%d,%d,%d]", o->c, o->h, o->w);
        printf("%-28s %-12s %9.1f %9.1f %9.1f %9.1f\n", op->name, shape, 1e3 * tf, f1 / tf / 1e9,
               1e3 * tb, 2 * f1 / tb / 1e9);
    }
    printf("\npeak RSS %.0f MiB\n", peak_rss_mib());

    free(m.op_seconds);
    m.op_seconds = NULL;
    free(x), free(eps), free(dout), free(t);
    arenas_free(&a);
    model_free(&m);
    return 0;
}
