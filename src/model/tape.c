/* tape.c: the op list, its activation arenas, and the forward and backward walks. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "tape.h"
#include "util.h"

int tape_slot(Model *m, int c, int h, int w) {
    if (m->nslots == m->slots_cap) {
        int cap = m->slots_cap ? 2 * m->slots_cap : 64;
        Slot *grown = xcalloc((size_t)cap, sizeof *grown);
        if (m->nslots) memcpy(grown, m->slots, (size_t)m->nslots * sizeof *grown);
        free(m->slots);
        m->slots = grown;
        m->slots_cap = cap;
    }
    m->slots[m->nslots] = (Slot){.c = c, .h = h, .w = w};
    return m->nslots++;
}

Op *tape_op(Model *m, OpKind kind, const char *name, int in0, int in1, int out) {
    if (m->nops == m->ops_cap) {
        int cap = m->ops_cap ? 2 * m->ops_cap : 64;
        Op *grown = xcalloc((size_t)cap, sizeof *grown);
        if (m->nops) memcpy(grown, m->ops, (size_t)m->nops * sizeof *grown);
        free(m->ops);
        m->ops = grown;
        m->ops_cap = cap;
    }
    Op *op = &m->ops[m->nops++];
    *op = (Op){.kind = kind, .in0 = in0, .in1 = in1, .out = out, .weight = -1, .bias = -1};
    snprintf(op->name, sizeof op->name, "%s", name);
    return op;
}

static size_t slot_floats(const Slot *s) { return (size_t)s->c * s->h * s->w; }

static ConvShape op_conv_shape(const Model *m, const Op *op, int n) {
    const Slot *in = &m->slots[op->in0];
    return conv_shape(n, in->c, in->h, in->w, m->slots[op->out].c, op->k, op->stride);
}

static size_t padded(const Slot *s) { return (slot_floats(s) + 15) / 16 * 16; }

/* A slot lives from the op that writes it to the last op that reads it (the input from the start,
 * the output to the end); slots whose lives do not overlap share memory, placed first fit by
 * offset in order of birth. An op's output never shares with its own inputs (both live at that
 * op). Returns the floats per image; offsets are per image; death[] (may be NULL) receives each
 * slot's last reader (the model output: nops; a slot nobody reads: its writer).
 *
 * Inference packs the activations this way. Training keeps every activation for backward, and
 * packs the gradients: backward runs the ops in reverse, so a slot's gradient is first written by
 * its last reader's backward and last read by its writer's backward, the same interval walked the
 * other way. Backward zeroes each gradient just before its last reader (it accumulates into it);
 * that costs the same as zeroing the whole arena up front, but each slot while it is hot. */
static size_t pack_slots(Model *m, size_t *off, int *death_out) {
    const int S = m->nslots;
    int *birth = xcalloc((size_t)S, sizeof(int)), *death = xcalloc((size_t)S, sizeof(int));
    int *order = xcalloc((size_t)S, sizeof(int));
    for (int s = 0; s < S; s++) birth[s] = -1, death[s] = -1;
    for (int i = m->nops - 1; i >= 0; i--) birth[m->ops[i].out] = i; /* the first writer */
    for (int i = 0; i < m->nops; i++) {
        const Op *op = &m->ops[i];
        if (op->in0 >= 0 && i > death[op->in0]) death[op->in0] = i;
        if (op->in1 >= 0 && i > death[op->in1]) death[op->in1] = i;
    }
    death[m->out_slot] = m->nops;
    for (int s = 0; s < S; s++) {
        if (death[s] < birth[s]) death[s] = birth[s];
        order[s] = s;
    }
    for (int a = 1; a < S; a++) /* insertion sort by birth: the slots are nearly in order */
        for (int b = a; b > 0 && birth[order[b - 1]] > birth[order[b]]; b--) {
            const int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    size_t total = 0;
    for (int a = 0; a < S; a++) {
        const int s = order[a];
        const size_t size = padded(&m->slots[s]);
        size_t at = 0;
        for (int moved = 1; moved;) { /* raise `at` past every live, overlapping placed slot */
            moved = 0;
            for (int b = 0; b < a; b++) {
                const int p = order[b];
                const size_t end = off[p] + padded(&m->slots[p]);
                if (birth[p] <= death[s] && birth[s] <= death[p] && at < end && off[p] < at + size) {
                    at = end;
                    moved = 1;
                }
            }
        }
        off[s] = at;
        if (at + size > total) total = at + size;
    }
    if (death_out) memcpy(death_out, death, (size_t)S * sizeof(int));
    free(birth), free(death), free(order);
    return total;
}

void tape_allocate(Model *m, int max_batch) {
    m->max_batch = max_batch;
    size_t per_image = 0;
    size_t *off = xcalloc((size_t)m->nslots + 1, sizeof(size_t));
    if (m->inference) {
        per_image = pack_slots(m, off, NULL);
    } else { /* training keeps every activation for backward; gradients share memory */
        size_t *goff = xcalloc((size_t)m->nslots + 1, sizeof(size_t));
        int *death = xcalloc((size_t)m->nslots + 1, sizeof(int));
        m->dact_per_image = pack_slots(m, goff, death);
        for (int i = 0; i < m->nslots; i++) {
            off[i] = per_image;
            per_image += padded(&m->slots[i]);
            m->slots[i].grad_offset = goff[i] * (size_t)max_batch;
            m->slots[i].grad_first_op = death[i];
        }
        free(goff), free(death);
    }
    for (int i = 0; i < m->nslots; i++) m->slots[i].offset = off[i] * (size_t)max_batch;
    free(off);
    m->act_per_image = per_image;
    m->act = floats_alloc(per_image * (size_t)max_batch);
    m->dact = m->inference ? NULL : floats_alloc(m->dact_per_image * (size_t)max_batch);
    m->aux = floats_alloc(m->aux_per_image * (size_t)max_batch + 1);
    const int threads = omp_get_max_threads();
    for (int i = 0; i < m->nops; i++) { /* scratch shared by convs, GroupNorm, attention */
        const Op *op = &m->ops[i];
        size_t need = 0;
        if (op->kind == OP_CONV) {
            ConvShape s = op_conv_shape(m, op, max_batch);
            need = conv_workspace_floats(&s, threads);
        } else if (op->kind == OP_GROUPNORM) {
            need = groupnorm_workspace_floats(max_batch, m->slots[op->out].c);
        } else if (op->kind == OP_GN_SILU) {
            const Slot *o = &m->slots[op->out];
            need = groupnorm_silu_workspace_floats(max_batch, o->c, o->h * o->w, op->groups,
                                                   threads);
        } else if (op->kind == OP_ATTENTION) {
            need = attention_workspace_floats(m->slots[op->out].h * m->slots[op->out].w, threads);
        }
        if (need > m->ws_floats) m->ws_floats = need;
    }
    m->ws_threads = threads;
    m->ws = floats_alloc(m->ws_floats + 1);
    m->t_buf = xcalloc((size_t)max_batch, sizeof(int));
    m->y_buf = xcalloc((size_t)max_batch, sizeof(int));
    m->dropout_keys = xcalloc((size_t)max_batch, sizeof(uint32_t));
    tape_grads_final(m);
}

void tape_grads_final(Model *m) {
    /* first_use[e]: the lowest op index using parameter e; backward reaches it last */
    int *first_use = xcalloc((size_t)m->table.count + 1, sizeof(int));
    for (int e = 0; e < m->table.count; e++) first_use[e] = m->nops;
    for (int i = m->nops - 1; i >= 0; i--) {
        if (m->ops[i].weight >= 0) first_use[m->ops[i].weight] = i;
        if (m->ops[i].bias >= 0) first_use[m->ops[i].bias] = i;
    }
    free(m->grads_final);
    m->grads_final = xcalloc((size_t)m->nops + 1, sizeof(size_t));
    for (int i = 0; i < m->nops; i++) { /* still open after op i: first_use < i */
        size_t floor = 0;
        for (int e = 0; e < m->table.count; e++) {
            const ParamEntry *p = &m->table.entries[e];
            if (first_use[e] < i && p->offset + p->size > floor) floor = p->offset + p->size;
        }
        m->grads_final[i] = floor;
    }
    free(first_use);
}

void model_free(Model *m) {
    params_free_table(&m->table);
    free(m->ops);
    free(m->slots);
    free(m->act);
    free(m->dact);
    free(m->aux);
    free(m->ws);
    free(m->t_buf);
    free(m->y_buf);
    free(m->dropout_keys);
    free(m->grads_final);
    memset(m, 0, sizeof *m);
}

static void check_batch(const Model *m, int n) {
    if (n < 1 || n > m->max_batch)
        die("model: batch of %d images, built for at most %d", n, m->max_batch);
    if (omp_get_max_threads() > m->ws_threads)
        die("model: built for %d threads, now asked to run on %d", m->ws_threads,
            omp_get_max_threads());
}

#define ACT(slot) (m->act + m->slots[(slot)].offset)
#define DACT(slot) (m->dact + m->slots[(slot)].grad_offset)
#define PARAM(p, idx) ((idx) >= 0 ? (p) + m->table.entries[(idx)].offset : NULL)

const float *model_forward(Model *m, const float *params, const float *x, const int *t,
                           const int *labels, int n) {
    check_batch(m, n);
    const int K = m->cfg.classes;
    if (labels && K == 0) die("model: class labels given to an unconditional model (classes = 0)");
    for (int i = 0; i < n && K > 0; i++) {
        if (labels && (labels[i] < 0 || labels[i] > K))
            die("model: class label %d of image %d outside 0..%d (%d = no class)", labels[i], i,
                K, K);
        m->y_buf[i] = labels ? labels[i] : K;
    }
    memcpy(ACT(m->x_slot), x, (size_t)n * slot_floats(&m->slots[m->x_slot]) * sizeof(float));
    memcpy(m->t_buf, t, (size_t)n * sizeof(int));
    m->dropout_applied = m->dropout_on;
    for (int i = 0; i < m->nops; i++) {
        const double start = m->op_seconds ? now_seconds() : 0.0;
        const Op *op = &m->ops[i];
        const Slot *in = op->in0 >= 0 ? &m->slots[op->in0] : NULL;
        const Slot *out = &m->slots[op->out];
        float *y = ACT(op->out);
        const float *w = PARAM(params, op->weight), *b = PARAM(params, op->bias);
        switch (op->kind) {
        case OP_TEMB:
            timestep_embedding(y, m->t_buf, n, out->c);
            break;
        case OP_LINEAR:
            linear_forward(y, ACT(op->in0), w, b, n, in->c, out->c);
            break;
        case OP_SILU:
            silu_forward(y, ACT(op->in0), (size_t)n * slot_floats(out));
            break;
        case OP_CONV: {
            ConvShape s = op_conv_shape(m, op, n);
            conv2d_forward(y, ACT(op->in0), w, b, &s, m->ws);
            break;
        }
        case OP_GROUPNORM: {
            float *mean = m->aux + op->aux * (size_t)m->max_batch;
            groupnorm_forward(y, mean, mean + (size_t)n * op->groups, ACT(op->in0), w, b, n, in->c,
                              in->h * in->w, op->groups);
            break;
        }
        case OP_GN_SILU: {
            float *mean = m->aux + op->aux * (size_t)m->max_batch;
            groupnorm_silu_forward(y, mean, mean + (size_t)n * op->groups, ACT(op->in0), w, b, n,
                                   in->c, in->h * in->w, op->groups);
            break;
        }
        case OP_ADD:
            add_forward(y, ACT(op->in0), ACT(op->in1), (size_t)n * slot_floats(out));
            break;
        case OP_ADD_CHANNEL:
            add_channel_forward(y, ACT(op->in0), ACT(op->in1), n, out->c, out->h * out->w);
            break;
        case OP_CONCAT:
            concat_forward(y, ACT(op->in0), ACT(op->in1), n, in->c, m->slots[op->in1].c,
                           in->h * in->w);
            break;
        case OP_UPSAMPLE:
            upsample2x_forward(y, ACT(op->in0), n, in->c, in->h, in->w);
            break;
        case OP_EMBED:
            embedding_forward(y, w, m->y_buf, n, out->c);
            break;
        case OP_DROPOUT:
            if (!m->dropout_applied) {
                memcpy(y, ACT(op->in0), (size_t)n * slot_floats(out) * sizeof(float));
                break;
            }
            for (int img = 0; img < n; img++)
                m->dropout_keys[img] = (uint32_t)((m->dropout_first + img) * 1024 + op->k);
            dropout_forward(y, m->aux + op->aux * (size_t)m->max_batch, ACT(op->in0), n,
                            slot_floats(out), m->cfg.dropout, m->dropout_seed, m->dropout_step,
                            m->dropout_keys);
            break;
        case OP_ATTENTION:
            attention_forward(y, m->aux + op->aux * (size_t)m->max_batch, ACT(op->in0), n, out->c,
                              out->h * out->w);
            break;
        }
        if (m->op_seconds) m->op_seconds[i] += now_seconds() - start;
    }
    return ACT(m->out_slot);
}

/* Whether op (index i) is the first in backward to write the gradient of input slot s and can
 * overwrite it rather than add into zeros (the *_ex kernels; not when s is both inputs). */
static int starts_gradient(const Model *m, const Op *op, int s, int i) {
    if (s < 0 || m->slots[s].grad_first_op != i || s == m->out_slot || op->in0 == op->in1) return 0;
    return op->kind == OP_CONV || op->kind == OP_GN_SILU || op->kind == OP_ADD ||
           op->kind == OP_ADD_CHANNEL || op->kind == OP_CONCAT;
}

void model_backward(Model *m, const float *params, float *grads, const float *dout, int n) {
    check_batch(m, n);
    if (m->inference) die("model: built for inference only (model_build_inference): no backward");
    memcpy(DACT(m->out_slot), dout,
           (size_t)n * slot_floats(&m->slots[m->out_slot]) * sizeof(float));
    for (int i = m->nops - 1; i >= 0; i--) {
        const double start = m->op_seconds ? now_seconds() : 0.0;
        const Op *op = &m->ops[i];
        /* gradients this op's backward starts: ops that can overwrite them do (set0, set1), the
         * rest are zeroed here and added into */
        const int set0 = starts_gradient(m, op, op->in0, i);
        const int set1 = starts_gradient(m, op, op->in1, i);
        for (int s = 0; s < m->nslots; s++)
            if (m->slots[s].grad_first_op == i && s != m->out_slot && !(s == op->in0 && set0) &&
                !(s == op->in1 && set1))
                memset(DACT(s), 0, (size_t)n * slot_floats(&m->slots[s]) * sizeof(float));
        const Slot *in = op->in0 >= 0 ? &m->slots[op->in0] : NULL;
        const Slot *out = &m->slots[op->out];
        const float *dy = DACT(op->out);
        const float *w = PARAM(params, op->weight);
        float *dw = PARAM(grads, op->weight), *db = PARAM(grads, op->bias);
        switch (op->kind) {
        case OP_TEMB: /* integer input: nothing to propagate */
            break;
        case OP_LINEAR:
            linear_backward(DACT(op->in0), dw, db, dy, ACT(op->in0), w, n, in->c, out->c);
            break;
        case OP_SILU:
            silu_backward(DACT(op->in0), dy, ACT(op->in0), (size_t)n * slot_floats(out));
            break;
        case OP_CONV: {
            ConvShape s = op_conv_shape(m, op, n);
            float *dx = op->in0 == m->x_slot && !m->input_grad ? NULL : DACT(op->in0);
            conv2d_backward_ex(dx, set0, dw, db, dy, ACT(op->in0), w, &s, m->ws);
            break;
        }
        case OP_GROUPNORM: {
            const float *mean = m->aux + op->aux * (size_t)m->max_batch;
            groupnorm_backward(DACT(op->in0), dw, db, dy, ACT(op->in0), mean,
                               mean + (size_t)n * op->groups, w, n, in->c, in->h * in->w,
                               op->groups, m->ws);
            break;
        }
        case OP_GN_SILU: {
            const float *mean = m->aux + op->aux * (size_t)m->max_batch;
            groupnorm_silu_backward(DACT(op->in0), set0, dw, db, dy, ACT(op->in0), mean,
                                    mean + (size_t)n * op->groups, w, PARAM(params, op->bias), n,
                                    in->c, in->h * in->w, op->groups, m->ws);
            break;
        }
        case OP_ADD:
            add_backward_ex(DACT(op->in0), set0, DACT(op->in1), set1, dy,
                            (size_t)n * slot_floats(out));
            break;
        case OP_ADD_CHANNEL:
            add_channel_backward_ex(DACT(op->in0), set0, DACT(op->in1), set1, dy, n, out->c,
                                    out->h * out->w);
            break;
        case OP_CONCAT:
            concat_backward_ex(DACT(op->in0), set0, DACT(op->in1), set1, dy, n, in->c,
                               m->slots[op->in1].c, in->h * in->w);
            break;
        case OP_UPSAMPLE:
            upsample2x_backward(DACT(op->in0), dy, n, in->c, in->h, in->w);
            break;
        case OP_EMBED:
            embedding_backward(dw, dy, m->y_buf, n, out->c);
            break;
        case OP_DROPOUT:
            if (m->dropout_applied)
                dropout_backward(DACT(op->in0), dy, m->aux + op->aux * (size_t)m->max_batch,
                                 (size_t)n * slot_floats(out));
            else
                add_backward(DACT(op->in0), NULL, dy, (size_t)n * slot_floats(out));
            break;
        case OP_ATTENTION:
            attention_backward(DACT(op->in0), dy, ACT(op->in0),
                               m->aux + op->aux * (size_t)m->max_batch, n, out->c,
                               out->h * out->w, m->ws);
            break;
        }
        if (m->op_seconds) m->op_seconds[m->nops + i] += now_seconds() - start;
        if (m->on_grads_final) m->on_grads_final(m->on_grads_final_ctx, m->grads_final[i]);
    }
}

const char *model_first_nonfinite_op(const Model *m, int n) {
    for (int i = 0; i < m->nops; i++) {
        const Slot *out = &m->slots[m->ops[i].out];
        const float *y = m->act + out->offset;
        const size_t count = (size_t)n * slot_floats(out);
        for (size_t j = 0; j < count; j++)
            if (!isfinite(y[j])) return m->ops[i].name;
    }
    return NULL;
}

void model_set_dropout_key(Model *m, uint64_t seed, uint32_t step, long first) {
    m->dropout_seed = seed;
    m->dropout_step = step;
    m->dropout_first = first;
    m->dropout_on = 1;
}

void model_dropout_off(Model *m) { m->dropout_on = 0; }

void model_keep_input_grad(Model *m) { m->input_grad = 1; }

const float *model_input_grad(const Model *m) {
    if (!m->input_grad) die("model: model_input_grad without model_keep_input_grad");
    return m->dact + m->slots[m->x_slot].grad_offset;
}
