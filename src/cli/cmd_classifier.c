/* cmd_classifier.c: `ddpm classifier train [options]`: the network that scores samples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "cli.h"
#include "util.h"

#define DEFAULT_OUT "results/classifier/mnist-classifier.h5"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm classifier train [--data DIR] [--out FILE.h5] [--epochs N] [--batch B]\n"
            "                             [--lr LR] [--seed S]\n"
            "\n"
            "Train the MNIST classifier whose 128 penultimate features `ddpm eval` compares\n"
            "(conv 32, conv 64 /2, conv 64 /2, fc 128, fc 10, SiLU) on DIR/train and report its\n"
            "accuracy on DIR/t10k (Adam with the rate decaying linearly to 0, images shifted\n"
            "by up to 2 pixels). The committed %s was made with the defaults.\n"
            "\n"
            "  --data DIR     MNIST IDX files (default data/mnist)\n"
            "  --out FILE.h5  weights (default %s)\n"
            "  --epochs N     passes over the training set (default 8)\n"
            "  --batch B      images per step, 1..4096 (default 128)\n"
            "  --lr LR        Adam learning rate (default 1e-3)\n"
            "  --seed S       init and data order (default 1)\n",
            DEFAULT_OUT, DEFAULT_OUT);
}

int cmd_classifier(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "train")) {
        fprintf(stderr, "ddpm classifier: unknown action '%s' (try ddpm classifier --help)\n", argv[1]);
        return 2;
    }
    ClassifierTrainOptions o = {.data_dir = "data/mnist", .out = DEFAULT_OUT, .epochs = 8,
                                .batch = 128, .seed = 1, .lr = 1e-3};
    char command[2048] = "ddpm classifier train";
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("classifier", argc, argv, &i)
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--data")) o.data_dir = TAKE_VALUE();
        else if (!strcmp(a, "--out")) o.out = TAKE_VALUE();
        else if (!strcmp(a, "--epochs")) o.epochs = (int)cli_int("classifier", a, TAKE_VALUE(), 1, 1000);
        else if (!strcmp(a, "--batch")) o.batch = (int)cli_int("classifier", a, TAKE_VALUE(), 1, 4096);
        else if (!strcmp(a, "--seed")) o.seed = (int)cli_int("classifier", a, TAKE_VALUE(), 0, 2147483647);
        else if (!strcmp(a, "--lr")) o.lr = cli_double("classifier", a, TAKE_VALUE(), 1e-9, 10);
        else {
            return cli_unexpected("classifier", a);
        }
        size_t used = strlen(command);
        snprintf(command + used, sizeof command - used, " %s %s", a, argv[i]);
    }
#undef TAKE_VALUE
    o.command = command;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", o.out);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        make_dirs(dir);
    }
    cli_output_file("classifier", "--out", o.out, NULL); /* before minutes of training */
    return classifier_train(&o);
}
