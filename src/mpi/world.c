/* world.c - this process in an MPI job, for the MPI pool backend: whether
 * an MPI launcher started it, initialising MPI once, its rank, the pool's
 * own communicator, which worker ranks are known dead, and the choice of
 * backend (MP_POOL_BACKEND). Built as stubs when the library has no MPI.
 * See mpi_internal.h for the design. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpi/mpi_internal.h"

static _Atomic int claimed;

bool mp__mpi_launched(void) {
  /* Open MPI's mpirun, then PMI-based launchers (Slurm's srun). */
  const char *v = getenv("OMPI_COMM_WORLD_SIZE");
  if (v == NULL)
    v = getenv("PMI_SIZE");
  if (v == NULL)
    v = getenv("PMIX_SIZE");
  return v != NULL && atoi(v) > 1;
}

bool mp__mpi_default_backend(void) {
  const char *v = getenv("MP_POOL_BACKEND");
  if (v != NULL && strcmp(v, "local") == 0)
    return false;
  if (v != NULL && strcmp(v, "mpi") == 0)
    return true;
  return mp__mpi_launched();
}

int mp__mpi_claim(void) {
  int want = 0;
  return atomic_compare_exchange_strong(&claimed, &want, 1) ? 0 : MP_EBUSY;
}

void mp__mpi_release(void) { atomic_store(&claimed, 0); }

#ifdef MP__MPI_TRACE
typedef struct trace_ev {
  int64_t t, a;
  const char *ev;
  int who;
} trace_ev;
static trace_ev trace_buf[1 << 16];
static _Atomic uint32_t trace_n;

void mp__mpi_trace(const char *ev, int who, int64_t a) {
  uint32_t i = atomic_fetch_add(&trace_n, 1);
  if (i < sizeof trace_buf / sizeof trace_buf[0])
    trace_buf[i] = (trace_ev){mp__os_now_ns(), a, ev, who};
}

void mp__mpi_trace_dump(void) {
  uint32_t n = atomic_exchange(&trace_n, 0);
  if (n > sizeof trace_buf / sizeof trace_buf[0])
    n = sizeof trace_buf / sizeof trace_buf[0];
  for (uint32_t i = 0; i < n; i++)
    fprintf(stderr, "TR %lld %d %s %lld\n", (long long)trace_buf[i].t,
            trace_buf[i].who, trace_buf[i].ev, (long long)trace_buf[i].a);
}
#endif

#if MP_HAVE_MPI

static int world_rank, world_size = 1;
static int node_workers = 1; /* worker ranks on this rank's host */
static bool inited;
static MPI_Comm comm = MPI_COMM_NULL;
static _Atomic(unsigned char) *gone;

int mp__mpi_init(int *argc, char ***argv) {
  if (inited)
    return 0;
  int flag = 0;
  MPI_Initialized(&flag);
  int provided = 0;
  if (!flag) {
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) !=
        MPI_SUCCESS)
      return mp__fail(MP_ENOTSUP, "MPI_Init_thread failed");
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_MULTIPLE)
    return mp__fail(MP_ENOTSUP, "the MPI library lacks MPI_THREAD_MULTIPLE");
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  /* How many worker ranks share this host (the ranks of the host's
   * shared-memory communicator, less rank 0 when it is one of them), for
   * the default size of a rank's local pool. Collective: every rank is
   * here, from mp_child_main. */
  MPI_Comm node;
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                          &node) == MPI_SUCCESS) {
    int n = 1, lowest = world_rank;
    MPI_Comm_size(node, &n);
    MPI_Allreduce(&world_rank, &lowest, 1, MPI_INT, MPI_MIN, node);
    node_workers = lowest == 0 ? n - 1 : n;
    if (node_workers < 1)
      node_workers = 1;
    MPI_Comm_free(&node);
  }
  /* Errors come back as codes; a dead peer is found by its silence. */
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  gone = calloc((size_t)world_size, 1);
  inited = true;
  return 0;
}

int mp__mpi_rank(void) { return world_rank; }
int mp__mpi_node_workers(void) { return node_workers; }
int mp__mpi_size(void) { return inited ? world_size : 1; }
MPI_Comm mp__mpi_comm(void) { return comm; }

bool mp__mpi_rank_gone(int r) {
  return gone != NULL && r >= 0 && r < world_size && gone[r] != 0;
}

void mp__mpi_mark_gone(int r) {
  if (gone != NULL && r >= 0 && r < world_size)
    gone[r] = 1;
}

bool mp__mpi_probe(int src, MPI_Status *st) {
  /* Open MPI's MPI_Iprobe looks at what progress has already received and
   * only then runs the progress loop once, which may take a message in
   * without reporting it: a second look sees what the first took in
   * (else a message that waited in shared memory would wait one more nap
   * here). */
  for (int i = 0; i < 2; i++) {
    int flag = 0;
    if (MPI_Iprobe(src, MPI_ANY_TAG, comm, &flag, st) != MPI_SUCCESS)
      return false;
    if (flag) {
      if (i == 1)
        mp__mpi_trace("probe2", world_rank, src);
      return true;
    }
  }
  return false;
}

long mp__mpi_recv_probed(MPI_Status *st, unsigned char **buf, size_t *cap) {
  int n = 0;
  if (MPI_Get_count(st, MPI_BYTE, &n) != MPI_SUCCESS || n < 0)
    return -1;
  if ((size_t)n > *cap || *buf == NULL) {
    size_t want = (size_t)n > 4096 ? (size_t)n : 4096;
    unsigned char *b = mp__realloc(*buf, want);
    if (b == NULL)
      return -1;
    *buf = b;
    *cap = want;
  }
  if (MPI_Recv(*buf, n, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, comm,
               MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return -1;
  return n;
}

static void nap(int64_t ns) {
  struct timespec ts = {0, (long)ns};
  nanosleep(&ts, NULL);
}

int mp__mpi_wait_req(MPI_Request *req, int64_t limit_ns) {
  int64_t until = limit_ns < 0 ? INT64_MAX : mp__os_now_ns() + limit_ns;
  int64_t ns = 20000;
  for (;;) {
    int done = 0;
    if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done)
      return 0;
    if (mp__os_now_ns() >= until)
      return MP_ETIMEDOUT;
    nap(ns);
    ns = ns * 2 > 1000000 ? 1000000 : ns * 2;
  }
}

int mp__mpi_send(const void *data, int len, int dest, int tag,
                 int64_t limit_ns) {
  MPI_Request req;
  if (MPI_Isend((void *)data, len, MPI_BYTE, dest, tag, comm, &req) !=
      MPI_SUCCESS)
    return mp__fail(MP_EIO, "MPI_Isend to rank %d failed", dest);
  if (mp__mpi_wait_req(&req, limit_ns) != 0) {
    MPI_Request_free(&req);
    return mp__fail(MP_ETIMEDOUT, "rank %d took no message for %.1f s", dest,
                    (double)limit_ns / 1e9);
  }
  return 0;
}

#else /* !MP_HAVE_MPI */

int mp__mpi_init(int *argc, char ***argv) {
  (void)argc, (void)argv;
  return mp__fail(MP_ENOTSUP, "multiproc was built without MPI");
}
int mp__mpi_rank(void) { return 0; }
int mp__mpi_size(void) { return 1; }
int mp__mpi_node_workers(void) { return 1; }
bool mp__mpi_rank_gone(int r) {
  (void)r;
  return true;
}
void mp__mpi_mark_gone(int r) { (void)r; }

#endif
