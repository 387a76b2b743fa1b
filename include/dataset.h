/* dataset.h: MNIST-like image sets stored as IDX files (raw or gzip), and their conversion to
 * the float layout the model trains on.
 *
 * A split SPLIT ("train" or "t10k") in folder DIR is the pair
 *     DIR/SPLIT-images-idx3-ubyte   unsigned bytes, [count, rows, cols]
 *     DIR/SPLIT-labels-idx1-ubyte   unsigned bytes, [count]
 * each optionally with a .gz suffix (as Debian's dataset-fashion-mnist ships them under
 * /usr/share/datasets/fashion-mnist). `make data` puts MNIST into data/mnist. */
#ifndef DDPM_DATASET_H
#define DDPM_DATASET_H

#include <stddef.h>
#include <stdint.h>

/* Read one IDX file of unsigned bytes (type 0x08), raw or gzip (told apart by the gzip magic
 * 1f 8b, not by the name). The rank must equal expect_rank (3 for images, 1 for labels); dims[0..
 * rank-1] receive the dimensions, the rest of dims[3] are set to 0. The payload must be exactly
 * the product of the dimensions: a short file, trailing bytes (in a gzip file: after
 * decompression), or a gzip stream cut short or corrupt are errors. Bytes after the end of a
 * gzip file's last member that are not another member are ignored, as zlib (and gzip, with a
 * warning) ignore them: they are not part of the data. On success returns 0 and *data holds a malloc'ed copy of the payload (free
 * with free()). On failure returns -1, sets *data to NULL and writes one line starting with the
 * path to err (when err is not NULL), e.g.
 *   "d/train-images-idx3-ubyte: truncated: header says 47040000 bytes of data, file has 1000" */
int idx_read(const char *path, int expect_rank, int *dims, uint8_t **data, char *err,
             size_t errlen);

/* count images of rows x cols pixels (row-major, 0 = black .. 255 = white) and one label each. */
typedef struct {
    int count, rows, cols;
    uint8_t *pixels; /* [count, rows, cols] */
    uint8_t *labels; /* [count] */
} Dataset;

/* Load split SPLIT from DIR (file names above). Checks both files with idx_read and that they
 * hold the same number of items. Returns 0, or -1 with one line in err; on failure *d is left
 * zeroed (safe to dataset_free). */
int dataset_open(Dataset *d, const char *dir, const char *split, char *err, size_t errlen);

/* dataset_open, or die() with its message. */
void dataset_load_or_die(Dataset *d, const char *dir, const char *split);

/* Free what dataset_open allocated and zero *d. Safe on a zeroed Dataset. */
void dataset_free(Dataset *d);

/* out is [n, 1, rows, cols]: image indices[i] with each pixel x mapped to x / 127.5 - 1, so 0 ->
 * -1 and 255 -> 1 exactly. Every index must lie in [0, count) (otherwise die()). */
void dataset_images_to_float(float *out, const Dataset *d, const int *indices, int n);

#endif
