/* png_grid.c: float image grids to 8-bit PNG through libpng, written atomically.
 *
 * The picture is produced one output row at a time (no full-size canvas): for each output row we
 * fill a row buffer with the border colour and copy in the scaled pixels of every image that the
 * row crosses. libpng reports errors through on_png_error, which records the message and jumps
 * back to the setjmp in write_png; everything that the error path must release is set up before
 * the setjmp and not modified afterwards, so no local needs to be volatile. */
#include "png_grid.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libpng's default limit on either dimension (PNG_USER_WIDTH_MAX / PNG_USER_HEIGHT_MAX). */
#define MAX_SIDE 1000000L

typedef struct {
    char msg[256];
} PngErr;

static void on_png_error(png_structp png, png_const_charp msg) {
    PngErr *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (none expected for the images we write) are not worth a message */
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* [-1, 1] -> 0..255, round half up; NaN and values below -1 map to 0, above 1 to 255. */
static png_byte to_byte(float x) {
    if (!(x >= -1.0f)) return 0;
    if (x > 1.0f) return 255;
    return (png_byte)floorf((x + 1.0f) * 127.5f + 0.5f);
}

/* The geometry of one grid, fixed before writing starts. */
typedef struct {
    const float *images;
    int n, channels, h, w, cols, rows, scale;
    long width, height, cell_w, cell_h; /* cell = one scaled image plus the pad after it */
} Grid;

/* Output row y of the grid into row (width * channels bytes). */
static void fill_row(const Grid *g, long y, png_byte *row) {
    size_t row_bytes = (size_t)g->width * (size_t)g->channels;
    memset(row, PNG_GRID_BORDER, row_bytes);
    long in_grid = y - PNG_GRID_PAD;
    if (in_grid < 0) return;
    long r = in_grid / g->cell_h, dy = in_grid % g->cell_h;
    if (r >= g->rows || dy >= (long)g->h * g->scale) return; /* a horizontal pad */
    long iy = dy / g->scale;
    size_t plane = (size_t)g->h * (size_t)g->w;
    for (int c = 0; c < g->cols; c++) {
        long i = r * g->cols + c;
        if (i >= g->n) break;
        const float *img = g->images + (size_t)i * (size_t)g->channels * plane;
        png_byte *out = row + (size_t)(PNG_GRID_PAD + c * g->cell_w) * (size_t)g->channels;
        for (long ix = 0; ix < g->w; ix++) {
            png_byte px[3];
            for (int ch = 0; ch < g->channels; ch++)
                px[ch] = to_byte(img[(size_t)ch * plane + (size_t)iy * (size_t)g->w + (size_t)ix]);
            for (int s = 0; s < g->scale; s++)
                for (int ch = 0; ch < g->channels; ch++) *out++ = px[ch];
        }
    }
}

/* Write the grid to the already open fp. Returns 0, or -1 with the libpng message in e. */
static int write_png(FILE *fp, const Grid *g, png_byte *row, PngErr *e) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e, on_png_error,
                                              on_png_warning);
    if (!png) {
        snprintf(e->msg, sizeof e->msg, "libpng could not allocate its write state");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(e->msg, sizeof e->msg, "libpng could not allocate its info state");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)g->width, (png_uint_32)g->height, 8,
                 g->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (long y = 0; y < g->height; y++) {
        fill_row(g, y, row);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* g's geometry from its n, h, w and scale and the column count; -1 with err when it cannot be
 * a PNG. */
static int grid_layout(Grid *g, const char *path, int ncols, char *err, size_t errlen) {
    Grid r = *g;
    const int n = r.n, h = r.h, w = r.w, scale = r.scale;
    if (n < 1 || (r.channels != 1 && r.channels != 3) || h < 1 || w < 1 || ncols < 1 || scale < 1)
        return fail(err, errlen,
                    "%s: bad image grid arguments (n=%d, channels=%d, h=%d, w=%d, ncols=%d, "
                    "scale=%d)",
                    path, n, r.channels, h, w, ncols, scale);
    r.cols = ncols < n ? ncols : n;
    r.rows = (n + r.cols - 1) / r.cols;
    /* Bound each factor first so the products below cannot overflow a long. */
    if ((long)w * scale > MAX_SIDE || (long)h * scale > MAX_SIDE)
        return fail(err, errlen, "%s: image of %dx%d scaled by %d is too large for a PNG", path,
                    h, w, scale);
    r.cell_w = (long)w * scale + PNG_GRID_PAD;
    r.cell_h = (long)h * scale + PNG_GRID_PAD;
    r.width = PNG_GRID_PAD + r.cols * r.cell_w;
    r.height = PNG_GRID_PAD + r.rows * r.cell_h;
    if (r.width > MAX_SIDE || r.height > MAX_SIDE)
        return fail(err, errlen,
                    "%s: a grid of %d images in %d columns would be %ldx%ld pixels, too large "
                    "for a PNG (at most %ld a side)",
                    path, n, r.cols, r.height, r.width, MAX_SIDE);
    *g = r;
    return 0;
}

/* "<path>.tmp.<pid>", malloc'd (NULL when out of memory): where a PNG is written before it is
 * renamed over path. */
static char *tmp_path_for(const char *path) {
    size_t tmp_len = strlen(path) + 32;
    char *tmp = malloc(tmp_len);
    if (tmp) snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    return tmp;
}

/* Can path be written the way png_write_grid writes it: its temporary created (then removed
 * again) and renamed over path, i.e. path not a directory? */
static int check_creatable(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return fail(err, errlen, "%s: is a directory", path);
    char *tmp = tmp_path_for(path);
    if (!tmp) return fail(err, errlen, "%s: out of memory", path);
    int rc = 0;
    /* no O_EXCL: a temporary of this name left by a killed process of the same pid (a PID
     * namespace) is ours to replace, as png_write_grid's fopen would */
    int fd = open(tmp, O_WRONLY | O_CREAT, 0644);
    if (fd < 0)
        rc = fail(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    else {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int png_grid_check(const char *path, int n, int channels, int h, int w, int ncols, int scale,
                   char *err, size_t errlen) {
    Grid g = {.n = n, .channels = channels, .h = h, .w = w, .scale = scale};
    if (!path || !*path) return fail(err, errlen, "'%s': no path for the PNG", path ? path : "");
    if (grid_layout(&g, path, ncols, err, errlen) != 0) return -1;
    return check_creatable(path, err, errlen);
}

int png_write_grid(const char *path, const float *images, int n, int channels, int h, int w,
                   int ncols, int scale, char *err, size_t errlen) {
    if (!path) path = "(null)";
    if (!images) return fail(err, errlen, "%s: no images for the grid", path);
    Grid g = {.images = images, .n = n, .channels = channels, .h = h, .w = w, .scale = scale};
    if (grid_layout(&g, path, ncols, err, errlen) != 0) return -1;

    char *tmp = tmp_path_for(path);
    png_byte *row = malloc((size_t)g.width * (size_t)channels);
    if (!tmp || !row) {
        free(tmp);
        free(row);
        return fail(err, errlen, "%s: out of memory preparing the PNG", path);
    }

    int rc = -1;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        fail(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    PngErr e = {{0}};
    int wrote = write_png(fp, &g, row, &e);
    int write_errno = ferror(fp) ? errno : 0;
    int close_failed = fclose(fp) != 0;
    if (close_failed && !write_errno) write_errno = errno;
    if (wrote != 0 || write_errno || close_failed) {
        if (wrote != 0)
            fail(err, errlen, "%s: libpng error: %s", path, e.msg);
        else
            fail(err, errlen, "%s: error writing %s: %s", path, tmp,
                 write_errno ? strerror(write_errno) : "unknown error (disk full?)");
        remove(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        fail(err, errlen, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        remove(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    free(row);
    return rc;
}

int png_write_strip(const char *path, const float *frames, int nrows, int nframes, int channels,
                    int h, int w, int scale, char *err, size_t errlen) {
    if (nrows < 1 || nframes < 1 || nframes > INT_MAX / nrows)
        return fail(err, errlen, "%s: bad trajectory strip arguments (nrows=%d, nframes=%d)",
                    path ? path : "(null)", nrows, nframes);
    /* [nrows, nframes, ...] is [nrows * nframes, ...] read row by row with nframes columns. */
    return png_write_grid(path, frames, nrows * nframes, channels, h, w, nframes, scale, err,
                          errlen);
}
