/* main.c: `ddpm <command>`: dispatch to the subcommands. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist.h"
#include "stop_signal.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ddpm <command> [options]\n"
            "\n"
            "commands:\n"
            "  train     train the noise-prediction U-Net on MNIST-like IDX images\n"
            "  sample    generate images from a checkpoint (DDPM, DDIM or DPM-Solver++(2M))\n"
            "  model     print the U-Net of a config: parameters, FLOPs, per-layer table\n"
            "  inspect   show what an HDF5 file of ours holds (attributes, datasets)\n"
            "  export    weights-only copy of a checkpoint (params + EMA) for sampling\n"
            "  noise-strip  picture of the forward (noising) process on real digits\n"
            "  classifier   train the MNIST classifier that scores samples\n"
            "  eval      FID, class histogram and confidence of samples (or real images)\n"
            "  predict   one network evaluation: the noise predicted for given x_t and t\n"
            "\n"
            "  ddpm <command> --help   options of one command\n"
            "  ddpm --version          version\n");
}

/* Commands other than train, sample and eval run as one process: several processes of one launch
 * (mpirun -np P, srun -n P) would each do the whole job into the same files. */
static void refuse_parallel_launch(const char *cmd) {
    /* SLURM_STEP_NUM_TASKS: the tasks of this srun step; a batch script's shell, one process,
     * sees only the allocation's SLURM_NTASKS */
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) {
            fprintf(stderr,
                    "ddpm %s: launched as %s processes (%s): only train, sample and eval run over "
                    "several MPI ranks; start `ddpm %s` as one process (srun -n 1, or without "
                    "mpirun)\n", cmd, v, vars[i], cmd);
            exit(2);
        }
    }
}

/* 1 when a command's arguments ask for its --help (it then only prints it). */
static int asks_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* train, sample and eval: MPI (when launched by mpirun/srun), threads per rank, then the command.
 * Asked for --help, the command only prints it: no MPI, and no refusal of the launch. */
static int run_distributed(int (*command)(int, char **), int argc, char **argv) {
    if (asks_help(argc, argv)) return command(argc, argv);
    dist_init(&argc, &argv, argv[0]);
    const int status = command(argc, argv);
    dist_finalize();
    return status;
}

int main(int argc, char **argv) {
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
    if (!strcmp(cmd, "train")) {
        /* from the very start: a Slurm job's early USR1 (or a Ctrl-C during start-up) must
         * stop the run at its first step boundary with a checkpoint, not kill it */
        stop_signal_install();
        return run_distributed(cmd_train, argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "sample")) {
        stop_signal_install(); /* as for train: an early USR1 stops it with its progress kept */
        return run_distributed(cmd_sample, argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "eval")) {
        /* USR1 is the batch scripts' "save your progress and stop" (jobs/lib.sh passes a time
         * limit's warning or a preemption's TERM on as USR1). eval has no progress to save and
         * takes minutes, so it finishes instead of dying of USR1's default action; TERM and
         * Ctrl-C still end it. */
        signal(SIGUSR1, SIG_IGN);
        return run_distributed(cmd_eval, argc - 1, argv + 1);
    }
    if (!asks_help(argc - 1, argv + 1)) refuse_parallel_launch(cmd); /* --help always prints */
    if (!strcmp(cmd, "model")) return cmd_model(argc - 1, argv + 1);
    if (!strcmp(cmd, "classifier")) return cmd_classifier(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "noise-strip")) return cmd_noise_strip(argc - 1, argv + 1);
    fprintf(stderr, "ddpm: unknown command '%s' (try 'ddpm --help')\n", cmd);
    return 2;
}
