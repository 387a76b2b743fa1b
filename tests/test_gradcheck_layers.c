/* test_gradcheck_layers.c: the layers of nn.h other than conv2d (test_gradcheck_conv.c) and
 * GroupNorm (test_gradcheck_norm.c): SiLU, Linear, the class embedding, self-attention, dropout,
 * upsample, concat, add, broadcast add, MSE, softmax cross-entropy; forward against double loops,
 * backward against finite differences. The strategy is in layer_check.h.
 * timestep_embedding has no gradient; its values are checked against a double computation.
 */
#include <omp.h>

#include "layer_check.h"
#include "nn.h"

/* ---------------------------------------------------------------- elementwise and shape ops */

/* One context for the small layers: up to two inputs, one output, the loss weights. */
typedef struct Small {
    int n, c, h, w, cb; /* shapes as each layer reads them */
    size_t na, nb, nout;
    float *a, *b, *out, *r;
    void (*forward)(void *ctx);
    /* layers with *_ex backwards: the same with both input gradients overwritten (set) */
    void (*backward_set)(struct Small *s, float *da, float *db);
} Small;

static double small_loss(void *ctx) {
    Small *s = ctx;
    s->forward(s);
    return gc_dot(s->out, s->r, s->nout);
}

/* Finite differences for each input, then the accumulate contract. backward(ctx, da, db)
 * must run the layer's backward with dout = r. */
static void run_small(Small *s, const char *layer, double *want_out,
                      void (*backward)(Small *s, float *da, float *db), uint32_t tag) {
    char name[64];
    s->r = rnd(s->nout, -1.0f, 1.0f, tag, 3);
    s->out = gc_alloc_poisoned(s->nout);
    small_loss(s);
    snprintf(name, sizeof name, "%s out", layer);
    gc_assert_clean(s->out, s->nout, name);
    expect_near(s->out, want_out, s->nout, 1e-5, name);

    int inputs = s->b ? 2 : 1;
    float *xs[2] = {s->a, s->b}, *gs[2] = {gc_alloc(s->na), s->b ? gc_alloc(s->nb) : NULL};
    size_t ns[2] = {s->na, s->nb};
    backward(s, gs[0], gs[1]);
    gc_assert_guards(s->out, s->nout, layer);
    for (int i = 0; i < inputs; i++) {
        snprintf(name, sizeof name, "%s d%s", layer, i == 0 ? "a" : "b");
        gc_assert_clean(gs[i], ns[i], name);
        gc_assert_guards(xs[i], ns[i], layer);
        snprintf(name, sizeof name, "%s %s", layer, i == 0 ? "a" : "b");
        check(name, xs[i], ns[i], gs[i], small_loss, s, tag + 10 + (uint32_t)i);
    }
    float *v[2] = {NULL, NULL}, *acc[2] = {NULL, NULL};
    accumulate_prefill(v, acc, ns, inputs, tag);
    small_loss(s);
    backward(s, acc[0], acc[1]);
    for (int i = 0; i < inputs; i++) gc_assert_accumulated(acc[i], v[i], gs[i], ns[i], layer);
    if (s->backward_set) { /* overwritten gradients start as NaN: an unwritten element shows */
        float *set[2] = {gc_alloc_poisoned(s->na), s->b ? gc_alloc_poisoned(s->nb) : NULL};
        s->backward_set(s, set[0], set[1]);
        for (int i = 0; i < inputs; i++) {
            snprintf(name, sizeof name, "%s d%s (set)", layer, i == 0 ? "a" : "b");
            gc_assert_clean(set[i], ns[i], name);
            if (memcmp(set[i], gs[i], ns[i] * sizeof(float)) != 0)
                fail_msg("%s: the overwriting backward differs from the one into zeros", name);
            gc_free(set[i]);
        }
    }

    for (int i = 0; i < 2; i++) {
        gc_free(xs[i]);
        gc_free(gs[i]);
        gc_free(v[i]);
        gc_free(acc[i]);
    }
    gc_free(s->out);
    gc_free(s->r);
    free(want_out);
}

static void silu_fwd(void *ctx) {
    Small *s = ctx;
    silu_forward(s->out, s->a, s->na);
}
static void silu_bwd(Small *s, float *da, float *db) { silu_backward(da, s->r, s->a, s->na); }

static void test_silu(void **state) {
    Small s = {.na = 2 * 3 * 5 * 7, .nout = 2 * 3 * 5 * 7, .forward = silu_fwd};
    s.a = rnd(s.na, -6.0f, 6.0f, 3000, 0);
    double *want = want_alloc(s.nout);
    for (size_t i = 0; i < s.na; i++) want[i] = s.a[i] / (1.0 + exp(-(double)s.a[i]));
    run_small(&s, "silu", want, silu_bwd, 3000);
}

static void upsample_fwd(void *ctx) {
    Small *s = ctx;
    upsample2x_forward(s->out, s->a, s->n, s->c, s->h, s->w);
}
static void upsample_bwd(Small *s, float *da, float *db) {
    upsample2x_backward(da, s->r, s->n, s->c, s->h, s->w);
}

static void test_upsample2x(void **state) {
    Small s = {.n = 2, .c = 3, .h = 4, .w = 5, .forward = upsample_fwd};
    s.na = 2 * 3 * 4 * 5;
    s.nout = 4 * s.na;
    s.a = rnd(s.na, -1.0f, 1.0f, 3100, 0);
    double *want = want_alloc(s.nout);
    for (int p = 0; p < s.n * s.c; p++)
        for (int y = 0; y < 2 * s.h; y++)
            for (int x = 0; x < 2 * s.w; x++)
                want[((size_t)p * 2 * s.h + y) * 2 * s.w + x] =
                    s.a[((size_t)p * s.h + y / 2) * s.w + x / 2];
    run_small(&s, "upsample2x", want, upsample_bwd, 3100);
}

static void concat_fwd(void *ctx) {
    Small *s = ctx;
    concat_forward(s->out, s->a, s->b, s->n, s->c, s->cb, s->h);
}
static void concat_bwd_set(Small *s, float *da, float *db) {
    concat_backward_ex(da, 1, db, 1, s->r, s->n, s->c, s->cb, s->h);
}
static void concat_bwd(Small *s, float *da, float *db) {
    concat_backward(da, db, s->r, s->n, s->c, s->cb, s->h);
}

static void test_concat(void **state) {
    Small s = {.n = 2,
               .c = 3,
               .cb = 2,
               .h = 6,
               .forward = concat_fwd, /* h holds hw */
               .backward_set = concat_bwd_set};
    s.na = 2 * 3 * 6;
    s.nb = 2 * 2 * 6;
    s.nout = s.na + s.nb;
    s.a = rnd(s.na, -1.0f, 1.0f, 3200, 0);
    s.b = rnd(s.nb, -1.0f, 1.0f, 3200, 1);
    double *want = want_alloc(s.nout);
    size_t ia = (size_t)s.c * s.h, ib = (size_t)s.cb * s.h;
    for (int i = 0; i < s.n; i++) {
        for (size_t j = 0; j < ia; j++) want[i * (ia + ib) + j] = s.a[i * ia + j];
        for (size_t j = 0; j < ib; j++) want[i * (ia + ib) + ia + j] = s.b[i * ib + j];
    }
    run_small(&s, "concat", want, concat_bwd, 3200);
}

static void add_fwd(void *ctx) {
    Small *s = ctx;
    add_forward(s->out, s->a, s->b, s->na);
}
static void add_bwd(Small *s, float *da, float *db) { add_backward(da, db, s->r, s->na); }
static void add_bwd_set(Small *s, float *da, float *db) {
    add_backward_ex(da, 1, db, 1, s->r, s->na);
}

static void test_add(void **state) {
    Small s = {.na = 2 * 3 * 4 * 5,
               .nb = 2 * 3 * 4 * 5,
               .nout = 2 * 3 * 4 * 5,
               .forward = add_fwd,
               .backward_set = add_bwd_set};
    s.a = rnd(s.na, -1.0f, 1.0f, 3300, 0);
    s.b = rnd(s.nb, -1.0f, 1.0f, 3300, 1);
    double *want = want_alloc(s.nout);
    for (size_t i = 0; i < s.nout; i++) want[i] = (double)s.a[i] + (double)s.b[i];
    run_small(&s, "add", want, add_bwd, 3300);
}

static void add_channel_fwd(void *ctx) {
    Small *s = ctx;
    add_channel_forward(s->out, s->a, s->b, s->n, s->c, s->h);
}
static void add_channel_bwd(Small *s, float *da, float *db) {
    add_channel_backward(da, db, s->r, s->n, s->c, s->h);
}
static void add_channel_bwd_set(Small *s, float *da, float *db) {
    add_channel_backward_ex(da, 1, db, 1, s->r, s->n, s->c, s->h);
}

static void test_add_channel(void **state) {
    Small s = {.n = 2,
               .c = 3,
               .h = 10,
               .forward = add_channel_fwd, /* h holds hw */
               .backward_set = add_channel_bwd_set};
    s.na = s.nout = 2 * 3 * 10;
    s.nb = 2 * 3;
    s.a = rnd(s.na, -1.0f, 1.0f, 3400, 0);
    s.b = rnd(s.nb, -1.0f, 1.0f, 3400, 1);
    double *want = want_alloc(s.nout);
    for (size_t i = 0; i < s.nout; i++) want[i] = (double)s.a[i] + (double)s.b[i / (size_t)s.h];
    run_small(&s, "add_channel", want, add_channel_bwd, 3400);
}

/* ---------------------------------------------------------------- linear */

typedef struct {
    int n, cin, cout;
    float *inp, *weight, *bias, *out, *r;
} Lin;

static double linear_loss(void *ctx) {
    Lin *l = ctx;
    linear_forward(l->out, l->inp, l->weight, l->bias, l->n, l->cin, l->cout);
    return gc_dot(l->out, l->r, (size_t)l->n * l->cout);
}

static void test_linear(void **state) {
    Lin l = {.n = 3, .cin = 7, .cout = 5};
    size_t ni = 3 * 7, nw = 5 * 7, nb = 5, no = 3 * 5;
    l.inp = rnd(ni, -1.0f, 1.0f, 4000, 0);
    l.weight = rnd(nw, -0.5f, 0.5f, 4000, 1);
    l.bias = rnd(nb, -0.5f, 0.5f, 4000, 2);
    l.r = rnd(no, -1.0f, 1.0f, 4000, 3);
    l.out = gc_alloc_poisoned(no);
    linear_loss(&l);
    gc_assert_clean(l.out, no, "linear out");
    double want[3 * 5];
    for (int i = 0; i < l.n; i++)
        for (int o = 0; o < l.cout; o++) {
            double s = l.bias[o];
            for (int k = 0; k < l.cin; k++)
                s += (double)l.inp[i * l.cin + k] * l.weight[o * l.cin + k];
            want[i * l.cout + o] = s;
        }
    expect_near(l.out, want, no, 1e-5, "linear out");

    float *gs[3] = {gc_alloc(ni), gc_alloc(nw), gc_alloc(nb)};
    linear_backward(gs[0], gs[1], gs[2], l.r, l.inp, l.weight, l.n, l.cin, l.cout);
    const char *names[3] = {"linear inp", "linear weight", "linear bias"};
    float *xs[3] = {l.inp, l.weight, l.bias};
    size_t ns[3] = {ni, nw, nb};
    for (int i = 0; i < 3; i++) {
        gc_assert_clean(gs[i], ns[i], names[i]);
        check(names[i], xs[i], ns[i], gs[i], linear_loss, &l, 4010 + (uint32_t)i);
    }
    float *v[3], *acc[3];
    for (int i = 0; i < 3; i++) {
        v[i] = rnd(ns[i], -2.0f, 2.0f, 4000, 20 + (uint32_t)i);
        acc[i] = copy_of(v[i], ns[i]);
    }
    linear_backward(acc[0], acc[1], acc[2], l.r, l.inp, l.weight, l.n, l.cin, l.cout);
    for (int i = 0; i < 3; i++) gc_assert_accumulated(acc[i], v[i], gs[i], ns[i], names[i]);
    for (int i = 0; i < 3; i++) {
        gc_free(xs[i]);
        gc_free(gs[i]);
        gc_free(v[i]);
        gc_free(acc[i]);
    }
    gc_free(l.out);
    gc_free(l.r);
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
    int n, rows, dim;
    const int *labels;
    float *weight, *out, *r;
} Emb;

static double embedding_loss(void *ctx) {
    Emb *e = ctx;
    embedding_forward(e->out, e->weight, e->labels, e->n, e->dim);
    return gc_dot(e->out, e->r, (size_t)e->n * e->dim);
}

/* Five images over four rows: row 2 is read three times (its gradient is the sum of three
 * output rows), row 1 never (zero gradient), the last row (the null label) once. */
static void test_embedding(void **state) {
    static const int labels[5] = {2, 0, 2, 3, 2};
    Emb e = {.n = 5, .rows = 4, .dim = 6, .labels = labels};
    const size_t nw = 4 * 6, no = 5 * 6;
    e.weight = rnd(nw, -1.0f, 1.0f, 4500, 0);
    e.r = rnd(no, -1.0f, 1.0f, 4500, 1);
    e.out = gc_alloc_poisoned(no);
    embedding_loss(&e);
    gc_assert_clean(e.out, no, "embedding out");
    double want[5 * 6];
    for (int i = 0; i < e.n; i++)
        for (int j = 0; j < e.dim; j++) want[i * e.dim + j] = e.weight[labels[i] * e.dim + j];
    expect_near(e.out, want, no, 0, "embedding out");

    float *g = gc_alloc(nw);
    embedding_backward(g, e.r, labels, e.n, e.dim);
    gc_assert_clean(g, nw, "embedding weight");
    for (int j = 0; j < e.dim; j++) assert_true(g[1 * e.dim + j] == 0.0f);
    check("embedding weight", e.weight, nw, g, embedding_loss, &e, 4510);
    float *v = rnd(nw, -2.0f, 2.0f, 4500, 20), *acc = copy_of(v, nw);
    embedding_backward(acc, e.r, labels, e.n, e.dim);
    gc_assert_accumulated(acc, v, g, nw, "embedding weight");
    gc_free(e.weight), gc_free(e.out), gc_free(e.r), gc_free(g), gc_free(v), gc_free(acc);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    int n, c, hw;
    float *qkv, *out, *prob, *r;
} Attn;

static double attention_loss(void *ctx) {
    Attn *a = ctx;
    attention_forward(a->out, a->prob, a->qkv, a->n, a->c, a->hw);
    return gc_dot(a->out, a->r, (size_t)a->n * a->c * a->hw);
}

/* Forward against softmax attention written out in double; backward (queries, keys and values
 * in one buffer) against finite differences, on 2 images of 5 channels over 3x4 positions and
 * on 2 images of 4 channels over 7x7 (the U-Net's attention resolution); the accumulate
 * contract; queries and keys of +-2 so the softmax is far from uniform. */
static void run_attention(int n, int c, int hw, uint32_t tag) {
    Attn a = {.n = n, .c = c, .hw = hw};
    const size_t nq = (size_t)n * 3 * c * hw, no = (size_t)n * c * hw, np = (size_t)n * hw * hw;
    a.qkv = rnd(nq, -2.0f, 2.0f, tag, 0);
    a.r = rnd(no, -1.0f, 1.0f, tag, 1);
    a.out = gc_alloc_poisoned(no);
    a.prob = gc_alloc_poisoned(np);
    attention_loss(&a);
    gc_assert_clean(a.out, no, "attention out");
    gc_assert_clean(a.prob, np, "attention prob");
    double *want = want_alloc(no), *s = want_alloc((size_t)hw);
    for (int b = 0; b < n; b++) {
        const float *q = a.qkv + (size_t)b * 3 * c * hw, *k = q + c * hw, *v = k + c * hw;
        for (int i = 0; i < hw; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < hw; j++) {
                s[j] = 0;
                for (int ch = 0; ch < c; ch++) s[j] += (double)q[ch * hw + i] * k[ch * hw + j];
                s[j] /= sqrt((double)c);
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < hw; j++) sum += s[j] = exp(s[j] - mx);
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int j = 0; j < hw; j++) acc += v[ch * hw + j] * s[j] / sum;
                want[((size_t)b * c + ch) * hw + i] = acc;
            }
        }
    }
    expect_near(a.out, want, no, 1e-5, "attention out");
    float *g = gc_alloc(nq), *ws = gc_alloc(attention_workspace_floats(hw, omp_get_max_threads()));
    attention_backward(g, a.r, a.qkv, a.prob, n, c, hw, ws);
    gc_assert_clean(g, nq, "attention qkv");
    check("attention qkv", a.qkv, nq, g, attention_loss, &a, tag + 10);
    float *v = rnd(nq, -2.0f, 2.0f, tag, 20), *acc = copy_of(v, nq);
    attention_loss(&a); /* prob of the unperturbed input again */
    attention_backward(acc, a.r, a.qkv, a.prob, n, c, hw, ws);
    gc_assert_accumulated(acc, v, g, nq, "attention qkv");
    gc_free(a.qkv), gc_free(a.r), gc_free(a.out), gc_free(a.prob), gc_free(g), gc_free(ws);
    gc_free(v), gc_free(acc);
    free(want), free(s);
}

static void test_attention_small(void **state) { run_attention(2, 5, 12, 4600); }
static void test_attention_7x7(void **state) { run_attention(2, 4, 49, 4700); }

/* ---------------------------------------------------------------- dropout */

typedef struct {
    int n;
    size_t per;
    uint32_t keys[2];
    float *inp, *out, *mask, *r;
} Drop;

static double dropout_loss(void *ctx) {
    Drop *d = ctx;
    dropout_forward(d->out, d->mask, d->inp, d->n, d->per, 0.3, 5, 17, d->keys);
    return gc_dot(d->out, d->r, (size_t)d->n * d->per);
}

/* p = 0.3 over 2 x 5000 elements: about 30% zeros (binomial sd 0.46%: 3% is 6 sd), the rest
 * scaled by 1/0.7; the mask a function of (seed, step, key): the same again, another for
 * another step or key; backward against finite differences and the accumulate contract. */
static void test_dropout(void **state) {
    Drop d = {.n = 2, .per = 5000, .keys = {3 * 1024 + 1, 4 * 1024 + 1}};
    const size_t count = 2 * 5000;
    d.inp = rnd(count, -1.0f, 1.0f, 4800, 0);
    d.r = rnd(count, -1.0f, 1.0f, 4800, 1);
    d.out = gc_alloc_poisoned(count);
    d.mask = gc_alloc_poisoned(count);
    dropout_loss(&d);
    gc_assert_clean(d.out, count, "dropout out");
    size_t zeros = 0;
    for (size_t e = 0; e < count; e++) {
        if (d.mask[e] == 0.0f)
            zeros++;
        else if (fabsf(d.mask[e] - 1.0f / 0.7f) > 1e-6f)
            fail_msg("mask[%zu] = %g", e, d.mask[e]);
        if (d.out[e] != d.inp[e] * d.mask[e]) fail_msg("out[%zu] != inp * mask", e);
    }
    const double frac = (double)zeros / count;
    if (fabs(frac - 0.3) > 0.03) fail_msg("dropout zeroed %.4f of the elements, want 0.3", frac);
    float *m1 = copy_of(d.mask, count);
    dropout_loss(&d);
    assert_memory_equal(m1, d.mask, count * sizeof(float));
    float *other = gc_alloc(count), *tmp = gc_alloc(count);
    dropout_forward(tmp, other, d.inp, 1, d.per, 0.3, 5, 18, d.keys); /* another step */
    assert_true(memcmp(other, m1, d.per * sizeof(float)) != 0);
    dropout_forward(tmp, other, d.inp, 1, d.per, 0.3, 5, 17, d.keys + 1); /* image 1's key */
    assert_memory_equal(other, m1 + d.per, d.per * sizeof(float));
    float *g = gc_alloc(count);
    dropout_backward(g, d.r, d.mask, count);
    check("dropout inp", d.inp, count < 400 ? count : 400, g, dropout_loss, &d, 4810);
    float *v = rnd(count, -2.0f, 2.0f, 4800, 20), *acc = copy_of(v, count);
    dropout_backward(acc, d.r, d.mask, count);
    gc_assert_accumulated(acc, v, g, count, "dropout inp");
    gc_free(d.inp), gc_free(d.r), gc_free(d.out), gc_free(d.mask), gc_free(m1), gc_free(other);
    gc_free(tmp), gc_free(g), gc_free(v), gc_free(acc);
}

/* ---------------------------------------------------------------- mse */

typedef struct {
    size_t count;
    float *pred, *target;
} Mse;

static double mse_loss(void *ctx) {
    Mse *m = ctx;
    return mse_forward(m->pred, m->target, m->count);
}

static void test_mse(void **state) {
    Mse m = {.count = 2 * 1 * 6 * 6};
    m.pred = rnd(m.count, -2.0f, 2.0f, 5000, 0);
    m.target = rnd(m.count, -1.0f, 1.0f, 5000, 1);
    double want = 0.0;
    for (size_t i = 0; i < m.count; i++)
        want += ((double)m.pred[i] - m.target[i]) * ((double)m.pred[i] - m.target[i]);
    want /= (double)m.count;
    double got = mse_loss(&m);
    if (!(fabs(got - want) <= 1e-6 * want)) fail_msg("mse_forward = %.9g, want %.9g", got, want);

    float *dpred = gc_alloc(m.count);
    mse_backward(dpred, m.pred, m.target, m.count);
    gc_assert_clean(dpred, m.count, "mse dpred");
    check("mse pred", m.pred, m.count, dpred, mse_loss, &m, 5010);
    float *v = rnd(m.count, -0.1f, 0.1f, 5000, 20), *acc = copy_of(v, m.count);
    mse_backward(acc, m.pred, m.target, m.count);
    gc_assert_accumulated(acc, v, dpred, m.count, "mse dpred");
    /* split as two ranks would (uneven shares): the numerators add up to the whole loss and
     * each share's gradient, scaled by the global count, equals the whole one's exactly */
    const size_t cut = m.count / 3;
    const double parts =
        mse_sum(m.pred, m.target, cut) + mse_sum(m.pred + cut, m.target + cut, m.count - cut);
    if (!(fabs(parts / (double)m.count - want) <= 1e-6 * want))
        fail_msg("mse_sum over two shares = %.9g, want %.9g", parts / (double)m.count, want);
    float *split = gc_alloc(m.count);
    mse_backward_over(split, m.pred, m.target, cut, m.count);
    mse_backward_over(split + cut, m.pred + cut, m.target + cut, m.count - cut, m.count);
    for (size_t i = 0; i < m.count; i++)
        if (split[i] != dpred[i])
            fail_msg("mse share gradient [%zu] = %g, want %g", i, split[i], dpred[i]);
    gc_free(split);
    gc_assert_guards(m.pred, m.count, "mse pred");
    gc_assert_guards(m.target, m.count, "mse target");
    float *all[] = {m.pred, m.target, dpred, v, acc};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}

/* ---------------------------------------------------------------- softmax cross-entropy */

typedef struct {
    int n, k;
    float *logits, *prob;
    int labels[5];
} Xent;

static double xent_loss(void *ctx) {
    Xent *x = ctx;
    return softmax_xent_forward(x->prob, x->logits, x->labels, x->n, x->k) / x->n;
}

static void test_softmax_xent(void **state) {
    Xent x = {.n = 5, .k = 10, .labels = {3, 0, 9, 3, 7}};
    const size_t count = (size_t)x.n * x.k;
    x.logits = rnd(count, -4.0f, 4.0f, 5100, 0);
    x.logits[7] = 60.0f; /* a large logit: the max is subtracted before exp */
    x.prob = gc_alloc(count);
    const double loss = xent_loss(&x);
    double want = 0.0;
    for (int i = 0; i < x.n; i++) {
        double sum = 0.0;
        for (int j = 0; j < x.k; j++) sum += exp((long double)x.logits[i * x.k + j] - 60.0);
        want += log(sum) + 60.0 - x.logits[i * x.k + x.labels[i]];
        double psum = 0.0;
        for (int j = 0; j < x.k; j++) psum += x.prob[i * x.k + j];
        if (fabs(psum - 1.0) > 1e-6) fail_msg("softmax row %d sums to %.9f", i, psum);
    }
    want /= x.n;
    if (!(fabs(loss - want) <= 1e-6 * want)) fail_msg("xent = %.9g, want %.9g", loss, want);
    float *d = gc_alloc(count);
    softmax_xent_backward(d, x.prob, x.labels, x.n, x.k, x.n);
    gc_assert_clean(d, count, "xent dlogits");
    check("softmax xent logits", x.logits, count, d, xent_loss, &x, 5110);
    float *v = rnd(count, -0.1f, 0.1f, 5100, 20), *acc = copy_of(v, count);
    xent_loss(&x); /* prob of the unperturbed logits again */
    softmax_xent_backward(acc, x.prob, x.labels, x.n, x.k, x.n);
    gc_assert_accumulated(acc, v, d, count, "xent dlogits");
    gc_assert_guards(x.logits, count, "xent logits");
    gc_assert_guards(x.prob, count, "xent prob");
    float *all[] = {x.logits, x.prob, d, v, acc};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
}

/* ---------------------------------------------------------------- timestep embedding */

/* Values against double: t * freq reaches 299 rad, where one float ulp is 3e-5, so a float32
 * implementation is within a few 1e-5; a wrong frequency or a sin/cos swap is off by 1e-2 or
 * more. */
static void test_timestep_embedding(void **state) {
    const int t[3] = {0, 1, 299};
    const int dims[3] = {8, 32, 64};
    for (int d = 0; d < 3; d++) {
        int dim = dims[d], half = dim / 2;
        size_t count = 3 * (size_t)dim;
        float *out = gc_alloc_poisoned(count);
        timestep_embedding(out, t, 3, dim);
        gc_assert_clean(out, count, "timestep_embedding out");
        double *want = want_alloc(count);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < half; k++) {
                double arg = t[i] * exp(-log(10000.0) * k / half);
                want[(size_t)i * dim + k] = sin(arg);
                want[(size_t)i * dim + half + k] = cos(arg);
            }
        for (size_t i = 0; i < count; i++)
            if (!(fabs((double)out[i] - want[i]) <= 2e-4))
                fail_msg("timestep_embedding dim %d: t = %d element %zu = %.7f, want %.7f", dim,
                         t[i / (size_t)dim], i % (size_t)dim, (double)out[i], want[i]);
        gc_free(out);
        free(want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_attention_small),
        cmocka_unit_test(test_attention_7x7),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_upsample2x),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_add_channel),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_timestep_embedding),
    };
    int failed = cmocka_run_group_tests_name("gradcheck_layers", tests, NULL, NULL);
    layer_check_report();
    return failed;
}
