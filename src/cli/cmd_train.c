/* cmd_train.c: `ddpm train --config FILE [--set section.key=value ...] [--out DIR] [--resume]` */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "dist.h"
#include "train.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm train --config FILE [--set section.key=value ...] [--out DIR] [--resume]\n"
            "\n"
            "Train the noise-prediction U-Net on the IDX images of [data] dir. The run directory\n"
            "(default results/runs/<config name>) receives config.ini, metrics.h5,\n"
            "checkpoints/latest.h5 and epoch_NNN.h5, samples/epoch_NNN.{h5,png} after each epoch\n"
            "and samples/generated.{h5,png} at the end. Under mpirun -np P (or srun --mpi=pmix)\n"
            "each rank trains on its share of every batch: the same run for any P, up to the\n"
            "rounding of the gradient sum.\n"
            "\n"
            "  --config FILE          INI config (sections data, model, diffusion, train, sample)\n"
            "  --set section.key=V    override one key (repeatable; the last --set of a key applies)\n"
            "  --out DIR              run directory; one that holds a run already (latest.h5 or\n"
            "                         metrics.h5) is refused without --resume, never overwritten\n"
            "  --resume               continue exactly from DIR/checkpoints/latest.h5 if present\n"
            "  --help                 this text\n"
            "\nconfig keys:\n");
    config_print_keys(f);
}

int cmd_train(int argc, char **argv) {
    Config cfg;
    config_defaults(&cfg);
    const char *config_path = NULL, *out = NULL, *sets[64];
    int nsets = 0, resume = 0;
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("train", argc, argv, &i)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--config")) {
            config_path = TAKE_VALUE();
        } else if (!strcmp(a, "--set")) {
            if (nsets == (int)ARRAY_LEN(sets)) die("too many --set options");
            sets[nsets++] = TAKE_VALUE();
        } else if (!strcmp(a, "--out")) {
            out = TAKE_VALUE();
        } else if (!strcmp(a, "--resume")) {
            resume = 1;
        } else {
            return cli_unexpected("train", a);
        }
    }
#undef TAKE_VALUE
    if (!config_path) die("train: --config FILE is required (e.g. configs/unet-s.ini)");
    config_load(&cfg, config_path);
    config_set_all(&cfg, sets, nsets, dist_is_root());
    char origin[1100];
    snprintf(origin, sizeof origin, "%s%s", config_path, nsets ? " with --set overrides" : "");
    config_validate(&cfg, origin);
    char run_dir[1024];
    if (out) {
        if (strlen(out) >= sizeof run_dir)
            die("train: --out %s: path too long (at most %zu characters)", out, sizeof run_dir - 1);
        snprintf(run_dir, sizeof run_dir, "%s", out);
    } else {
        char copy[1024];
        if (strlen(config_path) >= sizeof copy)
            die("train: --config %s: path too long to name the run directory after it; give --out",
                config_path);
        snprintf(copy, sizeof copy, "%s", config_path);
        char *name = basename(copy), *dot = strrchr(name, '.');
        if (dot) *dot = 0;
        snprintf(run_dir, sizeof run_dir, "results/runs/%s", name);
    }
    TrainOptions opt = {.run_dir = run_dir, .resume = resume};
    return train_run(&cfg, &opt);
}
