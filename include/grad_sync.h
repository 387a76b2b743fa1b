/* grad_sync.h: average the gradient arena over the ranks while backward is still running.
 *
 * Backward finishes parameter gradients from the end of the arena towards its start (the tape
 * reports how far after each op). As soon as a bucket of at least `bucket` finished floats has
 * collected, an MPI_Iallreduce (sum, in place) starts on it; grad_sync_finish starts the rest and
 * waits for all of them. With bucket = 0 there is one blocking MPI_Allreduce over the whole arena
 * in grad_sync_finish instead (for checking). The gradients must already be divided by the
 * global batch: the sum over ranks is then the mean gradient. A world of one rank does nothing. */
#ifndef DDPM_GRAD_SYNC_H
#define DDPM_GRAD_SYNC_H

#include <mpi.h>
#include <stddef.h>

typedef struct {
    float *grads;
    size_t total;
    size_t bucket;        /* floats per bucket; 0: blocking, one allreduce at the end */
    size_t sent_lo;       /* [sent_lo, total) is already on its way */
    MPI_Request *req;
    int nreq, req_cap;
    int buckets;          /* started this step */
    double wait_seconds;  /* time spent waiting in grad_sync_finish, summed over steps */
    double call_seconds;  /* time spent inside MPI calls during backward, summed over steps */
} GradSync;

void grad_sync_init(GradSync *g, float *grads, size_t total, size_t bucket_floats);
void grad_sync_free(GradSync *g);
/* Before backward: nothing is on its way yet. */
void grad_sync_begin(GradSync *g);
/* The tape's callback: grads[lo, total) are final. Starts a bucket when enough has collected
 * and lets MPI progress the ones already started. ctx is the GradSync. */
void grad_sync_ready(void *ctx, size_t lo);
/* After backward: start what is left and wait; the arena then holds the sum over ranks. */
void grad_sync_finish(GradSync *g);
/* Seconds one blocking allreduce of the whole arena takes (median of reps, on a scratch copy):
 * the cost the overlap tries to hide. Collective; 0 in a world of one rank. */
double grad_sync_blocking_seconds(const GradSync *g, int reps);

#endif
