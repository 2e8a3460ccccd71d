/* manager/manager_internal.h - what the manager's files share: the
 * transport (sockets and handshake), the server's object table and type
 * table, the call record a method implementation fills, and the client's
 * request helper.
 *
 * DESIGN
 * The server is Python's: one thread accepts, one thread per accepted
 * connection runs the handshake, reads one control request, and either
 * answers it and closes, or (accept_connection) serves method calls on that
 * connection until it closes. All shared objects live in one table under one
 * mutex (srv->mu); every method runs with srv->mu held, and a blocking
 * method (Queue.get, Lock.acquire, Condition.wait, Event.wait, Barrier.wait)
 * waits on a condition variable with srv->mu, in slices of
 * MP__MGR_SLICE_NS, and between slices checks the server's stop flag and
 * whether its own client has hung up. So a blocked call in one client never
 * stalls another, a server that stops wakes every waiter, and a waiter whose
 * client died leaves the wait (passing on a notification it took).
 *
 * Lock order: srv->mu only; the per-connection send/recv happen without it.
 * A Lock, RLock or Condition records the connection that holds it; when a
 * connection ends, the server releases what it held (a dead holder's lock is
 * released, as the library's own locks are) and breaks any Barrier it was
 * waiting on. */
#ifndef MP_MANAGER_INTERNAL_H
#define MP_MANAGER_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "internal.h"
#include "multiproc/listener.h"
#include "multiproc/manager.h"
#include "multiproc/obj.h"

/* ---- transport (transport.c) -------------------------------------------- */
/* mp__mgr_connect connects to address with mp_client and runs the
 * handshake with key (each step bounded by timeout). A server that closes
 * during the handshake is MP_EAUTH (a Python server closes on a wrong key). */
int mp__mgr_connect(const char *address, const uint8_t *key, size_t keylen,
                    double timeout, mp_connection **out);
/* mp__mgr_tune sets TCP_NODELAY on a TCP connection (no-op otherwise). */
void mp__mgr_tune(mp_connection *c);
/* mp__mgr_recv waits up to timeout (negative: forever) for one message of
 * at most limit bytes; *buf is malloc'd (free it with free). */
int mp__mgr_recv(mp_connection *c, double timeout, size_t limit, void **buf,
                 size_t *len);
/* mp__mgr_default_key copies the process authkey (Python's
 * current_process().authkey), the key a manager uses when given none. */
int mp__mgr_default_key(uint8_t *key, size_t cap, size_t *len);
/* mp__mgr_addr_obj is the address text as Python's Token holds it: a
 * (host, port) tuple for TCP, a str for a path ("\0name" for "@name").
 * mp__mgr_addr_is_path is 1 for a Unix path (a file a dead server leaves). */
mp_obj *mp__mgr_addr_obj(const char *address);
int mp__mgr_addr_is_path(const char *address);
int mp__mgr_addr_is_tcp(const char *address);

/* ---- the local channel (local.c) ---------------------------------------- */
typedef struct mp__mgr_local mp__mgr_local;
/* Client: a new channel and the descriptor to pass (close it after). */
int mp__mgr_local_new(mp__mgr_local **out, int *fd_out);
/* Server: a channel from the descriptor the client passed (kept open by
 * the caller until this returns; close it after). */
int mp__mgr_local_attach(mp__mgr_local **out, int fd);
/* Close both queues: the peer's waits wake with MP_ECLOSED. */
void mp__mgr_local_close(mp__mgr_local *l);
void mp__mgr_local_free(mp__mgr_local *l);
int mp__mgr_local_send_fd(mp_connection *c, int fd);
int mp__mgr_local_recv_fd(mp_connection *c, double timeout, int *fd_out);
/* mp__mgr_local_send sends one message: to the server (request queue) or
 * to the client (reply queue); over the inline limit, on the socket c. */
int mp__mgr_local_send(mp__mgr_local *l, int to_server, mp_connection *c,
                       const void *buf, size_t len);
/* mp__mgr_local_recv takes one message (at the server: a request; at the
 * client: a reply) until deadline d, as mp__mgr_recv (MP_ECLOSED when the
 * peer's socket ended or the channel was closed). */
int mp__mgr_local_recv(mp__mgr_local *l, int at_server, mp_connection *c,
                       mp__deadline d, size_t limit, void **buf, size_t *len);

/* ---- limits -------------------------------------------------------------- */
#define MP__MGR_SLICE_NS 50000000LL      /* blocking waits re-check every 50 ms */
#define MP__MGR_HANDSHAKE_TIMEOUT 10.0   /* seconds for each handshake read */
#define MP__MGR_CONTROL_TIMEOUT 30.0     /* seconds for the control request */
#define MP__MGR_DEFAULT_MAX_REQUEST (64u << 20)
#define MP__MGR_MAX_ARGS 64              /* positional arguments of one call */
#define MP__MGR_MAX_IDENT 64             /* bytes of an ident string */

/* mp__mgr_format returns a new printf-formatted string (free it with
 * mp__free), or NULL. */
char *mp__mgr_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- array.array values (pyarray.c) -------------------------------------- */
/* mp__mgr_is_pyarray: 1 when v is an array.array as a pickle holds it
 * (array.array(tc, list) or array._array_reconstructor(...)), else 0.
 * mp__mgr_pyarray_items: its items as a new list in *out; MP_EINVAL for a
 * malformed one (detail says why), MP_EOVERFLOW, MP_ENOMEM. */
int mp__mgr_is_pyarray(const mp_obj *v);
int mp__mgr_pyarray_items(const mp_obj *v, mp_obj **out);

/* ---- reply of one call --------------------------------------------------- */
enum mp__mgr_kind {
  MP__MGR_RETURN = 0,
  MP__MGR_ERROR,     /* value: an exception instance */
  MP__MGR_TRACEBACK, /* text: a message (RemoteError on the client) */
  MP__MGR_PROXY,     /* value: the referent of a new proxy; typeid set */
};

typedef struct mp__mgr_server mp__mgr_server;
typedef struct mp__mgr_entry mp__mgr_entry;
typedef struct mp__mgr_conn mp__mgr_conn;

/* mp__mgr_call is one method call as a type's implementation sees it. The
 * implementation reads args/kwds (borrowed), and fills exactly one of:
 * result (a new value, RETURN), an exception (mp__mgr_raise), a traceback
 * (mp__mgr_traceback), or a proxy (result + proxy_typeid). */
typedef struct mp__mgr_call {
  mp__mgr_server *srv;
  mp__mgr_conn *conn;      /* the calling connection (NULL for local) */
  mp__mgr_entry *entry;    /* the object called */
  const char *method;
  const mp_obj *args;      /* a tuple */
  const mp_obj *kwds;      /* a dict or NULL */
  int kind;
  mp_obj *result;
  char *text;
  const char *proxy_typeid;
} mp__mgr_call;

/* A type served by the manager: built in (dict, list, ...) or registered
 * from C with mp_manager_server_register. */
typedef struct mp__mgr_type {
  char *typeid;
  char **exposed;         /* NULL-terminated method names */
  size_t n_exposed;
  char *proxytype;        /* Python proxy class for RebuildProxy */
  int (*create)(mp__mgr_call *call, void **state); /* args of the ctor */
  int (*call)(mp__mgr_call *call);
  void (*destroy)(void *state);
  /* Called under srv->mu when connection conn_id ends (release locks). */
  void (*conn_gone)(mp__mgr_server *srv, void *state, uint64_t conn_id);
  /* '#GETVALUE', '__repr__', '__str__': a value copy of the state. */
  mp_obj *(*getvalue)(void *state);
  /* '#GETVALUE' as Python's server sends it, when that is not the plain
   * copy (a Namespace, managers.Value or array.array instance); NULL:
   * getvalue. */
  mp_obj *(*pyvalue)(void *state);
  /* '__repr__'/'__str__' as Python's referent prints itself ("<unlocked
   * _thread.lock object at 0x...>", "Value('i', 1)"), a new string to
   * free with mp__free; ident stands for the address. NULL: the repr of
   * getvalue. */
  char *(*repr)(void *state, const char *ident);
  /* registered C types */
  const mp_manager_type *user;
  void *user_ctx;
  /* method_to_typeid: a method whose result becomes a proxy */
  const char *iter_method;
  const char *iter_typeid;
} mp__mgr_type;

struct mp__mgr_entry {
  uint64_t seq;
  char ident[24];
  mp__mgr_type *type;
  void *state;
  long refcount;
  int busy;   /* calls running on it: destroy waits for 0 */
  int dead;   /* refcount reached 0 while busy */
  int pinned; /* a container on the server holds a proxy to it */
  pthread_cond_t cond; /* waiters on this object */
};

struct mp__mgr_conn {
  uint64_t id;
  mp_connection *c;
  int fd;
  mp__mgr_server *srv;
  pthread_t thread;
  struct mp__mgr_conn *next;
  int done;
  int no_wait; /* requests run in place (mp__mgr_handle_request): never block */
  mp__mgr_local *local; /* method calls come through the local channel */
};

struct mp__mgr_server {
  pthread_mutex_t mu;
  pthread_cond_t stop_cond;
  int stop;
  mp_listener *listener;
  char address[MP_ADDRESS_MAX];
  uint8_t key[256];
  size_t keylen;
  size_t max_request;
  size_t max_connections;
  int log;              /* log connections and errors to stderr */
  /* object table: entries[seq - 1], NULL when freed */
  mp__mgr_entry **entries;
  size_t n_entries, cap_entries;
  size_t live;
  uint64_t seq_base;
  /* types */
  mp__mgr_type **types;
  size_t n_types;
  /* connections */
  mp__mgr_conn *conns;
  mp__mgr_conn *finished; /* threads that ended, to join (serve_forever) */
  uint64_t next_conn;
  size_t n_threads;
  pthread_cond_t threads_cond;
};

/* ---- server pieces ------------------------------------------------------ */
/* mp__mgr_conn_alive: 0 when the client of conn has hung up (never blocks). */
int mp__mgr_conn_alive(const mp__mgr_conn *conn);
/* mp__mgr_wait waits on entry's condition with srv->mu held until woken or
 * deadline; returns 0 (woken or slice over: re-check), MP_ETIMEDOUT (the
 * deadline passed), MP_ECLOSED (server stopping or the client hung up). */
int mp__mgr_wait(mp__mgr_call *call, mp__deadline d);

/* Exceptions: a Python exception instance module.name(*args). */
int mp__mgr_raise(mp__mgr_call *call, const char *module, const char *name,
                  mp_obj *arg /* taken; NULL: no args */);
int mp__mgr_raise_msg(mp__mgr_call *call, const char *module,
                      const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int mp__mgr_traceback(mp__mgr_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* mp__mgr_bind matches args/kwds to the names of a signature: out[i] is
 * the borrowed value for names[i] or NULL when not given. A surplus or
 * unknown argument raises TypeError (returns nonzero). */
int mp__mgr_bind(mp__mgr_call *call, const char *const *names, size_t n,
                 size_t required, const mp_obj **out);
/* Timeout argument (None / number) to a deadline; nonzero raised. */
int mp__mgr_timeout_arg(mp__mgr_call *call, const mp_obj *v, double dflt,
                        double *out);

/* The built-in types (types_container.c, types_sync.c). */
extern mp__mgr_type mp__mgr_type_dict, mp__mgr_type_list,
    mp__mgr_type_namespace, mp__mgr_type_value, mp__mgr_type_array,
    mp__mgr_type_iterator;
extern mp__mgr_type mp__mgr_type_queue, mp__mgr_type_joinable_queue,
    mp__mgr_type_lock, mp__mgr_type_rlock, mp__mgr_type_semaphore,
    mp__mgr_type_bounded_semaphore, mp__mgr_type_condition,
    mp__mgr_type_event, mp__mgr_type_barrier;

/* mp__mgr_handle_request runs one pickled request (a control call when
 * its ident is None, else a method call) through the decoder and the
 * dispatcher of ms without a connection, as a served client's request
 * would be, and returns the pickled reply (free it with free()). Blocking
 * methods do not block (they time out at once); shutdown and
 * accept_connection are refused. mp__mgr_server_reset frees every object
 * and makes the idents deterministic ("7f0000000010", "7f0000000020", ...).
 * For the fuzzer (tests/fuzz/fuzz_manager_request.c) and tests. */
int mp__mgr_handle_request(mp_manager_server *ms, const void *buf, size_t len,
                           void **reply, size_t *reply_len);
void mp__mgr_server_reset(mp_manager_server *ms);

/* The decoder policy for requests: which classes a request may hold. */
int mp__mgr_decode(const void *buf, size_t len, mp_obj **out);
int mp__mgr_encode(const mp_obj *v, void **buf, size_t *len);

#endif
