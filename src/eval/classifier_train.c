/* classifier_train.c: train the evaluation classifier on MNIST with our own engine, report its
 * test accuracy, and read and write its HDF5 file. One process (it takes a few minutes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "checkpoint.h"
#include "classifier.h"
#include "cli.h"
#include "dataset.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "rng.h"
#include "util.h"

static const char *const KIND = "ddpm-classifier";

/* Fraction of the split's images classified correctly. */
static double accuracy(Classifier *c, const float *params, const Dataset *d) {
    const int B = c->max_batch;
    int *idx = xcalloc((size_t)B, sizeof(int)), correct = 0;
    float *x = floats_alloc((size_t)B * CLS_SIZE * CLS_SIZE);
    for (int i0 = 0; i0 < d->count; i0 += B) {
        const int n = d->count - i0 < B ? d->count - i0 : B;
        for (int i = 0; i < n; i++) idx[i] = i0 + i;
        dataset_images_to_float(x, d, idx, n);
        const float *z = classifier_forward(c, params, x, n);
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < CLS_CLASSES; k++)
                if (z[i * CLS_CLASSES + k] > z[i * CLS_CLASSES + best]) best = k;
            correct += best == d->labels[i0 + i];
        }
    }
    free(idx);
    free(x);
    return (double)correct / d->count;
}

/* Augmentation: shift each image by up to SHIFT pixels in x and y (keyed by seed, epoch and
 * position), filling with the background value -1. */
#define SHIFT 2
static void shift_images(float *x, int n, uint64_t seed, int epoch, int step) {
    float tmp[CLS_SIZE * CLS_SIZE];
    for (int i = 0; i < n; i++) {
        uint32_t w[4];
        rng_words(seed, RNG_CLASSIFIER, (uint32_t)(1000000 + epoch), (uint32_t)(step * n + i), 0, w);
        const int dx = (int)(w[0] % (2 * SHIFT + 1)) - SHIFT, dy = (int)(w[1] % (2 * SHIFT + 1)) - SHIFT;
        float *img = x + (size_t)i * CLS_SIZE * CLS_SIZE;
        for (int r = 0; r < CLS_SIZE; r++)
            for (int c = 0; c < CLS_SIZE; c++) {
                const int sr = r - dy, sc = c - dx;
                tmp[r * CLS_SIZE + c] = sr >= 0 && sr < CLS_SIZE && sc >= 0 && sc < CLS_SIZE
                                            ? img[sr * CLS_SIZE + sc] : -1.0f;
            }
        memcpy(img, tmp, sizeof tmp);
    }
}

static void save(const ClassifierTrainOptions *o, const Classifier *c, const float *params,
                 double acc) {
    char tmp[1100];
    tmp_file_begin(tmp, sizeof tmp, o->out); /* checkpoint_publish ends it */
    hid_t f = h5t_create(tmp);
    h5a_write_string(f, "kind", KIND);
    h5a_write_long(f, "format_version", 1);
    h5a_write_string(f, "code_version", DDPM_VERSION);
    h5a_write_string(f, "architecture",
                     "conv3x3(32)-SiLU-conv3x3/2(64)-SiLU-conv3x3/2(64)-SiLU-fc(128)-SiLU-fc(10); "
                     "features = the 128 after fc1's SiLU; inputs in [-1, 1]");
    h5a_write_double(f, "test_accuracy", acc);
    h5a_write_long(f, "epochs", o->epochs);
    h5a_write_long(f, "batch", o->batch);
    h5a_write_double(f, "lr", o->lr);
    h5a_write_long(f, "seed", o->seed);
    h5a_write_string(f, "command", o->command ? o->command : "");
    checkpoint_write_group(f, "/params", &c->table, params);
    checkpoint_publish(f, tmp, o->out);
}

void classifier_load(const char *path, const Classifier *c, float *params, double *acc) {
    hid_t f = h5t_open_read(path);
    char *kind = h5a_read_string(f, "kind");
    if (!kind || strcmp(kind, KIND))
        die("%s: not a ddpm classifier file (attribute kind is %s)", path, kind ? kind : "missing");
    free(kind);
    checkpoint_read_group(f, "/params", &c->table, params);
    double a = 0.0;
    h5a_read_double(f, "test_accuracy", &a);
    if (acc) *acc = a;
    h5t_close(f);
}

int classifier_train(const ClassifierTrainOptions *o) {
    Dataset train, test;
    dataset_load_or_die(&train, o->data_dir, "train");
    dataset_load_or_die(&test, o->data_dir, "t10k");
    if (train.rows != CLS_SIZE || train.cols != CLS_SIZE || test.rows != CLS_SIZE)
        die("%s: the classifier takes 28x28 images", o->data_dir);
    for (int i = 0; i < train.count; i++)
        if (train.labels[i] >= CLS_CLASSES) die("%s: label %d of image %d is not a digit", o->data_dir, train.labels[i], i);
    if (o->batch > train.count)
        die("classifier: --batch %d is larger than the %d training images of %s (no step would "
            "be taken)", o->batch, train.count, o->data_dir);
    Classifier c;
    classifier_build(&c, o->batch);
    Arenas a;
    arenas_alloc(&a, &c.table);
    params_initialise(&c.table, a.params, (uint64_t)o->seed);
    AdamConfig adam = {(float)o->lr, 0.9f, 0.999f, 1e-8f};
    const int B = o->batch, steps = train.count / B;
    int *perm = xcalloc((size_t)train.count, sizeof(int)), labels[B];
    float *x = floats_alloc((size_t)B * CLS_SIZE * CLS_SIZE);
    long step = 0;
    const long total_steps = (long)o->epochs * steps;
    printf("classifier: %zu parameters; %d epochs of %d steps (batch %d, Adam lr %g decaying "
           "linearly to 0, shifts of up to %d pixels) on %s\n",
           c.table.total, o->epochs, steps, B, o->lr, SHIFT, o->data_dir);
    const double t0 = now_seconds();
    for (int epoch = 0; epoch < o->epochs; epoch++) {
        for (int i = 0; i < train.count; i++) perm[i] = i;
        for (int i = train.count - 1; i > 0; i--) {
            const int j = (int)rng_below((uint32_t)i + 1, (uint64_t)o->seed, RNG_CLASSIFIER,
                                         (uint32_t)epoch, (uint32_t)i);
            const int t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        double loss = 0.0;
        for (int s = 0; s < steps; s++) {
            const int *idx = perm + (size_t)s * B;
            dataset_images_to_float(x, &train, idx, B);
            shift_images(x, B, (uint64_t)o->seed, epoch, s);
            for (int i = 0; i < B; i++) labels[i] = train.labels[idx[i]];
            adam.lr = (float)(o->lr * (1.0 - (double)step / total_steps));
            classifier_forward(&c, a.params, x, B);
            loss += classifier_loss(&c, labels, B) / B;
            memset(a.grads, 0, c.table.total * sizeof(float));
            classifier_backward(&c, a.params, a.grads, x, labels, B, B);
            adam_step(a.params, a.grads, a.adam_m, a.adam_v, c.table.total, &adam, ++step);
        }
        if (!isfinite(loss)) die("classifier training diverged in epoch %d (lr %g too large?)", epoch + 1, o->lr);
        printf("epoch %d: mean loss %.4f, test accuracy %.4f (%.0f s)\n", epoch + 1,
               loss / steps, accuracy(&c, a.params, &test), now_seconds() - t0);
        fflush(stdout);
    }
    const double acc = accuracy(&c, a.params, &test);
    save(o, &c, a.params, acc);
    printf("test accuracy %.4f on %d images; weights in %s\n", acc, test.count, o->out);
    free(perm);
    free(x);
    arenas_free(&a);
    classifier_free(&c);
    dataset_free(&train);
    dataset_free(&test);
    return 0;
}
