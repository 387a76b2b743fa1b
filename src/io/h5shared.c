/* h5shared.c: shared HDF5 files, each rank writing its hyperslab of rows. */
#include "h5shared.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dist.h"
#include "h5tensor.h"
#include "util.h"

static int shared(void) { return dist()->mpi && dist()->size > 1; }

hid_t h5s_create(const char *path) {
    if (!shared()) return h5t_create(path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* failures are reported here, once, by die() */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, dist_comm(), MPI_INFO_NULL) < 0)
        die("%s: cannot set up parallel HDF5 (MPI-IO) access", path);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) die("%s: cannot create HDF5 file (in parallel, MPI-IO)", path);
    return f;
}

hid_t h5s_open_rw(const char *path) {
    if (!shared()) {
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0) die("%s: cannot open HDF5 file for writing", path);
        return f;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, dist_comm(), MPI_INFO_NULL) < 0)
        die("%s: cannot set up parallel HDF5 (MPI-IO) access", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f < 0) die("%s: cannot open HDF5 file for writing (in parallel, MPI-IO)", path);
    return f;
}

/* 1 when the dataset at path exists, 0 when not; dies when it exists with another shape. */
static int exists_with_shape(hid_t f, const char *path, int ndim, const long long *dims) {
    int nd = 0;
    long long have[H5T_MAX_DIMS];
    if (!h5t_dims(f, path, &nd, have)) return 0;
    int same = nd == ndim;
    for (int i = 0; same && i < ndim; i++) same = have[i] == dims[i];
    if (!same) {
        char name[1024] = "?";
        H5Fget_name(f, name, sizeof name);
        die("%s: dataset %s exists with another shape", name, path);
    }
    return 1;
}

/* The dataset at path: opened when it exists (its shape must be dims), else created. */
static hid_t open_or_create(hid_t f, const char *path, hid_t file_type, int ndim,
                            const long long *dims, hid_t space) {
    if (exists_with_shape(f, path, ndim, dims)) {
        hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
        if (d < 0) die("cannot open dataset %s", path);
        return d;
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, path, file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (d < 0) die("cannot create dataset %s", path);
    return d;
}

static void write_rows(hid_t f, const char *path, const void *rows, hid_t file_type,
                       hid_t mem_type, int ndim, const long long *dims, long long first,
                       long long count) {
    if (ndim < 1 || ndim > H5T_MAX_DIMS) die("%s: %d dimensions not supported", path, ndim);
    if (first < 0 || count < 0 || first + count > dims[0])
        die("%s: rows [%lld, %lld) outside [0, %lld)", path, first, first + count, dims[0]);
    static const double nothing;
    if (!rows) rows = &nothing; /* no rows from this rank: HDF5 still wants a buffer */
    hsize_t full[H5T_MAX_DIMS], start[H5T_MAX_DIMS] = {0}, part[H5T_MAX_DIMS];
    for (int i = 0; i < ndim; i++) full[i] = part[i] = (hsize_t)dims[i];
    start[0] = (hsize_t)first;
    part[0] = (hsize_t)count;
    hid_t space = H5Screate_simple(ndim, full, NULL);
    hid_t d = open_or_create(f, path, file_type, ndim, dims, space);
    hsize_t mem_dims[H5T_MAX_DIMS];
    for (int i = 0; i < ndim; i++) mem_dims[i] = part[i] ? part[i] : 1;
    hid_t mem = H5Screate_simple(ndim, mem_dims, NULL);
    if (count > 0) {
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, part, NULL);
    } else {
        H5Sselect_none(space);
        H5Sselect_none(mem);
    }
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (shared()) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    if (H5Dwrite(d, mem_type, mem, space, dxpl, rows) < 0)
        die("%s: cannot write dataset %s (disk full?)", h5t_file_name(f), path);
    H5Pclose(dxpl);
    H5Sclose(mem);
    H5Dclose(d);
    H5Sclose(space);
}

void h5s_read_rows_f32(hid_t f, const char *path, float *rows, int ndim, const long long *dims,
                       long long first, long long count) {
    if (!exists_with_shape(f, path, ndim, dims)) die("no dataset %s", path);
    if (first < 0 || count < 0 || first + count > dims[0])
        die("%s: rows [%lld, %lld) outside [0, %lld)", path, first, first + count, dims[0]);
    if (count == 0) return;
    hsize_t start[H5T_MAX_DIMS] = {0}, part[H5T_MAX_DIMS];
    for (int i = 0; i < ndim; i++) part[i] = (hsize_t)dims[i];
    start[0] = (hsize_t)first;
    part[0] = (hsize_t)count;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, part, NULL);
    hid_t mem = H5Screate_simple(ndim, part, NULL);
    herr_t rc = H5Dread(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, rows);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    if (rc < 0) die("cannot read rows of dataset %s", path);
}

void h5s_write_rows_f32(hid_t f, const char *path, const float *rows, int ndim,
                        const long long *dims, long long first, long long count) {
    write_rows(f, path, rows, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims, first, count);
}

void h5s_write_rows_i32(hid_t f, const char *path, const int *rows, int ndim,
                        const long long *dims, long long first, long long count) {
    write_rows(f, path, rows, H5T_STD_I32LE, H5T_NATIVE_INT, ndim, dims, first, count);
}

void h5s_close_and_publish(hid_t f, const char *tmp, const char *path) {
    /* collective: under MPI-IO every rank syncs the rows it wrote (MPI_File_sync), which rank
     * 0's fsync below cannot do for another node's cache; closing alone does not sync */
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) die("%s: cannot flush (disk full?)", tmp);
    h5t_close(f);
    dist_barrier();
    if (dist_is_root()) { /* on disk before it takes the name, and the name before we go on */
        sync_file(tmp);
        if (rename(tmp, path) != 0) die("%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        sync_dir_of(path);
    }
    dist_barrier();
    tmp_file_done(tmp);
}
