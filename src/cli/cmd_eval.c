/* cmd_eval.c: `ddpm eval --samples FILE.h5 | --real SPLIT [options]` */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "evaluate.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm eval (--samples FILE.h5 | --real train|t10k [--noise S]) [options]\n"
            "\n"
            "Score images with the MNIST classifier: FID against the 10,000 MNIST test images\n"
            "(the classifier's 128 penultimate features), the predicted-class histogram and its\n"
            "entropy, the mean top probability, an Inception-score analogue, and precision and\n"
            "recall: the fraction of the images inside the feature manifold of as many test\n"
            "images (at most 10,000 of each, spread evenly over both sets) and of those test\n"
            "images inside the images' manifold (balls reaching each point's 3rd nearest\n"
            "neighbour). FID and the others depend on N: compare numbers of the same N.\n"
            "Images must be scaled to [-1, 1] (8-bit pixels p: p / 127.5 - 1); images with\n"
            "values outside it, NaN or infinite values are refused.\n"
            "\n"
            "  --samples FILE.h5  generated images (/samples [N,1,28,28] from ddpm sample); with\n"
            "                     /labels (class-conditional samples) also the fraction classified\n"
            "                     as the class asked for and the FID of each class against the\n"
            "                     test images of that class\n"
            "  --real SPLIT       real images instead (train: the floor a perfect model reaches)\n"
            "  --noise S          with --real: add Gaussian noise of standard deviation S\n"
            "  --n N              score the first N images (default 10000); of samples with\n"
            "                     /labels (--class, --classes) N spread evenly over the file\n"
            "  --classifier F     classifier file (default results/classifier/mnist-classifier.h5)\n"
            "  --ref DIR          MNIST IDX folder with the t10k reference (default data/mnist)\n"
            "  --out FILE.json    also write the numbers as JSON\n"
            "Runs over MPI ranks too (mpirun -np P ddpm eval ...).\n");
}

int cmd_eval(int argc, char **argv) {
    EvalOptions o = {.classifier = "results/classifier/mnist-classifier.h5",
                     .ref_dir = "data/mnist", .n = 10000};
    /* the value after the flag at argv[i]; advances i (only for known flags) */
#define TAKE_VALUE() cli_value("eval", argc, argv, &i)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--samples")) o.samples = TAKE_VALUE();
        else if (!strcmp(a, "--real")) o.real_split = TAKE_VALUE();
        else if (!strcmp(a, "--classifier")) o.classifier = TAKE_VALUE();
        else if (!strcmp(a, "--ref")) o.ref_dir = TAKE_VALUE();
        else if (!strcmp(a, "--out")) o.out_json = TAKE_VALUE();
        else if (!strcmp(a, "--n")) o.n = cli_int("eval", a, TAKE_VALUE(), 2, 100000000);
        else if (!strcmp(a, "--noise")) o.noise = cli_double("eval", a, TAKE_VALUE(), 0, 100);
        else {
            return cli_unexpected("eval", a);
        }
    }
#undef TAKE_VALUE
    if (!o.samples == !o.real_split) die("eval: give exactly one of --samples FILE.h5 and --real SPLIT");
    if (o.real_split && strcmp(o.real_split, "train") && strcmp(o.real_split, "t10k"))
        die("eval: --real %s: expected train or t10k", o.real_split);
    if (o.noise > 0 && !o.real_split) die("eval: --noise applies to --real images only");
    return evaluate(&o);
}
