/* concat.c: channel concatenation [a, b] per image; backward splits the gradient. */
#include <string.h>

#include "nn.h"

void concat_forward(float *out, const float *a, const float *b, int n, int ca, int cb, int hw) {
    const size_t sa = (size_t)ca * hw, sb = (size_t)cb * hw;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        memcpy(out + i * (sa + sb), a + i * sa, sa * sizeof(float));
        memcpy(out + i * (sa + sb) + sa, b + i * sb, sb * sizeof(float));
    }
}

void concat_backward_ex(float *da, int set_a, float *db, int set_b, const float *dout, int n,
                        int ca, int cb, int hw) {
    const size_t sa = (size_t)ca * hw, sb = (size_t)cb * hw;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *dy = dout + i * (sa + sb);
        if (da && set_a)
            memcpy(da + i * sa, dy, sa * sizeof(float));
        else if (da)
            for (size_t j = 0; j < sa; j++) da[i * sa + j] += dy[j];
        if (db && set_b)
            memcpy(db + i * sb, dy + sa, sb * sizeof(float));
        else if (db)
            for (size_t j = 0; j < sb; j++) db[i * sb + j] += dy[sa + j];
    }
}

void concat_backward(float *da, float *db, const float *dout, int n, int ca, int cb, int hw) {
    concat_backward_ex(da, 0, db, 0, dout, n, ca, cb, hw);
}
