/* util.h: error reporting, checked allocation, small helpers shared by every module. */
#ifndef DDPM_UTIL_H
#define DDPM_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Print "ddpm: <message>" on stderr and exit with status 1. Every user-caused failure ends here. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* For fuzz targets and tests only: when set, die() formats its message into a buffer and calls
 * the hook (which must not return, e.g. it longjmps) instead of printing and exiting. */
extern void (*die_hook)(const char *message);

/* Checked allocation: on failure, name the call site and the size, then exit. Memory is
 * 64-byte aligned so GEMM panels and vector loops start on a cache line. */
void *xmalloc_at(size_t bytes, const char *file, int line);
void *xcalloc_at(size_t count, size_t size, const char *file, int line);
#define xmalloc(bytes) xmalloc_at((bytes), __FILE__, __LINE__)
#define xcalloc(count, size) xcalloc_at((count), (size), __FILE__, __LINE__)

/* Aligned float arrays (64-byte aligned, zero-filled). Free with free(). */
float *floats_alloc(size_t count);

/* mkdir -p: create path and its missing parents; dies naming the path on failure. */
void make_dirs(const char *path);

/* Force a file's data (sync_file) or a directory's entries (sync_dir_of: the directory that
 * holds path) to stable storage, so that a renamed file survives a machine crash; dies naming the
 * path when a file cannot be synced (a directory that refuses fsync is accepted). */
void sync_file(const char *path);
void sync_dir_of(const char *path);

/* Temporary files of the write-then-rename pattern (OUT.tmp renamed over OUT once complete).
 * A writer calls tmp_file_begin(tmp, sizeof tmp, OUT), which names tmp "OUT.tmp" (dying if the
 * name does not fit), before creating it and tmp_file_done(tmp) once it is renamed; die() in
 * between (a full disk, a failed read) removes it first, so a failed write leaves no partial OUT
 * and no OUT.tmp holding the disk space. A kill (SIGKILL, a second Ctrl-C) leaves one; the
 * next writer truncates it. At most 8 at once. */
void tmp_file_begin(char *tmp, size_t size, const char *path);
void tmp_file_done(const char *tmp);

/* Wall-clock seconds from a monotonic clock. */
double now_seconds(void);

/* Peak resident set size of this process in MiB. */
double peak_rss_mib(void);

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
