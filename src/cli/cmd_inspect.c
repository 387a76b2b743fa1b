/* cmd_inspect.c: `ddpm inspect FILE.h5`: what an HDF5 file of ours (or anyone's) holds. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "util.h"

static herr_t print_attr(hid_t obj, const char *name, const H5A_info_t *info, void *indent_p) {
    (void)info;
    const char *indent = indent_p;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    H5T_class_t cls = H5Tget_class(type);
    int scalar = H5Sget_simple_extent_npoints(space) == 1;
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(a);
    long long iv;
    double dv;
    char *sv;
    if (scalar && cls == H5T_INTEGER && h5a_read_long(obj, name, &iv)) {
        printf("%s@%s = %lld\n", indent, name, iv);
    } else if (scalar && cls == H5T_FLOAT && h5a_read_double(obj, name, &dv)) {
        printf("%s@%s = %.9g\n", indent, name, dv);
    } else if (cls == H5T_STRING && (sv = h5a_read_string(obj, name))) {
        if (strchr(sv, '\n')) { /* multi-line text (the config): indent every line */
            printf("%s@%s =\n", indent, name);
            for (char *save = NULL, *line = strtok_r(sv, "\n", &save); line;
                 line = strtok_r(NULL, "\n", &save))
                printf("%s    %s\n", indent, line);
        } else {
            printf("%s@%s = \"%s\"\n", indent, name, sv);
        }
        free(sv);
    } else {
        printf("%s@%s (not a scalar number or string)\n", indent, name);
    }
    return 0;
}

typedef struct {
    int verbose;
    long datasets;
    long long floats;
} VisitCtx;

static herr_t visit(hid_t root, const char *name, const H5O_info_t *info, void *user) {
    VisitCtx *ctx = user;
    if (info->type != H5O_TYPE_DATASET) return 0;
    /* any file (h5py's too): any rank HDF5 allows, a null dataspace, never a stop in here */
    hsize_t dims[H5S_MAX_RANK];
    long long n = 1;
    hid_t d = H5Dopen2(root, name, H5P_DEFAULT);
    if (d < 0) return 0;
    hid_t space = H5Dget_space(d);
    const int nd = space >= 0 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
    const int null = space >= 0 && H5Sget_simple_extent_type(space) == H5S_NULL;
    if (space >= 0) H5Sclose(space);
    for (int i = 0; i < nd; i++) n *= (long long)dims[i];
    ctx->datasets++;
    ctx->floats += nd < 0 || null ? 0 : n;
    if (!ctx->verbose && strchr(name, '/') && strncmp(name, "epoch/", 6)) {
        H5Dclose(d);
        return 0;
    }
    char shape[160] = "[";
    for (int i = 0; i < nd && strlen(shape) < sizeof shape - 24; i++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", i ? ", " : "",
                 (unsigned long long)dims[i]);
    strcat(shape, "]");
    printf("  /%-39s %s\n", name, nd < 0 ? "(unreadable shape)" : null ? "(no values)" : shape);
    H5Aiterate2(d, H5_INDEX_NAME, H5_ITER_INC, NULL, print_attr, "      ");
    H5Dclose(d);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: ddpm inspect FILE.h5 [--all]\n\n"
                   "Print what a checkpoint, samples or metrics file holds: its attributes\n"
                   "(kind, format_version, step, config, ...) and its datasets with shapes.\n"
                   "Tensors inside groups (/params, /ema, /adam) are counted; --all lists them.\n");
            return 0;
        } else if (!strcmp(argv[i], "--all")) {
            verbose = 1;
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            return cli_unexpected("inspect", argv[i]);
        }
    }
    if (!path) die("inspect: FILE.h5 is required (try ddpm inspect --help)");
    hid_t f = h5t_open_read(path);
    printf("%s\n", path);
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, NULL, print_attr, "  ");
    VisitCtx ctx = {verbose, 0, 0};
    printf("datasets:\n");
    H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, visit, &ctx);
    const char *groups[] = {"/params", "/ema", "/adam/m", "/adam/v"};
    for (size_t g = 0; g < ARRAY_LEN(groups); g++) {
        if (!h5t_exists(f, groups[g])) continue;
        hid_t grp = H5Gopen2(f, groups[g], H5P_DEFAULT); /* not a group in a foreign file */
        if (grp < 0) continue;
        H5G_info_t gi;
        const herr_t rc = H5Gget_info(grp, &gi);
        H5Gclose(grp);
        if (rc < 0) continue;
        printf("  %-40s %llu tensors\n", groups[g], (unsigned long long)gi.nlinks);
    }
    printf("%ld datasets, %lld values in all\n", ctx.datasets, ctx.floats);
    h5t_close(f);
    return 0;
}
