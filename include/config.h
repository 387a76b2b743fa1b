/* config.h: INI configs ([section] key = value, parsed with inih) and --set overrides.
 *
 * Every accepted key is one row of a table (section, key, type, range, help), so the parser,
 * the error messages and `--help` agree. Unknown sections or keys, malformed values and
 * out-of-range values are errors naming the file, the line, the key and what is accepted. */
#ifndef DDPM_CONFIG_H
#define DDPM_CONFIG_H

#include "model.h"

typedef struct {
    ModelConfig model;
} Config;

/* Defaults: the reference network (configs/unet-s.ini). */
void config_defaults(Config *c);
/* Load an INI file over the current values; dies with a clear message on any error. */
void config_load(Config *c, const char *path);
/* Apply one "section.key=value" override (the --set flag); dies on error. */
void config_set(Config *c, const char *assignment);
/* Cross-field checks (e.g. groups divide channels); dies naming the key. */
void config_validate(const Config *c, const char *origin);
/* Write the effective config as INI text. */
void config_write(const Config *c, FILE *f);

#endif
