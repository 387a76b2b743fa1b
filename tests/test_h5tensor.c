/* test_h5tensor.c: the HDF5 tensor helper (include/h5tensor.h).
 *
 * Round trips of float and int tensors through nested paths, existence and shape queries on
 * present, absent and half-present paths, type conversion on read, and the failures a user can
 * cause (missing file, a file that is not HDF5, a missing dataset, a shape mismatch). Failures
 * call die(), so each is run in a forked child whose exit status and stderr line are checked:
 * status 1, one line naming the file and (where there is one) the dataset and both shapes.
 * Files are opened in the children only, never shared open across a fork. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "death.h"

#include "h5tensor.h"
#include "util.h"

static char g_dir[256];
static char g_file[320]; /* written by the group setup, read by the tests */

static const float F23[6] = {0.5f, -1.25f, 3.0f, 1e-7f, -0.0f, 42.0f};
static const int I4[4] = {0, 137, -299, 2147483647};

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/h5tensor_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_file, sizeof g_file, "%s/t.h5", g_dir);
    hid_t f = h5t_create(g_file);
    h5t_write_f32(f, "/a/b/c", F23, 2, (long long[]){2, 3});
    h5t_write_i32(f, "/ints", I4, 1, (long long[]){4});
    h5t_write_f32(f, "/deep/er/still/v.weight", F23, 4, (long long[]){1, 2, 3, 1});
    h5t_close(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/junk.h5", g_dir);
    unlink(path);
    unlink(g_file);
    rmdir(g_dir);
    return 0;
}

static void test_round_trip(void **state) {
    (void)state;
    hid_t f = h5t_open_read(g_file);
    float fo[6];
    int io[4];
    h5t_read_f32(f, "/a/b/c", fo, 2, (long long[]){2, 3});
    assert_memory_equal(fo, F23, sizeof F23);
    h5t_read_i32(f, "/ints", io, 1, (long long[]){4});
    assert_memory_equal(io, I4, sizeof I4);
    h5t_read_f32(f, "/deep/er/still/v.weight", fo, 4, (long long[]){1, 2, 3, 1});
    assert_memory_equal(fo, F23, sizeof F23);
    /* Stored int32, read as float32: HDF5 converts. */
    h5t_read_f32(f, "/ints", fo, 1, (long long[]){4});
    assert_true(fo[1] == 137.0f && fo[2] == -299.0f);
    h5t_close(f);
}

static void test_exists_and_dims(void **state) {
    (void)state;
    hid_t f = h5t_open_read(g_file);
    assert_int_equal(h5t_exists(f, "/"), 1);
    assert_int_equal(h5t_exists(f, "/a"), 1);
    assert_int_equal(h5t_exists(f, "/a/b"), 1);
    assert_int_equal(h5t_exists(f, "/a/b/c"), 1);
    assert_int_equal(h5t_exists(f, "/a/b/x"), 0);
    assert_int_equal(h5t_exists(f, "/no/such/group/t"), 0);
    assert_int_equal(h5t_exists(f, "/a/b/c/below_a_dataset"), 0);
    assert_int_equal(h5t_exists(f, "/deep/er/still/v.weight"), 1);
    int nd = -1;
    long long d[H5T_MAX_DIMS];
    assert_int_equal(h5t_dims(f, "/a/b/c", &nd, d), 1);
    assert_int_equal(nd, 2);
    assert_true(d[0] == 2 && d[1] == 3);
    assert_int_equal(h5t_dims(f, "/deep/er/still/v.weight", &nd, d), 1);
    assert_int_equal(nd, 4);
    assert_true(d[0] == 1 && d[1] == 2 && d[2] == 3 && d[3] == 1);
    assert_int_equal(h5t_dims(f, "/missing/x", &nd, d), 0);
    h5t_close(f);
}

/* ---- failures, each in a child process ---- */

typedef enum { READ_MISSING_FILE, READ_NOT_HDF5, READ_NO_DATASET, READ_BAD_SHAPE } Failure;

static void child(Failure what, const char *junk) {
    float buf[8];
    switch (what) {
    case READ_MISSING_FILE: h5t_open_read(junk); break;
    case READ_NOT_HDF5: h5t_open_read(junk); break;
    case READ_NO_DATASET: {
        hid_t f = h5t_open_read(g_file);
        h5t_read_f32(f, "/a/b/nothing", buf, 1, (long long[]){8});
        break;
    }
    case READ_BAD_SHAPE: {
        hid_t f = h5t_open_read(g_file);
        h5t_read_f32(f, "/a/b/c", buf, 2, (long long[]){3, 2});
        break;
    }
    }
    _exit(0); /* reached only if nothing died: the parent reports it */
}

typedef struct {
    Failure what;
    const char *junk;
} FailureCase;

static void run_failure(const void *ctx) {
    const FailureCase *c = ctx;
    child(c->what, c->junk);
}

/* Run a failure in a child; its stderr must be one line holding every needle, status 1. */
#define expect_death(what, junk, ...) \
    expect_one_line_death(run_failure, &(FailureCase){(what), (junk)}, __VA_ARGS__)

static void test_missing_file(void **state) {
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/absent.h5", g_dir);
    expect_death(READ_MISSING_FILE, path, 1, path);
}

static void test_not_hdf5(void **state) {
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/junk.h5", g_dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not an HDF5 file\n", fp);
    fclose(fp);
    expect_death(READ_NOT_HDF5, path, 2, path, "not an HDF5 file");
}

static void test_missing_dataset(void **state) {
    (void)state;
    expect_death(READ_NO_DATASET, NULL, 3, g_file, "/a/b/nothing", "[8]");
}

static void test_shape_mismatch(void **state) {
    (void)state;
    expect_death(READ_BAD_SHAPE, NULL, 4, g_file, "/a/b/c", "[2, 3]", "[3, 2]");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_exists_and_dims),
        cmocka_unit_test(test_missing_file),   cmocka_unit_test(test_not_hdf5),
        cmocka_unit_test(test_missing_dataset), cmocka_unit_test(test_shape_mismatch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
