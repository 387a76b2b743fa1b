/* test_gradcheck_unet.c: the whole U-Net tape, backward against finite differences.
 *
 * Strategy: four small configurations (8x8 images, batch 2, timesteps {3, 250}) that between
 * them use every op of the tape (the third class-conditional, with the class embedding, the
 * fourth with self-attention blocks and dropout under a fixed mask): three levels with one residual block each (every decoder block
 * reads a concatenated skip), and two levels with two blocks each. Parameters are initialised as
 * in training, then perturbed with small noise so GroupNorm gamma/beta are not exactly 1/0 and
 * no tensor's gradient vanishes by symmetry. The loss is L = sum(out * r) in double with fixed
 * random r; model_backward with dout = r gives the analytic gradients, compared with
 * Richardson-extrapolated central differences (gradcheck.h) at GC_UNET_SAMPLES random elements
 * of EVERY parameter tensor (all of them for smaller tensors) and at every input pixel.
 * Bounds, and why: through ~90 float32 ops a finite difference of L carries an absolute error
 * of about 5e-5 in the derivative whatever the tensor (measured max |a - n| per tensor: 1e-6 to
 * 7e-4), while gradients range from 1e-3 to 10. So the per-element error uses floor 2e-2
 * (elements below it are judged on absolute error 1e-3) and bound 5e-2: the worst element seen
 * is 6e-3, a wrong sign or a dropped path gives ~1. The per-tensor global error
 * ||a - n|| / ||n|| <= 1e-2 (worst seen 1.2e-3) catches any systematic error of a few percent.
 * On failure the failing tensors are printed and the worst is named.
 * Step h = 3e-2 (2h = 6e-2 for the extrapolation): plain h = 1e-2 is noise-bound (worst element
 * 0.13 with floor 1e-3), h = 1e-1 truncation-bound (global errors 6e-2..1e-1).
 * Also: model_backward accumulates into grads, the input gradient is that of the last backward,
 * an image's output does not depend on the other images of its batch, and the parameters and
 * gradient arenas keep their NaN guards.
 */
#include "gradcheck.h"
#include "model.h"

#define GC_UNET_SAMPLES 40
#define BATCH 2

typedef struct {
    Model *m;
    float *params, *x, *r;
    int t[BATCH];
    const int *y; /* class labels (conditional configurations), else NULL */
    size_t nout;
} Net;

static double net_loss(void *ctx) {
    Net *c = ctx;
    const float *out = model_forward(c->m, c->params, c->x, c->t, c->y, BATCH);
    return gc_dot(out, c->r, c->nout);
}

/* Training init plus uniform noise: vectors (GroupNorm affine, biases) by +-0.1, weights by a
 * quarter of their init bound. */
static void init_params(const ParamTable *tab, float *params, uint32_t tag) {
    params_initialise(tab, params, 1234);
    for (int i = 0; i < tab->count; i++) {
        const ParamEntry *e = &tab->entries[i];
        size_t fan_in = e->ndim > 1 ? e->size / (size_t)e->shape[0] : 0;
        float amp = fan_in ? 0.25f / sqrtf((float)fan_in) : 0.1f;
        float *noise = xmalloc(e->size * sizeof *noise);
        gc_uniform(noise, e->size, -amp, amp, tag, (uint32_t)i);
        for (size_t k = 0; k < e->size; k++) params[e->offset + k] += noise[k];
        free(noise);
    }
}

static void run_unet(const ModelConfig *cfg, const int *labels, const char *label, uint32_t tag) {
    const char *bad = model_config_check(cfg);
    if (bad) fail_msg("%s: model_config_check: %s", label, bad);
    Model m;
    model_build(&m, cfg, BATCH);
    model_keep_input_grad(&m);
    size_t total = m.table.total;
    size_t img = (size_t)cfg->in_channels * cfg->image_size * cfg->image_size;
    Net c = {.m = &m, .t = {3, 250}, .y = labels, .nout = BATCH * img};
    if (cfg->dropout > 0) model_set_dropout_key(&m, 9, 1, 0); /* one fixed mask throughout */
    c.params = gc_alloc(total);
    init_params(&m.table, c.params, tag);
    c.x = gc_alloc(BATCH * img);
    c.r = gc_alloc(BATCH * img);
    gc_uniform(c.x, BATCH * img, -1.0f, 1.0f, tag, 1000);
    gc_uniform(c.r, BATCH * img, -1.0f, 1.0f, tag, 1001);
    float *params0 = xmalloc(total * sizeof(float));
    memcpy(params0, c.params, total * sizeof(float));

    /* analytic gradients */
    float *grads = gc_alloc(total), *dx = gc_alloc(BATCH * img), *out = gc_alloc(BATCH * img);
    memcpy(out, model_forward(&m, c.params, c.x, c.t, c.y, BATCH), BATCH * img * sizeof(float));
    gc_assert_clean(out, BATCH * img, "model output");
    /* the gradient arena as NaN: the first writer of each gradient overwrites it whole, and no op
     * reads a gradient before it is written (a zero-filled arena would hide either) */
    for (size_t i = 0; i < m.dact_per_image * (size_t)m.max_batch; i++) m.dact[i] = NAN;
    model_backward(&m, c.params, grads, c.r, BATCH);
    gc_assert_clean(grads, total, "parameter gradients");
    memcpy(dx, model_input_grad(&m), BATCH * img * sizeof(float));
    gc_assert_clean(dx, BATCH * img, "input gradient");
    gc_assert_clean(c.params, total, "parameters");
    if (memcmp(params0, c.params, total * sizeof(float)) != 0)
        fail_msg("%s: forward/backward modified the parameters", label);

    /* accumulation: a second step into grads pre-filled with v gives v + g; the input gradient
     * is that of the last backward only */
    float *v = gc_alloc(total), *acc = gc_alloc(total);
    gc_uniform(v, total, -1.0f, 1.0f, tag, 1002);
    memcpy(acc, v, total * sizeof(float));
    model_forward(&m, c.params, c.x, c.t, c.y, BATCH);
    model_backward(&m, c.params, acc, c.r, BATCH);
    gc_assert_guards(acc, total, "accumulated gradients");
    gc_assert_accumulated(acc, v, grads, total, "model_backward grads");
    double d = gc_max_rel_diff(model_input_grad(&m), dx, BATCH * img, 1e-6);
    if (d > 1e-6) fail_msg("%s: a second backward changed the input gradient by %.2e", label, d);

    /* batch independence: image 0 alone gives the same output as within the batch */
    const float *one = model_forward(&m, c.params, c.x, c.t, c.y, 1);
    d = gc_max_rel_diff(one, out, img, 1e-6);
    if (d > 1e-5) fail_msg("%s: image 0 alone differs from image 0 in a batch by %.2e", label, d);

    /* conditional: the output follows the label of its own image only, and no labels at all
     * means the null label */
    if (labels) {
        const int K = cfg->classes, swapped[BATCH] = {(labels[0] + 1) % K, labels[1]};
        const float *o2 = model_forward(&m, c.params, c.x, c.t, swapped, BATCH);
        if (gc_max_rel_diff(o2, out, img, 1e-6) < 1e-4)
            fail_msg("%s: another label for image 0 left its output unchanged", label);
        d = gc_max_rel_diff(o2 + img, out + img, img, 1e-6);
        if (d > 1e-5) fail_msg("%s: image 0's label changed image 1's output by %.2e", label, d);
        const int nulls[BATCH] = {K, K};
        float *o_null = gc_alloc(BATCH * img);
        memcpy(o_null, model_forward(&m, c.params, c.x, c.t, nulls, BATCH),
               BATCH * img * sizeof(float));
        const float *o_none = model_forward(&m, c.params, c.x, c.t, NULL, BATCH);
        if (memcmp(o_null, o_none, BATCH * img * sizeof(float)) != 0)
            fail_msg("%s: labels = NULL differs from the null label", label);
        gc_free(o_null);
    }

    /* finite differences, every tensor */
    GcOptions o = gc_default_options();
    o.full_limit = o.samples = GC_UNET_SAMPLES;
    o.step = 3e-2;   /* parameters are ~0.1: a smaller step than the layers' */
    o.floor = 2e-2;  /* the network's finite-difference noise is ~1e-4 absolute (see top) */
    o.elem_tol = 5e-2;
    GcResult worst = {0}, worst_global = {0};
    int failures = 0;
    char name[GC_NAME_MAX];
    for (int i = 0; i <= m.table.count; i++) {
        GcResult r;
        if (i < m.table.count) {
            const ParamEntry *e = &m.table.entries[i];
            snprintf(name, sizeof name, "%s %s", label, e->name);
            r = gc_check(name, c.params + e->offset, e->size, grads + e->offset, net_loss, &c,
                         tag + 1 + (uint32_t)i, &o);
        } else {
            GcOptions ox = o;
            ox.full_limit = BATCH * img;
            snprintf(name, sizeof name, "%s input x", label);
            r = gc_check(name, c.x, BATCH * img, dx, net_loss, &c, tag, &ox);
        }
        if (gc_verbose() || !gc_ok(&r, &o)) gc_print(&r);
        failures += !gc_ok(&r, &o);
        if (!(r.worst <= worst.worst)) worst = r;
        if (!(r.global <= worst_global.global)) worst_global = r;
    }
    print_message("%s: %d tensors + input, %zu parameters; worst element error %.2e (%s), worst "
                  "global %.2e (%s)\n",
                  label, m.table.count, total, worst.worst, worst.name, worst_global.global,
                  worst_global.name);
    if (failures) {
        gc_print(&worst);
        fail_msg("%s: %d tensors fail the gradient check; worst: %s", label, failures,
                 worst.name);
    }
    if (memcmp(params0, c.params, total * sizeof(float)) != 0)
        fail_msg("%s: the parameters were not restored after the finite differences", label);

    float *all[] = {c.params, c.x, c.r, grads, dx, out, v, acc};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) gc_free(all[i]);
    free(params0);
    model_free(&m);
}

static ModelConfig small_config(void) {
    ModelConfig cfg = model_config_default();
    cfg.base = 8;
    cfg.groups = 2;
    cfg.image_size = 8;
    cfg.time_sin_dim = 8;
    cfg.time_dim = 16;
    return cfg;
}

/* Three levels, one block each: every decoder block reads a concatenated skip. */
static void test_unet_three_levels(void **state) {
    ModelConfig cfg = small_config();
    cfg.levels = 3;
    cfg.mult[0] = 1;
    cfg.mult[1] = 2;
    cfg.mult[2] = 2;
    cfg.res_blocks = 1;
    run_unet(&cfg, NULL, "L3xR1", 10000);
}

/* Two levels (8x8 and 4x4), one block each: the base of the configurations below. */
static ModelConfig two_levels(void) {
    ModelConfig cfg = small_config();
    cfg.levels = 2;
    cfg.mult[0] = 1;
    cfg.mult[1] = 2;
    return cfg;
}

/* Two levels, two blocks each: blocks whose input channels equal their output channels too. */
static void test_unet_two_blocks(void **state) {
    ModelConfig cfg = two_levels();
    cfg.res_blocks = 2;
    run_unet(&cfg, NULL, "L2xR2", 20000);
}

/* Class-conditional: the class embedding (one image with class 1, one with the null label 3)
 * joins the time embedding, so its gradient flows through every residual block. */
static void test_unet_conditional(void **state) {
    ModelConfig cfg = two_levels();
    cfg.classes = 3;
    static const int labels[BATCH] = {1, 3};
    run_unet(&cfg, labels, "L2xR1 classes 3", 30000);
}

/* Self-attention at the 4x4 level: after the down block, between the middle blocks and after
 * the up block (all three attention paths of the builder). */
static void test_unet_attention(void **state) {
    ModelConfig cfg = two_levels();
    cfg.attn_res = 4;
    cfg.dropout = 0.2; /* a fixed mask (the key does not change), so differences are exact */
    run_unet(&cfg, NULL, "L2xR1 attention at 4x4, dropout 0.2", 40000);
}

/* Dropout acts in training builds only, and only while switched on: an inference build with
 * dropout 0.5, and a training build before model_set_dropout_key or after model_dropout_off,
 * compute what a build without dropout does; while on it differs, and its masks follow the
 * step key. */
static void test_dropout_training_only(void **state) {
    ModelConfig cfg = two_levels(), plain;
    cfg.dropout = 0.5;
    plain = cfg;
    plain.dropout = 0;
    Model tr, inf, base;
    model_build(&tr, &cfg, BATCH);
    model_build_inference(&inf, &cfg, BATCH);
    model_build(&base, &plain, BATCH);
    assert_int_equal(tr.table.total, base.table.total);
    const size_t img = (size_t)cfg.image_size * cfg.image_size, total = tr.table.total;
    float *params = gc_alloc(total), *x = gc_alloc(BATCH * img), *a = gc_alloc(BATCH * img);
    init_params(&tr.table, params, 50000);
    gc_uniform(x, BATCH * img, -1.0f, 1.0f, 50000, 1);
    const int t[BATCH] = {3, 250};
    memcpy(a, model_forward(&base, params, x, t, NULL, BATCH), BATCH * img * sizeof(float));
    double d = gc_max_rel_diff(model_forward(&inf, params, x, t, NULL, BATCH), a, BATCH * img, 1e-6);
    if (d > 1e-6) fail_msg("inference with dropout 0.5 differs from no dropout by %.2e", d);
    d = gc_max_rel_diff(model_forward(&tr, params, x, t, NULL, BATCH), a, BATCH * img, 1e-6);
    if (d > 1e-6) fail_msg("a training build before model_set_dropout_key differs by %.2e", d);
    model_set_dropout_key(&tr, 9, 1, 0);
    float *b = gc_alloc(BATCH * img);
    memcpy(b, model_forward(&tr, params, x, t, NULL, BATCH), BATCH * img * sizeof(float));
    d = gc_max_rel_diff(b, a, BATCH * img, 1e-6);
    if (d < 1e-2) fail_msg("training with dropout 0.5 is within %.2e of no dropout", d);
    model_set_dropout_key(&tr, 9, 2, 0);
    d = gc_max_rel_diff(model_forward(&tr, params, x, t, NULL, BATCH), b, BATCH * img, 1e-6);
    if (d < 1e-2) fail_msg("another step drew the same dropout masks (difference %.2e)", d);
    model_dropout_off(&tr);
    d = gc_max_rel_diff(model_forward(&tr, params, x, t, NULL, BATCH), a, BATCH * img, 1e-6);
    if (d > 1e-6) fail_msg("model_dropout_off left dropout on (difference %.2e)", d);
    gc_free(params), gc_free(x), gc_free(a), gc_free(b);
    model_free(&tr), model_free(&inf), model_free(&base);
}

/* Without model_keep_input_grad (training) the first convolution's input gradient is skipped,
 * which sends its backward down another path: the parameter gradients stay the same. */
static void test_input_grad_optional(void **state) {
    const ModelConfig cfg = two_levels();
    Model with, without;
    model_build(&with, &cfg, BATCH);
    model_keep_input_grad(&with);
    model_build(&without, &cfg, BATCH);
    const size_t img = (size_t)cfg.image_size * cfg.image_size, total = with.table.total;
    float *params = gc_alloc(total), *x = gc_alloc(BATCH * img), *r = gc_alloc(BATCH * img);
    float *g1 = gc_alloc(total), *g2 = gc_alloc(total);
    init_params(&with.table, params, 51000);
    gc_uniform(x, BATCH * img, -1.0f, 1.0f, 51000, 1);
    gc_uniform(r, BATCH * img, -1.0f, 1.0f, 51000, 2);
    memset(g1, 0, total * sizeof(float));
    memset(g2, 0, total * sizeof(float));
    const int t[BATCH] = {3, 250};
    model_forward(&with, params, x, t, NULL, BATCH);
    model_backward(&with, params, g1, r, BATCH);
    model_forward(&without, params, x, t, NULL, BATCH);
    for (size_t i = 0; i < without.dact_per_image * (size_t)without.max_batch; i++)
        without.dact[i] = NAN;
    model_backward(&without, params, g2, r, BATCH);
    gc_assert_clean(g2, total, "parameter gradients without the input gradient");
    const double d = gc_max_rel_diff(g2, g1, total, 1e-6);
    if (d > 1e-5) fail_msg("skipping the input gradient changed the parameter gradients by %.2e", d);
    gc_free(params), gc_free(x), gc_free(r), gc_free(g1), gc_free(g2);
    model_free(&with), model_free(&without);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unet_three_levels),
        cmocka_unit_test(test_unet_two_blocks),
        cmocka_unit_test(test_unet_conditional),
        cmocka_unit_test(test_unet_attention),
        cmocka_unit_test(test_dropout_training_only),
        cmocka_unit_test(test_input_grad_optional),
    };
    return cmocka_run_group_tests_name("gradcheck_unet", tests, NULL, NULL);
}
