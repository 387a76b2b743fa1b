/* h5tensor.h: named float/int tensors in HDF5 files (the reference fixture, checkpoints).
 *
 * Datasets are addressed by absolute paths ("/unet/params/conv_in.weight"); dots are ordinary
 * name characters, slashes separate groups. Shapes are checked exactly on read: a mismatch ends
 * in one line naming the file, the dataset and both shapes. Every failure calls die(). These are
 * serial calls (H5P_DEFAULT access), usable from any single rank. */
#ifndef DDPM_H5TENSOR_H
#define DDPM_H5TENSOR_H

#include <hdf5.h>

#define H5T_MAX_DIMS 5

/* Open an existing file read-only; dies naming the path if it is missing or not HDF5. */
hid_t h5t_open_read(const char *path);
/* Create (truncate) a file for writing; dies naming the path on failure. */
hid_t h5t_create(const char *path);
void h5t_close(hid_t f);
/* The file's name, for messages (a static buffer: print it before the next call). */
const char *h5t_file_name(hid_t f);

/* 1 when the object at path exists (any intermediate group may be missing: then 0). */
int h5t_exists(hid_t f, const char *path);
/* Rank and dims of the dataset at path; returns 0 when absent, 1 otherwise. Dies if the dataset
 * has more than H5T_MAX_DIMS dimensions. A scalar dataset reports ndim 0. */
int h5t_dims(hid_t f, const char *path, int *ndim, long long dims[H5T_MAX_DIMS]);

/* Read the whole dataset at path, converted to float32 / int32. Its shape must equal
 * dims[0..ndim) exactly, else die. */
void h5t_read_f32(hid_t f, const char *path, float *out, int ndim, const long long *dims);
void h5t_read_i32(hid_t f, const char *path, int *out, int ndim, const long long *dims);

/* Create the dataset at path (and any missing groups above it) and write data. */
void h5t_write_f32(hid_t f, const char *path, const float *data, int ndim,
                   const long long *dims);
void h5t_write_i32(hid_t f, const char *path, const int *data, int ndim, const long long *dims);

#endif
