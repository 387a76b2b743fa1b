/* adam.h: Adam over the flat arenas, and the EMA of the weights. */
#ifndef DDPM_ADAM_H
#define DDPM_ADAM_H

#include <stddef.h>

typedef struct {
    float lr, beta1, beta2, eps;
} AdamConfig;

/* One Adam step (bias-corrected, step counted from 1) over n floats. */
void adam_step(float *params, const float *grads, float *m, float *v, size_t n,
               const AdamConfig *c, long step);
/* ema = decay * ema + (1 - decay) * params */
void ema_update(float *ema, const float *params, size_t n, float decay);

#endif
