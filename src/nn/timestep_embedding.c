/* timestep_embedding.c: sinusoidal embedding of integer timesteps.
 * out[i, j] = sin(t_i f_j), out[i, half + j] = cos(t_i f_j), f_j = exp(-ln(10000) j / half),
 * computed in double. t is an integer input, so there is no backward. */
#include <math.h>

#include "nn.h"

void timestep_embedding(float *out, const int *t, int n, int dim) {
    const int half = dim / 2;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < half; j++) {
            double arg = (double)t[i] * exp(-log(10000.0) * (double)j / (double)half);
            out[(size_t)i * dim + j] = (float)sin(arg);
            out[(size_t)i * dim + half + j] = (float)cos(arg);
        }
}
