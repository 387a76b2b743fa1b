/* config.c: the table of config keys, the inih callback, --set, validation and writing. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef enum { KEY_INT, KEY_DOUBLE, KEY_STRING, KEY_ENUM, KEY_INT_LIST } KeyType;

typedef struct {
    const char *section, *key;
    KeyType type;
    size_t offset;       /* into Config */
    size_t count_offset; /* KEY_INT_LIST: where the list length goes */
    double min, max;     /* accepted range of numbers */
    const char *choices; /* KEY_ENUM: "a|b|c", stored as the index */
    const char *help;
} KeySpec;

#define AT(field) offsetof(Config, field)
#define INT(sec, name, field, lo, hi, help) {sec, name, KEY_INT, AT(field), 0, lo, hi, NULL, help}
#define DBL(sec, name, field, lo, hi, help) {sec, name, KEY_DOUBLE, AT(field), 0, lo, hi, NULL, help}
#define ENUM(sec, name, field, choices, help) {sec, name, KEY_ENUM, AT(field), 0, 0, 0, choices, help}
static const KeySpec keys[] = {
    {"data", "dir", KEY_STRING, AT(data.dir), 0, 0, 0, NULL,
     "folder holding train-images-idx3-ubyte etc. (raw or .gz)"},
    INT("model", "base", model.base, 1, 1024, "base channels"),
    {"model", "mult", KEY_INT_LIST, AT(model.mult), AT(model.levels), 1, 16, NULL,
     "channel multiplier per level, comma separated; the count sets the number of levels"},
    INT("model", "res_blocks", model.res_blocks, 1, 8, "residual blocks per level"),
    INT("model", "groups", model.groups, 1, 1024, "GroupNorm groups"),
    INT("model", "time_sin_dim", model.time_sin_dim, 2, 4096,
        "sinusoidal timestep embedding width (even)"),
    INT("model", "time_dim", model.time_dim, 1, 4096, "time-embedding MLP width"),
    INT("model", "attn_res", model.attn_res, 0, 4096,
        "self-attention after the residual blocks at this resolution, e.g. 7 (0: none)"),
    DBL("model", "dropout", model.dropout, 0, 0.9,
        "dropout probability before each residual block's second conv, in training (0: off)"),
    INT("model", "classes", model.classes, 0, 100000,
        "0: unconditional; K: class-conditional on labels 0..K-1 (plus a null label K)"),
    INT("diffusion", "T", diffusion.T, 2, 100000, "number of diffusion steps"),
    ENUM("diffusion", "schedule", diffusion.schedule, "linear|cosine", "beta schedule"),
    DBL("diffusion", "beta_start", diffusion.beta_start, 1e-8, 0.999, "linear schedule: first beta"),
    DBL("diffusion", "beta_end", diffusion.beta_end, 1e-8, 0.999, "linear schedule: last beta"),
    ENUM("diffusion", "prediction", diffusion.prediction, "eps|v",
         "network output: the noise, or v = sqrt(abar) eps - sqrt(1-abar) x0"),
    INT("train", "epochs", train.epochs, 1, 100000, "passes over the training set"),
    INT("train", "max_steps", train.max_steps, 0, 1000000000,
        "stop after this many steps if the epochs have not ended first (0: the epochs decide)"),
    INT("train", "batch", train.batch, 1, 65536, "global batch (split over MPI ranks)"),
    DBL("train", "lr", train.lr, 1e-12, 10, "Adam learning rate"),
    INT("train", "seed", train.seed, 0, 2147483647, "seed of init, data order, timesteps, noise"),
    DBL("train", "ema", train.ema, 0, 0.999999999, "EMA decay of the weights, in [0, 1)"),
    INT("train", "ema_warmup", train.ema_warmup, 0, 1,
        "1: decay min(ema, (1+step)/(10+step)) so short runs get a useful EMA"),
    INT("train", "warmup_steps", train.warmup_steps, 0, 100000000,
        "linear learning-rate warm-up steps (0: off)"),
    DBL("train", "p_uncond", train.p_uncond, 0, 1,
        "conditional models: probability that an image's label is replaced by the null label"),
    DBL("train", "grad_clip", train.grad_clip, 0, 1e9, "clip the gradient norm to this (0: off)"),
    INT("train", "log_every", train.log_every, 1, 1000000,
        "steps between log lines (when stdout is not a terminal, or under MPI) and between "
        "flushes of metrics.h5"),
    INT("train", "checkpoint_every", train.checkpoint_every, 0, 100000000,
        "steps between latest.h5 checkpoints (0: once per epoch)"),
    INT("train", "keep_checkpoints", train.keep_checkpoints, 1, 100000,
        "epoch checkpoints to keep"),
    ENUM("train", "nan_policy", train.nan_policy, "stop|skip",
         "a NaN/Inf loss or gradient: stop, or skip the update and count it"),
    ENUM("train", "allreduce", train.allreduce, "overlap|blocking",
         "MPI gradient sum: buckets overlapped with backward, or one call after it"),
    INT("train", "bucket_kb", train.bucket_kb, 4, 1024, "overlap: KiB of gradients per bucket"),
    INT("train", "check_every", train.check_every, 0, 100000000,
        "MPI: steps between checks that all ranks hold the same weights (0: only at checkpoints and epoch ends)"),
    INT("train", "eval_every", train.eval_every, 0, 100000,
        "epochs between FIDs of eval_n samples ([sample] sampler) into metrics.h5 (0: never)"),
    INT("train", "eval_n", train.eval_n, 2, 1000000, "images sampled for each of those FIDs"),
    {"train", "eval_classifier", KEY_STRING, AT(train.eval_classifier), 0, 0, 0, NULL,
     "classifier file for those FIDs (ddpm classifier train)"},
    ENUM("sample", "sampler", sample.sampler, "ddpm|ddim|dpmpp2m",
         "reverse process (dpmpp2m: DPM-Solver++(2M), deterministic)"),
    INT("sample", "steps", sample.steps, 2, 100000, "DDIM / dpmpp2m steps (DDPM always uses T)"),
    DBL("sample", "eta", sample.eta, 0, 1, "DDIM noise: 1 stochastic, 0 deterministic"),
    ENUM("sample", "spacing", sample.spacing, "uniform|quadratic",
         "DDIM / dpmpp2m timesteps: uniform in t, or quadratic (denser near t = 0)"),
    INT("sample", "n", sample.n, 1, 1000000, "images per epoch grid / default of ddpm sample"),
    INT("sample", "seed", sample.seed, 0, 2147483647, "seed of the sampling noise"),
    INT("sample", "clip", sample.clip, 0, 1, "1: clamp the predicted x0 to [-1, 1] (every sampler)"),
    DBL("sample", "guidance", sample.guidance, 0, 1000,
        "conditional models: guidance W, eps = (1+W) eps(x,c) - W eps(x,null)"),
};

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->data.dir, sizeof c->data.dir, "data/mnist");
    c->model = model_config_default();
    c->diffusion = (DiffusionConfig){.T = 300, .schedule = SCHEDULE_LINEAR, .beta_start = 1e-4,
                                     .beta_end = 0.02};
    c->train = (TrainConfig){.epochs = 20, .max_steps = 0, .batch = 128, .lr = 2e-4, .ema = 0.999,
                             .grad_clip = 0, .seed = 1, .warmup_steps = 0, .ema_warmup = 0,
                             .log_every = 50, .checkpoint_every = 0, .keep_checkpoints = 3,
                             .nan_policy = 0, .allreduce = 0, .bucket_kb = 512,
                             .check_every = 100, .eval_every = 0, .eval_n = 1000, .p_uncond = 0.1};
    snprintf(c->train.eval_classifier, sizeof c->train.eval_classifier,
             "results/classifier/mnist-classifier.h5");
    c->sample = (SampleConfig){.sampler = 0, .steps = 50, .n = 64, .seed = 0, .clip = 0,
                               .eta = 1.0};
}

/* Edit distance, for "did you mean" suggestions. */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static int section_known(const char *section) {
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (!strcmp(keys[i].section, section)) return 1;
    return 0;
}

/* " (did you mean [model] base?)" for the nearest known key, or "" */
static const char *suggest(const char *section, const char *key, char *buf, size_t len) {
    int best = 99;
    const KeySpec *hit = NULL;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        int d = edit_distance(section, keys[i].section) + edit_distance(key, keys[i].key);
        if (d < best) best = d, hit = &keys[i];
    }
    if (!hit || best > 3) return "";
    snprintf(buf, len, " (did you mean [%s] %s?)", hit->section, hit->key);
    return buf;
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t') end++;
    if (errno || end == s || *end) return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    if (strpbrk(s, "xX")) return 0; /* strtod reads hex floats: a config holds decimals */
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static void apply_int_list(char *base, const KeySpec *k, const char *value, const char *origin) {
    int *list = (int *)(base + k->offset), n = 0;
    char copy[256];
    if (strlen(value) >= sizeof copy) die("%s: [%s] %s: value too long", origin, k->section, k->key);
    snprintf(copy, sizeof copy, "%s", value);
    if (!copy[strspn(copy, " ")]) die("%s: [%s] %s is empty (%s)", origin, k->section, k->key, k->help);
    /* split at every comma by hand: strtok would merge "1,,2" into "1,2" and drop a trailing "," */
    for (char *tok = copy, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        while (*tok == ' ') tok++;
        long v;
        if (!parse_long(tok, &v))
            die("%s: [%s] %s = '%s': '%s' is not an integer (%s)", origin, k->section, k->key,
                value, tok, k->help);
        if (v < k->min || v > k->max)
            die("%s: [%s] %s: %ld is out of range %g..%g", origin, k->section, k->key, v, k->min,
                k->max);
        if (n == MODEL_MAX_LEVELS)
            die("%s: [%s] %s: at most %d entries", origin, k->section, k->key, MODEL_MAX_LEVELS);
        list[n++] = (int)v;
    }
    *(int *)(base + k->count_offset) = n;
}

/* Apply value to section.key; origin names where it came from ("file:line" or "--set"). */
static void apply(Config *c, const char *section, const char *key, const char *value,
                  const char *origin) {
    char hint[128];
    if (!section_known(section))
        die("%s: unknown section [%s]%s", origin, section, suggest(section, key, hint, sizeof hint));
    const KeySpec *k = NULL;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key)) k = &keys[i];
    if (!k)
        die("%s: unknown key '%s' in [%s]%s", origin, key, section,
            suggest(section, key, hint, sizeof hint));
    char *base = (char *)c;
    switch (k->type) {
    case KEY_INT: {
        long v;
        if (!parse_long(value, &v))
            die("%s: [%s] %s = '%s' is not an integer (%s)", origin, section, key, value, k->help);
        if (v < k->min || v > k->max)
            die("%s: [%s] %s = %ld is out of range %.0f..%.0f (%s)", origin, section, key, v,
                k->min, k->max, k->help);
        *(int *)(base + k->offset) = (int)v;
        return;
    }
    case KEY_DOUBLE: {
        double v;
        if (!parse_double(value, &v))
            die("%s: [%s] %s = '%s' is not a number (%s)", origin, section, key, value, k->help);
        if (v < k->min || v > k->max)
            die("%s: [%s] %s = %g is out of range %.10g..%.10g (%s)", origin, section, key, v,
                k->min, k->max, k->help);
        *(double *)(base + k->offset) = v;
        return;
    }
    case KEY_STRING:
        if (!*value) die("%s: [%s] %s is empty (%s)", origin, section, key, k->help);
        /* inih reads lines of at most 200 characters: keep "key = value" of a written config
         * below that, so it reads back */
        if (strlen(value) > CONFIG_STR_LIMIT)
            die("%s: [%s] %s: value longer than %d characters", origin, section, key,
                CONFIG_STR_LIMIT);
        if (strpbrk(value, ";#\n"))  /* it could not be written back into an INI file */
            die("%s: [%s] %s = '%s': ';', '#' and newlines are not allowed here", origin, section,
                key, value);
        snprintf(base + k->offset, CONFIG_STR_MAX, "%s", value);
        return;
    case KEY_ENUM: {
        const char *p = k->choices;
        for (int idx = 0; *p; idx++) {
            size_t len = strcspn(p, "|");
            if (strlen(value) == len && !strncmp(p, value, len)) {
                *(int *)(base + k->offset) = idx;
                return;
            }
            p += len + (p[len] == '|');
        }
        die("%s: [%s] %s = '%s': expected one of %s", origin, section, key, value, k->choices);
    }
    case KEY_INT_LIST:
        apply_int_list(base, k, value, origin);
        return;
    }
}

/* inih's handler has no line number here: the reader counts lines as it hands them over. */
typedef struct {
    Config *config;
    const char *origin;
    const char *text; /* reading from text when non-NULL, else from file */
    FILE *file;
    int line;
    int seen_line[ARRAY_LEN(keys)]; /* the line each key was set on (0: not yet) */
} LoadCtx;

static char *read_line(char *str, int num, void *stream) {
    LoadCtx *ctx = stream;
    char *got = NULL;
    if (ctx->file) {
        got = fgets(str, num, ctx->file);
    } else if (*ctx->text) {
        size_t len = strcspn(ctx->text, "\n");
        if (ctx->text[len] == '\n') len++;
        if (len > (size_t)num - 1) len = (size_t)num - 1;
        memcpy(str, ctx->text, len);
        str[len] = 0;
        ctx->text += len;
        got = str;
    }
    if (got) {
        ctx->line++;
        const size_t len = strlen(str);
        if (len == (size_t)num - 1 && str[len - 1] != '\n' && (ctx->file ? !feof(ctx->file) : *ctx->text))
            die("%s:%d: line longer than %d characters", ctx->origin, ctx->line, num - 2);
        /* inih (Debian's build allows multi-line values) would read an indented line as more
         * of the previous key's value: every line here stands alone, indented or not */
        const size_t blanks = strspn(str, " \t");
        if (blanks) memmove(str, str + blanks, len - blanks + 1);
    }
    return got;
}

static int on_entry(void *user, const char *section, const char *key, const char *value) {
    LoadCtx *ctx = user;
    char origin[600];
    snprintf(origin, sizeof origin, "%s:%d", ctx->origin, ctx->line);
    if (!*section) die("%s: key '%s' outside any [section]", origin, key);
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key)) {
            if (ctx->seen_line[i])
                die("%s: [%s] %s is set twice (first on line %d): which one was meant?", origin,
                    section, key, ctx->seen_line[i]);
            ctx->seen_line[i] = ctx->line;
        }
    apply(ctx->config, section, key, value, origin);
    return 1;
}

static void parse(Config *c, LoadCtx *ctx) {
    int rc = ini_parse_stream(read_line, ctx, on_entry, ctx);
    if (rc > 0)
        die("%s:%d: not an INI line (expected [section] or key = value)", ctx->origin, rc);
    if (rc < 0) die("%s: cannot read config", ctx->origin);
}

void config_load(Config *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("%s: cannot open config: %s", path, strerror(errno));
    LoadCtx ctx = {.config = c, .origin = path, .file = f};
    parse(c, &ctx);
    if (ferror(f)) die("%s: cannot read config: %s", path, strerror(errno)); /* a directory */
    fclose(f);
}

void config_load_text(Config *c, const char *text, const char *origin) {
    LoadCtx ctx = {.config = c, .origin = origin, .text = text};
    parse(c, &ctx);
}

static void config_set(Config *c, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        die("--set '%s': expected section.key=value (e.g. --set train.epochs=5)", assignment);
    char section[64], key[64];
    size_t ls = (size_t)(dot - assignment), lk = (size_t)(eq - dot - 1);
    if (ls == 0 || ls >= sizeof section || lk == 0 || lk >= sizeof key)
        die("--set '%s': expected section.key=value", assignment);
    memcpy(section, assignment, ls);
    section[ls] = 0;
    memcpy(key, dot + 1, lk);
    key[lk] = 0;
    apply(c, section, key, eq + 1, "--set");
}

/* 1 when assignment a sets the same section.key as b ("train.lr=1" and "train.lr=2"). */
static int same_key(const char *a, const char *b) {
    const size_t len = strcspn(a, "=");
    return !strncmp(a, b, len) && b[len] == '=';
}

void config_set_all(Config *c, const char *const *assignments, int n, int notes) {
    for (int i = 0; i < n; i++) config_set(c, assignments[i]);
    /* A key set twice in one config file is refused; on the command line a later --set
     * replaces an earlier one, which is how wrappers layer their settings (a job script's
     * defaults, then the user's): said once per key, naming the value that applies. */
    for (int i = 0; notes && i < n; i++) {
        int first = 1, last = i;
        for (int j = 0; j < n; j++)
            if (same_key(assignments[i], assignments[j])) {
                if (j < i) first = 0;
                last = j;
            }
        if (first && last > i)
            printf("note: --set %.*s is given more than once: the last, '%s', applies\n",
                   (int)strcspn(assignments[i], "="), assignments[i], assignments[last]);
    }
}

void config_validate(const Config *c, const char *origin) {
    const char *bad = model_config_check(&c->model);
    if (bad) die("%s: %s", origin, bad);
    if (c->diffusion.beta_end < c->diffusion.beta_start)
        die("%s: [diffusion] beta_end (%g) is below beta_start (%g)", origin,
            c->diffusion.beta_end, c->diffusion.beta_start);
    if (c->diffusion.schedule == SCHEDULE_LINEAR) {
        /* the samplers divide by sqrt(abar_t); a schedule that drives abar_T to 1e-30 and below
         * (the cosine one ends at 3e-8 for T = 300, 2e-9 for T = 1000) would turn their x0
         * estimate into inf / NaN */
        double log_abar = 0;
        const DiffusionConfig *d = &c->diffusion;
        for (int t = 0; t < d->T; t++)
            log_abar += log1p(-(d->beta_start + (d->beta_end - d->beta_start) * t / (d->T - 1.0)));
        if (log_abar < log(1e-30))
            die("%s: [diffusion] T = %d with betas %g..%g leaves abar_T = 1e%.0f of the image "
                "signal, below the 1e-30 the samplers can divide by: use a smaller T or beta_end",
                origin, d->T, d->beta_start, d->beta_end, log_abar / log(10.0));
    }
    if (c->sample.guidance > 0 && c->model.classes == 0)
        die("%s: [sample] guidance = %g needs a class-conditional model ([model] classes > 0)",
            origin, c->sample.guidance);
    if (c->sample.guidance > 0 && c->train.p_uncond == 0)
        die("%s: [sample] guidance = %g needs the null label trained: [train] p_uncond > 0",
            origin, c->sample.guidance);
    if (c->sample.sampler != 0 && c->sample.steps > c->diffusion.T) /* DDPM takes all T steps */
        die("%s: [sample] steps (%d) exceeds [diffusion] T (%d)", origin, c->sample.steps,
            c->diffusion.T);
}

static void write_value(const Config *c, const KeySpec *k, FILE *f) {
    const char *base = (const char *)c;
    switch (k->type) {
    case KEY_INT:
        fprintf(f, "%d", *(const int *)(base + k->offset));
        break;
    case KEY_DOUBLE:
        fprintf(f, "%.12g", *(const double *)(base + k->offset));
        break;
    case KEY_STRING:
        fprintf(f, "%s", base + k->offset);
        break;
    case KEY_ENUM: {
        int idx = *(const int *)(base + k->offset);
        const char *p = k->choices;
        for (int i = 0; i < idx && *p; i++) p += strcspn(p, "|") + 1;
        fprintf(f, "%.*s", (int)strcspn(p, "|"), p);
        break;
    }
    case KEY_INT_LIST: {
        const int *list = (const int *)(base + k->offset);
        int n = *(const int *)(base + k->count_offset);
        for (int i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", list[i]);
        break;
    }
    }
}

static void value_text(const Config *c, const KeySpec *k, char *buf, size_t len) {
    FILE *f = fmemopen(buf, len, "w");
    if (!f) die("out of memory formatting a config value");
    write_value(c, k, f);
    fclose(f);
}

int config_resume_mismatch(const Config *now, const Config *saved, char *buf, size_t len) {
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const KeySpec *k = &keys[i];
        const int fixed = !strcmp(k->section, "model") || !strcmp(k->section, "diffusion") ||
                          (!strcmp(k->section, "train") &&
                           (!strcmp(k->key, "seed") || !strcmp(k->key, "batch")));
        if (!fixed) continue;
        char a[CONFIG_STR_MAX], b[CONFIG_STR_MAX];
        value_text(now, k, a, sizeof a);
        value_text(saved, k, b, sizeof b);
        if (strcmp(a, b)) {
            snprintf(buf, len, "[%s] %s = %s in the checkpoint, %s now", k->section, k->key, b, a);
            return 1;
        }
    }
    return 0;
}

void config_write(const Config *c, FILE *f) {
    const char *section = "";
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (strcmp(section, keys[i].section))
            fprintf(f, "%s[%s]\n", i ? "\n" : "", section = keys[i].section);
        fprintf(f, "%s = ", keys[i].key);
        write_value(c, &keys[i], f);
        fputc('\n', f);
    }
}

char *config_text(const Config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) die("out of memory writing the config text");
    config_write(c, f);
    fclose(f);
    return buf;
}

void config_print_keys(FILE *f) {
    Config d;
    config_defaults(&d);
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.%s", keys[i].section, keys[i].key);
        fprintf(f, "  %-26s (default ", key);
        write_value(&d, &keys[i], f);
        fprintf(f, ") %s", keys[i].help);
        if (keys[i].type == KEY_ENUM) fprintf(f, " [%s]", keys[i].choices);
        fputc('\n', f);
    }
}
