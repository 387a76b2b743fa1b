/* h5tensor.c: named tensors in HDF5 files, with exact shape checks and one-line errors.
 *
 * HDF5's own error stack printing is switched off the first time a file is opened or created:
 * every failure is reported here, once, through die(), naming the file and the dataset. */
#include "h5tensor.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

static void quiet_hdf5(void) {
    static int done = 0;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

const char *h5t_file_name(hid_t f) {
    static char buf[1024];
    if (H5Fget_name(f, buf, sizeof buf) < 0) snprintf(buf, sizeof buf, "(unnamed HDF5 file)");
    return buf;
}

/* "[2, 3, 9, 9]" into buf. */
static const char *shape_str(char *buf, size_t len, int ndim, const long long *dims) {
    size_t used = 0;
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", dims[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
    return buf;
}

hid_t h5t_open_read(const char *path) {
    quiet_hdf5();
    FILE *probe = fopen(path, "rb");
    if (!probe) die("%s: cannot open for reading (missing or unreadable)", path);
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0) die("%s: not an HDF5 file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) die("%s: cannot open as HDF5 (corrupt or truncated?)", path);
    return f;
}

hid_t h5t_create(const char *path) {
    quiet_hdf5();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) die("%s: cannot create HDF5 file", path);
    return f;
}

void h5t_close(hid_t f) {
    if (f < 0) return;
    char name[1024];
    snprintf(name, sizeof name, "%s", h5t_file_name(f));
    if (H5Fclose(f) < 0) die("%s: error closing HDF5 file (disk full?)", name);
}

int h5t_exists(hid_t f, const char *path) {
    size_t len = strlen(path);
    if (len == 0) return 0;
    char buf[1024];
    if (len >= sizeof buf) die("%s: HDF5 path too long: %s", h5t_file_name(f), path);
    memcpy(buf, path, len + 1);
    /* Check each prefix in turn: H5Lexists fails (rather than returning 0) when a group
     * above the last component is missing. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        int ok = buf[i - 1] == '/' ? 1 : H5Lexists(f, buf, H5P_DEFAULT) > 0;
        buf[i] = saved;
        if (!ok) return 0;
    }
    if (strcmp(path, "/") == 0) return 1;
    return H5Oexists_by_name(f, path, H5P_DEFAULT) > 0; /* rules out dangling links */
}

int h5t_dims(hid_t f, const char *path, int *ndim, long long dims[H5T_MAX_DIMS]) {
    if (!h5t_exists(f, path)) return 0;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) die("%s: %s exists but is not a dataset", h5t_file_name(f), path);
    hid_t sp = H5Dget_space(d);
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd < 0) die("%s: %s: cannot read the dataspace", h5t_file_name(f), path);
    if (nd > H5T_MAX_DIMS)
        die("%s: %s has %d dimensions, at most %d supported", h5t_file_name(f), path, nd,
            H5T_MAX_DIMS);
    hsize_t h[H5T_MAX_DIMS] = {0};
    H5Sget_simple_extent_dims(sp, h, NULL);
    *ndim = nd;
    for (int i = 0; i < H5T_MAX_DIMS; i++) dims[i] = i < nd ? (long long)h[i] : 0;
    H5Sclose(sp);
    H5Dclose(d);
    return 1;
}

/* Open path, check its shape against the expected one, read it as mem_type. */
static void read_checked(hid_t f, const char *path, void *out, hid_t mem_type, int ndim,
                         const long long *dims) {
    int nd = 0;
    long long have[H5T_MAX_DIMS];
    char want_s[128], have_s[128];
    if (!h5t_dims(f, path, &nd, have))
        die("%s: dataset %s is missing (expected shape %s)", h5t_file_name(f), path,
            shape_str(want_s, sizeof want_s, ndim, dims));
    int same = nd == ndim;
    for (int i = 0; same && i < ndim; i++) same = have[i] == dims[i];
    if (!same)
        die("%s: dataset %s has shape %s, expected %s", h5t_file_name(f), path,
            shape_str(have_s, sizeof have_s, nd, have),
            shape_str(want_s, sizeof want_s, ndim, dims));
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0 || H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        die("%s: cannot read dataset %s (corrupt, or a type that does not convert)",
            h5t_file_name(f), path);
    H5Dclose(d);
}

void h5t_read_f32(hid_t f, const char *path, float *out, int ndim, const long long *dims) {
    read_checked(f, path, out, H5T_NATIVE_FLOAT, ndim, dims);
}

void h5t_read_i32(hid_t f, const char *path, int *out, int ndim, const long long *dims) {
    read_checked(f, path, out, H5T_NATIVE_INT, ndim, dims);
}

static void write_dataset(hid_t f, const char *path, const void *data, hid_t file_type,
                          hid_t mem_type, int ndim, const long long *dims) {
    if (ndim < 0 || ndim > H5T_MAX_DIMS)
        die("%s: dataset %s: %d dimensions, at most %d supported", h5t_file_name(f), path, ndim,
            H5T_MAX_DIMS);
    hsize_t h[H5T_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) die("%s: dataset %s: negative dimension", h5t_file_name(f), path);
        h[i] = (hsize_t)dims[i];
    }
    hid_t sp = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, h, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (sp < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0)
        die("%s: dataset %s: cannot set up the dataspace", h5t_file_name(f), path);
    hid_t d = H5Dcreate2(f, path, file_type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0) die("%s: cannot create dataset %s (already exists?)", h5t_file_name(f), path);
    if (H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        die("%s: cannot write dataset %s (disk full?)", h5t_file_name(f), path);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
}

void h5t_write_f32(hid_t f, const char *path, const float *data, int ndim,
                   const long long *dims) {
    write_dataset(f, path, data, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims);
}

void h5t_write_i32(hid_t f, const char *path, const int *data, int ndim, const long long *dims) {
    write_dataset(f, path, data, H5T_STD_I32LE, H5T_NATIVE_INT, ndim, dims);
}
