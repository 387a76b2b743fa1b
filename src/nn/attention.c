/* attention.c: single-head self-attention over the h*w positions of each image.
 *
 * qkv [n, 3c, hw] holds the queries Q = rows 0..c-1, keys K = c..2c-1 and values V = 2c..3c-1,
 * each [c, hw] (channel-major, as the 1x1 convolution that makes them writes them). With
 * s = 1/sqrt(c):
 *     S[i][j] = s sum_c Q[c][i] K[c][j],  P[i] = softmax(S[i]),  out[c][i] = sum_j V[c][j] P[i][j]
 * P [n, hw, hw] is kept for backward. Backward, from dout [c, hw]:
 *     dV[c][j] = sum_i dout[c][i] P[i][j]        dP[i][j] = sum_c dout[c][i] V[c][j]
 *     dS[i][j] = P[i][j] (dP[i][j] - sum_j' P[i][j'] dP[i][j'])
 *     dQ[c][i] = s sum_j dS[i][j] K[c][j]        dK[c][j] = s sum_i dS[i][j] Q[c][i]
 * The maps are small (hw = 49 at 7x7): plain loops, one image per thread, the inner loops over
 * contiguous positions so they vectorise. Sums in float; the softmax subtracts the row maximum. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nn.h"

size_t attention_workspace_floats(int hw, int threads) {
    return (size_t)threads * hw * hw;
}

void attention_forward(float *out, float *prob, const float *qkv, int n, int c, int hw) {
    const float scale = 1.0f / sqrtf((float)c);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++) {
        const float *q = qkv + (size_t)b * 3 * c * hw, *k = q + (size_t)c * hw,
                    *v = k + (size_t)c * hw;
        float *p = prob + (size_t)b * hw * hw, *o = out + (size_t)b * c * hw;
        for (int i = 0; i < hw; i++) {
            float *row = p + (size_t)i * hw;
            for (int j = 0; j < hw; j++) row[j] = 0.0f;
            for (int ch = 0; ch < c; ch++) {
                const float qi = q[(size_t)ch * hw + i] * scale;
                const float *kr = k + (size_t)ch * hw;
                for (int j = 0; j < hw; j++) row[j] += qi * kr[j];
            }
            float mx = row[0], sum = 0.0f;
            for (int j = 1; j < hw; j++) mx = row[j] > mx ? row[j] : mx;
            for (int j = 0; j < hw; j++) sum += row[j] = expf(row[j] - mx);
            const float inv = 1.0f / sum;
            for (int j = 0; j < hw; j++) row[j] *= inv;
        }
        for (int ch = 0; ch < c; ch++) {
            const float *vr = v + (size_t)ch * hw;
            float *orow = o + (size_t)ch * hw;
            for (int i = 0; i < hw; i++) {
                const float *row = p + (size_t)i * hw;
                float acc = 0.0f;
                for (int j = 0; j < hw; j++) acc += vr[j] * row[j];
                orow[i] = acc;
            }
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *prob,
                        int n, int c, int hw, float *ws) {
    const float scale = 1.0f / sqrtf((float)c);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++) {
        float *ds = ws + (size_t)omp_get_thread_num() * hw * hw;
        const float *q = qkv + (size_t)b * 3 * c * hw, *k = q + (size_t)c * hw,
                    *v = k + (size_t)c * hw;
        float *dq = dqkv + (size_t)b * 3 * c * hw, *dk = dq + (size_t)c * hw,
              *dv = dk + (size_t)c * hw;
        const float *p = prob + (size_t)b * hw * hw, *d = dout + (size_t)b * c * hw;
        for (int ch = 0; ch < c; ch++) { /* dV */
            const float *dr = d + (size_t)ch * hw;
            float *dvr = dv + (size_t)ch * hw;
            for (int i = 0; i < hw; i++) {
                const float g = dr[i], *row = p + (size_t)i * hw;
                for (int j = 0; j < hw; j++) dvr[j] += g * row[j];
            }
        }
        for (int i = 0; i < hw; i++) { /* dP, then dS in its place */
            float *row = ds + (size_t)i * hw;
            for (int j = 0; j < hw; j++) row[j] = 0.0f;
            for (int ch = 0; ch < c; ch++) {
                const float g = d[(size_t)ch * hw + i], *vr = v + (size_t)ch * hw;
                for (int j = 0; j < hw; j++) row[j] += g * vr[j];
            }
            const float *pr = p + (size_t)i * hw;
            float acc = 0.0f;
            for (int j = 0; j < hw; j++) acc += pr[j] * row[j];
            for (int j = 0; j < hw; j++) row[j] = pr[j] * (row[j] - acc) * scale;
        }
        for (int ch = 0; ch < c; ch++) { /* dQ and dK from the scaled dS */
            const float *kr = k + (size_t)ch * hw, *qr = q + (size_t)ch * hw;
            float *dqr = dq + (size_t)ch * hw, *dkr = dk + (size_t)ch * hw;
            for (int i = 0; i < hw; i++) {
                const float *row = ds + (size_t)i * hw;
                float acc = 0.0f;
                for (int j = 0; j < hw; j++) acc += row[j] * kr[j];
                dqr[i] += acc;
                const float qi = qr[i];
                for (int j = 0; j < hw; j++) dkr[j] += qi * row[j];
            }
        }
    }
}
