/* softmax_xent.c: softmax cross-entropy over k classes, the classifier's loss. */
#include <math.h>

#include "nn.h"

double softmax_xent_forward(float *prob, const float *logits, const int *labels, int n, int k) {
    double loss = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *p = prob + (size_t)i * k;
        float top = z[0];
        for (int j = 1; j < k; j++) top = z[j] > top ? z[j] : top;
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += exp((double)z[j] - top);
        const double log_sum = log(sum);
        for (int j = 0; j < k; j++) p[j] = (float)exp((double)z[j] - top - log_sum);
        loss += log_sum - ((double)z[labels[i]] - top); /* -log softmax(z)[label] */
    }
    return loss;
}

void softmax_xent_backward(float *dlogits, const float *prob, const int *labels, int n, int k,
                           double norm) {
    const float scale = (float)(1.0 / norm);
    for (int i = 0; i < n; i++) {
        float *d = dlogits + (size_t)i * k;
        const float *p = prob + (size_t)i * k;
        for (int j = 0; j < k; j++) d[j] += scale * (p[j] - (j == labels[i] ? 1.0f : 0.0f));
    }
}
