/* process_internal.h - what the process files share: the process object
 * and context structs, the child-side bootstrap, the boot message that
 * carries a child's description to a spawned or forkserver child, and the
 * target registry. process.c owns the objects and the process-wide state;
 * spawn.c and forkserver.c implement two start methods; registry.c maps
 * names to targets; context.c holds the start-method choice. */
#ifndef MP_PROCESS_INTERNAL_H
#define MP_PROCESS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Limits on what a boot message may carry; the reader checks each. */
#define MP__PROCESS_NAME_MAX 255     /* a name given by the user */
#define MP__BOOT_NAME_MAX 4096       /* a default name of a deep child */
#define MP__BOOT_IDENTITY_MAX 1024   /* nesting depth */
#define MP__BOOT_ARG_MAX ((size_t)1 << 30)
/* How long mp_process_start waits for a spawn or forkserver child to say
 * it found its target. */
#define MP__START_TIMEOUT 30.0
/* The spawned child finds its end of the boot socket here. */
#define MP__SPAWN_ENV "MP_SPAWN_FD"
#define MP__SPAWN_CHILD_FD 3

/* What the record is: a child this process made, or one of the two
 * records the library keeps (this process, its parent). */
enum mp__process_kind {
  MP__KIND_CHILD = 0,
  MP__KIND_CURRENT = 1,
  MP__KIND_PARENT = 2,
};

/* A child object's life. STARTING: a thread is inside mp_process_start;
 * others treat the object as not started. */
enum mp__process_state {
  MP__STATE_NEW = 0,
  MP__STATE_STARTING,
  MP__STATE_RUNNING,
  MP__STATE_ENDED,
  MP__STATE_CLOSED,
};

/* How the end of a child is noticed and its status obtained. */
enum mp__sentinel_kind {
  MP__SENTINEL_NONE = 0,  /* no descriptor: poll waitpid in slices */
  MP__SENTINEL_PIDFD,     /* a pidfd; status from waitpid */
  MP__SENTINEL_EXITPIPE,  /* a pipe the child holds open; waitpid */
  MP__SENTINEL_STATUSPIPE /* forkserver: the server writes the status */
};

/* The page a child writes its error message into (mp_process_set_error)
 * and its parent reads after reaping it. Shared: the parent reads it with
 * bounds, never trusting length. */
#define MP__EXIT_PAGE_MAGIC 0x4d504558u /* "MPEX" */
typedef struct mp__exit_page {
  uint32_t magic;
  uint32_t length;
  char message[256];
} mp__exit_page;

struct mp_process {
  pthread_mutex_t lock; /* guards state, reaping, sentinel, info */
  int kind;             /* enum mp__process_kind */
  int state;            /* enum mp__process_state */
  pid_t owner;          /* the process that created the object */
  mp_process_target_fn target;
  mp_process_run_fn run;
  void *arg;
  size_t arg_size;
  void *userdata;
  mp_context *context;
  char *name;
  bool name_owned; /* name was allocated for this object */
  int daemon;
  uint32_t *identity; /* e.g. {1, 2} for "Process-1:2" */
  size_t identity_len;
  pid_t pid;
  int sentinel;      /* descriptor, -1 when none */
  int sentinel_kind; /* enum mp__sentinel_kind */
  int waiters;       /* threads in join polling the sentinel */
  mp__exit_page *page;
  mp_exit_info info; /* valid once ENDED */
  bool ended_seen;   /* the child's end was observed (ENDED or later) */
  /* Membership of the process-wide child list (under the global lock). */
  bool listed;
  bool orphaned; /* freed by its owner while running: the list frees it */
  struct mp_process *next;
  /* Storage of a spawned child's own record (its boot message). */
  void *boot_storage;
  /* Python's authkey: the creator's when created (mp_process_authkey). */
  uint16_t authkey_len;
  bool authkey_made; /* the main record's key was drawn */
  unsigned char authkey[MP_AUTHKEY_MAX];
};

struct mp_context {
  pthread_mutex_t lock; /* serialises requests to the server */
  mp_start_method method;
  pid_t owner;
  int server_sock; /* forkserver: our end of the control socket, or -1 */
  pid_t server_pid;
  struct mp_context *next; /* process-wide list, for fork children */
};

/* ---- process.c -------------------------------------------------------- */
void mp__process_init(void);
/* mp__process_exit_cleanup does what Python's _exit_function does for
 * children: SIGTERM daemonic ones (SIGKILL after a second), join the rest.
 * Runs at normal exit, and in a child after its target returns. */
void mp__process_exit_cleanup(void);
/* mp__child_enter makes self the calling child's current-process record,
 * with its parent's pid and name, and page as the target of
 * mp_process_set_error. Runs first thing in every new child. */
void mp__child_enter(mp_process *self, pid_t parent_pid,
                     const char *parent_name, mp__exit_page *page);
/* mp__child_run_and_exit runs self's target, cleans up its children,
 * flushes stdio and _exits with the target's status. */
_Noreturn void mp__child_run_and_exit(mp_process *self);
/* mp__exit_page_map maps a page, anonymous (fd < 0) or of fd. */
int mp__exit_page_map(int fd, mp__exit_page **out);
void mp__exit_page_unmap(mp__exit_page *page);
/* mp__current_name_dup copies the current process's name (mp__free). */
char *mp__current_name_dup(void);
/* Track contexts, so a forked child closes their server sockets. */
void mp__context_track(mp_context *ctx);
void mp__context_untrack(mp_context *ctx);

/* ---- registry.c ------------------------------------------------------- */
enum mp__boot_kind {
  MP__BOOT_NOTHING = 0, /* no target: the child exits 0, as Python */
  MP__BOOT_TARGET = 1,
  MP__BOOT_RUN = 2,
};
typedef struct mp__registered {
  int kind; /* enum mp__boot_kind */
  mp_process_target_fn target;
  mp_process_run_fn run;
} mp__registered;
/* mp__registry_name_of copies into out the name p's target (or run
 * callback) is registered under. Returns 0, MP_ENOENT. */
int mp__registry_name_of(const mp_process *p, int *kind, char *out,
                         size_t cap);
/* mp__registry_find looks a name of a kind up. Returns 0, MP_ENOENT. */
int mp__registry_find(int kind, const char *name, mp__registered *out);
void mp__registry_atfork_prepare(void);
void mp__registry_atfork_parent(void);
void mp__registry_atfork_child(void);

/* ---- spawn.c: the boot message ---------------------------------------- */
typedef struct mp__boot {
  int kind; /* enum mp__boot_kind */
  int daemon;
  pid_t parent_pid;
  const char *target; /* registered name ("" for MP__BOOT_NOTHING) */
  const char *name;
  const char *parent_name;
  const uint32_t *identity;
  size_t identity_len;
  const void *arg;
  size_t arg_size;
  size_t authkey_len; /* the child's authkey, carried by value */
  unsigned char authkey[MP_AUTHKEY_MAX];
} mp__boot;

/* mp__boot_send writes b to sock with the nfds descriptors. */
int mp__boot_send(int sock, const mp__boot *b, const int *fds, size_t nfds,
                  int64_t abs_ns);
/* mp__boot_recv reads a boot message into *b, whose pointers point into
 * *storage (the caller frees it with mp__free), and up to maxfds
 * descriptors, which must all arrive. Checks every length. */
int mp__boot_recv(int sock, mp__boot *b, void **storage, int *fds,
                  size_t maxfds, int64_t abs_ns);
/* mp__child_from_boot builds a child's own record from its boot message
 * and the target found for it. Takes ownership of storage on success. */
int mp__child_from_boot(const mp__boot *b, const mp__registered *fn,
                        void *storage, mp_process **out);
/* Fork handlers for spawn.c's lock (called from process.c's). */
void mp__spawn_atfork_prepare(void);
void mp__spawn_atfork_parent(void);
void mp__spawn_atfork_child(void);
/* mp__spawn_start starts p under the spawn method. */
int mp__spawn_start(mp_process *p);
/* mp__start_prepare checks p's argument for a start method that copies
 * it (MP_EINVAL, MP_ETOOBIG) and finds its target's name. */
int mp__start_prepare(const mp_process *p, mp__boot *b, char *target,
                      size_t cap);

/* ---- forkserver.c ----------------------------------------------------- */
int mp__forkserver_create(mp_context *ctx);
void mp__forkserver_stop(mp_context *ctx);
int mp__forkserver_start(mp_process *p);

#endif
