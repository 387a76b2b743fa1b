/* cmd_model.c: `ddpm model --config FILE [--set section.key=value ...]` */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "model.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm model [--config FILE] [--set section.key=value ...]\n"
            "\n"
            "Print the U-Net a config describes: the per-layer table (op, module name, output\n"
            "shape, parameters, forward MFLOP per image), the parameter count and the forward\n"
            "FLOPs per image. Without --config, the reference network (configs/unet-s.ini).\n"
            "\n"
            "  --config FILE          INI config file\n"
            "  --set section.key=V    override one key (repeatable; the last of a key applies), e.g.\n"
            "                         --set model.base=64\n"
            "  --help                 this text\n");
}

int cmd_model(int argc, char **argv) {
    Config cfg;
    config_defaults(&cfg);
    const char *sets[64];
    int nsets = 0;
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("model", argc, argv, &i)
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--config")) {
            config_load(&cfg, TAKE_VALUE());
        } else if (!strcmp(argv[i], "--set")) {
            if (nsets == (int)ARRAY_LEN(sets)) die("too many --set options");
            sets[nsets++] = TAKE_VALUE();
        } else {
            return cli_unexpected("model", argv[i]);
        }
    }
#undef TAKE_VALUE
    config_set_all(&cfg, sets, nsets, 1);
    config_validate(&cfg, nsets ? "config with --set overrides" : "config");
    Model m;
    model_build(&m, &cfg.model, 1);
    model_print(&m, stdout);
    model_free(&m);
    return 0;
}
