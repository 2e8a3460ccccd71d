/* multiproc/csp.h - CSP channels after PyCSP: channels with reader and
 * writer ends, choice (AltSelect, FairSelect, PriSelect) over input, output,
 * timeout and skip guards, poison and retire, and process networks
 * (Parallel, Sequence, Spawn) whose processes are OS processes or threads.
 *
 * A channel is any-to-any: any number of readers and writers, in any mix of
 * threads and processes. It is a rendezvous by default (a write returns once
 * a reader has the message) or buffered (opts.buffer messages). Messages are
 * bytes, at most opts.msg_max each. A channel lives in shared memory and
 * has the three homes of the other objects: anonymous (inherited across
 * fork), named (opened by name from an unrelated process), in place (in
 * memory the caller shares).
 *
 * Ends. mp_channel_reader and mp_channel_writer join the channel and give
 * an end (PyCSP's A.reader()/+A and A.writer()/-A). Poison on any end
 * poisons the channel: every blocked and later operation on it returns
 * MP_EPOISONED. Retire on an end leaves the channel: once every reader has
 * retired, writers get MP_ERETIRED; once every writer has retired, readers
 * get MP_ERETIRED (after the buffered messages).
 *
 * Crashes (beyond PyCSP and Go). Every end and every waiting party records
 * its process id. A process that dies in the middle of a communication
 * never hangs its partner: within MP_CSP_DEATH_NOTICE_S its ends are left,
 * as retired when it was reading, choosing among inputs or idle, and as
 * poisoned when it was inside a write (including a choice with an output
 * guard), because a writer that died may have been about to send a message
 * the network needed, and the readers must not go on as if the stream were
 * complete. A message is never half delivered: a reader gets a whole
 * message or none. A process whose liveness cannot be established (another
 * PID namespace, EPERM) counts as alive. */
#ifndef MULTIPROC_CSP_H
#define MULTIPROC_CSP_H

#include "common.h"
#include "error.h"
#include "listener.h"
#include "obj.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MP_EPOISONED is returned by every operation on a poisoned channel
 * (PyCSP's ChannelPoisonException). */
#define MP_EPOISONED MP_EBROKEN
/* MP_ERETIRED is returned when the other side has retired (PyCSP's
 * ChannelRetireException), and when an end is used after its retire. */
#define MP_ERETIRED MP_ECLOSED

/* A dead process's ends are noticed within this many seconds by anyone
 * blocked on the channel. */
#define MP_CSP_DEATH_NOTICE_S 0.1

/* A channel name is at most this many bytes, not counting the NUL. */
#define MP_CHANNEL_NAME_MAX 200

typedef struct mp_channel mp_channel;
typedef struct mp_channel_end mp_channel_end;

/* mp_channel_opts are the options of mp_channel_new and mp_channel_init.
 * Zeroed or NULL options mean the defaults. */
typedef struct mp_channel_opts {
  const char *name;   /* NULL: anonymous (inherited across fork); else a
                         named segment "/mp_<name>" (copied; [A-Za-z0-9._-]);
                         MP_EEXIST if it exists. Ignored by _init. */
  size_t buffer;      /* 0 (default): rendezvous; else a FIFO buffer of
                         this many messages (at most 1 << 20) */
  size_t msg_max;     /* largest message in bytes; default 4096, at most
                         16 MiB */
  unsigned max_waiting; /* parties that can wait at once (a choice counts
                           once per guard on this channel); default 32, at
                           most 1024 */
  unsigned max_ends;  /* ends that can be joined at once; default 64, at
                         most 4096 */
} mp_channel_opts;

/* mp_channel_new creates a channel. Returns 0 and *out, MP_EINVAL (out
 * NULL, an option out of range; see mp_error_detail), MP_EEXIST,
 * MP_ENAMETOOLONG, MP_ENOMEM, -errno of the mapping. */
MP_EXTERN int mp_channel_new(mp_channel **out, const mp_channel_opts *opts);

/* mp_channel_open attaches to the channel created under name by any
 * process. It checks the segment (magic, version, sizes) before trusting
 * it. Returns 0, MP_ENOENT, MP_ECORRUPT, MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_channel_open(mp_channel **out, const char *name);

/* mp_channel_size returns the bytes to reserve for mp_channel_init with
 * these options (0 when an option is out of range); MP_CHANNEL_ALIGN is
 * the alignment. */
#define MP_CHANNEL_ALIGN 64
MP_EXTERN size_t mp_channel_size(const mp_channel_opts *opts);

/* mp_channel_init makes a channel in place in the size bytes at mem,
 * memory the caller shares (MAP_SHARED) and keeps mapped while the channel
 * is used. Every process that uses it calls mp_channel_attach on its
 * address. Returns 0, MP_EINVAL (misaligned, too small, bad options). */
MP_EXTERN int mp_channel_init(void *mem, size_t size,
                              const mp_channel_opts *opts);

/* mp_channel_attach gives a handle on the in-place channel at mem (made by
 * mp_channel_init) after checking it. Returns 0, MP_EINVAL, MP_ECORRUPT,
 * MP_ENOMEM. mp_channel_free on it leaves the memory alone. */
MP_EXTERN int mp_channel_attach(mp_channel **out, void *mem, size_t size);

/* mp_channel_free drops this process's handle; a named channel's creator
 * also unlinks the name. Ends made from c must be freed first. It never
 * blocks and does not retire: ends still joined stay joined until their
 * process ends. NULL is a no-op. */
MP_EXTERN void mp_channel_free(mp_channel *c);

/* mp_channel_reader and mp_channel_writer join c as a reader or a writer
 * and return the end (PyCSP's c.reader() and c.writer(), +c and -c). The
 * end is owned by the calling process: when this process ends, the end is
 * left (see above). An end made before fork is also usable in the child;
 * the process network (mp_csp_parallel) hands each process's ends to it.
 * Returns 0, MP_EINVAL, MP_EPOISONED, MP_ERETIRED (that side has retired
 * for good), MP_ENOSPC (max_ends joined), MP_ENOMEM. */
MP_EXTERN int mp_channel_reader(mp_channel *c, mp_channel_end **out);
MP_EXTERN int mp_channel_writer(mp_channel *c, mp_channel_end **out);

/* mp_channel_end_free frees the end handle. It does not retire it (call
 * mp_channel_retire first for that). NULL is a no-op. */
MP_EXTERN void mp_channel_end_free(mp_channel_end *e);

/* mp_channel_write sends the len bytes at msg on the writer end w, which
 * copies them. On a rendezvous channel it returns once a reader has taken
 * the whole message; on a buffered one once the message is in the buffer.
 * Blocks up to timeout seconds. Returns 0; MP_EAGAIN (timeout 0) or
 * MP_ETIMEDOUT (nothing was sent); MP_EPOISONED; MP_ERETIRED (every reader
 * retired, or w was retired); MP_ETOOBIG (len > msg_max); MP_EINVAL (not a
 * writer end, NaN timeout). */
MP_EXTERN int mp_channel_write(mp_channel_end *w, const void *msg, size_t len,
                               double timeout);

/* mp_channel_read receives one message on the reader end r into buf (cap
 * bytes) and returns its length. Blocks up to timeout seconds. Returns the
 * length (>= 0); MP_EAGAIN or MP_ETIMEDOUT; MP_EPOISONED; MP_ERETIRED
 * (every writer retired and nothing is buffered, or r was retired);
 * MP_ETOOBIG (the message is longer than cap: it stays with its writer or
 * in the buffer); MP_EINVAL. */
MP_EXTERN ssize_t mp_channel_read(mp_channel_end *r, void *buf, size_t cap,
                                  double timeout);

/* mp_channel_write_obj sends the dynamic value o (pickled, protocol 4;
 * copied) as one message, as mp_channel_write. Returns what
 * mp_channel_write and mp_pickle_dumps return (MP_ETOOBIG when the pickle
 * is longer than msg_max). */
MP_EXTERN int mp_channel_write_obj(mp_channel_end *w, const mp_obj *o,
                                   double timeout);

/* mp_channel_read_obj receives one message and decodes it into a new value
 * in *out (free it with mp_obj_free), with the pickle decoder's default
 * limits: plain data only. Returns 0, the errors of mp_channel_read, or
 * those of mp_pickle_loads (the message is then consumed). */
MP_EXTERN int mp_channel_read_obj(mp_channel_end *r, mp_obj **out,
                                  double timeout);

/* mp_channel_poison poisons the channel of e (PyCSP's poison(e)): every
 * operation blocked on it wakes, and every later one returns MP_EPOISONED,
 * on every end in every process. Buffered messages are dropped. Idempotent.
 * Returns 0 or MP_EINVAL. */
MP_EXTERN int mp_channel_poison(mp_channel_end *e);

/* mp_channel_retire leaves the channel from the end e (PyCSP's retire(e)).
 * Once every reader has retired, blocked and later writes return
 * MP_ERETIRED; once every writer has, reads do (after the buffered
 * messages). Using e afterwards returns MP_ERETIRED. Idempotent. Returns
 * 0 or MP_EINVAL. */
MP_EXTERN int mp_channel_retire(mp_channel_end *e);

/* mp_channel_end_is_reader returns 1 for a reader end, 0 for a writer end,
 * MP_EINVAL for NULL. */
MP_EXTERN int mp_channel_end_is_reader(const mp_channel_end *e);

/* mp_channel_stats are counters read from the shared state, for tests and
 * monitoring: joined ends and what has happened to the channel. */
typedef struct mp_channel_stats {
  unsigned readers, writers; /* ends joined and not left */
  unsigned buffered;         /* messages in the buffer */
  int poisoned;              /* nonzero once poisoned */
  int readers_retired;       /* every reader has retired */
  int writers_retired;       /* every writer has retired */
} mp_channel_stats;

/* mp_channel_stats_get fills *st. It first leaves the ends of processes
 * that have died (as a blocked party would). Returns 0 or MP_EINVAL. */
MP_EXTERN int mp_channel_stats_get(mp_channel *c, mp_channel_stats *st);

/* ---- channels across hosts ------------------------------------------- */

/* A channel can be served on an address (PyCSP's channel home) and used
 * from other processes and hosts (PyCSP's Channel(..., connect=(host,
 * port))): mp_channel_connect gives a handle on which mp_channel_reader,
 * mp_channel_writer, mp_channel_read/write (and _obj), mp_channel_poison,
 * mp_channel_retire, mp_channel_stats_get and the three selects work as on
 * a local channel. Each remote end has its own authenticated connection
 * (Python's handshake; see listener.h), and the serving process carries out
 * its reads and writes with the local calls, so the channel's rules hold
 * unchanged: a remote write on a rendezvous channel returns once a reader
 * has the message; buffering, exactly-once and poison/retire are the
 * local ones. A remote client that dies or disconnects leaves its end
 * within MP_CSP_DEATH_NOTICE_S: retired, or the channel poisoned when it
 * was inside a write. A server that dies or closes makes every later (and
 * every blocked) call on the remote handle return MP_EPOISONED. */

typedef struct mp_channel_server mp_channel_server;

/* mp_channel_serve_opts are the options of mp_channel_serve; zeroed or
 * NULL means the defaults. */
typedef struct mp_channel_serve_opts {
  const void *authkey; /* NULL: this process's authkey (mp_process_authkey);
                          else the key (copied) */
  size_t authkey_len;
  mp_family family;      /* 0: guessed from the address */
  unsigned max_clients;  /* connections at once (a handle's control
                            connection and each remote end); 0: 64 */
  mp_auth_opts auth;     /* handshake settings (auth.timeout also bounds a
                            new client's greeting) */
} mp_channel_serve_opts;

/* mp_channel_serve serves the channel c on address ("host:port" TCP, port
 * 0 picks one; a Unix path; "@name"; see listener.h) until closed. c is
 * borrowed until mp_channel_server_free. Threads of the calling process
 * accept clients and carry out their requests. Returns 0; MP_EINVAL (NULL,
 * a remote c, a bad address: the detail says which); MP_EEXIST (address in
 * use); MP_ENOMEM; the errors of mp_listener_new. */
MP_EXTERN int mp_channel_serve(mp_channel_server **out, mp_channel *c,
                               const char *address,
                               const mp_channel_serve_opts *opts);

/* mp_channel_server_address returns the address served, with the port the
 * kernel picked ("127.0.0.1:43121"). Borrowed until the server is freed;
 * "" for NULL. */
MP_EXTERN const char *mp_channel_server_address(const mp_channel_server *s);

/* mp_channel_server_close stops serving: it stops accepting, ends every
 * connection (their remote users get MP_EPOISONED) and retires the ends
 * the server held for them. It blocks until the server's threads end
 * (within about 0.05 s). Idempotent; returns 0 or MP_EINVAL. */
MP_EXTERN int mp_channel_server_close(mp_channel_server *s);

/* mp_channel_server_free closes s if open and frees it. NULL is a no-op. */
MP_EXTERN void mp_channel_server_free(mp_channel_server *s);

/* mp_channel_connect_opts are the options of mp_channel_connect. */
typedef struct mp_channel_connect_opts {
  const void *authkey; /* NULL: this process's authkey; else the key
                          (copied: each new end connects with it) */
  size_t authkey_len;
  double timeout; /* bounds each connect and greeting; 0: 10 s */
  mp_auth_opts auth;
} mp_channel_connect_opts;

/* mp_channel_connect connects to the channel served at address and gives
 * a handle on it in *out (free it with mp_channel_free, after its ends).
 * Ends made from it (mp_channel_reader/writer) connect on their own; one
 * thread at a time uses a remote end (calls from others wait their turn),
 * and it belongs to the process that made it (do not hand it to a forked
 * child). mp_channel_end_free closes the end's connection, which the
 * server counts as its holder ending (retired). Remote ends may be mixed
 * with local ones in a choice, as input and output guards; see docs/csp.md
 * for how such a choice waits. Returns 0; MP_EAUTH (the key was refused);
 * MP_ECONNREFUSED; MP_ETIMEDOUT; MP_ENOENT; MP_EPROTO (the server did not
 * speak this protocol); MP_EINVAL; MP_ENOMEM. */
MP_EXTERN int mp_channel_connect(mp_channel **out, const char *address,
                                 const mp_channel_connect_opts *opts);

/* ---- choice ---------------------------------------------------------- */

typedef enum mp_guard_kind {
  MP_GUARD_INPUT = 1,   /* read from .end into .buf (.cap bytes) */
  MP_GUARD_OUTPUT = 2,  /* write the .len bytes at .msg to .end */
  MP_GUARD_TIMEOUT = 3, /* fires after .seconds when nothing else has */
  MP_GUARD_SKIP = 4     /* fires at once when nothing else is ready */
} mp_guard_kind;

/* mp_guard is one guard of a choice. The library borrows buf and msg
 * during the call. On return, .received holds the length read by the
 * input guard that fired. */
typedef struct mp_guard {
  mp_guard_kind kind;
  mp_channel_end *end; /* INPUT: a reader end; OUTPUT: a writer end */
  void *buf;           /* INPUT: where the message goes */
  size_t cap;          /* INPUT: bytes at buf */
  const void *msg;     /* OUTPUT: the message */
  size_t len;          /* OUTPUT: its length */
  double seconds;      /* TIMEOUT: how long */
  size_t received;     /* out: INPUT that fired: the message's length */
} mp_guard;

#define MP_GUARD_IN(e, b, c)                                                 \
  ((mp_guard){.kind = MP_GUARD_INPUT, .end = (e), .buf = (b), .cap = (c)})
#define MP_GUARD_OUT(e, m, l)                                                \
  ((mp_guard){.kind = MP_GUARD_OUTPUT, .end = (e), .msg = (m), .len = (l)})
#define MP_GUARD_TIMEOUT_S(s)                                                \
  ((mp_guard){.kind = MP_GUARD_TIMEOUT, .seconds = (s)})
#define MP_GUARD_SKIP_ ((mp_guard){.kind = MP_GUARD_SKIP})

/* mp_pri_select waits until one guard can fire, makes it fire, and returns
 * its index (PyCSP's PriSelect): when several are ready at once, the first
 * in the array wins. A chosen output guard's message is delivered exactly
 * once, whole; an input guard that fires has received a whole message that
 * its writer sent; no other guard has any effect. At most one timeout and
 * one skip guard. Returns the index (>= 0); MP_EPOISONED or MP_ERETIRED
 * when a guard's channel is poisoned or retired (PyCSP raises then too);
 * MP_ETOOBIG when an input guard's buffer is too small for the message
 * offered (the message stays with its writer); MP_EINVAL (no guards, a
 * guard with the wrong end, two timeouts or skips, a guard list longer
 * than 64, a NaN or negative timeout). Blocks until a guard fires. */
MP_EXTERN int mp_pri_select(mp_guard *guards, size_t n);

/* mp_alt_select is mp_pri_select with no priority among ready guards
 * (PyCSP's AltSelect): it starts looking at a random guard. The skip and
 * timeout guards still fire only when nothing else is ready. */
MP_EXTERN int mp_alt_select(mp_guard *guards, size_t n);

/* mp_fair_select is mp_pri_select with the priority turned after each
 * choice (PyCSP's FairSelect): the calling thread starts looking just after
 * the guard it chose last, so a guard that is always ready cannot starve
 * the others. */
MP_EXTERN int mp_fair_select(mp_guard *guards, size_t n);

/* ---- process networks ------------------------------------------------ */

/* mp_csp_fn is a CSP process's body. Its return value is the process's
 * result. Returning MP_EPOISONED (as a channel call returned it) poisons
 * every end the process was given; returning MP_ERETIRED retires them:
 * that is how one poison shuts a whole network down. */
typedef int (*mp_csp_fn)(void *arg);

/* mp_csp_process describes one process of a network. */
typedef struct mp_csp_process {
  mp_csp_fn fn;   /* the body */
  void *arg;      /* borrowed; an OS process gets its fork-time copy */
  mp_channel_end *const *ends; /* borrowed: the ends given to it */
  size_t nends;
  int thread;     /* 0: an OS process (PyCSP's @multiprocess); nonzero: a
                     thread of the calling process (@process) */
  int result;     /* out: fn's return value; MP_EWORKERDIED when the OS
                     process died (signal, exit without returning) */
} mp_csp_process;

/* MP_CSP_ENDS(...) makes the .ends/.nends pair from end pointers. */
#define MP_CSP_ENDS(...)                                                     \
  .ends = (mp_channel_end *const[]){__VA_ARGS__},                            \
  .nends = sizeof((mp_channel_end *const[]){__VA_ARGS__}) /                  \
           sizeof(mp_channel_end *)

typedef struct mp_csp_network mp_csp_network;

/* mp_csp_parallel runs the n processes at once and waits for all of them
 * (PyCSP's Parallel). Each one's result is stored in its .result. An OS
 * process that dies is reported as MP_EWORKERDIED, and its ends are left
 * at once (retired, or poisoned if it died in a write). Returns 0 when all
 * ran (whatever their results), MP_EINVAL when procs is NULL, or the
 * error that kept one from starting (those started are still waited
 * for). */
MP_EXTERN int mp_csp_parallel(mp_csp_process *procs, size_t n);

/* mp_csp_sequence runs the n processes one after the other (PyCSP's
 * Sequence); each one's result is stored. Returns as mp_csp_parallel. */
MP_EXTERN int mp_csp_sequence(mp_csp_process *procs, size_t n);

/* mp_csp_spawn starts the n processes in the background (PyCSP's Spawn)
 * and returns the running network, which borrows procs until joined.
 * Returns 0 or a start error (nothing is left running then). */
MP_EXTERN int mp_csp_spawn(mp_csp_network **out, mp_csp_process *procs,
                           size_t n);

/* mp_csp_network_join waits up to timeout seconds for every process of net
 * to end and stores their results. Returns 0, MP_ETIMEDOUT (some still
 * run; join again), MP_EINVAL. */
MP_EXTERN int mp_csp_network_join(mp_csp_network *net, double timeout);

/* mp_csp_network_free frees a joined network. A network still running is
 * joined first (blocking). NULL is a no-op. */
MP_EXTERN void mp_csp_network_free(mp_csp_network *net);

#ifdef __cplusplus
}
#endif
#endif
