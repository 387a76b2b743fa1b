/* png_grid.h: image grids as PNG files (sample sheets, noising and denoising trajectories).
 *
 * Images are float tensors in the model's range [-1, 1]; values outside are clamped, and each
 * value x becomes the byte round((x + 1) * 127.5), so -1 -> 0, 0 -> 128, 1 -> 255. Images are
 * tiled with PNG_GRID_PAD pixels of border colour PNG_GRID_BORDER between and around them, and
 * each image pixel becomes a scale x scale block (nearest neighbour).
 *
 * Files are written to "<path>.tmp.<pid>" in the same directory and renamed over path only when
 * complete, so a reader (or a run killed mid-write) never leaves a half-written PNG at path.
 * These functions return an error rather than dying: a failed picture should not end a training
 * run. On failure nothing is left on disk, and err (when not NULL) receives one line starting
 * with path. */
#ifndef DDPM_PNG_GRID_H
#define DDPM_PNG_GRID_H

#include <stddef.h>

#define PNG_GRID_PAD 2     /* border width in output pixels (not scaled) */
#define PNG_GRID_BORDER 40 /* border grey level (RGB: 40, 40, 40) */

/* images is [n, channels, h, w]; channels 1 writes an 8-bit grey PNG, 3 an 8-bit RGB one.
 * The grid has min(ncols, n) columns and ceil(n / ncols) rows, filled row by row; cells past
 * the last image are border colour. The output is
 *   PNG_GRID_PAD + cols * (w * scale + PNG_GRID_PAD) pixels wide and
 *   PNG_GRID_PAD + rows * (h * scale + PNG_GRID_PAD) pixels high.
 * Returns 0 on success, -1 on failure (bad arguments, cannot create, libpng error, disk full). */
int png_write_grid(const char *path, const float *images, int n, int channels, int h, int w,
                   int ncols, int scale, char *err, size_t errlen);

/* 0 when png_write_grid could draw n images of h x w in ncols columns at this scale into path,
 * else -1 with the reason in err: the grid's size (the same check it makes), and path's
 * temporary file created and removed again in path's directory (a missing or read-only
 * directory, or path a directory). To refuse a picture before the work that makes its images. */
int png_grid_check(const char *path, int n, int channels, int h, int w, int ncols, int scale,
                   char *err, size_t errlen);

/* frames is [nrows, nframes, channels, h, w]: one row per image, one column per time step
 * (a noising or denoising trajectory). Same layout and errors as png_write_grid. */
int png_write_strip(const char *path, const float *frames, int nrows, int nframes, int channels,
                    int h, int w, int scale, char *err, size_t errlen);

#endif
