/* h5attr.c: scalar and string attributes. */
#include "h5attr.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void write_attr(hid_t obj, const char *name, hid_t type, const void *value) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, type, value) < 0) die("HDF5: cannot write attribute '%s'", name);
    H5Aclose(a);
    H5Sclose(space);
}

void h5a_write_long(hid_t obj, const char *name, long long value) {
    write_attr(obj, name, H5T_NATIVE_LLONG, &value);
}

void h5a_write_double(hid_t obj, const char *name, double value) {
    write_attr(obj, name, H5T_NATIVE_DOUBLE, &value);
}

void h5a_write_string(hid_t obj, const char *name, const char *value) {
    /* fixed-length UTF-8 string: h5py reads it as str/bytes, h5dump prints it */
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    H5Tset_cset(type, H5T_CSET_UTF8);
    write_attr(obj, name, type, value);
    H5Tclose(type);
}

void h5a_describe(hid_t f, const char *dataset, const char *text) {
    hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    if (d < 0) die("cannot open dataset %s", dataset);
    h5a_write_string(d, "description", text);
    H5Dclose(d);
}

/* One element (a scalar or a 1-element array): the readers below have room for one value, and
 * an attribute written by other tools (h5py: attrs["x"] = ["a", "b"]) may hold more. */
static int holds_one_value(hid_t a) {
    hid_t space = H5Aget_space(a);
    if (space < 0) return 0;
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    return n == 1;
}

static int read_attr(hid_t obj, const char *name, hid_t mem_type, void *out, H5T_class_t want) {
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t type = H5Aget_type(a);
    int ok = H5Tget_class(type) == want && holds_one_value(a) && H5Aread(a, mem_type, out) >= 0;
    H5Tclose(type);
    H5Aclose(a);
    return ok;
}

int h5a_read_long(hid_t obj, const char *name, long long *value) {
    return read_attr(obj, name, H5T_NATIVE_LLONG, value, H5T_INTEGER);
}

int h5a_read_double(hid_t obj, const char *name, double *value) {
    return read_attr(obj, name, H5T_NATIVE_DOUBLE, value, H5T_FLOAT);
}

char *h5a_read_string(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return NULL;
    if (!holds_one_value(a)) {
        H5Aclose(a);
        return NULL;
    }
    hid_t type = H5Aget_type(a);
    char *out = NULL;
    if (H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type)) {
        size_t size = H5Tget_size(type);
        out = xcalloc(size + 1, 1);
        if (H5Aread(a, type, out) < 0) {
            free(out);
            out = NULL;
        }
    } else if (H5Tget_class(type) == H5T_STRING) { /* variable length, e.g. written by h5py */
        char *v = NULL;
        hid_t mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type)); /* HDF5 does not convert UTF-8 to ASCII */
        if (H5Aread(a, mem, &v) >= 0 && v) {
            out = xcalloc(strlen(v) + 1, 1);
            memcpy(out, v, strlen(v));
            H5free_memory(v);
        }
        H5Tclose(mem);
    }
    H5Tclose(type);
    H5Aclose(a);
    return out;
}

/* H5Aiterate2 callback: copy attribute `name` of `from` onto the object in *data unless it has
 * one of that name; the value passes through memory in the file's own type, so strings of
 * either kind and arrays keep their type and shape. */
static herr_t copy_one(hid_t from, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    const hid_t to = *(const hid_t *)data;
    if (H5Aexists(to, name) > 0) return 0;
    hid_t a = H5Aopen(from, name, H5P_DEFAULT);
    hid_t type = a < 0 ? -1 : H5Aget_type(a), space = a < 0 ? -1 : H5Aget_space(a);
    if (a < 0 || type < 0 || space < 0) die("HDF5: cannot open attribute '%s' to copy it", name);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    void *buf = xcalloc((size_t)(n > 0 ? n : 1), H5Tget_size(type));
    if (n > 0 && H5Aread(a, type, buf) < 0) die("HDF5: cannot read attribute '%s'", name);
    hid_t b = H5Acreate2(to, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (b < 0 || (n > 0 && H5Awrite(b, type, buf) < 0))
        die("HDF5: cannot write attribute '%s'", name);
    const int variable = H5Tdetect_class(type, H5T_VLEN) > 0 ||
                         (H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0);
    if (n > 0 && variable) H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf); /* what HDF5 allocated */
    free(buf);
    H5Aclose(b);
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(a);
    return 0;
}

void h5a_copy_missing(hid_t from, hid_t to) {
    hsize_t idx = 0;
    if (H5Aiterate2(from, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_one, &to) < 0)
        die("HDF5: cannot copy attributes");
}
