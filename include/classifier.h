/* classifier.h: the MNIST classifier whose features score generated images (FID and friends).
 *
 *   x [1, 28, 28] -> conv1 3x3 (32) -> SiLU -> conv2 3x3 stride 2 (64, 14x14) -> SiLU
 *     -> conv3 3x3 stride 2 (64, 7x7) -> SiLU -> fc1 (3136 -> 128) -> SiLU = features
 *     -> fc2 (128 -> 10) = logits
 *
 * A LeNet-style network with strided convolutions in place of pooling, built from the same
 * layer functions as the U-Net (include/nn.h) with its own small parameter table. The 128
 * features after fc1's SiLU are what the Frechet distance compares. */
#ifndef DDPM_CLASSIFIER_H
#define DDPM_CLASSIFIER_H

#include "nn.h"
#include "params.h"

#define CLS_SIZE 28
#define CLS_CLASSES 10
#define CLS_FEATURES 128

typedef struct {
    ParamTable table;
    int max_batch;
    /* activations: z = pre-activation, y = after SiLU; each max_batch images */
    float *z1, *y1, *z2, *y2, *z3, *y3, *z4, *y4, *logits, *prob;
    float *dz, *dy; /* gradient scratch, as large as the largest activation */
    float *ws;      /* convolution workspace */
} Classifier;

void classifier_build(Classifier *c, int max_batch);
void classifier_free(Classifier *c);
/* Forward n <= max_batch images in [-1, 1]; returns the logits [n, 10]. The features [n, 128]
 * are then in c->y4, the softmax (after classifier_loss) in c->prob. */
const float *classifier_forward(Classifier *c, const float *params, const float *x, int n);
/* Summed cross-entropy of the last forward against labels; fills c->prob. */
double classifier_loss(Classifier *c, const int *labels, int n);
/* Backward of the mean loss over `norm` images after classifier_loss; ACCUMULATES into grads. */
void classifier_backward(Classifier *c, const float *params, float *grads, const float *x,
                         const int *labels, int n, double norm);

/* ---- the classifier file: /params/<name> + attributes (kind = "ddpm-classifier",
 * test_accuracy, epochs, batch, lr, seed, command) ---- */
typedef struct {
    const char *data_dir; /* MNIST IDX files (train and t10k) */
    const char *out;      /* FILE.h5 */
    int epochs, batch, seed;
    double lr;
    const char *command;  /* the command line, stored in the file */
} ClassifierTrainOptions;

/* Train on DIR/train, report accuracy on DIR/t10k, write the file. Returns an exit status. */
int classifier_train(const ClassifierTrainOptions *o);
/* Load a classifier file into params laid out by c->table; *accuracy (may be NULL) receives its
 * recorded test accuracy. Dies naming the file on any mismatch. */
void classifier_load(const char *path, const Classifier *c, float *params, double *accuracy);

#endif
