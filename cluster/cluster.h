/*
 * cluster.h - MPI plumbing shared by every longctx command.
 *
 * Logging with time, level and rank/size; error agreement so that no rank hangs after another
 * failed; a progress reporter that never makes workers wait; a dynamic work queue; Slurm
 * awareness and signal hooks for requeue; collectives with 64-bit counts (chunked for an MPI
 * whose counts are ints); a check that a folder is shared by every rank.
 *
 * Every function takes the communicator it works on; the world communicator appears only in
 * *_main.c. Collective functions say so. Library code never exits, and prints only through the
 * log sink (and, on rank 0, the progress line).
 */
#ifndef LONGCTX_CLUSTER_H
#define LONGCTX_CLUSTER_H

#include <mpi.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CLUSTER_OK = 0,
    CLUSTER_ERR_MPI = -1, /* an MPI call failed */
    CLUSTER_ERR_NOMEM = -2,
    CLUSTER_ERR_ARG = -3,
    CLUSTER_ERR_REMOTE = -4,     /* another rank failed; see cluster_agree_msg */
    CLUSTER_ERR_STOPPED = -5,    /* a stop was requested (SIGTERM/SIGUSR1) */
    CLUSTER_ERR_IO = -6,         /* a file could not be written or read */
    CLUSTER_ERR_NOT_SHARED = -7, /* a folder is not on a file system every rank sees */
} cluster_status;

const char *cluster_strerror(int status); /* static string, never NULL */

/* ---- logging ------------------------------------------------------------------------------ */

typedef enum {
    CLUSTER_LOG_ERROR = 0,
    CLUSTER_LOG_WARN = 1,
    CLUSTER_LOG_INFO = 2,
    CLUSTER_LOG_DEBUG = 3,
} cluster_log_level;

/*! cluster_log_setup() :
 *  Sets the process-wide log sink (the one piece of global state; call once from main before
 *  any thread starts). `tag` names the command ("prep", "shard"); rank/n_ranks appear in every
 *  line as `tag[rank/n_ranks]`. Lines go to stderr:
 *      12:00:03 I prep[3/16] bucketed 1200 docs into 8 buckets
 *  Messages above `level` are dropped. Safe to call before MPI_Init (rank 0, n_ranks 1). */
void cluster_log_setup(const char *tag, int rank, int n_ranks, cluster_log_level level);
cluster_log_level cluster_log_get_level(void);
/* The message of the last ERROR line this process logged (without time and tag; "" if none),
 * into out (always NUL-terminated). Kept whether or not anybody reads this rank's stderr: a
 * rank hands it to rank 0 with cluster_agree_msg. */
void cluster_log_last_error(char *out, size_t out_bytes);
void cluster_log(cluster_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cluster_vlog(cluster_log_level level, const char *fmt, va_list ap);

#define LOG_ERROR(...) cluster_log(CLUSTER_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  cluster_log(CLUSTER_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...)  cluster_log(CLUSTER_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) cluster_log(CLUSTER_LOG_DEBUG, __VA_ARGS__)

/* ---- error agreement ---------------------------------------------------------------------- */

/*! cluster_agree() :
 *  Collective over comm. Returns the smallest (most severe) status of all ranks, so every rank
 *  learns that one failed before the next collective. */
int cluster_agree(MPI_Comm comm, int status);

/*! cluster_agree_first() :
 *  Collective over comm. For codes where any nonzero value stops (exit codes, callback
 *  returns, of either sign): the value of the lowest rank whose rc is nonzero, else 0. Every
 *  rank stops together, with one rank's reason. */
int cluster_agree_first(MPI_Comm comm, int rc);

/*! cluster_agree_msg() :
 *  Collective over comm. Like cluster_agree(), and also carries the message of the lowest
 *  failing rank (`msg` on that rank; may be NULL elsewhere) to every rank in `out` (size
 *  out_bytes, always NUL-terminated; "" when nobody failed). `*failed_rank` (may be NULL)
 *  receives that rank or -1. The caller prints `out` once, from rank 0. */
int cluster_agree_msg(MPI_Comm comm, int status, const char *msg, char *out, size_t out_bytes,
                      int *failed_rank);

/* ---- progress ----------------------------------------------------------------------------- */

enum { CLUSTER_PROGRESS_MAX_COUNTERS = 4 };

typedef struct cluster_progress cluster_progress;

typedef struct {
    const char *label;                                /* "prep", shown at the start of each line */
    int n_counters;                                   /* <= CLUSTER_PROGRESS_MAX_COUNTERS */
    const char *names[CLUSTER_PROGRESS_MAX_COUNTERS]; /* "docs", "bytes", "tokens" */
    uint64_t totals[CLUSTER_PROGRESS_MAX_COUNTERS];   /* expected global totals, 0 = unknown;
                                                         the first known one drives the ETA */
    double interval_seconds; /* rank 0 prints at most this often (default 5) */
    int live;                /* 1: one rewritten line (terminal); 0: plain lines; -1: isatty */
} cluster_progress_opts;

cluster_progress_opts cluster_progress_opts_default(void);

/*! cluster_progress_create() :
 *  Collective over comm (dups it). Each rank adds its own counts with _add(); workers send
 *  their totals to rank 0 without blocking at most once per interval; rank 0 drains them in
 *  _add()/_poll() and prints rate and ETA to stderr. Nobody ever waits for anybody. */
int cluster_progress_create(MPI_Comm comm, const cluster_progress_opts *opts,
                            cluster_progress **out);
/* Local. Adds deltas (n_counters values) to this rank's counters. */
void cluster_progress_add(cluster_progress *p, const uint64_t *deltas);
/* Local. Lets rank 0 print when it has no counts to add (no-op on other ranks). */
void cluster_progress_poll(cluster_progress *p);
/*! cluster_progress_finish() :
 *  Collective. Sums all counters exactly into `totals` (may be NULL), prints a final line on
 *  rank 0, and completes outstanding messages. */
int cluster_progress_finish(cluster_progress *p, uint64_t *totals);
void cluster_progress_free(cluster_progress *p); /* NULL ok; local after finish */

/* ---- dynamic work queue ------------------------------------------------------------------- */

typedef struct cluster_queue cluster_queue;

/*! cluster_queue_create() :
 *  Collective over comm. A shared counter over items 0..n_items-1 (an MPI RMA window on rank 0,
 *  MPI_Fetch_and_op). Ranks take the next free item as they free up. Which rank did which item
 *  depends on timing: make results independent of it by keying them by item id. */
int cluster_queue_create(MPI_Comm comm, uint64_t n_items, cluster_queue **out);
/*! cluster_queue_next() :
 *  Local (one-sided). Stores the next item id in *item and returns CLUSTER_OK, or returns 1
 *  when all items have been handed out. */
int cluster_queue_next(cluster_queue *q, uint64_t *item);
void cluster_queue_free(cluster_queue *q); /* collective (frees the window); NULL ok */

/* ---- replicas: tensor-parallel groups, their items and their results (cluster_groups.c) --- */

/* How the ranks of a world divide: tensor-parallel groups of tp_size consecutive ranks (one model
 * split over them; consecutive, so that a group fills a node before the next: mpirun's and srun's
 * default block placement), n_replicas = size / tp_size of them. */
typedef struct {
    MPI_Comm world; /* borrowed: the communicator the groups were made from */
    MPI_Comm tp;    /* this rank's group (MPI_COMM_SELF at tp_size 1, else owned) */
    int rank, size, tp_size, tp_rank, replica, n_replicas;
} cluster_groups;

/*! cluster_groups_make() :
 *  Collective over world. Groups of tp ranks (0: one group of every rank).
 *  @return CLUSTER_OK, CLUSTER_ERR_ARG (tp does not divide the ranks; g->size is set for the
 *  message, g->tp is MPI_COMM_SELF), CLUSTER_ERR_MPI. */
int cluster_groups_make(MPI_Comm world, int tp, cluster_groups *g);
void cluster_groups_free(cluster_groups *g); /* local; frees g->tp when owned */

/*! cluster_groups_next() :
 *  Collective over g->tp. The group's rank 0 draws the next item from q (a queue over g->world),
 *  the group learns it by broadcast. UINT64_MAX: no more (stop != 0: this group stops drawing,
 *  after a failure). */
uint64_t cluster_groups_next(const cluster_groups *g, cluster_queue *q, int stop);

/* Results keyed by item, for rank 0 to write in item order whichever replica made them:
 * records of (u64 item, u64 n, n bytes). */
typedef struct {
    char *p;
    size_t n, cap;
} cluster_records;

/* Local. Appends one record. @return CLUSTER_OK, CLUSTER_ERR_NOMEM. */
int cluster_records_add(cluster_records *b, uint64_t item, const void *bytes, uint64_t n);
void cluster_records_free(cluster_records *b); /* frees and zeroes b */

/*! cluster_records_gather() :
 *  Collective over comm. Every rank's records to rank 0, concatenated in rank order: *all
 *  (malloc'd, *n_all bytes) on rank 0, NULL elsewhere. @return CLUSTER_OK, CLUSTER_ERR_NOMEM
 *  (also: more than 2 GiB, MPI's int counts), CLUSTER_ERR_MPI; the same on every rank. */
int cluster_records_gather(MPI_Comm comm, const cluster_records *mine, char **all, size_t *n_all);

/*! cluster_records_index() :
 *  Local. (*rec)[i] (calloc'd, n_items entries; free it) points at item i's record in all, or is
 *  NULL if no rank made it; records of items >= n_items are ignored. @return CLUSTER_OK,
 *  CLUSTER_ERR_NOMEM. */
int cluster_records_index(const char *all, size_t n_all, uint64_t n_items, const char ***rec);
/* The bytes of a record (*n of them), borrowed from the record's buffer. */
const char *cluster_record_bytes(const char *rec, uint64_t *n);

/* ---- collectives with 64-bit counts (cluster_big.c) ----------------------------------------
 * Open MPI 4.1 has no MPI-4 large-count (_c) calls: MPI sees int counts and int displacements.
 * These helpers take uint64_t counts and displacements and hand MPI pieces of at most the chunk
 * size (cluster_chunk_bytes()) each. When every count and displacement of a call fits the chunk,
 * they make the one native call (MPI_Alltoallv, ...), so nothing changes at ordinary sizes;
 * otherwise the v-variants exchange with nonblocking point-to-point messages of at most a chunk
 * each on a duplicate of comm (see cluster_big.c for why not rounds of MPI_Alltoallv).
 * Every function is collective over comm, returns the same status on every rank (CLUSTER_OK,
 * CLUSTER_ERR_ARG, CLUSTER_ERR_NOMEM, CLUSTER_ERR_MPI) and never hangs a rank after another's
 * local failure. Every rank of comm must use the same chunk size. */

/* INT_MAX rounded down to 4 KiB: the largest piece MPI is ever handed. */
#define CLUSTER_CHUNK_BYTES_DEFAULT ((size_t)2147479552)
#define CLUSTER_CHUNK_ENV           "LONGCTX_MPI_CHUNK_BYTES"

/*! cluster_set_chunk_bytes() :
 *  Process-wide setting, like the log sink: set it from main (or a test) before threads start
 *  and only between collectives. 0 restores the default. Small values (1, 3, 7 bytes) exist
 *  for tests that force chunking. @return CLUSTER_OK, CLUSTER_ERR_ARG (over the default). */
int cluster_set_chunk_bytes(size_t bytes);
size_t cluster_chunk_bytes(void); /* the current chunk size in bytes */

/*! cluster_chunk_bytes_setup() :
 *  Collective over comm; call once from main. Rank 0 reads $LONGCTX_MPI_CHUNK_BYTES (unset or
 *  empty: the default) and broadcasts it, so that every rank uses rank 0's value even where a
 *  launcher does not pass the environment on. *bytes_out (may be NULL) gets the value in
 *  force. @return CLUSTER_OK, CLUSTER_ERR_ARG (not a number in 1..CLUSTER_CHUNK_BYTES_DEFAULT;
 *  the setting is unchanged), CLUSTER_ERR_MPI; the same on every rank. */
int cluster_chunk_bytes_setup(MPI_Comm comm, size_t *bytes_out);

/*! cluster_bcast_big() :
 *  Collective over comm. MPI_Bcast of `bytes` bytes (the same value on every rank) from root. */
int cluster_bcast_big(void *buf, uint64_t bytes, int root, MPI_Comm comm);

/*! cluster_alltoallv_big() :
 *  Collective over comm. MPI_Alltoallv with counts and displacements in units of unit_bytes
 *  bytes (1: bytes), all uint64_t: send_counts[r] units from send + send_displs[r] go to rank
 *  r, which receives them at recv + recv_displs[this rank]. The arrays have one entry per rank
 *  of comm; send and recv must not overlap. Counts must match pairwise as in MPI. */
int cluster_alltoallv_big(const void *send, const uint64_t *send_counts,
                          const uint64_t *send_displs, void *recv, const uint64_t *recv_counts,
                          const uint64_t *recv_displs, size_t unit_bytes, MPI_Comm comm);

/*! cluster_allgatherv_big() :
 *  Collective over comm. MPI_Allgatherv in units of unit_bytes: every rank's send_count units
 *  land on every rank at recv + displs[r]; recv_counts[r] (= rank r's send_count) and displs
 *  on every rank. */
int cluster_allgatherv_big(const void *send, uint64_t send_count, void *recv,
                           const uint64_t *recv_counts, const uint64_t *displs, size_t unit_bytes,
                           MPI_Comm comm);

/*! cluster_gatherv_big() :
 *  Collective over comm. MPI_Gatherv in units of unit_bytes: every rank's send_count units land
 *  on root at recv + displs[r]. recv, recv_counts and displs matter on root only (may be NULL
 *  elsewhere). */
int cluster_gatherv_big(const void *send, uint64_t send_count, void *recv,
                        const uint64_t *recv_counts, const uint64_t *displs, size_t unit_bytes,
                        int root, MPI_Comm comm);

/*! cluster_allreduce_big() :
 *  Collective over comm. MPI_Allreduce in place on count elements of a predefined type (the
 *  same count on every rank), in pieces of at most a chunk (at least one element each). */
int cluster_allreduce_big(void *buf, uint64_t count, MPI_Datatype type, MPI_Op op, MPI_Comm comm);
/* The same, summing n uint64_t in place. */
int cluster_allreduce_u64_big(uint64_t *buf, uint64_t n, MPI_Comm comm);

/* ---- shared folders (cluster_shared.c) ---------------------------------------------------- */

/*! cluster_check_shared_dir() :
 *  Collective over comm. Whether every rank sees the folder `dir` (which must exist on rank 0)
 *  as rank 0 does: rank 0 writes dir/.longctx-shared-<random token> holding the token, every
 *  rank reads it back (allowing about a second for a slow file system), and rank 0 removes it.
 *  `dir` may differ between ranks (tests do that); a program passes the same path everywhere.
 *  @return CLUSTER_OK; CLUSTER_ERR_NOT_SHARED with err (err_bytes, NUL-terminated, the same on
 *  every rank) naming the ranks and hosts that do not see it; CLUSTER_ERR_IO when rank 0 cannot
 *  write the marker (err: path and reason); CLUSTER_ERR_NOMEM, CLUSTER_ERR_MPI. */
int cluster_check_shared_dir(MPI_Comm comm, const char *dir, char *err, size_t err_bytes);

/* ---- Slurm and signals -------------------------------------------------------------------- */

typedef struct {
    char job_id[32];    /* SLURM_JOB_ID, "" outside Slurm */
    char step_id[32];   /* SLURM_STEP_ID */
    char array_id[32];  /* SLURM_ARRAY_TASK_ID */
    char node_name[64]; /* SLURMD_NODENAME, else MPI_Get_processor_name */
    int restart_count;  /* SLURM_RESTART_COUNT (requeues), 0 if unset */
} cluster_slurm_info;

/* Local. Reads the environment. */
void cluster_slurm_info_get(cluster_slurm_info *info);

/*! cluster_log_job() :
 *  Collective. Rank 0 logs job id, step, restart count and the node list (gathered). */
int cluster_log_job(MPI_Comm comm);

/*! cluster_signals_install() :
 *  Installs handlers for SIGTERM and SIGUSR1 (Slurm's `--signal` before a time limit or
 *  preemption) that only set a flag. Call from main. */
void cluster_signals_install(void);
/* Local: the signal number received (SIGTERM/SIGUSR1), 0 if none. Async-signal-safe read. */
int cluster_stop_signal(void);
/*! cluster_stop_agreed() :
 *  Collective. 1 on every rank if any rank received a stop signal: the caller then finishes
 *  its current unit of work, saves state and returns CLUSTER_ERR_STOPPED. */
int cluster_stop_agreed(MPI_Comm comm);

/* ---- small helpers ------------------------------------------------------------------------ */

/*! cluster_file_write_at() :
 *  Local. MPI_File_write_at of n bytes of any size at byte offset off (in pieces of 1 GiB: its
 *  count is an int). @return CLUSTER_OK, or CLUSTER_ERR_MPI with why saying what the MPI
 *  library said (e.g. MPI_ERR_NO_SPACE on a full disk) or how short the write was. */
int cluster_file_write_at(MPI_File fh, uint64_t off, const void *buf, uint64_t n, char *why,
                          size_t why_bytes);

double cluster_now(void); /* monotonic seconds */

/*! cluster_cpus_usable() :
 *  Local. The CPUs this process may run on (its affinity mask; the online CPUs if unknown). */
int cluster_cpus_usable(void);

/*! cluster_warn_threads() :
 *  Collective. Rank 0 logs a warning, saying how to fix the launch, when some rank may run on
 *  fewer CPUs than `threads` (mpirun binds ranks to one core by default). @return the least
 *  number of usable CPUs over the ranks. */
int cluster_warn_threads(MPI_Comm comm, int threads);

/*! cluster_malloc_reuse() :
 *  Local; once, early in main. Tells glibc's malloc to keep freed memory for reuse instead of
 *  unmapping big blocks (cluster_memory.c says why and what it measured). Skipped when the
 *  environment sets CLUSTER_MALLOC_REUSE_ENV to 0. @return 1 if set, 0 if not (another C
 *  library, or skipped). */
#define CLUSTER_MALLOC_REUSE_ENV "LONGCTX_MALLOC_REUSE"
int cluster_malloc_reuse(void);

#endif
