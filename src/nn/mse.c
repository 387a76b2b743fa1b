/* mse.c: mean squared error, summed in double. */
#include "nn.h"

double mse_forward(const float *pred, const float *target, size_t count) {
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < count; i++) {
        double d = (double)pred[i] - target[i];
        sum += d * d;
    }
    return sum / (double)count;
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t count) {
    const float scale = 2.0f / (float)count;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) dpred[i] += scale * (pred[i] - target[i]);
}
