/* idx.c: one IDX file of unsigned bytes, raw or gzip, with every check a bad file needs.
 *
 * IDX layout: 00 00 <type> <rank>, then rank big-endian uint32 dimensions, then the payload
 * (product of the dimensions, one byte each for type 0x08). Both raw and gzip files go through
 * zlib's gzread, which passes raw files through unchanged; raw files are sized with stat() up
 * front, so a bad header is caught before anything large is allocated, while gzip payloads are
 * read into a buffer that grows as data really arrives, so a lying header cannot make us
 * allocate gigabytes for a small file. */
#include "dataset.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_RANK 3
#define GZ_FIRST_CHUNK ((size_t)16 << 20) /* first gzip payload buffer; doubles as data comes */

/* Write "PATH: <message>" into err; always returns -1 so callers can `return fail(...)`. */
__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, const char *path,
                                                      const char *fmt, ...) {
    if (!err || errlen == 0) return -1;
    int k = snprintf(err, errlen, "%s: ", path);
    if (k >= 0 && (size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Read up to len bytes; fewer only at the end of the data or on a stream error. */
static size_t gz_read_full(gzFile g, uint8_t *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        unsigned chunk = want > (1u << 30) ? 1u << 30 : (unsigned)want;
        int r = gzread(g, buf + got, chunk);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

/* Nonzero when the gzip stream is broken (cut short, bad CRC, not deflate); msg says how, without
 * the "PATH: " zlib puts in front. zlib inflates ahead of what is asked, so a break may show up
 * on the first read, whatever its position in the file. */
static int gz_broken(gzFile g, const char *path, const char **msg) {
    int code = Z_OK;
    const char *m = gzerror(g, &code);
    size_t n = strlen(path);
    if (strncmp(m, path, n) == 0 && strncmp(m + n, ": ", 2) == 0) m += n + 2;
    *msg = m;
    return code != Z_OK && code != Z_STREAM_END;
}

#define GZ_BROKEN_MSG "gzip stream cut short or corrupt: %s"

static const char *payload_word(int rank) {
    return rank == 3 ? "pixels" : rank == 1 ? "labels" : "data";
}

/* The body of idx_read, with the file open; *out receives the payload on success. */
static int read_open(gzFile g, const char *path, const struct stat *st, int expect_rank,
                     int *dims, uint8_t **out, char *err, size_t errlen) {
    const char *zmsg;
    uint8_t head[4 + 4 * IDX_MAX_RANK];
    size_t got = gz_read_full(g, head, 4);
    int gz = !gzdirect(g);
    if (gz && gz_broken(g, path, &zmsg)) return fail(err, errlen, path, GZ_BROKEN_MSG, zmsg);
    if (got < 4)
        return fail(err, errlen, path, "too short for an IDX header: %zu %sbytes", got,
                    gz ? "uncompressed " : "");
    if (head[0] != 0 || head[1] != 0)
        return fail(err, errlen, path,
                    "not an IDX file: starts with %02x %02x %02x %02x, expected 00 00 08 <rank>",
                    head[0], head[1], head[2], head[3]);
    if (head[2] != IDX_TYPE_UBYTE)
        return fail(err, errlen, path, "IDX data type 0x%02x, expected 0x08 (unsigned byte)",
                    head[2]);
    int rank = head[3];
    if (rank != expect_rank)
        return fail(err, errlen, path, "IDX rank %d, expected %d (%s)", rank, expect_rank,
                    expect_rank == 3   ? "images: count, rows, cols"
                    : expect_rank == 1 ? "labels: count"
                                       : "as asked");

    size_t head_len = 4 + 4 * (size_t)rank;
    got = gz_read_full(g, head + 4, head_len - 4);
    if (gz && gz_broken(g, path, &zmsg)) return fail(err, errlen, path, GZ_BROKEN_MSG, zmsg);
    if (got < head_len - 4)
        return fail(err, errlen, path, "truncated header: rank %d needs %zu bytes, file has %zu",
                    rank, head_len, 4 + got);

    size_t total = 1;
    for (int i = 0; i < rank; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (v == 0) return fail(err, errlen, path, "dimension %d is 0", i);
        if (v > INT_MAX)
            return fail(err, errlen, path, "dimension %d is %lu, more than %d", i,
                        (unsigned long)v, INT_MAX);
        if (total > (size_t)PTRDIFF_MAX / v)
            return fail(err, errlen, path, "dimensions overflow: their product exceeds %zu bytes",
                        (size_t)PTRDIFF_MAX);
        total *= v;
        dims[i] = (int)v;
    }
    const char *word = payload_word(rank);

    /* Raw files: the size on disk must be exactly header + payload; check before allocating. */
    size_t cap = total;
    if (!gz) {
        size_t have = (size_t)st->st_size - head_len; /* st_size >= head_len: we just read it */
        if (have < total)
            return fail(err, errlen, path, "truncated: header says %zu bytes of %s, file has %zu",
                        total, word, have);
        if (have > total)
            return fail(err, errlen, path,
                        "%zu trailing bytes after the %zu bytes of %s the header describes",
                        have - total, total, word);
    } else if (cap > GZ_FIRST_CHUNK) {
        cap = GZ_FIRST_CHUNK;
    }

    uint8_t *buf = malloc(cap);
    if (!buf) return fail(err, errlen, path, "out of memory for %zu bytes of %s", cap, word);
    size_t have = 0;
    for (;;) {
        have += gz_read_full(g, buf + have, cap - have);
        if (have < cap || cap == total) break;
        size_t next = cap > total / 2 ? total : cap * 2;
        uint8_t *grown = realloc(buf, next);
        if (!grown) {
            free(buf);
            return fail(err, errlen, path, "out of memory for %zu bytes of %s", next, word);
        }
        buf = grown;
        cap = next;
    }
    if (gz && gz_broken(g, path, &zmsg)) {
        free(buf);
        return fail(err, errlen, path, GZ_BROKEN_MSG, zmsg);
    }
    if (have < total) {
        free(buf);
        return fail(err, errlen, path, "truncated: header says %zu bytes of %s, file has %zu",
                    total, word, have);
    }

    /* Anything after the payload (in gzip: after decompression) is an error, and so is a gzip
     * stream whose end (CRC and length) is missing or wrong. */
    uint8_t probe[4096];
    size_t extra = 0, r;
    while ((r = gz_read_full(g, probe, sizeof probe)) > 0) extra += r;
    if (gz && gz_broken(g, path, &zmsg)) {
        free(buf);
        return fail(err, errlen, path, GZ_BROKEN_MSG, zmsg);
    }
    if (extra > 0) {
        free(buf);
        return fail(err, errlen, path,
                    "%zu trailing bytes after the %zu bytes of %s the header describes", extra,
                    total, word);
    }
    *out = buf;
    return 0;
}

int idx_read(const char *path, int expect_rank, int *dims, uint8_t **data, char *err,
             size_t errlen) {
    *data = NULL;
    for (int i = 0; i < IDX_MAX_RANK; i++) dims[i] = 0;
    if (expect_rank < 1 || expect_rank > IDX_MAX_RANK)
        return fail(err, errlen, path, "idx_read: expected rank %d is not 1..%d", expect_rank,
                    IDX_MAX_RANK);

    struct stat st;
    if (stat(path, &st) != 0) return fail(err, errlen, path, "cannot open: %s", strerror(errno));
    if (S_ISDIR(st.st_mode)) return fail(err, errlen, path, "is a directory, not an IDX file");
    if (!S_ISREG(st.st_mode)) return fail(err, errlen, path, "not a regular file");
    if (st.st_size == 0) return fail(err, errlen, path, "empty file");

    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g)
        return fail(err, errlen, path, "cannot open: %s",
                    errno ? strerror(errno) : "out of memory");
    gzbuffer(g, 1 << 17);
    int rc = read_open(g, path, &st, expect_rank, dims, data, err, errlen);
    gzclose_r(g);
    if (rc != 0)
        for (int i = 0; i < IDX_MAX_RANK; i++) dims[i] = 0;
    return rc;
}
