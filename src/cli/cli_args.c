/* cli_args.c: flag values shared by the subcommands' argument loops. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "util.h"

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die("%s: %s needs a value (try ddpm %s --help)", cmd, argv[*i], cmd);
    return argv[++*i];
}

int cli_unexpected(const char *cmd, const char *arg) {
    fprintf(stderr, "ddpm %s: unexpected argument '%s' (try ddpm %s --help)\n", cmd, arg, cmd);
    return 2;
}

long cli_int(const char *cmd, const char *flag, const char *v, long lo, long hi) {
    char *end;
    const long x = strtol(v, &end, 10);
    if (*v == 0 || *end || x < lo || x > hi)
        die("%s: %s %s: expected an integer %ld..%ld", cmd, flag, v, lo, hi);
    return x;
}

double cli_double(const char *cmd, const char *flag, const char *v, double lo, double hi) {
    char *end;
    const double x = strtod(v, &end);
    if (*v == 0 || *end || !(x >= lo && x <= hi))
        die("%s: %s %s: expected a number %g..%g", cmd, flag, v, lo, hi);
    return x;
}
