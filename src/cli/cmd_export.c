/* cmd_export.c: `ddpm export --checkpoint F --out W.h5`: a weights-only copy (params + EMA, no
 * optimiser state: a third of the size) for sampling and sharing, e.g. results/unet-s/final.h5. */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "util.h"

int cmd_export(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("export", argc, argv, &i)
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: ddpm export --checkpoint FILE --out WEIGHTS.h5\n\n"
                   "Write the parameters and EMA weights of a checkpoint, with its config and\n"
                   "root attributes (step, epoch, versions, and those other tools added, such\n"
                   "as average_weights.py's averaged_from) but without the Adam moments, to\n"
                   "WEIGHTS.h5 (content = \"weights\"). ddpm sample reads it like any checkpoint;\n"
                   "--resume refuses it. WEIGHTS.h5 must not be the checkpoint itself.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--checkpoint")) in = TAKE_VALUE();
        else if (!strcmp(argv[i], "--out")) out = TAKE_VALUE();
        else return cli_unexpected("export", argv[i]);
    }
#undef TAKE_VALUE
    if (!in || !out) die("export: --checkpoint FILE and --out WEIGHTS.h5 are required");
    cli_output_file("export", "--out", out, (const char *const[]){in, NULL});
    Config cfg;
    checkpoint_read_config(in, &cfg);
    Model m;
    model_build(&m, &cfg.model, 1);
    Arenas a;
    arenas_alloc(&a, &m.table);
    TrainState st;
    checkpoint_read_state(in, &st);
    checkpoint_load(in, &m.table, &a, &st, CKPT_WEIGHTS);
    checkpoint_save_from(out, &m.table, &a, &st, &cfg, CKPT_WEIGHTS, in);
    printf("%s: params and EMA of %s (step %ld, %zu parameters)\n", out, in, st.step,
           m.table.total);
    arenas_free(&a);
    model_free(&m);
    return 0;
}
