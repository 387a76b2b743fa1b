/* adam.c: Adam (Kingma & Ba) and the weight EMA, one flat loop each over the arenas. */
#include "adam.h"

#include <math.h>

void adam_step(float *params, const float *grads, float *m, float *v, size_t n,
               const AdamConfig *c, long step) {
    const float b1 = c->beta1, b2 = c->beta2;
    const float c1 = 1.0f / (1.0f - powf(b1, (float)step));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)step));
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= c->lr * (m[i] * c1) / (sqrtf(v[i] * c2) + c->eps);
    }
}

void ema_update(float *ema, const float *params, size_t n, float decay) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * params[i];
}
