/* linear.c: out [n, cout] = inp [n, cin] W[cout, cin]^T + b, on BLIS sgemm.
 * Used for the small time-embedding MLPs (n = batch), called outside any parallel region: BLIS
 * uses its own threads (BLIS_NUM_THREADS, else OMP_NUM_THREADS). */
#include "cblas.h"
#include "nn.h"

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n,
                    int cin, int cout) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < cout; o++) out[(size_t)i * cout + o] = bias ? bias[o] : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, cout, cin, 1.0f, inp, cin, weight, cin,
                1.0f, out, cout);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int n, int cin, int cout) {
    if (dinp) /* dinp [n, cin] += dout [n, cout] W [cout, cin] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cin, cout, 1.0f, dout, cout,
                    weight, cin, 1.0f, dinp, cin);
    if (dweight) /* dW [cout, cin] += dout^T [cout, n] inp [n, cin] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cout, cin, n, 1.0f, dout, cout, inp,
                    cin, 1.0f, dweight, cin);
    if (dbias)
        for (int o = 0; o < cout; o++) {
            float acc = 0.0f;
            for (int i = 0; i < n; i++) acc += dout[(size_t)i * cout + o];
            dbias[o] += acc;
        }
}
