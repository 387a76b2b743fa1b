/* embedding.c: a learned lookup table, out[i] = weight[labels[i]] (weight is [rows, dim]).
 * Backward adds each output gradient row into the row it was read from; several images with
 * one label add into the same row, so the loop stays serial (n x dim is a few thousand floats). */
#include <string.h>

#include "nn.h"

void embedding_forward(float *out, const float *weight, const int *labels, int n, int dim) {
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * dim, weight + (size_t)labels[i] * dim, (size_t)dim * sizeof(float));
}

void embedding_backward(float *dweight, const float *dout, const int *labels, int n, int dim) {
    for (int i = 0; i < n; i++) {
        float *row = dweight + (size_t)labels[i] * dim;
        const float *g = dout + (size_t)i * dim;
        for (int j = 0; j < dim; j++) row[j] += g[j];
    }
}
