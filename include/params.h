/* params.h: the tensor table and the arenas it lays out.
 *
 * Every parameter tensor is one entry {name, shape, offset} in a single table, in the order the
 * forward pass first uses it. Parameters, gradients, Adam moments and the EMA copy are each one
 * contiguous float buffer laid out by that table, so an all-reduce, an optimiser step, a
 * checkpoint or an init is one loop over one buffer. Layouts are PyTorch's: conv weight
 * [out, in, kh, kw], linear weight [out, in], vectors [n]. */
#ifndef DDPM_PARAMS_H
#define DDPM_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define PARAM_NAME_MAX 96
#define PARAM_MAX_DIMS 4

/* INIT_NORMAL: N(0, 1), PyTorch's nn.Embedding default. */
typedef enum { INIT_KAIMING_UNIFORM, INIT_ONES, INIT_ZEROS, INIT_NORMAL } ParamInit;

typedef struct {
    char name[PARAM_NAME_MAX]; /* dotted module path, e.g. "down.0.res.0.conv1.weight" */
    int ndim;
    int shape[PARAM_MAX_DIMS];
    size_t offset; /* in floats, into every arena */
    size_t size;   /* product of shape */
    ParamInit init;
    int fan_in; /* for INIT_KAIMING_UNIFORM: bound = 1/sqrt(fan_in), PyTorch's default */
} ParamEntry;

typedef struct {
    ParamEntry *entries;
    int count, capacity;
    size_t total; /* floats in one arena */
} ParamTable;

/* One float buffer per role, each table.total floats, 64-byte aligned. */
typedef struct {
    float *params, *grads, *adam_m, *adam_v, *ema;
} Arenas;

void params_init_table(ParamTable *t);
void params_free_table(ParamTable *t);
/* Append an entry; returns its index. Names must be unique (checked). */
int params_add(ParamTable *t, const char *name, int ndim, const int *shape, ParamInit init,
               int fan_in);
int params_find(const ParamTable *t, const char *name); /* -1 when absent */
/* "[32, 1, 3, 3]" into buf. */
const char *params_shape_str(const ParamEntry *e, char *buf, size_t len);

/* PyTorch's default init from the counter-based RNG: each tensor's values are a pure function
 * of (seed, tensor index, element index). */
void params_initialise(const ParamTable *t, float *params, uint64_t seed);

void arenas_alloc(Arenas *a, const ParamTable *t);
void arenas_free(Arenas *a);

#endif
