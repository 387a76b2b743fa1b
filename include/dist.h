/* dist.h: the MPI edge. Which process this is, how many there are, how many threads each runs,
 * and the few small collectives the training loop and the shared outputs need.
 *
 * MPI is started only when a launcher started this process (mpirun, or srun --mpi=pmix): a plain
 * `ddpm train` runs as a world of one rank without touching MPI, and every call below is then a
 * no-op or a copy. Under MPI the world is MPI_COMM_WORLD; die() aborts the whole job. */
#ifndef DDPM_DIST_H
#define DDPM_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    int mpi;                     /* MPI was initialised (a launcher started us) */
    int rank, size;              /* in the world */
    int local_rank, local_size;  /* on this node */
    int nodes;
    int threads;                 /* OpenMP threads of this rank (BLIS runs one per call) */
    const char *threads_from;    /* where that number came from, for the layout line */
    int cores;                   /* online cores of this node */
    int bound_cores;             /* cores this rank's CPU affinity mask allows */
} Dist;

/* Start: MPI when launched by mpirun/srun, the guard against unconnected Slurm tasks, the
 * thread count of this rank (SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else cores per node /
 * ranks per node), set for OpenMP and BLIS. `who` names the command in messages. */
void dist_init(int *argc, char ***argv, const char *who);
/* Finalise MPI (if started). Call once on every normal return path. */
void dist_finalize(void);
const Dist *dist(void);
static inline int dist_is_root(void) { return dist()->rank == 0; }

/* One line: nodes, ranks, threads per rank and where that came from; warnings on stderr when
 * ranks x threads exceed the node's cores or a rank's CPU binding. Rank 0 prints. */
void dist_print_layout(FILE *f);

/* Contiguous share of n items for rank r of size: the first n % size ranks take one more. */
void dist_share(long n, int r, int size, long *first, long *count);

/* The same in whole chunks of `chunk` items (the last may be short): rank r gets chunks, so each
 * chunk holds the same items for any number of ranks (a network evaluation over a chunk then
 * gives bit-identical results whatever the rank count). */
void dist_share_chunks(long n, long chunk, int r, int size, long *first, long *count);

double dist_sum(double v);        /* allreduce sum */
void dist_sum_doubles(double *v, size_t n); /* allreduce sum, in place */
int dist_max_int(int v);          /* allreduce max */
void dist_min_max(double v, double *lo, double *hi); /* allreduce min and max */
/* 1 when v is the same on every rank (an allreduce of min and max). */
int dist_all_equal_u64(uint64_t v);
/* Whether the file at path exists, the same answer on every rank: when some ranks see it and
 * others do not (node-local disk, a lagging network file system), every rank stops naming it,
 * before any writes (`place` names what must be on a shared file system). Collective. */
int dist_file_exists(const char *path, const char *place);
void dist_barrier(void);
/* Rank 0 receives every rank's `count` floats (the shares of dist_share with `per_item` floats
 * per item) into all[0 .. n*per_item); other ranks pass all = NULL. */
void dist_gather_shares(float *all, const float *mine, long n, size_t per_item);
/* The world communicator (MPI_COMM_WORLD), for parallel HDF5; only valid when dist()->mpi. */
MPI_Comm dist_comm(void);

#endif
