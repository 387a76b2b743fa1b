/* fuzz_idx.c: libFuzzer target for the IDX reader (raw and gzip). The input is written to a
 * file in /dev/shm (the reader takes paths) and read back as images (rank 3) and as labels
 * (rank 1). Errors must come back as -1 with a message; any crash, hang, leak or sanitizer
 * report is a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/dev/shm/ddpm-fuzz-idx-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) { /* a fuzz run that reads nothing must not pass as one that found nothing */
        perror(path);
        abort();
    }
    fwrite(data, 1, size, f);
    fclose(f);
    for (int rank = 1; rank <= 3; rank += 2) {
        int dims[3] = {0, 0, 0};
        uint8_t *out = NULL;
        char err[512];
        if (idx_read(path, rank, dims, &out, err, sizeof err) == 0) {
            /* success: the payload is exactly the product of the dimensions; touch all of it */
            size_t n = (size_t)dims[0] * (rank == 3 ? (size_t)dims[1] * dims[2] : 1);
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < n; i++) sink ^= out[i];
            free(out);
        } else if (!err[0]) {
            abort(); /* an error without a message */
        }
    }
    unlink(path);
    return 0;
}
