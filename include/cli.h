/* cli.h: the subcommands of bin/ddpm, one file each under src/cli/. */
#ifndef DDPM_CLI_H
#define DDPM_CLI_H

#define DDPM_VERSION "0.1.0"

int cmd_model(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_noise_strip(int argc, char **argv);
int cmd_classifier(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* The value after flag argv[*i] (advancing *i past it), or die "CMD: FLAG needs a value (try ddpm
 * CMD --help)". Call it only once the flag is known, so that a mistyped flag is reported as one. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* Print "ddpm CMD: unexpected argument 'ARG' (try ddpm CMD --help)" and return the usage exit status, 2. */
int cli_unexpected(const char *cmd, const char *arg);
/* The integer value v of flag (lo..hi), or die "CMD: FLAG V: expected an integer LO..HI". */
long cli_int(const char *cmd, const char *flag, const char *v, long lo, long hi);
/* The number v of flag (lo..hi, NaN refused), or die "CMD: FLAG V: expected a number LO..HI". */
double cli_double(const char *cmd, const char *flag, const char *v, double lo, double hi);

/* Before any work: die "CMD: FLAG PATH: ..." unless PATH can take a new output file: not empty,
 * not a directory, in a writable directory that exists, short enough for its PATH.tmp, and not
 * the same file as any of `inputs` (NULL-terminated; the command's other files, which writing
 * PATH would replace). */
void cli_output_file(const char *cmd, const char *flag, const char *path,
                     const char *const *inputs);

#endif
