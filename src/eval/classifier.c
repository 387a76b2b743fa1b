/* classifier.c: forward and backward of the evaluation classifier (layout in classifier.h). */
#include "classifier.h"

#include <omp.h>
#include <string.h>

#include "util.h"

enum { CONV1, CONV1_B, CONV2, CONV2_B, CONV3, CONV3_B, FC1, FC1_B, FC2, FC2_B, NPARAMS };

static ConvShape shape1(int n) { return conv_shape(n, 1, 28, 28, 32, 3, 1); }
static ConvShape shape2(int n) { return conv_shape(n, 32, 28, 28, 64, 3, 2); }
static ConvShape shape3(int n) { return conv_shape(n, 64, 14, 14, 64, 3, 2); }
#define A1 (32 * 28 * 28)
#define A2 (64 * 14 * 14)
#define A3 (64 * 7 * 7)

static void add(ParamTable *t, const char *name, int ndim, const int *shape, int fan_in) {
    params_add(t, name, ndim, shape, INIT_KAIMING_UNIFORM, fan_in);
}

void classifier_build(Classifier *c, int max_batch) {
    memset(c, 0, sizeof *c);
    c->max_batch = max_batch;
    params_init_table(&c->table);
    ParamTable *t = &c->table;
    add(t, "conv1.weight", 4, (int[]){32, 1, 3, 3}, 9);
    add(t, "conv1.bias", 1, (int[]){32}, 9);
    add(t, "conv2.weight", 4, (int[]){64, 32, 3, 3}, 288);
    add(t, "conv2.bias", 1, (int[]){64}, 288);
    add(t, "conv3.weight", 4, (int[]){64, 64, 3, 3}, 576);
    add(t, "conv3.bias", 1, (int[]){64}, 576);
    add(t, "fc1.weight", 2, (int[]){CLS_FEATURES, A3}, A3);
    add(t, "fc1.bias", 1, (int[]){CLS_FEATURES}, A3);
    add(t, "fc2.weight", 2, (int[]){CLS_CLASSES, CLS_FEATURES}, CLS_FEATURES);
    add(t, "fc2.bias", 1, (int[]){CLS_CLASSES}, CLS_FEATURES);
    const size_t n = (size_t)max_batch;
    c->z1 = floats_alloc(n * A1), c->y1 = floats_alloc(n * A1);
    c->z2 = floats_alloc(n * A2), c->y2 = floats_alloc(n * A2);
    c->z3 = floats_alloc(n * A3), c->y3 = floats_alloc(n * A3);
    c->z4 = floats_alloc(n * CLS_FEATURES), c->y4 = floats_alloc(n * CLS_FEATURES);
    c->logits = floats_alloc(n * CLS_CLASSES), c->prob = floats_alloc(n * CLS_CLASSES);
    c->dz = floats_alloc(n * A1), c->dy = floats_alloc(n * A1);
    const int threads = omp_get_max_threads();
    const ConvShape s[3] = {shape1(max_batch), shape2(max_batch), shape3(max_batch)};
    size_t ws = 0;
    for (int i = 0; i < 3; i++) {
        const size_t need = conv_workspace_floats(&s[i], threads);
        if (need > ws) ws = need;
    }
    c->ws = floats_alloc(ws + 1);
}

void classifier_free(Classifier *c) {
    params_free_table(&c->table);
    float *all[] = {c->z1, c->y1, c->z2, c->y2, c->z3, c->y3, c->z4, c->y4, c->logits, c->prob,
                    c->dz, c->dy, c->ws};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) free(all[i]);
    memset(c, 0, sizeof *c);
}

#define P(arena, i) ((arena) + c->table.entries[(i)].offset)

const float *classifier_forward(Classifier *c, const float *params, const float *x, int n) {
    if (n < 1 || n > c->max_batch) die("classifier: batch of %d, built for %d", n, c->max_batch);
    const ConvShape s1 = shape1(n), s2 = shape2(n), s3 = shape3(n);
    conv2d_forward(c->z1, x, P(params, CONV1), P(params, CONV1_B), &s1, c->ws);
    silu_forward(c->y1, c->z1, (size_t)n * A1);
    conv2d_forward(c->z2, c->y1, P(params, CONV2), P(params, CONV2_B), &s2, c->ws);
    silu_forward(c->y2, c->z2, (size_t)n * A2);
    conv2d_forward(c->z3, c->y2, P(params, CONV3), P(params, CONV3_B), &s3, c->ws);
    silu_forward(c->y3, c->z3, (size_t)n * A3);
    linear_forward(c->z4, c->y3, P(params, FC1), P(params, FC1_B), n, A3, CLS_FEATURES);
    silu_forward(c->y4, c->z4, (size_t)n * CLS_FEATURES);
    linear_forward(c->logits, c->y4, P(params, FC2), P(params, FC2_B), n, CLS_FEATURES,
                   CLS_CLASSES);
    return c->logits;
}

double classifier_loss(Classifier *c, const int *labels, int n) {
    return softmax_xent_forward(c->prob, c->logits, labels, n, CLS_CLASSES);
}

/* Backward of SiLU then of the layer below it: dz = silu'(z) dy. */
static float *through_silu(Classifier *c, const float *z, size_t count) {
    memset(c->dz, 0, count * sizeof(float));
    silu_backward(c->dz, c->dy, z, count);
    return c->dz;
}

void classifier_backward(Classifier *c, const float *params, float *grads, const float *x,
                         const int *labels, int n, double norm) {
    const ConvShape s1 = shape1(n), s2 = shape2(n), s3 = shape3(n);
    float *dlogits = c->dz; /* the first user of dz */
    memset(dlogits, 0, (size_t)n * CLS_CLASSES * sizeof(float));
    softmax_xent_backward(dlogits, c->prob, labels, n, CLS_CLASSES, norm);
    memset(c->dy, 0, (size_t)n * CLS_FEATURES * sizeof(float));
    linear_backward(c->dy, P(grads, FC2), P(grads, FC2_B), dlogits, c->y4, P(params, FC2), n,
                    CLS_FEATURES, CLS_CLASSES);
    const float *d4 = through_silu(c, c->z4, (size_t)n * CLS_FEATURES);
    memset(c->dy, 0, (size_t)n * A3 * sizeof(float));
    linear_backward(c->dy, P(grads, FC1), P(grads, FC1_B), d4, c->y3, P(params, FC1), n, A3,
                    CLS_FEATURES);
    const float *d3 = through_silu(c, c->z3, (size_t)n * A3);
    /* dy is free again once d3 is in dz: conv backward reads dz, writes dy */
    memset(c->dy, 0, (size_t)n * A2 * sizeof(float));
    conv2d_backward(c->dy, P(grads, CONV3), P(grads, CONV3_B), d3, c->y2, P(params, CONV3), &s3,
                    c->ws);
    const float *d2 = through_silu(c, c->z2, (size_t)n * A2);
    memset(c->dy, 0, (size_t)n * A1 * sizeof(float));
    conv2d_backward(c->dy, P(grads, CONV2), P(grads, CONV2_B), d2, c->y1, P(params, CONV2), &s2,
                    c->ws);
    const float *d1 = through_silu(c, c->z1, (size_t)n * A1);
    conv2d_backward(NULL, P(grads, CONV1), P(grads, CONV1_B), d1, x, P(params, CONV1), &s1, c->ws);
}
