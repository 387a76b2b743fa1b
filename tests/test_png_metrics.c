/* test_png_metrics.c: PNG grids (include/png_grid.h) and the metrics file (include/metrics.h).
 *
 * PNG: grids are written into a fresh temporary directory and read back with libpng's simplified
 * reader; the tests check the size formula, the value mapping (-1 -> 0, 0 -> 128, 1 -> 255,
 * clamping, NaN -> 0), the border colour, the placement of every pixel of one scaled cell, RGB
 * trajectory strips, and that failures return -1 with the path first and leave no temporary
 * file behind. Metrics: 300 steps (more than one buffer, so one automatic write) and 2 epochs
 * are read back exactly after close; a resume with keep_rows=100 drops the later rows; h5py in
 * a separate process reads the file while the writer still has it open (skipped when
 * /usr/bin/python3 has no h5py). Failures that call die() run in forked children whose status
 * and single stderr line are checked. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "death.h"
#include <png.h>

#include "metrics.h"
#include "png_grid.h"

static char g_dir[256];

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/png_metrics_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *e;
        char path[600];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
            if (rmdir(path) != 0) unlink(path);
        }
        closedir(d);
    }
    rmdir(g_dir);
    return 0;
}

static void in_dir(char *out, size_t len, const char *name) {
    snprintf(out, len, "%s/%s", g_dir, name);
}

/* Number of entries of g_dir whose name contains ".tmp." (left-over temporary files). */
static int temp_files_left(void) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) count += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return count;
}

/* Read a PNG as 8-bit grey or RGB; the caller frees the returned buffer. */
static unsigned char *read_png(const char *path, int rgb, int *width, int *height) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) fail_msg("%s: %s", path, img.message);
    /* The stored colour type must match what was asked for: no conversion on read. */
    assert_int_equal((img.format & PNG_FORMAT_FLAG_COLOR) != 0, rgb);
    assert_int_equal(img.format & PNG_FORMAT_FLAG_ALPHA, 0);
    img.format = rgb ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(buf);
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) fail_msg("%s: %s", path, img.message);
    *width = (int)img.width;
    *height = (int)img.height;
    return buf;
}

/* ---- PNG ---- */

static void test_grey_grid(void **state) {
    (void)state;
    enum { N = 3, H = 2, W = 3, COLS = 2, S = 2 };
    float images[N][H][W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            images[0][y][x] = -1.0f;
            images[1][y][x] = 1.0f;
        }
    /* Image 2: exact zero, clamping both ways, interior values, NaN. */
    const float third[H][W] = {{0.0f, -2.0f, 2.0f}, {0.5f, -0.5f, NAN}};
    const int third_bytes[H][W] = {{128, 0, 255}, {191, 64, 0}}; /* round((x+1)*127.5) */
    memcpy(images[2], third, sizeof third);

    char path[400], err[512] = "";
    in_dir(path, sizeof path, "grid.png");
    assert_int_equal(png_write_grid(path, &images[0][0][0], N, 1, H, W, COLS, S, err, sizeof err),
                     0);
    assert_int_equal(temp_files_left(), 0);

    int width, height;
    unsigned char *px = read_png(path, 0, &width, &height);
    /* 2 columns, ceil(3 / 2) = 2 rows; each cell W*S (H*S) plus the pad, and a leading pad. */
    assert_int_equal(width, PNG_GRID_PAD + COLS * (W * S + PNG_GRID_PAD));
    assert_int_equal(height, PNG_GRID_PAD + 2 * (H * S + PNG_GRID_PAD));
    assert_int_equal(width, 18);
    assert_int_equal(height, 14);
#define AT(x, y) px[(y) * width + (x)]
    /* Borders: corners, the gap between columns, the gap between rows. */
    assert_int_equal(AT(0, 0), PNG_GRID_BORDER);
    assert_int_equal(AT(17, 13), PNG_GRID_BORDER);
    assert_int_equal(AT(8, 3), PNG_GRID_BORDER);
    assert_int_equal(AT(9, 3), PNG_GRID_BORDER);
    assert_int_equal(AT(4, 6), PNG_GRID_BORDER);
    assert_int_equal(AT(4, 7), PNG_GRID_BORDER);
    /* Image 0 (all -1) at row 0, column 0; image 1 (all 1) at row 0, column 1. */
    for (int y = 2; y < 6; y++)
        for (int x = 2; x < 8; x++) {
            assert_int_equal(AT(x, y), 0);
            assert_int_equal(AT(x + 8, y), 255);
        }
    /* Image 2 at row 1, column 0: every output pixel is its source pixel, scaled by 2. */
    for (int y = 8; y < 12; y++)
        for (int x = 2; x < 8; x++)
            assert_int_equal(AT(x, y), third_bytes[(y - 8) / 2][(x - 2) / 2]);
    /* The cell after the last image is left in border colour. */
    for (int y = 8; y < 12; y++)
        for (int x = 10; x < 16; x++) assert_int_equal(AT(x, y), PNG_GRID_BORDER);
#undef AT
    free(px);
}

static void test_rgb_strip(void **state) {
    (void)state;
    /* [nrows=2, nframes=2, channels=3, h=1, w=1]. */
    const float frames[2][2][3] = {{{-1.0f, 0.0f, 1.0f}, {1.0f, -1.0f, 0.0f}},
                                   {{0.0f, 0.0f, 0.0f}, {0.25f, 5.0f, -5.0f}}};
    const int want[2][2][3] = {{{0, 128, 255}, {255, 0, 128}}, {{128, 128, 128}, {159, 255, 0}}};
    char path[400], err[512] = "";
    in_dir(path, sizeof path, "strip.png");
    /* Written twice: the second replaces the first through the rename. */
    for (int pass = 0; pass < 2; pass++)
        assert_int_equal(png_write_strip(path, &frames[0][0][0], 2, 2, 3, 1, 1, 3, err, sizeof err),
                         0);
    assert_int_equal(temp_files_left(), 0);
    int width, height;
    unsigned char *px = read_png(path, 1, &width, &height);
    assert_int_equal(width, PNG_GRID_PAD + 2 * (3 + PNG_GRID_PAD));
    assert_int_equal(height, PNG_GRID_PAD + 2 * (3 + PNG_GRID_PAD));
    for (int r = 0; r < 2; r++)
        for (int f = 0; f < 2; f++) {
            /* Check the centre and the last pixel of each 3x3 block. */
            for (int d = 1; d < 3; d++) {
                int x = PNG_GRID_PAD + f * 5 + d, y = PNG_GRID_PAD + r * 5 + d;
                for (int c = 0; c < 3; c++)
                    assert_int_equal(px[(y * width + x) * 3 + c], want[r][f][c]);
            }
        }
    for (int c = 0; c < 3; c++) {
        assert_int_equal(px[c], PNG_GRID_BORDER);                          /* (0, 0) */
        assert_int_equal(px[(2 * width + 5) * 3 + c], PNG_GRID_BORDER);    /* between frames */
        assert_int_equal(px[(5 * width + 2) * 3 + c], PNG_GRID_BORDER);    /* between rows */
    }
    free(px);
}

static void test_png_failures(void **state) {
    (void)state;
    const float img[4] = {0, 0, 0, 0};
    char path[400], err[512];

    /* A directory that does not exist: nothing can be created. */
    in_dir(path, sizeof path, "no_such_dir/x.png");
    err[0] = '\0';
    assert_int_equal(png_write_grid(path, img, 1, 1, 2, 2, 1, 1, err, sizeof err), -1);
    printf("  error: %s\n", err);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_int_equal(temp_files_left(), 0);

    /* The file is written but cannot replace a directory of that name: the temporary goes. */
    in_dir(path, sizeof path, "a_directory.png");
    assert_int_equal(mkdir(path, 0700), 0);
    err[0] = '\0';
    assert_int_equal(png_write_grid(path, img, 1, 1, 2, 2, 1, 1, err, sizeof err), -1);
    printf("  error: %s\n", err);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_int_equal(temp_files_left(), 0);

    /* Bad arguments. */
    in_dir(path, sizeof path, "bad.png");
    assert_int_equal(png_write_grid(path, img, 1, 2, 2, 2, 1, 1, err, sizeof err), -1);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_int_equal(png_write_grid(path, img, 1, 1, 2, 2, 1, 0, err, sizeof err), -1);
    assert_int_equal(png_write_strip(path, img, 0, 1, 1, 2, 2, 1, NULL, 0), -1);
    assert_int_equal(access(path, F_OK), -1);
}

/* png_grid_check refuses, before any images exist, the paths png_write_grid would fail on, and
 * leaves nothing behind either way. */
static void test_png_grid_check(void **state) {
    (void)state;
    char path[400], err[512];
    in_dir(path, sizeof path, "checked.png");
    assert_int_equal(png_grid_check(path, 10, 1, 28, 28, 5, 2, err, sizeof err), 0);
    assert_int_equal(access(path, F_OK), -1); /* checked, not written */
    assert_int_equal(temp_files_left(), 0);
    /* a temporary of this name and pid left by a killed process (a PID namespace): not a
     * reason to refuse, as the write itself would replace it */
    char stale[460];
    snprintf(stale, sizeof stale, "%s.tmp.%ld", path, (long)getpid());
    FILE *sf = fopen(stale, "w");
    assert_non_null(sf);
    fclose(sf);
    assert_int_equal(png_grid_check(path, 10, 1, 28, 28, 5, 2, err, sizeof err), 0);
    assert_int_equal(temp_files_left(), 0);

    in_dir(path, sizeof path, "no_such_dir/x.png");
    err[0] = '\0';
    assert_int_equal(png_grid_check(path, 10, 1, 28, 28, 5, 2, err, sizeof err), -1);
    printf("  error: %s\n", err);
    assert_non_null(strstr(err, "cannot create"));

    in_dir(path, sizeof path, "a_directory.png"); /* made by test_png_failures, or here */
    if (access(path, F_OK) != 0) assert_int_equal(mkdir(path, 0700), 0);
    err[0] = '\0';
    assert_int_equal(png_grid_check(path, 10, 1, 28, 28, 5, 2, err, sizeof err), -1);
    printf("  error: %s\n", err);
    assert_non_null(strstr(err, "is a directory"));

    assert_int_equal(png_grid_check("", 10, 1, 28, 28, 5, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "no path"));
    in_dir(path, sizeof path, "huge.png"); /* too large a grid: the size check still comes first */
    assert_int_equal(png_grid_check(path, 1000000, 1, 28, 28, 1, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "too large"));
    assert_int_equal(temp_files_left(), 0);
}

/* ---- metrics ---- */

static double loss_of(long i) { return 1.0 / (double)(i + 1); }

static void append_rows(Metrics *m, long first, long count) {
    for (long i = first; i < first + count; i++)
        metrics_append_step(m, i, loss_of(i), 1e-4 * (double)i, 0.5 * (double)i,
                            1000.0 + (double)i);
}

/* Read a whole 1-D dataset as long or double, asserting its length. */
static void read_column(hid_t f, const char *name, int is_long, void *out, long want_len) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t space = H5Dget_space(ds);
    hsize_t len = 0, maxlen = 0;
    assert_int_equal(H5Sget_simple_extent_ndims(space), 1);
    H5Sget_simple_extent_dims(space, &len, &maxlen);
    H5Sclose(space);
    assert_int_equal((long)len, want_len);
    assert_true(maxlen == H5S_UNLIMITED);
    hid_t dcpl = H5Dget_create_plist(ds);
    hsize_t chunk = 0;
    assert_int_equal(H5Pget_chunk(dcpl, 1, &chunk), 1);
    assert_int_equal((long)chunk, 1024);
    H5Pclose(dcpl);
    assert_int_equal(H5Aexists(ds, "description"), 1);
    if (len > 0)
        assert_true(H5Dread(ds, is_long ? H5T_NATIVE_LONG : H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                            H5P_DEFAULT, out) >= 0);
    H5Dclose(ds);
}

static void test_metrics_write_and_resume(void **state) {
    (void)state;
    char path[400];
    in_dir(path, sizeof path, "metrics.h5");
    Metrics m;
    metrics_open(&m, path, 0, 0);
    append_rows(&m, 0, 300);
    assert_int_equal(m.rows, 300);
    assert_int_equal(m.rows_written, METRICS_BUFFER); /* the buffer filled once */
    metrics_append_epoch(&m, 0, 0.5);
    metrics_append_epoch(&m, 1, 0.25);
    metrics_flush(&m);
    assert_int_equal(m.rows_written, 300);
    assert_int_equal(m.epoch_rows, 2);
    metrics_close(&m);

    static long steps[400];
    static double vals[400];
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    int version = 0;
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    assert_true(a >= 0 && H5Aread(a, H5T_NATIVE_INT, &version) >= 0);
    H5Aclose(a);
    assert_int_equal(version, 1);
    char *kind = NULL;
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Tset_cset(str, H5T_CSET_UTF8);
    a = H5Aopen(f, "kind", H5P_DEFAULT);
    assert_true(a >= 0 && H5Aread(a, str, &kind) >= 0);
    H5Aclose(a);
    H5Tclose(str);
    assert_string_equal(kind, "ddpm-metrics");
    H5free_memory(kind);
    read_column(f, "/step", 1, steps, 300);
    for (long i = 0; i < 300; i++) assert_int_equal(steps[i], i);
    read_column(f, "/loss", 0, vals, 300);
    for (long i = 0; i < 300; i++) assert_true(vals[i] == loss_of(i));
    read_column(f, "/lr", 0, vals, 300);
    assert_true(vals[299] == 1e-4 * 299.0);
    read_column(f, "/grad_norm", 0, vals, 300);
    assert_true(vals[7] == 3.5);
    read_column(f, "/images_per_s", 0, vals, 300);
    assert_true(vals[299] == 1299.0);
    read_column(f, "/epoch/epoch", 1, steps, 2);
    assert_true(steps[0] == 0 && steps[1] == 1);
    read_column(f, "/epoch/mean_loss", 0, vals, 2);
    assert_true(vals[0] == 0.5 && vals[1] == 0.25);
    H5Fclose(f);

    /* Resume from a checkpoint taken after 100 steps and 1 epoch. */
    metrics_open(&m, path, 100, 1);
    assert_int_equal(m.rows, 100);
    assert_int_equal(m.epoch_rows, 1);
    append_rows(&m, 1000, 5);
    metrics_append_epoch(&m, 7, 0.125);
    metrics_close(&m);

    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    read_column(f, "/step", 1, steps, 105);
    for (long i = 0; i < 100; i++) assert_int_equal(steps[i], i);
    for (long i = 0; i < 5; i++) assert_int_equal(steps[100 + i], 1000 + i);
    read_column(f, "/loss", 0, vals, 105);
    assert_true(vals[99] == loss_of(99) && vals[100] == loss_of(1000));
    read_column(f, "/images_per_s", 0, vals, 105);
    assert_true(vals[104] == 2004.0);
    read_column(f, "/epoch/epoch", 1, steps, 2);
    assert_true(steps[0] == 0 && steps[1] == 7);
    read_column(f, "/epoch/mean_loss", 0, vals, 2);
    assert_true(vals[0] == 0.5 && vals[1] == 0.125);
    H5Fclose(f);

    /* Resuming at step 50 (2 epochs) with no metrics file makes it again with the 50 lost rows
     * as step numbers and NaN values, so that row i stays step i + 1 for later resumes. */
    in_dir(path, sizeof path, "fresh.h5");
    metrics_open(&m, path, 50, 2);
    assert_int_equal(m.rows, 50);
    assert_int_equal(m.epoch_rows, 2);
    append_rows(&m, 51, 1);
    metrics_close(&m);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    read_column(f, "/step", 1, steps, 51);
    for (long i = 0; i < 51; i++) assert_int_equal(steps[i], i + 1);
    read_column(f, "/loss", 0, vals, 51);
    for (long i = 0; i < 50; i++) assert_true(isnan(vals[i]));
    assert_true(vals[50] == loss_of(51));
    read_column(f, "/epoch/epoch", 1, steps, 2);
    assert_true(steps[0] == 1 && steps[1] == 2);
    read_column(f, "/epoch/mean_loss", 0, vals, 2);
    assert_true(isnan(vals[0]) && isnan(vals[1]));
    H5Fclose(f);
    /* ... and a second resume, at step 51, keeps all 51 rows */
    metrics_open(&m, path, 51, 2);
    assert_int_equal(m.rows, 51);
    metrics_close(&m);
}

/* h5py in another process reads the file while this one still holds it open for writing. */
static const char *PY_CHECK =
    "import sys, h5py, numpy as np\n"
    "f = h5py.File(sys.argv[1], 'r')\n"
    "n = int(sys.argv[2])\n"
    "s = f['step'][:]\n"
    "assert s.dtype == np.int64 and (s == np.arange(n)).all(), s\n"
    "assert (f['loss'][:] == 1.0 / (np.arange(n) + 1)).all()\n"
    "assert f['loss'].dtype == np.float64 and f['loss'].maxshape == (None,)\n"
    "assert f['loss'].chunks == (1024,)\n"
    "assert list(f['epoch/epoch'][:]) == [0] and list(f['epoch/mean_loss'][:]) == [0.5]\n"
    "assert f.attrs['format_version'] == 1 and f.attrs['kind'] == 'ddpm-metrics'\n"
    "for k in ['step', 'loss', 'lr', 'grad_norm', 'images_per_s', 'epoch/epoch',\n"
    "          'epoch/mean_loss']:\n"
    "    d = f[k].attrs['description']\n"
    "    assert isinstance(d, str) and len(d) > 10, (k, d)\n"
    "print('  h5py read', n, 'rows from the open file')\n";

static void test_metrics_h5py_reader(void **state) {
    (void)state;
    /* make test installs python3-h5py: its absence is a failure, not a skip */
    if (system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0)
        fail_msg("/usr/bin/python3 cannot import h5py: run make deps");
    char path[400], script[400], cmd[1200];
    in_dir(path, sizeof path, "live.h5");
    in_dir(script, sizeof script, "check_metrics.py");
    FILE *fp = fopen(script, "w");
    assert_non_null(fp);
    fputs(PY_CHECK, fp);
    assert_int_equal(fclose(fp), 0);

    Metrics m;
    metrics_open(&m, path, 0, 0);
    append_rows(&m, 0, 10);
    metrics_append_epoch(&m, 0, 0.5);
    metrics_flush(&m);
    snprintf(cmd, sizeof cmd, "HDF5_USE_FILE_LOCKING=FALSE /usr/bin/python3 %s %s 10", script,
             path);
    assert_int_equal(system(cmd), 0);
    append_rows(&m, 10, 290); /* crosses one automatic write; 44 rows stay buffered */
    metrics_flush(&m);
    snprintf(cmd, sizeof cmd, "HDF5_USE_FILE_LOCKING=FALSE /usr/bin/python3 %s %s 300", script,
             path);
    assert_int_equal(system(cmd), 0);
    metrics_close(&m);
}

/* A resume whose checkpoint logged more rows than the file holds (lost in a crash before they
 * reached the disk): the missing rows come back as step numbers and NaN values, the rows the
 * file holds are kept as they were. */
static void test_metrics_rows_lost(void **state) {
    (void)state;
    char path[400];
    in_dir(path, sizeof path, "short.h5");
    Metrics m;
    metrics_open(&m, path, 0, 0);
    append_rows(&m, 0, 20);
    metrics_close(&m);
    metrics_open(&m, path, 25, 1);
    assert_int_equal(m.rows, 25);
    assert_int_equal(m.epoch_rows, 1);
    metrics_close(&m);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    long steps[25];
    double vals[25];
    read_column(f, "/step", 1, steps, 25);
    read_column(f, "/loss", 0, vals, 25);
    for (long i = 0; i < 20; i++) assert_true(steps[i] == i && vals[i] == loss_of(i));
    for (long i = 20; i < 25; i++) assert_true(steps[i] == i + 1 && isnan(vals[i]));
    read_column(f, "/epoch/epoch", 1, steps, 1);
    read_column(f, "/epoch/mean_loss", 0, vals, 1);
    assert_true(steps[0] == 1 && isnan(vals[0]));
    H5Fclose(f);
}

/* ---- metrics failures, each in a child process ---- */

typedef enum { NOT_HDF5, NO_DIRECTORY } Failure;

static void child(Failure what, const char *path) {
    Metrics m;
    switch (what) {
    case NOT_HDF5: metrics_open(&m, path, 10, 0); break;
    case NO_DIRECTORY: metrics_open(&m, path, 0, 0); break;
    }
    _exit(0); /* reached only if nothing died: the parent reports it */
}

typedef struct {
    Failure what;
    const char *path;
} FailureCase;

static void run_failure(const void *ctx) {
    const FailureCase *c = ctx;
    child(c->what, c->path);
}

/* Run a failure in a child; its stderr must be one line holding every needle, status 1. */
#define expect_death(what, path, ...) \
    expect_one_line_death(run_failure, &(FailureCase){(what), (path)}, __VA_ARGS__)

static void test_metrics_failures(void **state) {
    (void)state;
    char path[400];
    in_dir(path, sizeof path, "junk.h5");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not an HDF5 file\n", fp);
    fclose(fp);
    expect_death(NOT_HDF5, path, 2, path, "not an HDF5 file");

    in_dir(path, sizeof path, "no_such_dir/m.h5");
    expect_death(NO_DIRECTORY, path, 1, path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grey_grid),
        cmocka_unit_test(test_rgb_strip),
        cmocka_unit_test(test_png_failures),
        cmocka_unit_test(test_png_grid_check),
        cmocka_unit_test(test_metrics_write_and_resume),
        cmocka_unit_test(test_metrics_h5py_reader),
        cmocka_unit_test(test_metrics_rows_lost),
        cmocka_unit_test(test_metrics_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
