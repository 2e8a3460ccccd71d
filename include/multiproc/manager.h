/* multiproc/manager.h - managers, after Python's multiprocessing.managers:
 * a server process holds dicts, lists, namespaces, queues and locks, and
 * other processes (C or Python, on this host or another) use them through
 * proxies.
 *
 * The server speaks Python's manager protocol byte for byte (pickled
 * (ident, method, args, kwds) requests, '#RETURN'/'#ERROR'/'#TRACEBACK'/
 * '#PROXY' replies, the authkey handshake), so a stock Python
 * SyncManager(address=..., authkey=...).connect() uses a C server, and the
 * C client (mp_manager_connect, mp_proxy_*) uses a Python server. The server
 * never runs code from a request: arguments are decoded as plain values
 * (multiproc/obj.h), only the classes the protocol needs (Token,
 * RebuildProxy with the proxy classes, builtin exceptions, slice) are read,
 * into plain data, and a method that is not exposed is refused.
 *
 * Three roles, as Python's BaseManager:
 *   mp_manager_start    Manager() / BaseManager.start(): a server in a new
 *                       child process, and a client handle on it;
 *   mp_manager_server_new + mp_manager_server_serve_forever
 *                       get_server().serve_forever() in this process;
 *   mp_manager_connect  BaseManager.connect() to a running server.
 *
 * Beyond Python, the dict, list and Namespace have atomic operations that
 * happen in one request (mp_proxy_add, mp_proxy_compare_and_set,
 * mp_proxy_setdefault, mp_proxy_pop, mp_proxy_append_if_absent,
 * mp_proxy_apply): Python's `ns.x += 5` is a read and a write, a race.
 *
 * Errors. A method that raised on the server returns a code chosen by the
 * exception (KeyError MP_ENOENT, IndexError MP_ERANGE, ValueError MP_EVALUE,
 * TypeError MP_EINVAL, AttributeError MP_ENOENT, RuntimeError MP_EPERM,
 * queue.Empty/Full MP_EAGAIN, or MP_ETIMEDOUT after a timeout,
 * BrokenBarrierError MP_EBROKEN, any other MP_EPROTO) and leaves the
 * exception's repr ("KeyError('missing')") as the detail (mp_error_detail).
 * A method the object does not expose is an AttributeError from a C server
 * (MP_ENOENT) and a '#TRACEBACK' from a Python server. A server that fails
 * a request ('#TRACEBACK', Python's RemoteError) gives MP_EPROTO with the
 * server's text as the detail. A server that dies or
 * shuts down gives MP_ECLOSED (or MP_EPIPE when sending): never a hang.
 *
 * Threads and processes. A manager handle and its proxies may be used from
 * any thread: each (process, thread) gets its own connection to the server,
 * as in Python. Forked children may use the proxies they inherited: the
 * first call in the child opens its own connection and takes a reference of
 * its own. mp_proxy_token/mp_proxy_open carry a proxy to a process started
 * another way. */
#ifndef MULTIPROC_MANAGER_H
#define MULTIPROC_MANAGER_H

#include <sys/types.h>

#include "common.h"
#include "obj.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_manager mp_manager;
typedef struct mp_manager_server mp_manager_server;
typedef struct mp_proxy mp_proxy;

/* mp_manager_method is one method of a type a C program serves: fn runs on
 * the server, in the thread serving the calling client, with the server's
 * lock held (so methods of all objects run one at a time; never block in
 * one). It reads args (a tuple) and kwds (a dict or NULL), both borrowed,
 * and returns 0 with a new value in *result (NULL means None), or a
 * negative MP_E* code, which the client receives as the exception the code
 * stands for (MP_ENOENT KeyError, MP_ERANGE IndexError, MP_EVALUE
 * ValueError, MP_EINVAL TypeError, others RuntimeError) with the
 * mp_error_detail text the method left as its message. */
typedef int (*mp_manager_method_fn)(void *state, const mp_obj *args,
                                    const mp_obj *kwds, mp_obj **result,
                                    void *ctx);

typedef struct mp_manager_method {
  const char *name; /* the exposed name clients call */
  mp_manager_method_fn fn;
} mp_manager_method;

/* mp_manager_type describes a type a C program serves, as Python's
 * BaseManager.register(typeid, callable): create makes a state from the
 * constructor's arguments (borrowed) and returns 0 or an MP_E* code;
 * destroy frees it when the last reference goes; methods lists the exposed
 * methods (only these can be called). ctx is passed to each. */
typedef struct mp_manager_type {
  int (*create)(void **state, const mp_obj *args, const mp_obj *kwds,
                void *ctx);
  void (*destroy)(void *state, void *ctx);
  const mp_manager_method *methods;
  size_t n_methods;
  void *ctx;
} mp_manager_type;

/* mp_manager_registration names one registered type: typeid is what
 * clients pass to create (Python: m.<typeid>() after register); the type
 * is borrowed for the server's lifetime. */
typedef struct mp_manager_registration {
  const char *typeid;
  const mp_manager_type *type;
} mp_manager_registration;

/* mp_manager_opts holds the settings of a manager, a server or a client;
 * zeroed or NULL options mean the defaults.
 *   address   a Unix socket path, or "host:port" for TCP ("127.0.0.1:0":
 *             the kernel picks a port). NULL: for a server a fresh socket
 *             path under /tmp (Python's address=None); a client needs one.
 *   authkey   the key of the handshake (authkey_len bytes; copied). NULL:
 *             the process authkey (mp_process_authkey of
 *             mp_current_process(); Python: current_process().authkey),
 *             which children inherit.
 *   timeout   seconds for connecting and for each handshake step (0: 10).
 *   max_request  largest request a server reads, bytes (0: 64 MiB); a
 *             larger one closes that connection only.
 *   log       nonzero: the server logs connections and errors to stderr.
 *   types     extra types to serve (n_types of them), as register().
 *   max_connections  server: client connections served at once (each has
 *             a thread); one more is closed at once and logged (0: 1024).
 *   call_timeout  client: seconds a call waits for its reply (a blocking
 *             call: beyond its own timeout). 0: a call that does not block
 *             waits without end, as Python's; a blocking call with a
 *             finite timeout t waits t + 5 s. A reply that does not come
 *             in time is MP_ETIMEDOUT and closes the calling thread's
 *             connection (the server then releases what it held there,
 *             as for a client that died).
 *   no_local  client: nonzero keeps method calls on the socket. By default
 *             a C client of a C server on a Unix socket moves each
 *             thread's calls onto a pair of shared-memory queues (no
 *             socket wake-up per call; the socket stays open to tell
 *             either side the other died). */
typedef struct mp_manager_opts {
  const char *address;
  const void *authkey;
  size_t authkey_len;
  double timeout;
  size_t max_request;
  int log;
  const mp_manager_registration *types;
  size_t n_types;
  size_t max_connections;
  double call_timeout;
  int no_local;
} mp_manager_opts;

/* ==== the three roles ==================================================== */

/* mp_manager_start starts a server in a new child process and connects to
 * it, as Python's Manager() (or BaseManager(address, authkey).start()).
 * The child serves until mp_manager_shutdown, until the parent dies, or
 * SIGTERM. Returns 0, MP_EINVAL (bad address), -errno of listen (for
 * example MP_EADDRINUSE as -EADDRINUSE), MP_ENOMEM, or what fork returns.
 * *out is untouched on failure. */
MP_EXTERN int mp_manager_start(mp_manager **out, const mp_manager_opts *opts);

/* mp_manager_connect connects to a running server at opts->address (C or
 * Python), as BaseManager(address, authkey).connect(): it runs the
 * handshake and a 'dummy' request. Returns 0, MP_EINVAL (no address),
 * MP_ECONNREFUSED, MP_ENOENT (no such socket), MP_EAUTH (wrong key),
 * MP_ETIMEDOUT, MP_EPROTO, MP_ENOMEM. */
MP_EXTERN int mp_manager_connect(mp_manager **out,
                                 const mp_manager_opts *opts);

/* mp_manager_shutdown asks the server to stop (Python's shutdown()) and,
 * for a server this handle started, waits for the child to end (SIGKILL
 * after 5 s). Proxies on it then fail with MP_ECLOSED. Returns 0 or the
 * error of the request; idempotent. */
MP_EXTERN int mp_manager_shutdown(mp_manager *m);

/* mp_manager_free shuts down a server this handle started (as leaving
 * `with Manager() as m` does), closes the handle's connections and frees
 * it. Free the proxies first. NULL is a no-op. */
MP_EXTERN void mp_manager_free(mp_manager *m);

/* mp_manager_address returns the server's address ("host:port" or a path),
 * owned by m. mp_manager_pid returns the server child's pid for a started
 * manager, else 0. */
MP_EXTERN const char *mp_manager_address(const mp_manager *m);
MP_EXTERN pid_t mp_manager_pid(const mp_manager *m);

/* mp_manager_server_new makes a server listening on opts->address in this
 * process, as BaseManager(...).get_server(). It serves nothing until
 * mp_manager_server_serve_forever. Returns as mp_manager_start. */
MP_EXTERN int mp_manager_server_new(mp_manager_server **out,
                                    const mp_manager_opts *opts);

/* mp_manager_server_register adds a served type, as BaseManager.register;
 * call it before serving. MP_EEXIST when typeid is taken, MP_EINVAL. */
MP_EXTERN int mp_manager_server_register(mp_manager_server *s,
                                         const char *typeid,
                                         const mp_manager_type *type);

/* mp_manager_server_serve_forever serves clients in this thread (one
 * thread per client connection) until a client's 'shutdown' request or
 * mp_manager_server_stop. Blocks. Returns 0 or MP_ESTATE if already
 * serving. */
MP_EXTERN int mp_manager_server_serve_forever(mp_manager_server *s);

/* mp_manager_server_stop makes serve_forever return: it closes every
 * client connection (their calls fail with MP_ECLOSED) and wakes every
 * blocked call. Safe from any thread and from a signal handler. */
MP_EXTERN int mp_manager_server_stop(mp_manager_server *s);

/* mp_manager_server_address returns the address the server listens on
 * (with the port the kernel chose for port 0), owned by s. */
MP_EXTERN const char *mp_manager_server_address(const mp_manager_server *s);

/* mp_manager_server_free stops the server if needed, frees every object
 * it holds and, for a Unix socket, removes the socket file. NULL: no-op. */
MP_EXTERN void mp_manager_server_free(mp_manager_server *s);

/* ==== creating shared objects ============================================
 * Each returns 0 with a new proxy in *out (free it with mp_proxy_free), or
 * an error. The object lives on the server while a proxy to it exists
 * (or while a container on the server holds a proxy to it). */

/* mp_manager_create creates a typeid object (any served type, a
 * registered one included) with constructor arguments args (a tuple or
 * NULL) and kwds (a dict or NULL), both taken. */
MP_EXTERN int mp_manager_create(mp_manager *m, const char *typeid,
                                mp_obj *args, mp_obj *kwds, mp_proxy **out);
MP_EXTERN int mp_manager_dict(mp_manager *m, mp_proxy **out);
MP_EXTERN int mp_manager_list(mp_manager *m, mp_proxy **out);
MP_EXTERN int mp_manager_namespace(mp_manager *m, mp_proxy **out);
/* mp_manager_value: Python's m.Value(typecode, value); init taken. */
MP_EXTERN int mp_manager_value(mp_manager *m, const char *typecode,
                               mp_obj *init, mp_proxy **out);
/* mp_manager_array: m.Array(typecode, sequence); items (a list) taken. */
MP_EXTERN int mp_manager_array(mp_manager *m, const char *typecode,
                               mp_obj *items, mp_proxy **out);
/* mp_manager_queue: m.Queue(maxsize) (0: unbounded);
 * mp_manager_joinable_queue: m.JoinableQueue(maxsize). */
MP_EXTERN int mp_manager_queue(mp_manager *m, long maxsize, mp_proxy **out);
MP_EXTERN int mp_manager_joinable_queue(mp_manager *m, long maxsize,
                                        mp_proxy **out);
MP_EXTERN int mp_manager_lock(mp_manager *m, mp_proxy **out);
MP_EXTERN int mp_manager_rlock(mp_manager *m, mp_proxy **out);
MP_EXTERN int mp_manager_semaphore(mp_manager *m, long value,
                                   mp_proxy **out);
MP_EXTERN int mp_manager_bounded_semaphore(mp_manager *m, long value,
                                           mp_proxy **out);
/* mp_manager_condition: m.Condition() with its own RLock. */
MP_EXTERN int mp_manager_condition(mp_manager *m, mp_proxy **out);
MP_EXTERN int mp_manager_event(mp_manager *m, mp_proxy **out);
/* mp_manager_barrier: m.Barrier(parties) (no action; timeout None). */
MP_EXTERN int mp_manager_barrier(mp_manager *m, long parties,
                                 mp_proxy **out);

/* ==== proxies ============================================================ */

/* mp_proxy_call calls method on the referent, as Python's
 * proxy._callmethod(method, args, kwds): args (a tuple or NULL) and kwds (a
 * dict or NULL) are taken. On success *result (may be NULL to drop it) is a
 * new value (None for no result). A method whose result is a proxy
 * ('#PROXY', as a dict's __iter__) returns that proxy as a RebuildProxy
 * value carrying the server's reference to it ({'incref': False}):
 * mp_proxy_from_obj adopts that reference. Blocks until the server
 * answers, or up to the handle's call_timeout (mp_manager_opts). Errors
 * as described at the top. */
MP_EXTERN int mp_proxy_call(mp_proxy *p, const char *method, mp_obj *args,
                            mp_obj *kwds, mp_obj **result);

/* mp_proxy_call_timeout is mp_proxy_call that waits at most timeout
 * seconds for the reply (MP_FOREVER: without end), whatever the handle's
 * call_timeout: a stuck server cannot hang the caller. A reply that does
 * not come in time is MP_ETIMEDOUT, and the calling thread's connection
 * is closed (its next call opens a new one; Locks it held on the server
 * are released). MP_EINVAL for a NaN timeout. */
MP_EXTERN int mp_proxy_call_timeout(mp_proxy *p, const char *method,
                                    mp_obj *args, mp_obj *kwds,
                                    double timeout, mp_obj **result);

/* mp_proxy_free drops this process's reference (a 'decref' request) and
 * frees p. It does not wait for a blocked call. NULL is a no-op. */
MP_EXTERN void mp_proxy_free(mp_proxy *p);

/* mp_proxy_typeid and mp_proxy_ident return the referent's typeid
 * ("dict") and server ident, owned by p. */
MP_EXTERN const char *mp_proxy_typeid(const mp_proxy *p);
MP_EXTERN const char *mp_proxy_ident(const mp_proxy *p);

/* mp_proxy_to_obj returns a value standing for the proxy (Python's
 * RebuildProxy(ListProxy, Token(...), 'pickle', {})), to store in another
 * managed container: `d['inner'] = list_proxy` nests them. A Python client
 * reading it gets a proxy. mp_proxy_from_obj makes a proxy on m from such a
 * value (borrowed): MP_EINVAL when v is not one. */
MP_EXTERN mp_obj *mp_proxy_to_obj(const mp_proxy *p);
MP_EXTERN int mp_proxy_from_obj(mp_manager *m, const mp_obj *v,
                                mp_proxy **out);

/* mp_proxy_token writes "typeid ident" into buf (cap bytes) for a process
 * that did not inherit the proxy; mp_proxy_open makes a proxy from it on a
 * manager handle of that process. MP_ETOOBIG, MP_EINVAL. */
MP_EXTERN int mp_proxy_token(const mp_proxy *p, char *buf, size_t cap);
MP_EXTERN int mp_proxy_open(mp_manager *m, const char *token,
                            mp_proxy **out);

/* mp_proxy_getvalue returns a copy of the referent (Python's
 * proxy._getvalue()); mp_proxy_repr the server's repr() of it as a new
 * string (free it with free()). */
MP_EXTERN int mp_proxy_getvalue(mp_proxy *p, mp_obj **out);
MP_EXTERN int mp_proxy_repr(mp_proxy *p, char **out);

/* ---- dict, list, Array (key: a dict key, or an int index) --------------
 * mp_proxy_getitem: p[key] into *out (new). MP_ENOENT / MP_ERANGE.
 * mp_proxy_setitem: p[key] = value. mp_proxy_delitem: del p[key].
 * key and value are taken. mp_proxy_len returns len(p) or an error. */
MP_EXTERN int mp_proxy_getitem(mp_proxy *p, mp_obj *key, mp_obj **out);
MP_EXTERN int mp_proxy_setitem(mp_proxy *p, mp_obj *key, mp_obj *value);
MP_EXTERN int mp_proxy_delitem(mp_proxy *p, mp_obj *key);
MP_EXTERN ssize_t mp_proxy_len(mp_proxy *p);
/* mp_proxy_append: list.append(value) (taken). */
MP_EXTERN int mp_proxy_append(mp_proxy *p, mp_obj *value);

/* ---- Namespace and Value ----------------------------------------------
 * mp_proxy_getattr: ns.name into *out (MP_ENOENT: AttributeError);
 * mp_proxy_setattr: ns.name = value (taken); mp_proxy_delattr. For a
 * Value, mp_proxy_get_value / mp_proxy_set_value are v.value. */
MP_EXTERN int mp_proxy_getattr(mp_proxy *p, const char *name, mp_obj **out);
MP_EXTERN int mp_proxy_setattr(mp_proxy *p, const char *name, mp_obj *value);
MP_EXTERN int mp_proxy_delattr(mp_proxy *p, const char *name);
MP_EXTERN int mp_proxy_get_value(mp_proxy *p, mp_obj **out);
MP_EXTERN int mp_proxy_set_value(mp_proxy *p, mp_obj *value);

/* ---- atomic operations (dict, list, Namespace; beyond Python) ---------
 * Each happens in one request, under the server's lock. key is a dict
 * key, a list index, or a Namespace attribute name (a str); key and the
 * values are taken.
 * mp_proxy_add: p[key] += delta (numbers: int stays int, MP_EOVERFLOW past
 *   64 bits; a str, bytes or list is concatenated); *result (may be NULL)
 *   gets the new value. A missing key is MP_ENOENT.
 * mp_proxy_compare_and_set: if p[key] == expected (Python's ==; a missing
 *   key equals nothing) then p[key] = desired and *swapped = 1, else 0.
 * mp_proxy_setdefault: p[key] if present, else p[key] = dflt; *result gets
 *   the value now there.
 * mp_proxy_pop: removes p[key] into *result; if absent, *result = dflt
 *   when dflt is not NULL, else MP_ENOENT (MP_ERANGE for a list).
 * mp_proxy_append_if_absent: list only: appends value unless an equal
 *   item is there; *appended = 1 when it did.
 * mp_proxy_apply: ops is a list of (method, args) tuples, method one of
 *   '__setitem__', '__delitem__', '__getitem__', 'append', 'mp_add',
 *   'mp_cas', 'setdefault', 'pop', 'mp_append_if_absent', '__setattr__',
 *   '__getattribute__', '__delattr__'; they run in order as one step, and
 *   if one fails none takes effect (the first error is returned). *results
 *   gets the list of their results. */
MP_EXTERN int mp_proxy_add(mp_proxy *p, mp_obj *key, mp_obj *delta,
                           mp_obj **result);
MP_EXTERN int mp_proxy_compare_and_set(mp_proxy *p, mp_obj *key,
                                       mp_obj *expected, mp_obj *desired,
                                       int *swapped);
MP_EXTERN int mp_proxy_setdefault(mp_proxy *p, mp_obj *key, mp_obj *dflt,
                                  mp_obj **result);
MP_EXTERN int mp_proxy_pop(mp_proxy *p, mp_obj *key, mp_obj *dflt,
                           mp_obj **result);
MP_EXTERN int mp_proxy_append_if_absent(mp_proxy *p, mp_obj *value,
                                        int *appended);
MP_EXTERN int mp_proxy_apply(mp_proxy *p, mp_obj *ops, mp_obj **results);

/* ---- Queue / JoinableQueue ---------------------------------------------
 * mp_proxy_put: q.put(item, timeout) (item taken; MP_FOREVER blocks, 0 is
 * put_nowait; MP_EAGAIN / MP_ETIMEDOUT when full). mp_proxy_get:
 * q.get(timeout) into *out (MP_EAGAIN / MP_ETIMEDOUT when empty).
 * mp_proxy_qsize; mp_proxy_task_done; mp_proxy_join (JoinableQueue). */
MP_EXTERN int mp_proxy_put(mp_proxy *p, mp_obj *item, double timeout);
MP_EXTERN int mp_proxy_get(mp_proxy *p, mp_obj **out, double timeout);
MP_EXTERN ssize_t mp_proxy_qsize(mp_proxy *p);
MP_EXTERN int mp_proxy_task_done(mp_proxy *p);
MP_EXTERN int mp_proxy_join(mp_proxy *p);

/* ---- Lock, RLock, Semaphore, Condition, Event, Barrier -----------------
 * mp_proxy_acquire: acquire(True, timeout) (0 tries once; MP_ETIMEDOUT /
 * MP_EAGAIN when not acquired). mp_proxy_release (MP_EPERM: not held;
 * MP_EVALUE: a bounded semaphore released too often).
 * mp_proxy_wait: Event.wait / Condition.wait / Barrier.wait: 0 when woken
 * (a barrier's arrival index in *index, may be NULL), MP_ETIMEDOUT,
 * MP_EBROKEN (barrier). mp_proxy_set / mp_proxy_clear / mp_proxy_is_set
 * (1 or 0) for an Event; mp_proxy_notify(n) / mp_proxy_notify_all for a
 * Condition; mp_proxy_abort / mp_proxy_reset for a Barrier. */
MP_EXTERN int mp_proxy_acquire(mp_proxy *p, double timeout);
MP_EXTERN int mp_proxy_release(mp_proxy *p);
MP_EXTERN int mp_proxy_wait(mp_proxy *p, double timeout, long *index);
MP_EXTERN int mp_proxy_set(mp_proxy *p);
MP_EXTERN int mp_proxy_clear(mp_proxy *p);
MP_EXTERN int mp_proxy_is_set(mp_proxy *p);
MP_EXTERN int mp_proxy_notify(mp_proxy *p, long n);
MP_EXTERN int mp_proxy_notify_all(mp_proxy *p);
MP_EXTERN int mp_proxy_abort(mp_proxy *p);
MP_EXTERN int mp_proxy_reset(mp_proxy *p);

/* ---- more of Python's proxy methods (src/manager/proxy_python.c) --------
 * Each sends the method Python's proxy sends, so it works against a C or a
 * Python server; values passed are taken; results are new values. Errors
 * as at the top (the server's exception as a code and a detail).
 * dict:
 *   mp_proxy_contains: `value in p` (dict key, list item): 1, 0 or an
 *     error.
 *   mp_proxy_keys / _values / _items: list(d.keys()) ... (items: a list of
 *     (key, value) tuples) into *out.
 *   mp_proxy_dict_get: d.get(key, dflt) into *out (dflt NULL: None).
 *   mp_proxy_update: d.update(other), other a dict or a list of pairs.
 *   mp_proxy_popitem: d.popitem() into *key and *value (either may be
 *     NULL to drop it); MP_ENOENT on an empty dict.
 *   mp_proxy_clear (above) is d.clear() too (Python's list proxy has no
 *   clear(): delete a slice); mp_proxy_pop is
 *   d.pop(key[, dflt]) and l.pop([index]).
 * list:
 *   mp_proxy_extend: l.extend(items) (a list or tuple); mp_proxy_insert:
 *   l.insert(index, value); mp_proxy_remove: l.remove(value) (MP_EVALUE
 *   when absent); mp_proxy_index: l.index(value) (MP_EVALUE when absent);
 *   mp_proxy_count: l.count(value); mp_proxy_sort: l.sort(reverse=...)
 *   (MP_EINVAL: items that do not compare); mp_proxy_reverse.
 * Queue: mp_proxy_empty, mp_proxy_full: q.empty(), q.full(): 1, 0 or an
 *   error.
 * Condition: mp_proxy_wait_for: c.wait_for(predicate, timeout), with the
 *   Condition held: calls predicate(ctx) and waits until it returns
 *   nonzero (0 then), or until timeout seconds have passed
 *   (MP_ETIMEDOUT; MP_FOREVER waits without end); a negative predicate
 *   result is returned as an error. A loop on the client, as Python's.
 * Barrier: mp_proxy_parties, mp_proxy_n_waiting (counts), mp_proxy_broken
 *   (1 or 0): b.parties, b.n_waiting, b.broken. */
MP_EXTERN int mp_proxy_contains(mp_proxy *p, mp_obj *value);
MP_EXTERN int mp_proxy_keys(mp_proxy *p, mp_obj **out);
MP_EXTERN int mp_proxy_values(mp_proxy *p, mp_obj **out);
MP_EXTERN int mp_proxy_items(mp_proxy *p, mp_obj **out);
MP_EXTERN int mp_proxy_dict_get(mp_proxy *p, mp_obj *key, mp_obj *dflt,
                                mp_obj **out);
MP_EXTERN int mp_proxy_update(mp_proxy *p, mp_obj *other);
MP_EXTERN int mp_proxy_popitem(mp_proxy *p, mp_obj **key, mp_obj **value);
MP_EXTERN int mp_proxy_extend(mp_proxy *p, mp_obj *items);
MP_EXTERN int mp_proxy_insert(mp_proxy *p, ssize_t index, mp_obj *value);
MP_EXTERN int mp_proxy_remove(mp_proxy *p, mp_obj *value);
MP_EXTERN ssize_t mp_proxy_index(mp_proxy *p, mp_obj *value);
MP_EXTERN ssize_t mp_proxy_count(mp_proxy *p, mp_obj *value);
MP_EXTERN int mp_proxy_sort(mp_proxy *p, int reverse);
MP_EXTERN int mp_proxy_reverse(mp_proxy *p);
MP_EXTERN int mp_proxy_empty(mp_proxy *p);
MP_EXTERN int mp_proxy_full(mp_proxy *p);
typedef int (*mp_proxy_predicate)(void *ctx);
MP_EXTERN int mp_proxy_wait_for(mp_proxy *p, mp_proxy_predicate predicate,
                                void *ctx, double timeout);
MP_EXTERN ssize_t mp_proxy_parties(mp_proxy *p);
MP_EXTERN ssize_t mp_proxy_n_waiting(mp_proxy *p);
MP_EXTERN int mp_proxy_broken(mp_proxy *p);

/* ---- shorthands (src/manager/convenience.c) -----------------------------
 * mp_proxy_print writes what Python's print(proxy) writes: the server's
 * repr of the referent ("Namespace(x=1, y=1)", "[1, 2]") and a newline.
 * Returns 0, MP_EINVAL (NULL f or p), MP_EPROTO (the repr is not a str),
 * MP_EIO, and the errors of mp_proxy_call.
 * mp_proxy_getattr_int reads ns.name as a C integer (an int or a bool):
 * mp_proxy_getattr, then mp_obj_get_int. Returns 0, MP_ENOENT (no such
 * attribute: Python's AttributeError), MP_EINVAL (NULL out, or not an int:
 * detail "expected int, got str"; *out untouched), and the errors of
 * mp_proxy_getattr. */
MP_EXTERN int mp_proxy_print(FILE *f, mp_proxy *p);
MP_EXTERN int mp_proxy_getattr_int(mp_proxy *p, const char *name,
                                   int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
