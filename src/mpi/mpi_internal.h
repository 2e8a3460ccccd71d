/* mpi_internal.h - what the MPI pool backend's files share: the state of
 * this process in the MPI job (world.c), the messages between the pool's
 * rank 0 and its worker ranks, and the entry points of the rank side
 * (rank.c) and of rank 0's proxies (../pool_mpi.c).
 *
 * DESIGN
 * Rank 0 runs the program's main. Its MPI pool is an ordinary mp_pool
 * (pool.c, pool_handler.c: jobs, chunks, ordering, callbacks, progress)
 * whose "workers" are proxy threads, one per worker rank: a proxy takes
 * the descriptors the parent publishes in its slot's ring, sends them to
 * its rank in batches (several batches in flight, so a rank never idles
 * between them), and writes the results back into the slot as a local
 * worker would, then collects them into the pool itself (so a batch's
 * results wake only the proxy, not the pool's result thread too). A
 * worker rank (rank.c) never returns into main: it runs each batch on a
 * local process pool of its own (fork workers), so a task that crashes
 * fails alone with MP_EWORKERDIED and the rank lives on; its main thread
 * runs that pool's result loop (a driven pool, pool_internal.h) and the
 * rank's own work in a hook of it, one thread waking per local chunk.
 *
 * Messages travel on MPI_COMM_WORLD (a duplicate, so the program's own
 * MPI traffic never mixes with the pool's), rank 0 <-> rank r only. Every
 * message is a byte array; lengths inside are checked against the
 * message's size. A worker rank sends a heartbeat every HEARTBEAT_NS while
 * a pool is open; a proxy that hears nothing from its rank for DEAD_NS
 * declares it dead (MPI in Debian's Open MPI 4 reports no error for a
 * dead peer: a receive just never completes). */
#ifndef MP_MPI_INTERNAL_H
#define MP_MPI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#if MP_HAVE_MPI
#include <mpi.h>
#endif

/* Message tags. */
enum {
  MP__MPI_OPEN = 1,   /* 0 -> r: mp__mpi_open; open a local pool */
  MP__MPI_OPENED,     /* r -> 0: mp__mpi_opened */
  MP__MPI_BATCH,      /* 0 -> r: a batch of descriptors */
  MP__MPI_RESULT,     /* r -> 0: the results of the oldest batch */
  MP__MPI_CLOSE,      /* 0 -> r: finish the batches, close the pool */
  MP__MPI_TERMINATE,  /* 0 -> r: terminate the pool now */
  MP__MPI_CLOSED,     /* r -> 0: the pool is gone */
  MP__MPI_HEARTBEAT,  /* r -> 0: alive */
  MP__MPI_EXIT,       /* 0 -> r: leave (rank 0's program ends) */
};

#define MP__MPI_HEARTBEAT_NS (250 * 1000 * 1000LL)
#define MP__MPI_DEAD_NS (3000 * 1000 * 1000LL)
/* RESULT (rank) and BATCH (rank 0) messages one side may have in flight. */
#define MP__MPI_SENDS 8u

/* OPEN: the local pool each worker rank starts. */
typedef struct mp__mpi_open {
  int32_t processes;       /* 0: the rank's share of its host (rank.c) */
  uint32_t seq;            /* echoed in OPENED */
  uint64_t maxtasks;
  double task_timeout;
  uint64_t max_input, max_result;
  char init_name[256]; /* "" : no initializer */
  uint64_t initargs_size;  /* the initargs follow */
} mp__mpi_open;

typedef struct mp__mpi_opened {
  int32_t rc;
  int32_t processes;
  int32_t pid;
  uint32_t seq; /* the OPEN's: a reply to an earlier OPEN that rank 0
                 * stopped waiting for (its pool failed) is told apart */
} mp__mpi_opened;

/* BATCH: a uint32 count, then per descriptor this header, its function
 * name (name_len bytes) and its input record (ctx_len bytes of context,
 * then in_len bytes of input), each padded to 8 bytes. */
typedef struct mp__mpi_desc {
  uint32_t kind;      /* MP__POOL_DESC_APPLY or _MAP */
  uint32_t name_len;
  uint32_t count, in_size, out_size, ctx_len;
  uint64_t in_len;    /* the input proper, without the context */
  uint64_t out_cap;   /* apply: the task's output capacity */
} mp__mpi_desc;

/* RESULT: a uint32 count, then per descriptor this header and out_len
 * bytes (apply: the result; map: count results, then count int32
 * statuses), padded to 8 bytes. */
typedef struct mp__mpi_res {
  int32_t status;  /* apply: the task's status */
  uint32_t reserved;
  uint64_t out_len;
  uint64_t run_ns;
} mp__mpi_res;

static inline uint64_t mp__mpi_pad8(uint64_t n) { return (n + 7) & ~7ull; }

/* ---- world.c: this process in the MPI job -------------------------------- */
/* mp__mpi_launched tells whether an MPI launcher started this process
 * (mpirun, srun: its environment says so) in a job of more than one. */
bool mp__mpi_launched(void);
/* mp__mpi_init initialises MPI once (thread level MULTIPLE). Returns 0,
 * MP_ENOTSUP (built without MPI, or the library lacks the thread level). */
int mp__mpi_init(int *argc, char ***argv);
/* This process's rank and the job's size (0 and 1 before mp__mpi_init). */
int mp__mpi_rank(void);
int mp__mpi_size(void);
/* How many worker ranks run on this process's host (1 before init). */
int mp__mpi_node_workers(void);
/* The pool backend chosen by MP_POOL_BACKEND and the launcher: true for
 * MPI. */
bool mp__mpi_default_backend(void);
/* Claims the worker ranks for one pool at a time: 0 or MP_EBUSY. */
int mp__mpi_claim(void);
void mp__mpi_release(void);
/* Whether worker rank r (1..size-1) was declared dead; marks it. */
bool mp__mpi_rank_gone(int r);
void mp__mpi_mark_gone(int r);
#if MP_HAVE_MPI
/* The pool's communicator (a duplicate of MPI_COMM_WORLD). */
MPI_Comm mp__mpi_comm(void);
/* mp__mpi_probe tells whether a message from rank src (MPI_ANY_SOURCE:
 * any) waits on the pool's communicator, and fills *st for
 * mp__mpi_recv_probed. Never waits. */
bool mp__mpi_probe(int src, MPI_Status *st);
/* mp__mpi_recv_probed receives the message that MPI_Iprobe found (status)
 * into *buf (grown as needed, capacity *cap). Returns its size, or -1. */
long mp__mpi_recv_probed(MPI_Status *st, unsigned char **buf, size_t *cap);
/* mp__mpi_wait_req waits for a request by MPI_Test and naps of 20 µs
 * growing to 1 ms, never inside MPI's own wait (Open MPI's progress loop
 * spins, or calls sched_yield on every turn when the host is
 * oversubscribed, and a send completes only when the peer has polled it
 * in), for at most limit_ns (< 0: no bound). Returns 0, or MP_ETIMEDOUT
 * with the request still pending. */
int mp__mpi_wait_req(MPI_Request *req, int64_t limit_ns);
/* mp__mpi_send sends len bytes to rank dest on the pool's communicator
 * and waits as mp__mpi_wait_req does. On MP_ETIMEDOUT the request is
 * freed but may still read data later: the caller must not reuse or free
 * data (the peer is then treated as dead). Returns 0, MP_EIO,
 * MP_ETIMEDOUT. */
int mp__mpi_send(const void *data, int len, int dest, int tag,
                 int64_t limit_ns);
#endif

/* ---- trace (built with -DMP__MPI_TRACE only) ---------------------------- */
/* A timeline of the backend's events (CLOCK_MONOTONIC ns), kept in memory
 * and written to stderr by mp__mpi_trace_dump, for finding where a map's
 * time goes. */
#ifdef MP__MPI_TRACE
void mp__mpi_trace(const char *ev, int who, int64_t a);
void mp__mpi_trace_dump(void);
#else
#define mp__mpi_trace(ev, who, a) ((void)0)
#define mp__mpi_trace_dump() ((void)0)
#endif

/* ---- rank.c -------------------------------------------------------------- */
/* mp__mpi_child_hook, called by mp_child_main: under an MPI launcher,
 * initialises MPI; a worker rank then serves pools and exits, never
 * returning. Rank 0 (and a process not under MPI) returns. */
void mp__mpi_child_hook(int argc, char **argv);
/* mp__mpi_set_shutdown_hook sets what rank 0 runs at exit before it lets
 * the worker ranks go and finalizes MPI (the pool side: terminate a live
 * MPI pool). */
void mp__mpi_set_shutdown_hook(void (*fn)(void));

#endif
