/* model_config.c: the reference network's settings and the checks any [model] config must pass
 * (kept apart from the builder so the config parser and its fuzz target need nothing else). */
#include "model.h"

ModelConfig model_config_default(void) {
    ModelConfig c = {.in_channels = 1, .image_size = 28, .base = 32, .levels = 3,
                     .mult = {1, 2, 2}, .res_blocks = 1, .groups = 8, .time_sin_dim = 32,
                     .time_dim = 128};
    return c;
}

const char *model_config_check(const ModelConfig *c) {
    if (c->in_channels < 1) return "in_channels must be at least 1";
    if (c->image_size < 1) return "image_size must be at least 1";
    if (c->base < 1) return "model.base must be at least 1";
    if (c->levels < 1 || c->levels > MODEL_MAX_LEVELS) return "model.levels must be 1..6";
    if (c->res_blocks < 1 || c->res_blocks > 8) return "model.res_blocks must be 1..8";
    if (c->groups < 1) return "model.groups must be at least 1";
    if (c->time_sin_dim < 2 || c->time_sin_dim % 2) return "model.time_sin_dim must be even";
    if (c->time_dim < 1) return "model.time_dim must be at least 1";
    if (c->classes < 0 || c->classes > 100000) return "model.classes must be 0..100000";
    int found = c->attn_res == 0;
    for (int l = 0; l < c->levels && c->levels <= MODEL_MAX_LEVELS; l++)
        found |= c->image_size >> l == c->attn_res;
    if (!(c->dropout >= 0 && c->dropout <= 0.9)) return "model.dropout must be 0..0.9";
    if (!found) return "model.attn_res must be 0 or the side of one level (28, 14, 7 for unet-s)";
    if (c->image_size % (1 << (c->levels - 1)))
        return "image_size must be divisible by 2^(levels-1) (28 allows at most 3 levels)";
    if (c->base % c->groups) /* conv_in's base channels are the first GroupNorm's input */
        return "model.groups must divide model.base and base * mult of every level";
    for (int l = 0; l < c->levels; l++) {
        if (c->mult[l] < 1) return "model.mult entries must be at least 1";
        if ((c->base * c->mult[l]) % c->groups)
            return "model.groups must divide model.base and base * mult of every level";
    }
    return NULL;
}
