/* cli_args.c: flag values shared by the subcommands' argument loops. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die("%s: %s needs a value (try ddpm %s --help)", cmd, argv[*i], cmd);
    /* `--out --resume` is a forgotten value, not a directory named --resume */
    if (!strncmp(argv[*i + 1], "--", 2))
        die("%s: %s needs a value, not the flag %s (try ddpm %s --help)", cmd, argv[*i],
            argv[*i + 1], cmd);
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
    if (*v == 0 || *end || strpbrk(v, "xX") || !(x >= lo && x <= hi))
        die("%s: %s %s: expected a number %g..%g", cmd, flag, v, lo, hi);
    return x;
}

void cli_output_file(const char *cmd, const char *flag, const char *path,
                     const char *const *inputs) {
    if (!*path) die("%s: %s: an empty path", cmd, flag);
    if (strlen(path) + sizeof ".tmp" > 1100) die("%s: %s %s: path too long", cmd, flag, path);
    struct stat out, in;
    const int exists = stat(path, &out) == 0;
    if (exists && S_ISDIR(out.st_mode)) die("%s: %s %s: is a directory", cmd, flag, path);
    for (int i = 0; exists && inputs && inputs[i]; i++)
        if (stat(inputs[i], &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
            die("%s: %s %s is the same file as %s, which this command reads or writes: give "
                "another path", cmd, flag, path, inputs[i]);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    if (access(dir, W_OK) != 0)
        die("%s: %s %s: cannot write in %s: %s", cmd, flag, path, dir, strerror(errno));
}
