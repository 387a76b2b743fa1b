/* h5attr.h: scalar and string attributes on HDF5 objects (files, groups, datasets).
 * Writers die with a one-line message on failure; readers return 0 when the attribute is
 * missing or of another type, so callers can name what they expected. */
#ifndef DDPM_H5ATTR_H
#define DDPM_H5ATTR_H

#include <hdf5.h>

void h5a_write_long(hid_t obj, const char *name, long long value);
void h5a_write_double(hid_t obj, const char *name, double value);
void h5a_write_string(hid_t obj, const char *name, const char *value);
/* The "description" attribute of dataset `dataset` in file f. */
void h5a_describe(hid_t f, const char *dataset, const char *text);

/* 1 and the value of an integer / floating-point attribute holding one value; 0 if it is
 * missing, of another class or holds several values (an array written by another tool). */
int h5a_read_long(hid_t obj, const char *name, long long *value);
int h5a_read_double(hid_t obj, const char *name, double *value);
/* A malloc'ed copy of a string attribute holding one string, or NULL. */
char *h5a_read_string(hid_t obj, const char *name);

/* Copy every attribute of `from` that `to` lacks (name, type, shape and value); dies on error.
 * For a file written from another, the other's attributes it does not set itself. */
void h5a_copy_missing(hid_t from, hid_t to);

#endif
