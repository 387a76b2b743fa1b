/* mse.c: mean squared error, summed in double. */
#include "nn.h"

#include "ordered_sum.h"

/* in fixed blocks: an OpenMP reduction adds the threads' partial sums in the order they finish,
 * so at 3 threads or more the logged loss changed in its last bits from run to run */
double mse_sum(const float *pred, const float *target, size_t count) {
    return ordered_sum_squared_differences(pred, target, count);
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
