/* dataset.c: an image split (images + labels IDX files, raw or .gz) and its float conversion. */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define PATH_LEN 4096

/* DIR/SPLIT-KIND-ubyte if it exists (whatever it is: idx_read judges it), else the same with
 * .gz, else an error naming the plain name. */
static int find_file(char *path, const char *dir, const char *split, const char *kind, char *err,
                     size_t errlen) {
    struct stat st;
    int n = snprintf(path, PATH_LEN, "%s/%s-%s-ubyte", dir, split, kind);
    if (n < 0 || n + 3 >= PATH_LEN) {
        if (err && errlen) snprintf(err, errlen, "%s: data folder path too long", dir);
        return -1;
    }
    if (stat(path, &st) == 0) return 0;
    if (errno != ENOENT) return 0; /* e.g. permission denied: let idx_read report it */
    strcat(path, ".gz");
    if (stat(path, &st) == 0) return 0;
    path[n] = '\0';
    if (err && errlen)
        snprintf(err, errlen,
                 "%s: not found (nor %s-%s-ubyte.gz); fetch MNIST with `make data`, or point "
                 "[data] dir (classifier: --data; eval: --ref) at a folder holding the IDX files",
                 path, split, kind);
    return -1;
}

int dataset_open(Dataset *d, const char *dir, const char *split, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    if (!dir || !*dir) dir = ".";
    char ipath[PATH_LEN], lpath[PATH_LEN];
    int idims[3], ldims[3];
    uint8_t *pixels = NULL, *labels = NULL;
    if (find_file(ipath, dir, split, "images-idx3", err, errlen) != 0) return -1;
    if (find_file(lpath, dir, split, "labels-idx1", err, errlen) != 0) return -1;
    if (idx_read(ipath, 3, idims, &pixels, err, errlen) != 0) return -1;
    if (idx_read(lpath, 1, ldims, &labels, err, errlen) != 0) {
        free(pixels);
        return -1;
    }
    if (idims[0] != ldims[0]) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %d images, but %s has %d labels", ipath, idims[0], lpath,
                     ldims[0]);
        free(pixels);
        free(labels);
        return -1;
    }
    d->count = idims[0];
    d->rows = idims[1];
    d->cols = idims[2];
    d->pixels = pixels;
    d->labels = labels;
    return 0;
}

void dataset_load_or_die(Dataset *d, const char *dir, const char *split) {
    char err[2 * PATH_LEN + 512]; /* room for two paths: -Wformat-truncation stays quiet */
    if (dataset_open(d, dir, split, err, sizeof err) != 0) die("%s", err);
}

void dataset_free(Dataset *d) {
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

void dataset_images_to_float(float *out, const Dataset *d, const int *indices, int n) {
    size_t hw = (size_t)d->rows * (size_t)d->cols;
    for (int i = 0; i < n; i++) {
        int k = indices[i];
        if (k < 0 || k >= d->count)
            die("dataset_images_to_float: index %d outside the %d images", k, d->count);
        const uint8_t *src = d->pixels + (size_t)k * hw;
        float *dst = out + (size_t)i * hw;
        for (size_t p = 0; p < hw; p++) dst[p] = (float)src[p] / 127.5f - 1.0f;
    }
}
