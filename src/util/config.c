/* config.c: the table of config keys, the inih callback, --set, and validation. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef enum { KEY_INT, KEY_INT_LIST } KeyType;

typedef struct {
    const char *section, *key;
    KeyType type;
    size_t offset;         /* into Config */
    size_t count_offset;   /* KEY_INT_LIST: where the list length goes */
    long min, max;         /* accepted range of each integer */
    const char *help;
} KeySpec;

#define AT(field) offsetof(Config, field)
static const KeySpec keys[] = {
    {"model", "base", KEY_INT, AT(model.base), 0, 1, 1024, "base channels"},
    {"model", "mult", KEY_INT_LIST, AT(model.mult), AT(model.levels), 1, 16,
     "channel multiplier per level, comma separated; the count sets the number of levels"},
    {"model", "res_blocks", KEY_INT, AT(model.res_blocks), 0, 1, 8, "residual blocks per level"},
    {"model", "groups", KEY_INT, AT(model.groups), 0, 1, 1024, "GroupNorm groups"},
    {"model", "time_sin_dim", KEY_INT, AT(model.time_sin_dim), 0, 2, 4096,
     "sinusoidal timestep embedding width (even)"},
    {"model", "time_dim", KEY_INT, AT(model.time_dim), 0, 1, 4096, "time-embedding MLP width"},
};

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    c->model = model_config_default();
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

/* "did you mean [model] base?" for the nearest known section/key, or "" */
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
    if (k->type == KEY_INT) {
        long v;
        if (!parse_long(value, &v))
            die("%s: [%s] %s = '%s' is not an integer (%s)", origin, section, key, value, k->help);
        if (v < k->min || v > k->max)
            die("%s: [%s] %s = %ld is out of range %ld..%ld (%s)", origin, section, key, v,
                k->min, k->max, k->help);
        *(int *)(base + k->offset) = (int)v;
        return;
    }
    /* KEY_INT_LIST */
    int *list = (int *)(base + k->offset), n = 0;
    char copy[256];
    if (strlen(value) >= sizeof copy) die("%s: [%s] %s: value too long", origin, section, key);
    snprintf(copy, sizeof copy, "%s", value);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        long v;
        if (!parse_long(tok, &v))
            die("%s: [%s] %s = '%s': '%s' is not an integer (%s)", origin, section, key, value,
                tok, k->help);
        if (v < k->min || v > k->max)
            die("%s: [%s] %s: %ld is out of range %ld..%ld", origin, section, key, v, k->min,
                k->max);
        if (n == MODEL_MAX_LEVELS)
            die("%s: [%s] %s: at most %d entries", origin, section, key, MODEL_MAX_LEVELS);
        list[n++] = (int)v;
    }
    if (n == 0) die("%s: [%s] %s is empty (%s)", origin, section, key, k->help);
    *(int *)(base + k->count_offset) = n;
}

/* inih's handler has no line number here: the reader counts lines as it hands them over. */
typedef struct {
    Config *config;
    const char *path;
    FILE *file;
    int line;
} LoadCtx;

static char *read_line(char *str, int num, void *stream) {
    LoadCtx *ctx = stream;
    char *got = fgets(str, num, ctx->file);
    if (got) ctx->line++;
    return got;
}

static int on_entry(void *user, const char *section, const char *key, const char *value) {
    LoadCtx *ctx = user;
    char origin[512];
    snprintf(origin, sizeof origin, "%s:%d", ctx->path, ctx->line);
    if (!*section) die("%s: key '%s' outside any [section]", origin, key);
    apply(ctx->config, section, key, value, origin);
    return 1;
}

void config_load(Config *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("%s: cannot open config: %s", path, strerror(errno));
    LoadCtx ctx = {c, path, f, 0};
    int rc = ini_parse_stream(read_line, &ctx, on_entry, &ctx);
    fclose(f);
    if (rc > 0) die("%s:%d: not an INI line (expected [section] or key = value)", path, rc);
    if (rc < 0) die("%s: cannot read config", path);
    config_validate(c, path);
}

void config_set(Config *c, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        die("--set '%s': expected section.key=value (e.g. --set model.base=64)", assignment);
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

void config_validate(const Config *c, const char *origin) {
    const char *bad = model_config_check(&c->model);
    if (bad) die("%s: %s", origin, bad);
}

void config_write(const Config *c, FILE *f) {
    const ModelConfig *m = &c->model;
    fprintf(f, "[model]\nbase = %d\nmult = ", m->base);
    for (int l = 0; l < m->levels; l++) fprintf(f, l ? ",%d" : "%d", m->mult[l]);
    fprintf(f, "\nres_blocks = %d\ngroups = %d\ntime_sin_dim = %d\ntime_dim = %d\n",
            m->res_blocks, m->groups, m->time_sin_dim, m->time_dim);
}
