/* mse.c: mean squared error, summed in double. */
#include "nn.h"

double mse_sum(const float *pred, const float *target, size_t count) {
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < count; i++) {
        double d = (double)pred[i] - target[i];
        sum += d * d;
    }
    return sum;
}

double mse_forward(const float *pred, const float *target, size_t count) {
    return mse_sum(pred, target, count) / (double)count;
}

void mse_backward_over(float *dpred, const float *pred, const float *target, size_t count,
                       size_t total) {
    const float scale = 2.0f / (float)total;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < count; i++) dpred[i] += scale * (pred[i] - target[i]);
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t count) {
    mse_backward_over(dpred, pred, target, count, count);
}
