/* dist.c: start MPI when a launcher started us, choose the threads of each rank, small
 * collectives. A plain process is a world of one rank and never calls MPI. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "dist.h"

#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blis.h"
#include "util.h"

static Dist world = {.mpi = 0, .rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .nodes = 1,
                     .threads = 1, .threads_from = "", .cores = 1, .bound_cores = 1};

const Dist *dist(void) { return &world; }

/* mpirun (Open MPI) and srun --mpi=pmix/pmi2 leave these in each process's environment. */
static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

/* A positive integer from the environment (the first of a list like "4,2"), else 0. */
static int env_count(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || (*end && *end != ',') || x < 1 || x > 4096) return 0;
    return (int)x;
}

/* Under MPI a failure on one rank must end every rank: print, then abort the job. */
static void die_abort(const char *message) {
    if (world.rank == 0) fprintf(stderr, "ddpm: %s\n", message);
    else fprintf(stderr, "ddpm (rank %d of %d): %s\n", world.rank, world.size, message);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static void choose_threads(void) {
    world.cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (world.cores < 1) world.cores = 1;
    cpu_set_t set;
    world.bound_cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : world.cores;
    int n = env_count("SLURM_CPUS_PER_TASK");
    world.threads_from = "SLURM_CPUS_PER_TASK";
    if (!n) {
        n = env_count("OMP_NUM_THREADS");
        world.threads_from = "OMP_NUM_THREADS";
    }
    if (!n) {
        n = world.cores / world.local_size;
        if (n < 1) n = 1;
        world.threads_from = "cores per node / ranks per node";
        if (world.bound_cores < n) {
            n = world.bound_cores;
            world.threads_from = "the cores this rank is bound to";
        }
    }
    world.threads = n;
    omp_set_num_threads(n);
    /* The layers thread over images and call BLIS inside those threads: BLIS itself stays at
     * one thread per call (it ignores omp_set_num_threads, so say so explicitly). */
    bli_thread_set_num_threads(1);
}

void dist_init(int *argc, char ***argv, const char *who) {
    if (launched_by_mpi()) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            die("%s: MPI_Init failed", who);
        world.mpi = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &world.size);
        if (!die_hook) die_hook = die_abort;
        MPI_Comm node;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &world.local_rank);
        MPI_Comm_size(node, &world.local_size);
        MPI_Comm_free(&node);
        int first_on_node = world.local_rank == 0, nodes = 0;
        MPI_Allreduce(&first_on_node, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        world.nodes = nodes;
    }
    /* SLURM_STEP_NUM_TASKS, not SLURM_NTASKS: srun sets it for the tasks of a step, while a batch
     * script's own shell (one process) inherits the allocation's SLURM_NTASKS as well */
    const int slurm_tasks = env_count("SLURM_STEP_NUM_TASKS");
    if (slurm_tasks > 1 && world.size == 1)
        die("%s: srun started %d tasks (SLURM_STEP_NUM_TASKS) but this process is not connected to the "
            "others through MPI, so each would run the whole job alone. Launch with "
            "`srun --mpi=pmix bin/ddpm ...` or `mpirun bin/ddpm ...` inside the allocation, or "
            "ask for one task (srun -n 1)", who, slurm_tasks);
    choose_threads();
}

void dist_finalize(void) {
    if (world.mpi) MPI_Finalize();
    world.mpi = 0;
}

void dist_print_layout(FILE *f) {
    const int over_node = world.local_size * world.threads > world.cores;
    const int over_binding = dist_max_int(world.threads > world.bound_cores);
    if (world.rank != 0) return;
    fprintf(f, "layout: %d node%s, %d rank%s (%d on this node), %d thread%s per rank (%s); "
               "%d cores per node\n",
            world.nodes, world.nodes == 1 ? "" : "s", world.size, world.size == 1 ? "" : "s",
            world.local_size, world.threads, world.threads == 1 ? "" : "s", world.threads_from,
            world.cores);
    if (over_node)
        fprintf(stderr, "ddpm: warning: %d ranks x %d threads exceed this node's %d cores: "
                        "oversubscribed OpenMP threads wait on each other and run many times "
                        "slower; use fewer threads per rank\n",
                world.local_size, world.threads, world.cores);
    if (over_binding)
        fprintf(stderr, "ddpm: warning: a rank runs %d threads but is bound to fewer cores "
                        "(mpirun binds each rank to one core for up to 2 ranks): use "
                        "`mpirun --bind-to none` or `--map-by slot:PE=%d` for several threads "
                        "per rank\n",
                world.threads, world.threads);
    fflush(f);
}

void dist_share(long n, int r, int size, long *first, long *count) {
    const long base = n / size, extra = n % size;
    *count = base + (r < extra);
    *first = r * base + (r < extra ? r : extra);
}

void dist_share_chunks(long n, long chunk, int r, int size, long *first, long *count) {
    long c0, nc;
    dist_share((n + chunk - 1) / chunk, r, size, &c0, &nc);
    *first = c0 * chunk < n ? c0 * chunk : n;
    const long end = (c0 + nc) * chunk < n ? (c0 + nc) * chunk : n;
    *count = end - *first;
}

double dist_sum(double v) {
    if (world.size > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return v;
}

void dist_sum_doubles(double *v, size_t n) {
    if (world.size == 1 || n == 0) return;
    if (n > 2147483647u) die("allreduce of %zu doubles: too large for one MPI call", n);
    MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int dist_max_int(int v) {
    if (world.size > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

void dist_min_max(double v, double *lo, double *hi) {
    *lo = *hi = v;
    if (world.size == 1) return;
    MPI_Allreduce(MPI_IN_PLACE, lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

int dist_all_equal_u64(uint64_t v) {
    if (world.size == 1) return 1;
    uint64_t lo = v, hi = v;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

int dist_file_exists(const char *path, const char *place) {
    const int seen = access(path, F_OK) == 0;
    if (!dist_all_equal_u64((uint64_t)seen))
        die("%s: visible to some ranks but not to others (rank %d %s it): the %s must be on a "
            "file system every rank shares",
            path, world.rank, seen ? "sees" : "does not see", place);
    return seen;
}

void dist_barrier(void) {
    if (world.size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void dist_gather_shares(float *all, const float *mine, long n, size_t per_item) {
    long first, count;
    dist_share(n, world.rank, world.size, &first, &count);
    if (world.size == 1) {
        if (all != mine) memcpy(all, mine, (size_t)count * per_item * sizeof(float));
        return;
    }
    if ((double)n * per_item > 2147483647.0) die("gather of %ld images: too large for one MPI call", n);
    int *counts = NULL, *displs = NULL;
    if (world.rank == 0) {
        counts = xcalloc((size_t)world.size, sizeof(int));
        displs = xcalloc((size_t)world.size, sizeof(int));
        for (int r = 0; r < world.size; r++) {
            long f, c;
            dist_share(n, r, world.size, &f, &c);
            counts[r] = (int)(c * (long)per_item);
            displs[r] = (int)(f * (long)per_item);
        }
    }
    MPI_Gatherv(mine, (int)(count * (long)per_item), MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0,
                MPI_COMM_WORLD);
    free(counts);
    free(displs);
}

MPI_Comm dist_comm(void) { return MPI_COMM_WORLD; }
