/* params.c: the tensor table, its arenas and PyTorch-default initialisation. */
#include "params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"
#include "util.h"

void params_init_table(ParamTable *t) { memset(t, 0, sizeof *t); }

void params_free_table(ParamTable *t) {
    free(t->entries);
    memset(t, 0, sizeof *t);
}

int params_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->entries[i].name, name) == 0) return i;
    return -1;
}

int params_add(ParamTable *t, const char *name, int ndim, const int *shape, ParamInit init,
               int fan_in) {
    if (strlen(name) >= PARAM_NAME_MAX) die("parameter name too long: %s", name);
    if (ndim < 1 || ndim > PARAM_MAX_DIMS) die("parameter %s: bad rank %d", name, ndim);
    if (params_find(t, name) >= 0) die("parameter %s defined twice", name);
    if (t->count == t->capacity) {
        int cap = t->capacity ? 2 * t->capacity : 64;
        ParamEntry *grown = xcalloc((size_t)cap, sizeof *grown);
        if (t->count) memcpy(grown, t->entries, (size_t)t->count * sizeof *grown);
        free(t->entries);
        t->entries = grown;
        t->capacity = cap;
    }
    ParamEntry *e = &t->entries[t->count];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->size = 1;
    for (int d = 0; d < ndim; d++) {
        e->shape[d] = shape[d];
        e->size *= (size_t)shape[d];
    }
    /* Packed back to back: the arena's length is the parameter count. */
    e->offset = t->total;
    t->total += e->size;
    e->init = init;
    e->fan_in = fan_in;
    return t->count++;
}

const char *params_shape_str(const ParamEntry *e, char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < e->ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, d ? ", %d" : "%d", e->shape[d]);
    if (used < len) snprintf(buf + used, len - used, "]");
    return buf;
}

void params_initialise(const ParamTable *t, float *params, uint64_t seed) {
    for (int i = 0; i < t->count; i++) {
        const ParamEntry *e = &t->entries[i];
        float *p = params + e->offset;
        switch (e->init) {
        case INIT_KAIMING_UNIFORM: {
            /* PyTorch's conv/linear default: kaiming_uniform(a = sqrt(5)) for weights and
             * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases: both have bound 1/sqrt(fan_in). */
            float bound = 1.0f / sqrtf((float)e->fan_in);
            rng_uniform(p, e->size, -bound, bound, seed, RNG_INIT, (uint32_t)i, 0);
            break;
        }
        case INIT_ONES:
            for (size_t j = 0; j < e->size; j++) p[j] = 1.0f;
            break;
        case INIT_ZEROS:
            break;
        case INIT_NORMAL:
            rng_normal(p, e->size, seed, RNG_INIT, (uint32_t)i, 0);
            break;
        }
    }
}

void arenas_alloc(Arenas *a, const ParamTable *t) {
    a->params = floats_alloc(t->total);
    a->grads = floats_alloc(t->total);
    a->adam_m = floats_alloc(t->total);
    a->adam_v = floats_alloc(t->total);
    a->ema = floats_alloc(t->total);
}

void arenas_free(Arenas *a) {
    free(a->params);
    free(a->grads);
    free(a->adam_m);
    free(a->adam_v);
    free(a->ema);
    memset(a, 0, sizeof *a);
}
