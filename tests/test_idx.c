/* test_idx.c: IDX reading and MNIST-like datasets (include/dataset.h).
 *
 * Fixtures are written into a fresh mkdtemp folder: a good split of 3 images (28x28) and 3
 * labels, raw and gzipped, which must load to identical bytes; then one broken file per failure
 * a user can cause (missing, empty, a directory, wrong magic, wrong type, wrong rank, short
 * header, zero or overflowing dimensions, short payload, trailing bytes, count mismatch, gzip cut
 * in the middle or at its end), each of which must return -1 with one line naming the path and
 * the problem. Last, the real MNIST in data/mnist (or $DDPM_MNIST_DIR): missing is a failure,
 * not a skip, since `make test` fetches it with `make data`. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "death.h"

#include "dataset.h"
#include "util.h"

#define N_IMG 3
#define SIDE 28
#define NPIX (N_IMG * SIDE * SIDE)

static char g_dir[256];
static uint8_t g_pixels[NPIX];
static const uint8_t g_labels[N_IMG] = {5, 0, 9};

/* ---- fixture writing ---- */

static const char *at(const char *name) {
    static char buf[4][512];
    static int next = 0;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

/* An IDX image: 00 00 type rank, big-endian dims, then len payload bytes. Caller frees. */
static uint8_t *idx_bytes(size_t *out_len, int type, int rank, const uint32_t *dims,
                          const uint8_t *payload, size_t len) {
    size_t head = 4 + 4 * (size_t)rank;
    uint8_t *b = malloc(head + len + 1);
    assert_non_null(b);
    b[0] = 0, b[1] = 0, b[2] = (uint8_t)type, b[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        uint8_t *d = b + 4 + 4 * i;
        d[0] = (uint8_t)(dims[i] >> 24), d[1] = (uint8_t)(dims[i] >> 16);
        d[2] = (uint8_t)(dims[i] >> 8), d[3] = (uint8_t)dims[i];
    }
    if (len) memcpy(b + head, payload, len);
    *out_len = head + len;
    return b;
}

static void write_raw(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const uint8_t *b, size_t len) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, b, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
}

static void write_images(const char *path, int gz, int count, size_t payload_len) {
    size_t len;
    uint8_t *b = idx_bytes(&len, 0x08, 3, (uint32_t[]){(uint32_t)count, SIDE, SIDE}, g_pixels,
                           payload_len);
    (gz ? write_gz : write_raw)(path, b, len);
    free(b);
}

static void write_labels(const char *path, int gz, int count) {
    size_t len;
    uint8_t *b = idx_bytes(&len, 0x08, 1, (uint32_t[]){(uint32_t)count}, g_labels, (size_t)count);
    (gz ? write_gz : write_raw)(path, b, len);
    free(b);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/idx_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    for (int i = 0; i < NPIX; i++) g_pixels[i] = (uint8_t)(i * 7 + i / 784 * 13);
    g_pixels[0] = 0, g_pixels[1] = 255, g_pixels[2] = 51;
    if (mkdir(at("raw"), 0755) || mkdir(at("gz"), 0755) || mkdir(at("mismatch"), 0755)) return -1;
    write_images(at("raw/train-images-idx3-ubyte"), 0, N_IMG, NPIX);
    write_labels(at("raw/train-labels-idx1-ubyte"), 0, N_IMG);
    write_images(at("gz/train-images-idx3-ubyte.gz"), 1, N_IMG, NPIX);
    write_labels(at("gz/train-labels-idx1-ubyte.gz"), 1, N_IMG);
    write_images(at("mismatch/t10k-images-idx3-ubyte"), 0, N_IMG, NPIX);
    write_labels(at("mismatch/t10k-labels-idx1-ubyte"), 0, N_IMG - 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rm_tree(g_dir);
    return 0;
}

/* ---- good files ---- */

static void check_fixture(const Dataset *d) {
    assert_int_equal(d->count, N_IMG);
    assert_int_equal(d->rows, SIDE);
    assert_int_equal(d->cols, SIDE);
    assert_memory_equal(d->pixels, g_pixels, NPIX);
    assert_memory_equal(d->labels, g_labels, N_IMG);
}

static void test_good_raw(void **state) {
    (void)state;
    char err[256] = "";
    int dims[3];
    uint8_t *data;
    assert_int_equal(idx_read(at("raw/train-images-idx3-ubyte"), 3, dims, &data, err, sizeof err),
                     0);
    assert_true(dims[0] == N_IMG && dims[1] == SIDE && dims[2] == SIDE);
    assert_memory_equal(data, g_pixels, NPIX);
    free(data);
    assert_int_equal(idx_read(at("raw/train-labels-idx1-ubyte"), 1, dims, &data, err, sizeof err),
                     0);
    assert_true(dims[0] == N_IMG && dims[1] == 0 && dims[2] == 0);
    free(data);

    Dataset d;
    assert_int_equal(dataset_open(&d, at("raw"), "train", err, sizeof err), 0);
    check_fixture(&d);
    dataset_free(&d);
    assert_null(d.pixels);
}

static void test_good_gzip(void **state) {
    (void)state;
    char err[256] = "";
    Dataset d;
    if (dataset_open(&d, at("gz"), "train", err, sizeof err) != 0) fail_msg("%s", err);
    check_fixture(&d);
    dataset_free(&d);
    /* gzip is told by its magic, not its name. */
    write_images(at("gzip-under-plain-name"), 1, N_IMG, NPIX);
    int dims[3];
    uint8_t *data;
    assert_int_equal(idx_read(at("gzip-under-plain-name"), 3, dims, &data, err, sizeof err), 0);
    assert_memory_equal(data, g_pixels, NPIX);
    free(data);
}

static void test_to_float(void **state) {
    (void)state;
    Dataset d;
    dataset_load_or_die(&d, at("raw"), "train");
    float out[2 * SIDE * SIDE];
    dataset_images_to_float(out, &d, (int[]){2, 0}, 2);
    const float *img0 = out + SIDE * SIDE;
    assert_true(img0[0] == -1.0f && img0[1] == 1.0f);
    assert_float_equal(img0[2], 51.0f / 127.5f - 1.0f, 0.0f); /* -0.6 */
    for (int p = 0; p < SIDE * SIDE; p++) {
        assert_float_equal(out[p], g_pixels[2 * SIDE * SIDE + p] / 127.5 - 1.0, 1e-6);
        assert_true(out[p] >= -1.0f && out[p] <= 1.0f);
    }
    dataset_free(&d);
}

/* ---- broken files: -1, data NULL, one line with the path and every needle ---- */

static void expect_idx_error(const char *path, int rank, int nneedles, ...) {
    char err[512] = "";
    int dims[3] = {7, 7, 7};
    uint8_t *data = (uint8_t *)1;
    assert_int_equal(idx_read(path, rank, dims, &data, err, sizeof err), -1);
    printf("  idx_read said: %s\n", err);
    assert_null(data);
    assert_true(dims[0] == 0 && dims[1] == 0 && dims[2] == 0);
    assert_null(strchr(err, '\n'));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    va_list ap;
    va_start(ap, nneedles);
    for (int i = 0; i < nneedles; i++) {
        const char *needle = va_arg(ap, const char *);
        if (!strstr(err, needle)) fail_msg("message lacks \"%s\"", needle);
    }
    va_end(ap);
}

static void test_missing_empty_dir(void **state) {
    (void)state;
    expect_idx_error(at("absent"), 3, 2, "cannot open", "No such file");
    write_raw(at("empty"), (const uint8_t *)"", 0);
    expect_idx_error(at("empty"), 3, 1, "empty file");
    assert_int_equal(mkdir(at("a-directory"), 0755), 0);
    expect_idx_error(at("a-directory"), 3, 1, "is a directory");
}

static void test_bad_header(void **state) {
    (void)state;
    write_raw(at("pgm"), (const uint8_t *)"P5\n28 28\n255\n", 13);
    expect_idx_error(at("pgm"), 3, 2, "not an IDX file", "50 35 0a 32");
    size_t len;
    uint8_t *b = idx_bytes(&len, 0x0D, 3, (uint32_t[]){N_IMG, SIDE, SIDE}, g_pixels, NPIX);
    write_raw(at("floats"), b, len);
    free(b);
    expect_idx_error(at("floats"), 3, 2, "data type 0x0d", "unsigned byte");
    expect_idx_error(at("raw/train-labels-idx1-ubyte"), 3, 2, "rank 1, expected 3", "images");
    expect_idx_error(at("raw/train-images-idx3-ubyte"), 1, 2, "rank 3, expected 1", "labels");
    write_raw(at("short-header"), (const uint8_t[]){0, 0, 8, 3, 0, 0, 0, 3, 0, 0}, 10);
    expect_idx_error(at("short-header"), 3, 2, "truncated header", "needs 16 bytes, file has 10");
    write_raw(at("tiny"), (const uint8_t[]){0, 0}, 2);
    expect_idx_error(at("tiny"), 3, 1, "too short for an IDX header");
    b = idx_bytes(&len, 0x08, 3, (uint32_t[]){N_IMG, 0, SIDE}, g_pixels, 0);
    write_raw(at("zero-dim"), b, len);
    free(b);
    expect_idx_error(at("zero-dim"), 3, 1, "dimension 1 is 0");
    b = idx_bytes(&len, 0x08, 3, (uint32_t[]){0x7fffffff, 0x7fffffff, 0x7fffffff}, g_pixels, 0);
    write_raw(at("overflow"), b, len);
    free(b);
    expect_idx_error(at("overflow"), 3, 1, "dimensions overflow");
    b = idx_bytes(&len, 0x08, 1, (uint32_t[]){0x80000000u}, g_pixels, 0);
    write_raw(at("huge-dim"), b, len);
    free(b);
    expect_idx_error(at("huge-dim"), 1, 1, "dimension 0 is 2147483648");
}

static void test_bad_payload(void **state) {
    (void)state;
    write_images(at("short"), 0, N_IMG, 1000);
    expect_idx_error(at("short"), 3, 1,
                     "truncated: header says 2352 bytes of pixels, file has 1000");
    write_images(at("short.gz"), 1, N_IMG, 1000);
    expect_idx_error(at("short.gz"), 3, 1,
                     "truncated: header says 2352 bytes of pixels, file has 1000");
    /* A gzip header that claims 100 GB over a small stream: an error, not a 100 GB malloc. */
    size_t len;
    uint8_t *b = idx_bytes(&len, 0x08, 3, (uint32_t[]){100000, 1000, 1000}, g_pixels, NPIX);
    write_gz(at("liar.gz"), b, len);
    free(b);
    expect_idx_error(at("liar.gz"), 3, 1, "header says 100000000000 bytes of pixels, file has 2352");

    b = idx_bytes(&len, 0x08, 1, (uint32_t[]){N_IMG}, (const uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8}, 8);
    write_raw(at("trailing"), b, len);
    write_gz(at("trailing.gz"), b, len);
    free(b);
    expect_idx_error(at("trailing"), 1, 2, "5 trailing bytes", "3 bytes of labels");
    expect_idx_error(at("trailing.gz"), 1, 2, "5 trailing bytes", "3 bytes of labels");
}

static void test_gzip_cut(void **state) {
    (void)state;
    const char *path = at("cut.gz");
    write_images(path, 1, N_IMG, NPIX);
    long full = file_size(path);
    assert_int_equal(truncate(path, full / 2), 0);
    expect_idx_error(path, 3, 2, "gzip stream cut short or corrupt", "unexpected end of file");
    /* Only the 8-byte trailer (CRC, length) missing: every pixel arrives, still an error. */
    write_images(path, 1, N_IMG, NPIX);
    assert_int_equal(truncate(path, full - 8), 0);
    expect_idx_error(path, 3, 1, "gzip stream cut short or corrupt");
}

static void test_dataset_errors(void **state) {
    (void)state;
    char err[1024] = "", ipath[512], lpath[512];
    Dataset d;
    snprintf(ipath, sizeof ipath, "%s", at("mismatch/t10k-images-idx3-ubyte"));
    snprintf(lpath, sizeof lpath, "%s", at("mismatch/t10k-labels-idx1-ubyte"));
    assert_int_equal(dataset_open(&d, at("mismatch"), "t10k", err, sizeof err), -1);
    printf("  dataset_open said: %s\n", err);
    assert_null(d.pixels);
    assert_non_null(strstr(err, ipath));
    assert_non_null(strstr(err, lpath));
    assert_non_null(strstr(err, "3 images"));
    assert_non_null(strstr(err, "2 labels"));

    assert_int_equal(dataset_open(&d, at("raw"), "t10k", err, sizeof err), -1);
    printf("  dataset_open said: %s\n", err);
    assert_non_null(strstr(err, at("raw/t10k-images-idx3-ubyte")));
    assert_non_null(strstr(err, "not found"));
    assert_non_null(strstr(err, ".gz"));
    assert_non_null(strstr(err, "make data"));
}

static void load_mismatch(const void *ctx) {
    (void)ctx;
    Dataset d;
    dataset_load_or_die(&d, at("mismatch"), "t10k");
}

/* dataset_load_or_die on a bad folder: exit status 1, one line on stderr naming the file. */
static void test_load_or_die(void **state) {
    (void)state;
    expect_one_line_death(load_mismatch, NULL, 1, "t10k-images-idx3-ubyte");
}

/* ---- the real MNIST ---- */

static const char *mnist_dir(void) {
    const char *dir = getenv("DDPM_MNIST_DIR");
    return dir && *dir ? dir : "data/mnist";
}

static void load_mnist(Dataset *d, const char *split) {
    char err[1024];
    if (dataset_open(d, mnist_dir(), split, err, sizeof err) != 0)
        fail_msg("%s\n(MNIST is needed here: run `make data` from the repository root)", err);
}

static void check_label_counts(const Dataset *d, const int *want) {
    int seen[256] = {0};
    for (int i = 0; i < d->count; i++) seen[d->labels[i]]++;
    for (int c = 0; c < 10; c++) assert_int_equal(seen[c], want[c]);
    for (int c = 10; c < 256; c++) assert_int_equal(seen[c], 0);
}

static void test_mnist_train(void **state) {
    (void)state;
    Dataset d;
    load_mnist(&d, "train");
    assert_int_equal(d.count, 60000);
    assert_int_equal(d.rows, 28);
    assert_int_equal(d.cols, 28);
    assert_int_equal(d.labels[0], 5);
    check_label_counts(&d, (const int[]){5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                         5949});
    float img[28 * 28];
    dataset_images_to_float(img, &d, (int[]){0}, 1);
    float lo = img[0], hi = img[0];
    for (int p = 0; p < 28 * 28; p++) {
        lo = img[p] < lo ? img[p] : lo;
        hi = img[p] > hi ? img[p] : hi;
    }
    assert_true(lo == -1.0f);
    assert_true(hi == 1.0f);
    dataset_free(&d);
}

static void test_mnist_test(void **state) {
    (void)state;
    Dataset d;
    load_mnist(&d, "t10k");
    assert_int_equal(d.count, 10000);
    assert_int_equal(d.rows, 28);
    assert_int_equal(d.cols, 28);
    assert_int_equal(d.labels[0], 7);
    check_label_counts(&d, (const int[]){980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
    dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_raw),       cmocka_unit_test(test_good_gzip),
        cmocka_unit_test(test_to_float),       cmocka_unit_test(test_missing_empty_dir),
        cmocka_unit_test(test_bad_header),     cmocka_unit_test(test_bad_payload),
        cmocka_unit_test(test_gzip_cut),       cmocka_unit_test(test_dataset_errors),
        cmocka_unit_test(test_load_or_die),    cmocka_unit_test(test_mnist_train),
        cmocka_unit_test(test_mnist_test),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
