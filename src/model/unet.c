/* unet.c: the U-Net builder. It reads like the architecture description in the README:
 * each helper appends ops to the tape and parameters to the table, in forward order. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "tape.h"
#include "util.h"

/* ---- builders: one op each, parameters registered as they are first used ---- */

static int add_params(Model *m, const char *module, const char *leaf, int ndim, const int *shape,
                      ParamInit init, int fan_in) {
    char name[PARAM_NAME_MAX];
    if ((size_t)snprintf(name, sizeof name, "%s.%s", module, leaf) >= sizeof name)
        die("module name too long: %s", module);
    return params_add(&m->table, name, ndim, shape, init, fan_in);
}

static int conv(Model *m, const char *name, int x, int cout, int k, int stride) {
    const Slot in = m->slots[x];
    ConvShape s = conv_shape(1, in.c, in.h, in.w, cout, k, stride);
    Op *op = tape_op(m, OP_CONV, name, x, -1, tape_slot(m, cout, s.hout, s.wout));
    int fan_in = in.c * k * k;
    op->weight = add_params(m, name, "weight", 4, (int[]){cout, in.c, k, k},
                            INIT_KAIMING_UNIFORM, fan_in);
    op->bias = add_params(m, name, "bias", 1, (int[]){cout}, INIT_KAIMING_UNIFORM, fan_in);
    op->k = k;
    op->stride = stride;
    return op->out;
}

static int linear(Model *m, const char *name, int x, int cout) {
    const int cin = m->slots[x].c;
    Op *op = tape_op(m, OP_LINEAR, name, x, -1, tape_slot(m, cout, 1, 1));
    op->weight = add_params(m, name, "weight", 2, (int[]){cout, cin}, INIT_KAIMING_UNIFORM, cin);
    op->bias = add_params(m, name, "bias", 1, (int[]){cout}, INIT_KAIMING_UNIFORM, cin);
    return op->out;
}

/* GroupNorm (kind OP_GROUPNORM), or GroupNorm then SiLU as one op (OP_GN_SILU): the same
 * parameters under the same names either way. */
static int groupnorm_op(Model *m, OpKind kind, const char *name, int x) {
    const Slot in = m->slots[x];
    Op *op = tape_op(m, kind, name, x, -1, tape_slot(m, in.c, in.h, in.w));
    op->groups = m->cfg.groups;
    op->weight = add_params(m, name, "weight", 1, (int[]){in.c}, INIT_ONES, 0);
    op->bias = add_params(m, name, "bias", 1, (int[]){in.c}, INIT_ZEROS, 0);
    op->aux = m->aux_per_image;
    m->aux_per_image += 2 * (size_t)op->groups; /* mean and rstd per group */
    return op->out;
}
static int groupnorm(Model *m, const char *name, int x) {
    return groupnorm_op(m, OP_GROUPNORM, name, x);
}
static int groupnorm_silu(Model *m, const char *name, int x) {
    return groupnorm_op(m, OP_GN_SILU, name, x);
}

static int unary(Model *m, OpKind kind, const char *name, int x, int c, int h, int w) {
    return tape_op(m, kind, name, x, -1, tape_slot(m, c, h, w))->out;
}

/* Named after the op it follows (e.g. "down.0.res.0.norm1.silu"), so messages and the
 * per-layer table can say which one. */
static int silu(Model *m, int x) {
    const Slot in = m->slots[x];
    char name[PARAM_NAME_MAX];
    const char *producer = "input";
    for (int i = m->nops - 1; i >= 0; i--)
        if (m->ops[i].out == x) {
            producer = m->ops[i].name;
            break;
        }
    snprintf(name, sizeof name, "%.*s.silu", PARAM_NAME_MAX - 6, producer);
    return unary(m, OP_SILU, name, x, in.c, in.h, in.w);
}

static int binary(Model *m, OpKind kind, const char *name, int a, int b, int c) {
    const Slot in = m->slots[a];
    return tape_op(m, kind, name, a, b, tape_slot(m, c, in.h, in.w))->out;
}

/* Dropout in training builds with [model] dropout > 0; the identity (no op) otherwise, so
 * inference models are the same tape as without it. */
static int dropout(Model *m, const char *name, int x) {
    if (m->inference || m->cfg.dropout == 0) return x;
    const Slot in = m->slots[x];
    int ordinal = 0;
    for (int i = 0; i < m->nops; i++) ordinal += m->ops[i].kind == OP_DROPOUT;
    if (ordinal >= 1024) die("model: more than 1024 dropout layers");
    Op *op = tape_op(m, OP_DROPOUT, name, x, -1, tape_slot(m, in.c, in.h, in.w));
    op->k = ordinal;
    op->aux = m->aux_per_image;
    m->aux_per_image += (size_t)in.c * in.h * in.w;
    return op->out;
}

/* h = conv1(silu(norm1(x))) + temb_proj(silu(temb)); h = conv2(dropout(silu(norm2(h))));
 * out = h + skip(x), skip = identity when cin == cout, else a 1x1 conv. */
static int resblock(Model *m, const char *name, int x, int cout, int temb_act) {
    char sub[PARAM_NAME_MAX];
#define SUB(leaf) (snprintf(sub, sizeof sub, "%s.%s", name, leaf), sub)
    const int cin = m->slots[x].c;
    /* one SUB per statement: two in one call's arguments would share `sub` in an order C
     * leaves unspecified (clang evaluates left to right, gcc right to left) */
    int h = groupnorm_silu(m, SUB("norm1"), x);
    h = conv(m, SUB("conv1"), h, cout, 3, 1);
    int e = linear(m, SUB("temb_proj"), temb_act, cout);
    h = binary(m, OP_ADD_CHANNEL, SUB("temb_add"), h, e, cout);
    h = groupnorm_silu(m, SUB("norm2"), h);
    h = dropout(m, SUB("dropout"), h);
    h = conv(m, SUB("conv2"), h, cout, 3, 1);
    int skip = cin == cout ? x : conv(m, SUB("skip"), x, cout, 1, 1);
    return binary(m, OP_ADD, SUB("add"), h, skip, cout);
#undef SUB
}

/* Self-attention block: x + proj(attend(qkv(gn(x)))), one head over the h*w positions; the
 * softmax weights [hw, hw] per image are kept in the aux arena for backward. */
static int attention(Model *m, const char *name, int x) {
    char sub[PARAM_NAME_MAX];
#define SUB(leaf) (snprintf(sub, sizeof sub, "%s.%s", name, leaf), sub)
    const Slot in = m->slots[x];
    int qkv = groupnorm(m, SUB("norm"), x); /* one SUB per statement, as in resblock */
    qkv = conv(m, SUB("qkv"), qkv, 3 * in.c, 1, 1);
    Op *op = tape_op(m, OP_ATTENTION, SUB("attend"), qkv, -1, tape_slot(m, in.c, in.h, in.w));
    op->aux = m->aux_per_image;
    m->aux_per_image += (size_t)in.h * in.w * in.h * in.w;
    int h = conv(m, SUB("proj"), op->out, in.c, 1, 1);
    return binary(m, OP_ADD, SUB("add"), h, x, in.c);
#undef SUB
}

/* After a residual block: attention when the block's resolution is [model] attn_res. */
static int maybe_attention(Model *m, const char *block, int x) {
    if (m->cfg.attn_res == 0 || m->slots[x].h != m->cfg.attn_res) return x;
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%.*s.attn", PARAM_NAME_MAX - 6, block);
    return attention(m, name, x);
}

static void build_unet(Model *m) {
    const ModelConfig *c = &m->cfg;
    char name[PARAM_NAME_MAX];
    int skips[MODEL_MAX_LEVELS];

    m->x_slot = tape_slot(m, c->in_channels, c->image_size, c->image_size);

    /* time embedding: sinusoid -> Linear -> SiLU -> Linear; every block uses SiLU(temb) */
    int t = tape_op(m, OP_TEMB, "temb.sinusoid", -1, -1, tape_slot(m, c->time_sin_dim, 1, 1))->out;
    int temb = linear(m, "temb.lin2", silu(m, linear(m, "temb.lin1", t, c->time_dim)),
                      c->time_dim);
    if (c->classes > 0) { /* class-conditional: a learned vector per label, null label last */
        Op *op = tape_op(m, OP_EMBED, "class_emb", -1, -1, tape_slot(m, c->time_dim, 1, 1));
        op->weight = add_params(m, "class_emb", "weight", 2, (int[]){c->classes + 1, c->time_dim},
                                INIT_NORMAL, 0);
        temb = binary(m, OP_ADD, "temb.class_add", temb, op->out, c->time_dim);
    }
    int temb_act = silu(m, temb);

    int h = conv(m, "conv_in", m->x_slot, c->base, 3, 1);
    for (int l = 0; l < c->levels; l++) {
        for (int j = 0; j < c->res_blocks; j++) {
            snprintf(name, sizeof name, "down.%d.res.%d", l, j);
            h = maybe_attention(m, name, resblock(m, name, h, c->base * c->mult[l], temb_act));
        }
        skips[l] = h;
        if (l < c->levels - 1) {
            snprintf(name, sizeof name, "down.%d.downsample", l);
            h = conv(m, name, h, m->slots[h].c, 3, 2);
        }
    }
    const int deep = c->base * c->mult[c->levels - 1];
    h = maybe_attention(m, "mid.0", resblock(m, "mid.0", h, deep, temb_act));
    h = resblock(m, "mid.1", h, deep, temb_act);
    for (int i = 0; i < c->levels; i++) {
        const int l = c->levels - 1 - i, ch = c->base * c->mult[l];
        snprintf(name, sizeof name, "up.%d.concat", i);
        h = binary(m, OP_CONCAT, name, h, skips[l], m->slots[h].c + m->slots[skips[l]].c);
        for (int j = 0; j < c->res_blocks; j++) {
            snprintf(name, sizeof name, "up.%d.res.%d", i, j);
            h = maybe_attention(m, name, resblock(m, name, h, ch, temb_act));
        }
        if (l > 0) {
            const Slot s = m->slots[h];
            snprintf(name, sizeof name, "up.%d.nearest2x", i);
            h = unary(m, OP_UPSAMPLE, name, h, s.c, 2 * s.h, 2 * s.w);
            snprintf(name, sizeof name, "up.%d.upsample", i);
            h = conv(m, name, h, c->base * c->mult[l - 1], 3, 1);
        }
    }
    h = groupnorm_silu(m, "out_norm", h);
    m->out_slot = conv(m, "out_conv", h, c->in_channels, 3, 1);
}

static void build(Model *m, const ModelConfig *cfg, int max_batch, int inference) {
    const char *bad = model_config_check(cfg);
    if (bad) die("model config: %s", bad);
    if (max_batch < 1) die("model: batch must be at least 1 (got %d)", max_batch);
    /* The layers thread over images and call BLIS inside those regions: nested OpenMP (which a
     * user's OMP_MAX_ACTIVE_LEVELS could switch on) would start a BLIS team per image thread
     * and run many times slower. One level of threading at a time. */
    omp_set_max_active_levels(1);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->inference = inference;
    params_init_table(&m->table);
    build_unet(m);
    tape_allocate(m, max_batch);
}

void model_build(Model *m, const ModelConfig *cfg, int max_batch) { build(m, cfg, max_batch, 0); }

void model_build_inference(Model *m, const ModelConfig *cfg, int max_batch) {
    build(m, cfg, max_batch, 1);
}
