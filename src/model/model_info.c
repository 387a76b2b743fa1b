/* model_info.c: parameter count, FLOPs and the per-layer table of `ddpm model`. */
#include <stdio.h>

#include "model.h"

static const char *op_kind_name(OpKind k) {
    static const char *names[] = {"temb", "linear", "silu", "conv", "groupnorm",
                                  "add", "add_channel", "concat", "upsample", "embed", "attention", "dropout",
                                  "gn_silu"};
    return names[k];
}

static double op_flops(const Model *m, const Op *op) {
    const Slot *in = op->in0 >= 0 ? &m->slots[op->in0] : NULL;
    const Slot *out = &m->slots[op->out];
    if (op->kind == OP_CONV)
        return 2.0 * out->c * in->c * op->k * op->k * (double)out->h * out->w;
    if (op->kind == OP_LINEAR) return 2.0 * in->c * out->c;
    if (op->kind == OP_ATTENTION) /* Q^T K and V P^T: hw x hw x c multiply-adds each */
        return 4.0 * out->c * (double)out->h * out->w * out->h * out->w;
    return 0.0;
}

double model_flops_per_image(const Model *m) {
    double total = 0.0;
    for (int i = 0; i < m->nops; i++) total += op_flops(m, &m->ops[i]);
    return total;
}

static size_t op_params(const Model *m, const Op *op) {
    size_t n = 0;
    if (op->weight >= 0) n += m->table.entries[op->weight].size;
    if (op->bias >= 0) n += m->table.entries[op->bias].size;
    return n;
}

void model_print(const Model *m, FILE *f) {
    fprintf(f, "%-4s %-12s %-28s %-16s %10s %10s\n", "#", "op", "name", "output [C,H,W]",
            "params", "MFLOP/img");
    for (int i = 0; i < m->nops; i++) {
        const Op *op = &m->ops[i];
        const Slot *out = &m->slots[op->out];
        char shape[32];
        snprintf(shape, sizeof shape, "[%d,%d,%d]", out->c, out->h, out->w);
        fprintf(f, "%-4d %-12s %-28s %-16s %10zu %10.3f\n", i, op_kind_name(op->kind), op->name,
                shape, op_params(m, op), op_flops(m, op) / 1e6);
    }
    size_t act = m->act_per_image * sizeof(float);
    fprintf(f, "\nparameters        %zu (%d tensors)\n", m->table.total, m->table.count);
    fprintf(f, "forward MFLOP     %.2f per image (2 FLOP per multiply-add, convs, linears, attention)\n",
            model_flops_per_image(m) / 1e6);
    fprintf(f, "activations       %.2f MiB per image (values)\n", (double)act / (1 << 20));
    if (!m->inference)
        fprintf(f, "gradients         %.2f MiB per image (slots whose lives in backward do not "
                "overlap share memory)\n", (double)m->dact_per_image * sizeof(float) / (1 << 20));
    fprintf(f, "kept for backward %.2f MiB per image (GroupNorm statistics, attention weights, "
            "dropout masks)\n", (double)m->aux_per_image * sizeof(float) / (1 << 20));
}
