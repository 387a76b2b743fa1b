/* main.c: `ddpm <command>`: dispatch to the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm <command> [options]\n"
            "\n"
            "commands:\n"
            "  train     train the noise-prediction U-Net on MNIST-like IDX images\n"
            "  sample    generate images from a checkpoint (DDPM or DDIM)\n"
            "  model     print the U-Net of a config: parameters, FLOPs, per-layer table\n"
            "  inspect   show what an HDF5 file of ours holds (attributes, datasets)\n"
            "  export    weights-only copy of a checkpoint (params + EMA) for sampling\n"
            "  noise-strip  picture of the forward (noising) process on real digits\n"
            "\n"
            "  ddpm <command> --help   options of one command\n"
            "  ddpm --version          version\n");
}

/* Several processes of one launch (mpirun -np P, srun -n P) would each run the whole job into
 * the same files: refuse until MPI data parallelism exists. */
static void refuse_parallel_launch(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) {
            fprintf(stderr,
                    "ddpm: launched as %s processes (%s): this ddpm runs as one process with "
                    "OpenMP threads; MPI training is not implemented yet. Start one task with "
                    "all its cores (e.g. srun -n 1 -c N, OMP_NUM_THREADS=N)\n",
                    v, vars[i]);
            exit(2);
        }
    }
}

int main(int argc, char **argv) {
    refuse_parallel_launch();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("ddpm %s\n", DDPM_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "model")) return cmd_model(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "sample")) return cmd_sample(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "noise-strip")) return cmd_noise_strip(argc - 1, argv + 1);
    fprintf(stderr, "ddpm: unknown command '%s' (try 'ddpm --help')\n", cmd);
    return 2;
}
