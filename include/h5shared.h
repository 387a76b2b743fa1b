/* h5shared.h: one HDF5 file written by all ranks together (parallel HDF5 over MPI-IO).
 *
 * Under MPI with several ranks the file is opened with the MPI-IO driver and every call below
 * is collective: each rank passes the same path, shapes and attributes, and its own rows.
 * In a world of one rank it is a plain HDF5 file. Datasets are contiguous (no compression:
 * parallel compressed writes would need collective chunk I/O for no gain on float images). */
#ifndef DDPM_H5SHARED_H
#define DDPM_H5SHARED_H

#include <hdf5.h>

/* Create (truncate) path for writing by every rank. Collective. */
hid_t h5s_create(const char *path);
/* Open an existing file for writing by every rank. Collective. */
hid_t h5s_open_rw(const char *path);
/* Create the float32 dataset of full shape dims[0..ndim) (or open it, when it exists with that
 * shape) and write this rank's rows [first, first + count) along dimension 0 from `rows`
 * (count may be 0). Collective. */
void h5s_write_rows_f32(hid_t f, const char *path, const float *rows, int ndim,
                        const long long *dims, long long first, long long count);
void h5s_write_rows_i32(hid_t f, const char *path, const int *rows, int ndim,
                        const long long *dims, long long first, long long count);
/* Read rows [first, first + count) of the float32 dataset of shape dims (independent: any
 * rank, any file open for reading). */
void h5s_read_rows_f32(hid_t f, const char *path, float *rows, int ndim, const long long *dims,
                       long long first, long long count);
/* Close (collective); once every rank is done, rank 0 syncs tmp to disk, renames it over path
 * and syncs the directory: after a machine crash path is the old file or the whole new one. */
void h5s_close_and_publish(hid_t f, const char *tmp, const char *path);

#endif
