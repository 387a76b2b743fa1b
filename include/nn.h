/* nn.h: the layers, as pure functions over float pointers with explicit shapes.
 *
 * Conventions (llm.c style): outputs first, then inputs, then dimensions. Tensors are NCHW,
 * contiguous. Forward functions overwrite their outputs. Backward functions ACCUMULATE into
 * every gradient they are given (dinp += ..., dweight += ...): a tensor used twice (a skip
 * connection) collects both contributions, and parameter gradients collect over the batch.
 * A NULL gradient pointer means "not needed" and skips that work.
 *
 * Threading: every function here parallelises over images (or channels) with OpenMP; BLIS
 * calls inside those regions run single-threaded because nested OpenMP is off (model_build
 * switches it off explicitly: omp_set_max_active_levels(1)). Call them from outside any
 * parallel region. Nothing here allocates: scratch space comes from the caller.
 */
#ifndef DDPM_NN_H
#define DDPM_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---- conv2d: square kernel k (1 or 3), stride 1 or 2, zero padding k/2, with bias ---- */
typedef struct {
    int n, cin, h, w;    /* input [n, cin, h, w] */
    int cout, k, stride; /* weight [cout, cin, k, k], bias [cout] */
    int pad, hout, wout; /* derived by conv_shape */
} ConvShape;

ConvShape conv_shape(int n, int cin, int h, int w, int cout, int k, int stride);
/* Scratch floats conv2d_forward/backward need when run on `threads` OpenMP threads, independent
 * of the batch: per thread one im2col matrix for a group of g images (g*hout*wout >= 384
 * columns; g = 1 at 28x28), the group's gathered output and input gradients when g > 1, and one
 * weight/bias-gradient partial; plus one shared flipped kernel. The exact count is in conv2d.c. */
size_t conv_workspace_floats(const ConvShape *s, int threads);
/* out [n, cout, hout, wout] = conv(inp [n, cin, h, w], weight) + bias */
void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const ConvShape *s, float *ws);
/* dinp [n,cin,h,w] (may be NULL), dweight [cout,cin,k,k], dbias [cout] += from dout */
void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, const ConvShape *s, float *ws);
/* The same with set_dinp = 1: dinp is overwritten instead of added to (it may hold anything
 * before). Every *_ex backward below has such flags: the tape's first writer of a gradient sets
 * it, which saves zero-filling it first and reading the zeros back. */
void conv2d_backward_ex(float *dinp, int set_dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp, const float *weight,
                        const ConvShape *s, float *ws);
/* Convolutions with odd k >= 3 (and 1x1 ones on large images) run without im2col where
 * conv_direct.h's *_applies functions say so; the rest on im2col + sgemm. Off: everything on
 * im2col + sgemm (tests and benchmarks compare). */
void conv2d_set_direct(int on);
/* Plain direct-loop convolution, the reference the fast path is tested against. */
void conv2d_forward_reference(float *out, const float *inp, const float *weight,
                              const float *bias, const ConvShape *s);

/* ---- GroupNorm(groups, eps 1e-5, affine) over [n, c, hw] ---- */
#define GROUPNORM_EPS 1e-5f
/* out, and the per-(image, group) statistics mean/rstd [n, groups] that backward needs. */
void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta, int n, int c, int hw, int groups);
/* Scratch floats groupnorm_backward needs for a batch of n images of c channels. */
size_t groupnorm_workspace_floats(int n, int c);
void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *rstd,
                        const float *gamma, int n, int c, int hw, int groups, float *ws);
/* One (image, group)'s input gradient from the gradient dy of its output, given sg and sgx, the
 * group's sums of gamma dy and gamma dy xhat: dx (set: =, else +=) rstd (gamma dy - mean(gamma
 * dy) - xhat mean(gamma dy xhat)). gamma points at the group's first channel. */
void groupnorm_group_dx(float *dx, int set, const float *x, const float *dy, const float *gamma,
                        float mu, float r, double sg, double sgx, int cpg, int hw);
/* dgamma[ch] += sum over images of part[(i*c + ch)*2 + 1], dbeta[ch] of part[(i*c + ch)*2] (the
 * per-image shares both GroupNorm backwards leave in their scratch), in image order. */
void groupnorm_add_param_grads(float *dgamma, float *dbeta, const double *part, int n, int c);

/* ---- GroupNorm then SiLU as one op: out = silu(gn(x)) (groupnorm_silu.c); the same statistics
 * as groupnorm_forward, and backward also needs beta (it recomputes gn(x)). dinp may be NULL. ---- */
void groupnorm_silu_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *gamma, const float *beta, int n, int c, int hw,
                            int groups);
size_t groupnorm_silu_workspace_floats(int n, int c, int hw, int groups, int threads);
void groupnorm_silu_backward(float *dinp, int set_dinp, float *dgamma, float *dbeta,
                             const float *dout,
                             const float *inp, const float *mean, const float *rstd,
                             const float *gamma, const float *beta, int n, int c, int hw,
                             int groups, float *ws);

/* ---- SiLU: out = x * sigmoid(x), elementwise over count ---- */
void silu_forward(float *out, const float *inp, size_t count);
void silu_backward(float *dinp, const float *dout, const float *inp, size_t count);

/* ---- Linear: out [n, cout] = inp [n, cin] weight[cout, cin]^T + bias [cout] ---- */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n,
                    int cin, int cout);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int n, int cin, int cout);

/* ---- sinusoidal timestep embedding: out [n, dim], dim even: first dim/2 sines, then
 * dim/2 cosines of t * exp(-ln(10000) i / (dim/2)). No gradient: t is an integer input. ---- */
void timestep_embedding(float *out, const int *t, int n, int dim);

/* ---- learned embedding: out [n, dim] = weight [rows, dim] at row labels[i] (each in
 * [0, rows), checked by the caller); backward ACCUMULATES dout rows into dweight ---- */
void embedding_forward(float *out, const float *weight, const int *labels, int n, int dim);
void embedding_backward(float *dweight, const float *dout, const int *labels, int n, int dim);

/* ---- single-head self-attention over hw positions: qkv [n, 3c, hw] (queries, keys, values,
 * each [c, hw]) -> out [n, c, hw]; prob [n, hw, hw] receives the softmax weights for backward.
 * Backward ACCUMULATES into dqkv; ws holds attention_workspace_floats(hw, threads) floats. ---- */
size_t attention_workspace_floats(int hw, int threads);
void attention_forward(float *out, float *prob, const float *qkv, int n, int c, int hw);
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *prob,
                        int n, int c, int hw, float *ws);

/* ---- inverted dropout: out = inp * mask, mask [n, per_image] = 0 with probability p else
 * 1/(1-p), drawn from the RNG for (seed, step, keys[i]) per image (nn.h's one use of the RNG);
 * backward ACCUMULATES dinp += dout * mask ---- */
void dropout_forward(float *out, float *mask, const float *inp, int n, size_t per_image, double p,
                     uint64_t seed, uint32_t step, const uint32_t *keys);
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t count);

/* ---- nearest-neighbour 2x upsampling: inp [n, c, h, w] -> out [n, c, 2h, 2w] ---- */
void upsample2x_forward(float *out, const float *inp, int n, int c, int h, int w);
void upsample2x_backward(float *dinp, const float *dout, int n, int c, int h, int w);

/* ---- channel concat: out [n, ca+cb, hw] = [a [n, ca, hw], b [n, cb, hw]] ---- */
void concat_forward(float *out, const float *a, const float *b, int n, int ca, int cb, int hw);
void concat_backward(float *da, float *db, const float *dout, int n, int ca, int cb, int hw);
void concat_backward_ex(float *da, int set_a, float *db, int set_b, const float *dout, int n,
                        int ca, int cb, int hw);

/* ---- residual add: out = a + b over count; backward da += dout, db += dout ---- */
void add_forward(float *out, const float *a, const float *b, size_t count);
void add_backward(float *da, float *db, const float *dout, size_t count);
void add_backward_ex(float *da, int set_a, float *db, int set_b, const float *dout, size_t count);

/* ---- per-channel broadcast add: out [n, c, hw] = x [n, c, hw] + e [n, c] ---- */
void add_channel_forward(float *out, const float *x, const float *e, int n, int c, int hw);
void add_channel_backward(float *dx, float *de, const float *dout, int n, int c, int hw);
void add_channel_backward_ex(float *dx, int set_x, float *de, int set_e, const float *dout, int n,
                             int c, int hw);

/* ---- MSE loss: mean over count of (pred - target)^2, summed in double ---- */
double mse_forward(const float *pred, const float *target, size_t count);
/* dpred += 2 (pred - target) / count */
void mse_backward(float *dpred, const float *pred, const float *target, size_t count);
/* Data parallelism: this rank holds count of the total elements of the global batch.
 * mse_sum is its share of the numerator; dpred += 2 (pred - target) / total. */
double mse_sum(const float *pred, const float *target, size_t count);
void mse_backward_over(float *dpred, const float *pred, const float *target, size_t count,
                       size_t total);

/* ---- softmax cross-entropy over k classes (the evaluation classifier's loss) ---- */
/* prob [n, k] receives softmax(logits); returns sum_i -log prob[i][labels[i]] (not averaged). */
double softmax_xent_forward(float *prob, const float *logits, const int *labels, int n, int k);
/* dlogits += (prob - onehot(labels)) / norm (norm: the global batch, for a mean loss) */
void softmax_xent_backward(float *dlogits, const float *prob, const int *labels, int n, int k,
                           double norm);

#endif
