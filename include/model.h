/* model.h: the U-Net as a tape of ops over one activation arena.
 *
 * The builder turns a ModelConfig into a parameter table and a list of ops, each reading and
 * writing activation "slots" (per-image shapes laid out once in one arena for the largest
 * batch). Forward walks the list; backward walks it in reverse, accumulating activation
 * gradients into a second arena where gradients whose lives do not overlap share memory. No
 * allocation happens inside a step. */
#ifndef DDPM_MODEL_H
#define DDPM_MODEL_H

#include <stdint.h>
#include <stdio.h>

#include "nn.h"
#include "params.h"

#define MODEL_MAX_LEVELS 6

typedef struct {
    int in_channels;   /* image channels (1 for MNIST) */
    int image_size;    /* height = width (28 for MNIST) */
    int base;          /* base channels */
    int levels;        /* number of resolutions */
    int mult[MODEL_MAX_LEVELS]; /* channel multiplier per level */
    int res_blocks;    /* residual blocks per level */
    int groups;        /* GroupNorm groups */
    int time_sin_dim;  /* sinusoidal embedding width */
    int time_dim;      /* time-embedding MLP width */
    int classes;       /* 0: unconditional; K: labels 0..K-1 plus the null label K */
    int attn_res;      /* self-attention after the down and up blocks at this resolution and
                        * between the middle blocks when it is theirs (0: none) */
    double dropout;    /* dropout before each residual block's second conv (training only) */
} ModelConfig;

typedef enum {
    OP_TEMB,        /* sinusoidal embedding of t into out */
    OP_LINEAR,      /* out = in0 W^T + b */
    OP_SILU,        /* out = silu(in0) */
    OP_CONV,        /* out = conv(in0) */
    OP_GROUPNORM,   /* out = gn(in0); stats in aux */
    OP_ADD,         /* out = in0 + in1 */
    OP_ADD_CHANNEL, /* out = in0 + in1 broadcast over h, w (in1 is [c]) */
    OP_CONCAT,      /* out = channel concat(in0, in1) */
    OP_UPSAMPLE,    /* out = nearest 2x upsample(in0) */
    OP_EMBED,       /* out = weight row of each image's class label */
    OP_ATTENTION,   /* out = self-attention of in0 = [queries; keys; values]; softmax in aux */
    OP_DROPOUT,     /* out = in0 * mask (training builds only); mask in aux, k = its ordinal */
    OP_GN_SILU      /* out = silu(gn(in0)); stats in aux */
} OpKind;
#define OP_KIND_COUNT (OP_GN_SILU + 1)

typedef struct {
    int c, h, w;        /* per-image shape */
    size_t offset;      /* into the activation arena, for the whole batch */
    size_t grad_offset; /* into the gradient arena (training builds), for the whole batch */
    int grad_first_op;  /* backward zeroes the gradient just before this op (its last reader) */
} Slot;

typedef struct {
    OpKind kind;
    int in0, in1, out;    /* slot indices (-1 when unused) */
    int weight, bias;     /* parameter-table indices (-1 when unused) */
    int k, stride, groups;
    size_t aux;           /* offset into the aux arena (GroupNorm statistics) */
    char name[PARAM_NAME_MAX]; /* module path, for the per-layer table */
} Op;

typedef struct {
    ModelConfig cfg;
    ParamTable table;
    Op *ops;
    int nops, ops_cap;
    Slot *slots;
    int nslots, slots_cap;
    int x_slot, out_slot;  /* input image and predicted noise */
    int max_batch;
    int inference;         /* built without the gradient arena */
    int input_grad;        /* model_keep_input_grad was called */
    size_t act_per_image;  /* floats per image in the activation arena */
    size_t dact_per_image; /* floats per image in the gradient arena (slots share memory) */
    float *act, *dact;     /* activations and their gradients, max_batch images each */
    float *aux;            /* GroupNorm mean/rstd */
    size_t aux_per_image;
    float *ws;             /* convolution, GroupNorm and attention scratch (ws_threads threads) */
    int ws_threads;
    size_t ws_floats;
    int *t_buf;            /* timesteps of the current batch */
    int *y_buf;            /* class labels of the current batch (conditional models) */
    /* dropout masks are keyed by (seed, step, global index of the image): model_set_dropout_key;
     * dropout acts only while dropout_on (set by that call, cleared by model_dropout_off) */
    uint64_t dropout_seed;
    uint32_t dropout_step, *dropout_keys;
    long dropout_first;
    int dropout_on, dropout_applied; /* applied: whether the last forward used the masks */
    double *op_seconds;    /* when non-NULL: [2 * nops] forward and backward seconds per op */
    /* After backward has run op i (walking down from the last op), the parameter gradients
     * grads[grads_final[i], table.total) are complete: no op below i touches them. */
    size_t *grads_final;
    /* Optional: called with grads_final[i] after each backward op (the gradient all-reduce
     * starts buckets from it). The model itself knows nothing of MPI. */
    void (*on_grads_final)(void *ctx, size_t lo);
    void *on_grads_final_ctx;
} Model;

/* The reference network of configs/unet-s.ini. */
ModelConfig model_config_default(void);
/* Returns NULL when cfg is valid, otherwise a static message naming the bad field. */
const char *model_config_check(const ModelConfig *cfg);

/* Build the table and tape and allocate the activation arenas for up to max_batch images. */
void model_build(Model *m, const ModelConfig *cfg, int max_batch);
/* The same for forward passes only (sampling): no gradient arena, and activations whose lives do
 * not overlap share memory; model_backward on it dies. */
void model_build_inference(Model *m, const ModelConfig *cfg, int max_batch);
void model_free(Model *m);

/* Forward for n <= max_batch images x [n, in_channels, S, S] at integer timesteps t [n].
 * Conditional models (classes = K > 0) take class labels y [n] in 0..K, K meaning "no class";
 * y = NULL gives every image the null label. Unconditional models need y = NULL. Returns the
 * predicted noise [n, in_channels, S, S] (a view into the activation arena). */
const float *model_forward(Model *m, const float *params, const float *x, const int *t,
                           const int *y, int n);
/* Backward after model_forward with the same n: dout is d(loss)/d(output) [n, C, S, S];
 * parameter gradients are ACCUMULATED into grads (zero it first for a fresh step). */
void model_backward(Model *m, const float *params, float *grads, const float *dout, int n);
/* The gradient with respect to the input image is computed only after model_keep_input_grad (gradient
 * checks ask for it; training does not need it, and skipping it saves the first convolution's input
 * gradient). model_input_grad returns it for the last backward; it dies when it was not asked for. */
void model_keep_input_grad(Model *m);
const float *model_input_grad(const Model *m);

/* Switch dropout on (training builds with [model] dropout > 0) and key the masks of the next
 * forward passes: image i of the batch is global image first + i of training step `step` (so
 * masks do not depend on how a batch is split). Until this is called, and after
 * model_dropout_off, dropout is the identity: a training build can sample and be evaluated. */
void model_set_dropout_key(Model *m, uint64_t seed, uint32_t step, long first);
void model_dropout_off(Model *m);

/* After a forward over n images: the name of the first op (in forward order) whose output holds
 * a NaN or Inf, or NULL when every activation is finite. For diagnosing a non-finite loss. */
const char *model_first_nonfinite_op(const Model *m, int n);

/* Forward multiply-add FLOPs (x2) per image, convs and linears. */
double model_flops_per_image(const Model *m);
/* Per-layer table: op, name, output shape, parameters, MFLOP per image. */
void model_print(const Model *m, FILE *f);

#endif
