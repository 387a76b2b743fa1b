/* util.c: error reporting, checked allocation, directories, file syncs and temporary files,
 * clocks. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <stdarg.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void (*die_hook)(const char *message) = NULL;

static char pending_tmp[8][4096]; /* temporary files being written; "" marks a free slot */

void die(const char *fmt, ...) {
    for (size_t i = 0; i < ARRAY_LEN(pending_tmp); i++) /* may be gone already: not an error */
        if (pending_tmp[i][0]) unlink(pending_tmp[i]), pending_tmp[i][0] = 0;
    va_list ap;
    va_start(ap, fmt);
    if (die_hook) {
        char message[2048];
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        die_hook(message);
        abort(); /* a hook must not return */
    }
    fputs("ddpm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void *xmalloc_at(size_t bytes, const char *file, int line) {
    void *p = NULL;
    if (bytes == 0) bytes = 1;
    size_t rounded = (bytes + 63) / 64 * 64;
    if (posix_memalign(&p, 64, rounded) != 0 || p == NULL)
        die("out of memory allocating %zu bytes (%s:%d)", bytes, file, line);
    return p;
}

void *xcalloc_at(size_t count, size_t size, const char *file, int line) {
    if (size != 0 && count > (size_t)-1 / size)
        die("allocation of %zu x %zu bytes overflows (%s:%d)", count, size, file, line);
    void *p = xmalloc_at(count * size, file, line);
    memset(p, 0, count * size);
    return p;
}

float *floats_alloc(size_t count) { return xcalloc(count, sizeof(float)); }

void make_dirs(const char *path) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) die("%s: path too long", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        const char saved = *p;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            die("%s: cannot create directory: %s", buf, strerror(errno));
        *p = saved;
        if (!saved) break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) die("%s: not a directory", path);
}

static void sync_path(const char *path, int directory) {
    const int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) die("%s: cannot open to sync: %s", path, strerror(errno));
    if (fsync(fd) != 0 && !directory) die("%s: fsync failed: %s", path, strerror(errno));
    close(fd);
}

void sync_file(const char *path) { sync_path(path, 0); }

void sync_dir_of(const char *path) {
    char dir[4096];
    if (strlen(path) >= sizeof dir) die("%s: path too long", path);
    snprintf(dir, sizeof dir, "%s", path);
    sync_path(dirname(dir), 1);
}

void tmp_file_begin(char *tmp, size_t size, const char *path) {
    /* a truncated name could be PATH itself: the write would then clobber it, die() remove it */
    const int len = snprintf(tmp, size, "%s.tmp", path);
    if (len < 0 || (size_t)len >= size || (size_t)len >= sizeof pending_tmp[0])
        die("%s: path too long", path);
    for (size_t i = 0; i < ARRAY_LEN(pending_tmp); i++)
        if (!pending_tmp[i][0]) {
            snprintf(pending_tmp[i], sizeof pending_tmp[i], "%s", tmp);
            return;
        }
    die("%s: more than %zu temporary files at once", tmp, ARRAY_LEN(pending_tmp));
}

void tmp_file_done(const char *tmp) {
    for (size_t i = 0; i < ARRAY_LEN(pending_tmp); i++)
        if (strcmp(pending_tmp[i], tmp) == 0) pending_tmp[i][0] = 0;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}
