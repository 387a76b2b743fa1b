/* config.h: INI configs ([section] key = value, parsed with inih) and --set overrides.
 *
 * Every accepted key is one row of a table (section, key, type, range, help), so the parser,
 * the error messages and `--help` agree. Unknown sections or keys, malformed values and
 * out-of-range values are errors naming the file, the line, the key and what is accepted. */
#ifndef DDPM_CONFIG_H
#define DDPM_CONFIG_H

#include <stdio.h>

#include "diffusion.h"
#include "model.h"

#define CONFIG_STR_MAX 512
#define CONFIG_STR_LIMIT 180 /* longest string value: its INI line stays under inih's 200 */

typedef struct {
    char dir[CONFIG_STR_MAX]; /* folder with the IDX files */
} DataConfig;

typedef struct {
    int T;
    int schedule; /* ScheduleKind */
    double beta_start, beta_end;
    int prediction; /* PredictionKind: what the network outputs */
} DiffusionConfig;

typedef struct {
    int epochs, max_steps, batch;
    double lr, ema, grad_clip;
    double p_uncond; /* conditional models: chance of training an image with the null label */
    int seed, warmup_steps, ema_warmup;
    int log_every, checkpoint_every, keep_checkpoints;
    int nan_policy; /* 0 = stop, 1 = skip the update */
    int allreduce;  /* 0 = overlap (bucketed, during backward), 1 = blocking (one, after) */
    int bucket_kb;  /* overlap: KiB of gradients per bucket */
    int check_every; /* steps between cross-rank parameter checks (0: never) */
    int eval_every;  /* epochs between FID evaluations during training (0: never) */
    int eval_n;      /* images sampled for each of them */
    char eval_classifier[CONFIG_STR_MAX];
} TrainConfig;

typedef struct {
    int sampler; /* SamplerKind: 0 = ddpm, 1 = ddim, 2 = dpmpp2m */
    int steps, n, seed, clip;
    int spacing; /* DDIM / dpmpp2m timesteps: 0 uniform, 1 quadratic */
    double eta;
    double guidance; /* conditional models: classifier-free guidance scale W */
} SampleConfig;

typedef struct {
    DataConfig data;
    ModelConfig model;
    DiffusionConfig diffusion;
    TrainConfig train;
    SampleConfig sample; /* per-epoch sample grids, and the defaults of `ddpm sample` */
} Config;

/* Defaults: the reference network (configs/unet-s.ini). */
void config_defaults(Config *c);
/* Load an INI file over the current values; dies with a clear message on any error. Cross-key
 * checks are left to config_validate, called once every source (file, --set) is applied. */
void config_load(Config *c, const char *path);
/* Apply the "section.key=value" overrides of the --set flags in order (a later one of a key
 * replaces an earlier one); dies on an error. notes != 0 prints a note for each key given more
 * than once. */
void config_set_all(Config *c, const char *const *assignments, int n, int notes);
/* Cross-field checks (e.g. groups divide channels); dies naming the key. */
void config_validate(const Config *c, const char *origin);
/* Write the effective config as INI text (every key, so it documents the run). */
void config_write(const Config *c, FILE *f);
/* The same, into a malloc'ed string. */
char *config_text(const Config *c);
/* Load a config from INI text (e.g. a checkpoint's copy); origin names it in errors. */
void config_load_text(Config *c, const char *text, const char *origin);
/* Keys a resumed run must share with its checkpoint (every [model] and [diffusion] key, train.seed
 * and train.batch: they fix the network, the noise and the data order). Returns 0 when they all
 * agree, else 1 with "[section] key = <saved> in the checkpoint, <now> now" in buf. */
int config_resume_mismatch(const Config *now, const Config *saved, char *buf, size_t len);
/* Print every key with its default and help (for --help). */
void config_print_keys(FILE *f);

#endif
