/* manager/server.c - the manager server: Python's managers.Server in C.
 * One thread accepts; each accepted connection gets a thread that runs the
 * authkey handshake (nothing is read before it succeeds), reads one control
 * request (dummy, create, incref, decref, get_methods, accept_connection,
 * shutdown, debug_info, number_of_objects) and either answers and closes,
 * or, after accept_connection, serves method calls on that connection until
 * the client hangs up. The object table, the reference counts and the call
 * dispatch live here; the types live in types_*.c. See manager_internal.h
 * for the DESIGN (one mutex, sliced waits, what a dead client releases). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "manager/manager_internal.h"

struct mp_manager_server {
  mp__mgr_server srv;
  int stop_pipe[2];
  atomic_int stopping;
  atomic_int serving;
};

static void logf_(mp__mgr_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(mp__mgr_server *s, const char *fmt, ...) {
  if (!s->log) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%02d:%02d:%02d.%03ld mp-manager[%d]: %s\n", tm.tm_hour,
          tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(), buf);
}

/* ---- exceptions and argument helpers ----------------------------------- */

int mp__mgr_raise(mp__mgr_call *call, const char *module, const char *name,
                  mp_obj *arg) {
  mp_obj *args = arg ? mp_obj_tuple_pack(1, arg) : mp_obj_tuple_from(0, NULL);
  mp_obj *e = mp_obj_instance(mp_obj_global(module, name), args, NULL, 0);
  mp_obj_free(call->result);
  call->result = e;
  call->kind = MP__MGR_ERROR;
  return e ? 1 : MP_ENOMEM;
}

int mp__mgr_raise_msg(mp__mgr_call *call, const char *module,
                      const char *name, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return mp__mgr_raise(call, module, name, mp_obj_str(buf));
}

char *mp__mgr_format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *r = mp__alloc((size_t)n + 1);
  if (!r) return NULL;
  va_start(ap, fmt);
  vsnprintf(r, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return r;
}

int mp__mgr_traceback(mp__mgr_call *call, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  mp_obj_free(call->result);
  call->result = NULL;
  mp__free(call->text);
  call->text = mp__strdup(buf);
  call->kind = MP__MGR_TRACEBACK;
  return 1;
}

int mp__mgr_bind(mp__mgr_call *call, const char *const *names, size_t n,
                 size_t required, const mp_obj **out) {
  ssize_t na = call->args ? mp_obj_len(call->args) : 0;
  if (na < 0) na = 0;
  for (size_t i = 0; i < n; i++) out[i] = NULL;
  if ((size_t)na > n)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "%s() takes at most %zu arguments (%zd given)",
                             call->method, n, na);
  for (ssize_t i = 0; i < na; i++) out[i] = mp_obj_list_get(call->args, i);
  if (call->kwds) {
    size_t pos = 0;
    mp_obj *k, *v;
    while (mp_obj_dict_next(call->kwds, &pos, &k, &v) == 1) {
      const char *ks = NULL;
      size_t i;
      if (mp_obj_get_str(k, &ks, NULL) != 0) ks = "?";
      for (i = 0; i < n; i++)
        if (strcmp(names[i], ks) == 0) break;
      if (i == n)
        return mp__mgr_raise_msg(
            call, "builtins", "TypeError",
            "%s() got an unexpected keyword argument '%s'", call->method, ks);
      if (out[i])
        return mp__mgr_raise_msg(call, "builtins", "TypeError",
                                 "%s() got multiple values for argument '%s'",
                                 call->method, ks);
      out[i] = v;
    }
  }
  for (size_t i = 0; i < required; i++)
    if (!out[i])
      return mp__mgr_raise_msg(
          call, "builtins", "TypeError",
          "%s() missing required argument: '%s'", call->method, names[i]);
  return 0;
}

int mp__mgr_timeout_arg(mp__mgr_call *call, const mp_obj *v, double dflt,
                        double *out) {
  if (!v || mp_obj_is_none(v)) {
    *out = dflt;
    return 0;
  }
  double t;
  if (mp_obj_get_float(v, &t) != 0 || t != t)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "timeout must be a number or None");
  *out = t;
  return 0;
}

/* ---- waiting ------------------------------------------------------------ */

int mp__mgr_conn_alive(const mp__mgr_conn *conn) {
  if (!conn || conn->no_wait) return 1;
  struct pollfd p = {.fd = conn->fd, .events = POLLRDHUP};
  int n = poll(&p, 1, 0);
  if (n <= 0) return 1; /* unknown means alive */
  return !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

int mp__mgr_wait(mp__mgr_call *call, mp__deadline d) {
  mp__mgr_server *s = call->srv;
  if (s->stop) return MP_ECLOSED;
  if (mp__deadline_expired(d) || d.poll) return MP_ETIMEDOUT;
  if (call->conn && call->conn->no_wait) return MP_ETIMEDOUT;
  mp__deadline slice = mp__deadline_min_slice(d, MP__MGR_SLICE_NS);
  struct timespec ts = {.tv_sec = slice.ns / 1000000000LL,
                        .tv_nsec = slice.ns % 1000000000LL};
  pthread_cond_timedwait(&call->entry->cond, &s->mu, &ts);
  if (s->stop) return MP_ECLOSED;
  if (!mp__mgr_conn_alive(call->conn)) return MP_ECLOSED;
  if (mp__deadline_expired(d)) return MP_ETIMEDOUT;
  return 0;
}

/* ---- the object table --------------------------------------------------- */

static mp__mgr_type *builtin_types[] = {
    &mp__mgr_type_dict,           &mp__mgr_type_list,
    &mp__mgr_type_namespace,      &mp__mgr_type_value,
    &mp__mgr_type_array,          &mp__mgr_type_iterator,
    &mp__mgr_type_queue,          &mp__mgr_type_joinable_queue,
    &mp__mgr_type_lock,           &mp__mgr_type_rlock,
    &mp__mgr_type_semaphore,      &mp__mgr_type_bounded_semaphore,
    &mp__mgr_type_condition,      &mp__mgr_type_event,
    &mp__mgr_type_barrier,
};

static mp__mgr_type *find_type(mp__mgr_server *s, const char *typeid) {
  for (size_t i = 0; i < s->n_types; i++)
    if (strcmp(s->types[i]->typeid, typeid) == 0) return s->types[i];
  return NULL;
}

static mp__mgr_entry *find_entry(mp__mgr_server *s, const char *ident) {
  size_t n = strlen(ident);
  if (n == 0 || n > 16) return NULL;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    char c = ident[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return NULL;
    v = v * 16 + (uint64_t)d;
  }
  if (v < s->seq_base) return NULL;
  uint64_t seq = (v - s->seq_base) / 16;
  if ((v - s->seq_base) % 16 || seq == 0 || seq > s->n_entries) return NULL;
  mp__mgr_entry *e = s->entries[seq - 1];
  if (!e || e->dead || strcmp(e->ident, ident) != 0) return NULL;
  return e;
}

static void entry_destroy(mp__mgr_server *s, mp__mgr_entry *e) {
  s->entries[e->seq - 1] = NULL;
  s->live--;
  if (e->type->destroy) e->type->destroy(e->state);
  pthread_cond_destroy(&e->cond);
  mp__free(e);
}

static void entry_unbusy(mp__mgr_server *s, mp__mgr_entry *e) {
  if (--e->busy == 0 && e->dead) entry_destroy(s, e);
}

static int incref(mp__mgr_server *s, const char *ident) {
  mp__mgr_entry *e = find_entry(s, ident);
  if (!e) return MP_ENOENT;
  e->refcount++;
  return 0;
}

static int decref(mp__mgr_server *s, const char *ident) {
  mp__mgr_entry *e = find_entry(s, ident);
  if (!e) return MP_ENOENT;
  if (--e->refcount <= 0) {
    e->dead = 1;
    pthread_cond_broadcast(&e->cond);
    if (e->busy == 0) entry_destroy(s, e);
  }
  return 0;
}

/* create_entry makes a typeid object with the call's args (under s->mu)
 * and returns the new entry with refcount 1 via *out, or fills the call's
 * error. */
static int create_entry(mp__mgr_server *s, mp__mgr_call *call,
                        mp__mgr_type *t, mp__mgr_entry **out) {
  mp__mgr_entry *e = mp__calloc(1, sizeof *e);
  if (!e) return mp__mgr_traceback(call, "MemoryError: out of memory");
  if (s->n_entries == s->cap_entries) {
    size_t cap = s->cap_entries ? s->cap_entries * 2 : 64;
    mp__mgr_entry **ne = mp__realloc(s->entries, cap * sizeof *ne);
    if (!ne) {
      mp__free(e);
      return mp__mgr_traceback(call, "MemoryError: out of memory");
    }
    s->entries = ne;
    s->cap_entries = cap;
  }
  e->type = t;
  call->entry = e;
  int rc = t->create(call, &e->state);
  if (rc || call->kind != MP__MGR_RETURN) {
    mp__free(e);
    call->entry = NULL;
    if (call->kind == MP__MGR_RETURN)
      return mp__mgr_traceback(call, "create %s failed: %s", t->typeid,
                               mp_error_message(rc));
    return 1;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->cond, &ca);
  pthread_condattr_destroy(&ca);
  e->seq = ++s->n_entries;
  s->entries[e->seq - 1] = e;
  snprintf(e->ident, sizeof e->ident, "%" PRIx64, s->seq_base + e->seq * 16);
  e->refcount = 1;
  s->live++;
  *out = e;
  return 0;
}

static mp_obj *exposed_tuple(const mp__mgr_type *t) {
  mp_obj *items[128];
  size_t n = t->n_exposed < 128 ? t->n_exposed : 128;
  for (size_t i = 0; i < n; i++) items[i] = mp_obj_str(t->exposed[i]);
  return mp_obj_tuple_from(n, items);
}

/* ---- Token, RebuildProxy: the values the protocol needs ------------------ */

static mp_obj *address_obj(const mp__mgr_server *s) {
  return mp__mgr_addr_obj(s->address);
}

static mp_obj *token_obj(const mp__mgr_server *s, const char *typeid,
                         const char *ident) {
  return mp_obj_instance(
      mp_obj_global("multiprocessing.managers", "Token"),
      mp_obj_tuple_from(0, NULL),
      mp_obj_tuple_pack(3, mp_obj_str(typeid), address_obj(s),
                        mp_obj_str(ident)),
      1);
}

/* Pins every object of this server a request's value refers to through a
 * RebuildProxy (a proxy stored into a container): it then lives as long as
 * the server, as Python's id_to_local_proxy_obj keeps it. */
static void pin_proxies(mp__mgr_server *s, const mp_obj *v, int depth) {
  if (!v || depth > 64) return;
  mp_obj_type t = mp_obj_type_of(v);
  if (t == MP_OBJ_LIST || t == MP_OBJ_TUPLE) {
    ssize_t n = mp_obj_len(v);
    for (ssize_t i = 0; i < n; i++)
      pin_proxies(s, mp_obj_list_get(v, i), depth + 1);
  } else if (t == MP_OBJ_DICT) {
    size_t pos = 0;
    mp_obj *k, *val;
    while (mp_obj_dict_next(v, &pos, &k, &val) == 1)
      pin_proxies(s, val, depth + 1);
  } else if (t == MP_OBJ_INSTANCE) {
    const char *mod, *name;
    if (mp_obj_global_name(v, &mod, &name) == 0 &&
        strcmp(name, "RebuildProxy") == 0) {
      mp_obj *args = mp_obj_instance_args(v);
      mp_obj *tok = mp_obj_list_get(args, 1);
      mp_obj *st = tok ? mp_obj_instance_state(tok) : NULL;
      mp_obj *id = st ? mp_obj_list_get(st, 2) : NULL;
      const char *ident;
      if (id && mp_obj_get_str(id, &ident, NULL) == 0) {
        mp__mgr_entry *e = find_entry(s, ident);
        if (e && !e->pinned) {
          e->pinned = 1;
          e->refcount++;
        }
      }
    }
  }
}

/* ---- requests ----------------------------------------------------------- */

static int allow_request(void *ctx, const char *module, const char *name) {
  (void)ctx;
  if (strcmp(module, "array") == 0) /* an array.array, read as plain data */
    return strcmp(name, "array") == 0 || strcmp(name, "_array_reconstructor") == 0;
  if (strcmp(module, "multiprocessing.managers") == 0)
    return strcmp(name, "Token") == 0 || strcmp(name, "RebuildProxy") == 0 ||
           strstr(name, "Proxy") != NULL || strcmp(name, "Namespace") == 0;
  if (strcmp(module, "builtins") == 0) {
    static const char *ok[] = {
        "slice",          "list",           "bytearray",    "complex",
        "range",
        "Exception",      "KeyError",       "IndexError",   "ValueError",
        "TypeError",      "AttributeError", "RuntimeError", "StopIteration",
        "LookupError",    "ArithmeticError", "ZeroDivisionError",
        "OverflowError",  "NotImplementedError", "OSError", "EOFError",
        "AssertionError", "NameError",      "BaseException", NULL};
    for (int i = 0; ok[i]; i++)
      if (strcmp(name, ok[i]) == 0) return 1;
    return 0;
  }
  if (strcmp(module, "_queue") == 0) return strcmp(name, "Empty") == 0;
  if (strcmp(module, "queue") == 0) return strcmp(name, "Full") == 0;
  if (strcmp(module, "threading") == 0)
    return strcmp(name, "BrokenBarrierError") == 0;
  return 0;
}

int mp__mgr_decode(const void *buf, size_t len, mp_obj **out) {
  mp_pickle_load_opts o = {.max_depth = 200,
                           .max_memo = 1u << 20,
                           .max_nodes = 1u << 22,
                           .allow = allow_request};
  return mp_pickle_loads(buf, len, out, &o);
}

int mp__mgr_encode(const mp_obj *v, void **buf, size_t *len) {
  return mp_pickle_dumps(v, buf, len, NULL);
}

static const char *kind_name(int kind) {
  switch (kind) {
  case MP__MGR_ERROR: return "#ERROR";
  case MP__MGR_TRACEBACK: return "#TRACEBACK";
  case MP__MGR_PROXY: return "#PROXY";
  default: return "#RETURN";
  }
}

/* encode_reply pickles (kind, value) into *buf and frees what the call
 * holds. */
static int encode_reply(mp__mgr_server *s, mp__mgr_conn *conn,
                        mp__mgr_call *call, void **buf, size_t *len) {
  mp_obj *val;
  if (call->kind == MP__MGR_TRACEBACK)
    val = mp_obj_str(call->text ? call->text : "error");
  else {
    val = call->result ? call->result : mp_obj_none();
    call->result = NULL;
  }
  mp_obj *msg = mp_obj_tuple_pack(2, mp_obj_str(kind_name(call->kind)), val);
  mp__free(call->text);
  call->text = NULL;
  mp_obj_free(call->result);
  call->result = NULL;
  if (!msg) return MP_ENOMEM;
  int rc = mp__mgr_encode(msg, buf, len);
  mp_obj_free(msg);
  if (rc) {
    logf_(s, "connection %" PRIu64 ": reply not encodable: %s", conn->id,
          mp_error_message(rc));
    mp_obj *m2 = mp_obj_tuple_pack(
        2, mp_obj_str("#UNSERIALIZABLE"),
        mp_obj_str("the result cannot be pickled by the C manager"));
    rc = m2 ? mp__mgr_encode(m2, buf, len) : MP_ENOMEM;
    mp_obj_free(m2);
  }
  return rc;
}

/* send_reply sends (kind, value) and frees what the call holds. */
static int send_reply(mp__mgr_server *s, mp__mgr_conn *conn,
                      mp__mgr_call *call) {
  void *buf = NULL;
  size_t len = 0;
  int rc = encode_reply(s, conn, call, &buf, &len);
  if (rc) return rc;
  rc = conn->local ? mp__mgr_local_send(conn->local, 0, conn->c, buf, len)
                   : mp_connection_send_bytes(conn->c, buf, 0, len);
  free(buf);
  return rc;
}

static const char *str_arg(const mp_obj *tuple, ssize_t i) {
  const char *s = NULL;
  mp_obj *v = mp_obj_list_get(tuple, i);
  if (!v || mp_obj_get_str(v, &s, NULL) != 0) return NULL;
  return s;
}

/* fallback for '#GETVALUE', '__repr__', '__str__' (Python's
 * fallback_mapping): a copy of the referent, or its repr. */
static int fallback(mp__mgr_call *call) {
  mp__mgr_entry *e = call->entry;
  int getvalue = strcmp(call->method, "#GETVALUE") == 0;
  if (getvalue && e->type->pyvalue) {
    call->result = e->type->pyvalue(e->state);
    return call->result ? 0 : mp__mgr_traceback(call, "MemoryError");
  }
  if (!getvalue && e->type->repr) {
    char *r = e->type->repr(e->state, e->ident);
    call->result = r ? mp_obj_str(r) : NULL;
    mp__free(r);
    return call->result ? 0 : mp__mgr_traceback(call, "MemoryError");
  }
  if (!e->type->getvalue) return -1;
  mp_obj *v = e->type->getvalue(e->state);
  if (!v) return mp__mgr_traceback(call, "MemoryError");
  if (getvalue) {
    call->result = v;
    return 0;
  }
  char *r = NULL;
  if (e->type == &mp__mgr_type_namespace) {
    /* Namespace(a=1, b=2): names sorted, as Python's __repr__. */
    size_t cap = 64, n = 0;
    r = malloc(cap);
    if (r) n = (size_t)snprintf(r, cap, "Namespace(");
    size_t cnt = (size_t)(mp_obj_len(v) > 0 ? mp_obj_len(v) : 0);
    const char **names = mp__calloc(cnt + 1, sizeof *names);
    mp_obj **vals = mp__calloc(cnt + 1, sizeof *vals);
    size_t pos = 0, k = 0;
    mp_obj *key, *val;
    while (names && vals && mp_obj_dict_next(v, &pos, &key, &val) == 1) {
      const char *ks;
      if (mp_obj_get_str(key, &ks, NULL) == 0 && ks[0] != '_') {
        names[k] = ks;
        vals[k++] = val;
      }
    }
    for (size_t i = 1; i < k; i++)
      for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
        const char *t = names[j];
        names[j] = names[j - 1];
        names[j - 1] = t;
        mp_obj *tv = vals[j];
        vals[j] = vals[j - 1];
        vals[j - 1] = tv;
      }
    for (size_t i = 0; r && i < k; i++) {
      char *vr = mp_obj_repr(vals[i]);
      size_t need = n + strlen(names[i]) + (vr ? strlen(vr) : 4) + 8;
      if (need > cap) {
        cap = need * 2;
        char *nr = realloc(r, cap);
        if (!nr) {
          free(r);
          r = NULL;
        } else
          r = nr;
      }
      if (r)
        n += (size_t)snprintf(r + n, cap - n, "%s%s=%s", i ? ", " : "",
                              names[i], vr ? vr : "None");
      free(vr);
    }
    if (r) snprintf(r + n, cap - n, ")");
    mp__free(names);
    mp__free(vals);
  } else {
    r = mp_obj_repr(v);
  }
  mp_obj_free(v);
  if (!r) return mp__mgr_traceback(call, "MemoryError");
  call->result = mp_obj_str(r);
  free(r);
  return 0;
}

/* dispatch_method runs one method call with s->mu held. */
static void dispatch_method(mp__mgr_server *s, mp__mgr_call *call,
                            const char *ident) {
  mp__mgr_entry *e = find_entry(s, ident);
  if (!e) {
    mp__mgr_traceback(call, "KeyError: '%s' (no object with this ident)",
                      ident);
    return;
  }
  call->entry = e;
  int exposed = 0;
  for (size_t i = 0; i < e->type->n_exposed; i++)
    if (strcmp(e->type->exposed[i], call->method) == 0) exposed = 1;
  e->busy++;
  if (!exposed) {
    if (strcmp(call->method, "#GETVALUE") == 0 ||
        strcmp(call->method, "__repr__") == 0 ||
        strcmp(call->method, "__str__") == 0) {
      if (fallback(call) >= 0) goto out;
    }
    /* The rule, where Python's server answers #TRACEBACK: an
     * #ERROR carrying the AttributeError Python's server would raise, so
     * a Python client gets that exception itself, not a RemoteError. */
    mp__mgr_raise_msg(call, "builtins", "AttributeError",
                      "method '%s' of '%s' object is not in exposed",
                      call->method, e->type->typeid);
    goto out;
  }
  pin_proxies(s, call->args, 0);
  pin_proxies(s, call->kwds, 0);
  int rc = e->type->call(call);
  if (rc < 0 && call->kind == MP__MGR_RETURN) {
    if (rc == MP_ECLOSED) {
      call->kind = -1; /* the client or the server is gone: no reply */
    } else {
      mp__mgr_traceback(call, "%s failed: %s", call->method,
                        mp_error_message(rc));
    }
  }
  if (call->kind == MP__MGR_RETURN && e->type->iter_method &&
      strcmp(call->method, e->type->iter_method) == 0) {
    /* method_to_typeid: the result becomes a new proxied object. */
    mp__mgr_type *t = find_type(s, e->type->iter_typeid);
    mp__mgr_entry *ne = NULL;
    mp_obj *referent = call->result;
    call->result = NULL;
    mp__mgr_call c2 = *call;
    c2.args = referent;
    c2.kwds = NULL;
    c2.result = NULL;
    c2.text = NULL;
    if (t && create_entry(s, &c2, t, &ne) == 0) {
      call->result = mp_obj_tuple_pack(2, exposed_tuple(t),
                                       token_obj(s, t->typeid, ne->ident));
      call->kind = MP__MGR_PROXY;
    } else {
      mp__mgr_traceback(call, "cannot create the %s proxy",
                        e->type->iter_typeid);
      mp_obj_free(c2.result);
      mp__free(c2.text);
    }
    mp_obj_free(referent);
  }
out:
  entry_unbusy(s, e);
  call->entry = NULL;
}

static void server_stop_locked(mp__mgr_server *s);

/* control runs one control request; returns 1 when the connection then
 * serves method calls (accept_connection). */
static int control(mp__mgr_server *s, mp__mgr_conn *conn, const char *fn,
                   const mp_obj *args, const mp_obj *kwds,
                   mp__mgr_call *call) {
  ssize_t na = mp_obj_len(args);
  call->srv = s;
  call->conn = conn;
  call->method = fn;
  if (strcmp(fn, "dummy") == 0) return 0;
  if (strcmp(fn, "accept_connection") == 0) return 1;
  if (strcmp(fn, "mp_local_connection") == 0) {
    /* Beyond Python: a C client on this host asks for the local channel
     * (local.c). Only on a Unix socket: the descriptor travels on it. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!conn->no_wait && getsockname(conn->fd, (struct sockaddr *)&ss, &sl) == 0 &&
        ss.ss_family == AF_UNIX)
      return 2;
    mp__mgr_traceback(call, "AssertionError: a local connection needs a "
                            "Unix socket");
    return 0;
  }
  pthread_mutex_lock(&s->mu);
  if (strcmp(fn, "create") == 0) {
    const char *typeid = na >= 1 ? str_arg(args, 0) : NULL;
    mp__mgr_type *t = typeid ? find_type(s, typeid) : NULL;
    if (!t) {
      mp__mgr_traceback(call, "KeyError: unknown typeid '%s'",
                        typeid ? typeid : "?");
    } else {
      mp_obj *items[MP__MGR_MAX_ARGS];
      size_t n = 0;
      for (ssize_t i = 1; i < na && n < MP__MGR_MAX_ARGS; i++)
        items[n++] = mp_obj_copy(mp_obj_list_get(args, i));
      mp_obj *ctor = mp_obj_tuple_from(n, items);
      call->args = ctor;
      call->kwds = kwds;
      pin_proxies(s, ctor, 0);
      mp__mgr_entry *e = NULL;
      if (ctor && create_entry(s, call, t, &e) == 0) {
        call->result = mp_obj_tuple_pack(2, mp_obj_str(e->ident),
                                         exposed_tuple(t));
        logf_(s, "connection %" PRIu64 ": created %s %s", conn->id,
              t->typeid, e->ident);
      } else if (!ctor) {
        mp__mgr_traceback(call, "MemoryError");
      }
      call->args = args;
      mp_obj_free(ctor);
    }
  } else if (strcmp(fn, "incref") == 0 || strcmp(fn, "decref") == 0) {
    const char *ident = na >= 1 ? str_arg(args, 0) : NULL;
    int rc = ident ? (fn[0] == 'i' ? incref(s, ident) : decref(s, ident))
                   : MP_EINVAL;
    if (rc && fn[0] == 'i')
      mp__mgr_traceback(call, "KeyError: '%s'", ident ? ident : "?");
    /* decref of an unknown ident is ignored, as Python's is harmless. */
  } else if (strcmp(fn, "get_methods") == 0) {
    mp_obj *tok = na >= 1 ? mp_obj_list_get(args, 0) : NULL;
    mp_obj *st = tok ? mp_obj_instance_state(tok) : NULL;
    const char *typeid = st ? str_arg(st, 0) : NULL;
    mp__mgr_type *t = typeid ? find_type(s, typeid) : NULL;
    if (t)
      call->result = exposed_tuple(t);
    else
      mp__mgr_traceback(call, "KeyError: get_methods of an unknown token");
  } else if (strcmp(fn, "shutdown") == 0) {
    logf_(s, "connection %" PRIu64 ": shutdown requested", conn->id);
    call->kind = MP__MGR_RETURN;
    pthread_mutex_unlock(&s->mu);
    send_reply(s, conn, call);
    pthread_mutex_lock(&s->mu);
    server_stop_locked(s);
    call->kind = -1;
  } else if (strcmp(fn, "number_of_objects") == 0) {
    call->result = mp_obj_int((int64_t)s->live);
  } else if (strcmp(fn, "debug_info") == 0) {
    char buf[128];
    snprintf(buf, sizeof buf, "%zu objects", s->live);
    call->result = mp_obj_str(buf);
  } else {
    mp__mgr_traceback(call, "AssertionError: '%s' unrecognized", fn);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* parse_request splits (ident, method, args, kwds); nonzero when the
 * request is not one. */
static int parse_request(const mp_obj *req, const char **ident,
                         const char **method, mp_obj **args, mp_obj **kwds) {
  if (mp_obj_type_of(req) != MP_OBJ_TUPLE || mp_obj_len(req) != 4) return -1;
  mp_obj *id = mp_obj_list_get(req, 0);
  *ident = NULL;
  if (!mp_obj_is_none(id) && mp_obj_get_str(id, ident, NULL) != 0) return -1;
  if (mp_obj_get_str(mp_obj_list_get(req, 1), method, NULL) != 0) return -1;
  *args = mp_obj_list_get(req, 2);
  *kwds = mp_obj_list_get(req, 3);
  mp_obj_type at = mp_obj_type_of(*args);
  if (at != MP_OBJ_TUPLE && at != MP_OBJ_LIST) return -1;
  if (mp_obj_len(*args) > MP__MGR_MAX_ARGS) return -1;
  if (mp_obj_type_of(*kwds) != MP_OBJ_DICT) return -1;
  if (mp_obj_len(*kwds) == 0) *kwds = NULL;
  return 0;
}

static int recv_request(mp__mgr_server *s, mp__mgr_conn *conn, double timeout,
                        mp_obj **req) {
  void *buf = NULL;
  size_t len = 0;
  int rc = conn->local
               ? mp__mgr_local_recv(conn->local, 1, conn->c,
                                    mp__deadline_from_timeout(timeout),
                                    s->max_request, &buf, &len)
               : mp__mgr_recv(conn->c, timeout, s->max_request, &buf, &len);
  if (rc) return rc;
  rc = mp__mgr_decode(buf, len, req);
  free(buf);
  return rc;
}

static void serve_client(mp__mgr_server *s, mp__mgr_conn *conn) {
  for (;;) {
    mp_obj *req = NULL;
    int rc = recv_request(s, conn, -1, &req);
    if (rc == MP_ECLOSED || rc == MP_ESTATE || rc == MP_EPIPE ||
        rc == -ECONNRESET)
      return;
    mp__mgr_call call = {.srv = s, .conn = conn};
    const char *ident, *method;
    mp_obj *args, *kwds;
    if (rc || parse_request(req, &ident, &method, &args, &kwds) || !ident) {
      /* A malformed request: say why, then close this connection only. */
      logf_(s, "connection %" PRIu64 ": bad request: %s", conn->id,
            rc ? mp_error_detail() : "not (ident, method, args, kwds)");
      mp__mgr_traceback(&call, "bad request: %s",
                        rc ? mp_error_detail() : "not a 4-tuple");
      send_reply(s, conn, &call);
      mp_obj_free(req);
      return;
    }
    call.method = method;
    call.args = args;
    call.kwds = kwds;
    pthread_mutex_lock(&s->mu);
    dispatch_method(s, &call, ident);
    pthread_mutex_unlock(&s->mu);
    mp_obj_free(req);
    if (call.kind < 0) {
      mp_obj_free(call.result);
      mp__free(call.text);
      return;
    }
    if (send_reply(s, conn, &call) != 0) return;
  }
}

/* local_accept takes the client's local channel (after the reply to
 * 'mp_local_connection'): the descriptor, then a reply on the socket. */
static int local_accept(mp__mgr_server *s, mp__mgr_conn *conn) {
  int fd = -1;
  mp__mgr_local *l = NULL;
  int rc = mp__mgr_local_recv_fd(conn->c, MP__MGR_HANDSHAKE_TIMEOUT, &fd);
  if (rc == 0) {
    rc = mp__mgr_local_attach(&l, fd);
    close(fd);
  }
  mp__mgr_call call = {.srv = s, .conn = conn};
  if (rc) {
    logf_(s, "connection %" PRIu64 ": local channel refused: %s", conn->id,
          mp_error_detail());
    mp__mgr_traceback(&call, "local channel refused: %s", mp_error_detail());
    send_reply(s, conn, &call);
    return rc;
  }
  rc = send_reply(s, conn, &call);
  pthread_mutex_lock(&s->mu);
  conn->local = l;
  if (s->stop) mp__mgr_local_close(l);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static void conn_gone(mp__mgr_server *s, mp__mgr_conn *conn) {
  for (size_t i = 0; i < s->n_entries; i++) {
    mp__mgr_entry *e = s->entries[i];
    if (e && e->type->conn_gone) {
      e->type->conn_gone(s, e->state, conn->id);
      pthread_cond_broadcast(&e->cond);
    }
  }
}

static void *conn_main(void *arg) {
  mp__mgr_conn *conn = arg;
  mp__mgr_server *s = conn->srv;
  /* The listener ran the handshake: nothing was read before it passed. */
  {
    mp_obj *req = NULL;
    int rc = recv_request(s, conn, MP__MGR_CONTROL_TIMEOUT, &req);
    const char *ident, *fn;
    mp_obj *args, *kwds;
    mp__mgr_call call = {.srv = s, .conn = conn};
    if (rc == 0 && parse_request(req, &ident, &fn, &args, &kwds) == 0) {
      int serve = control(s, conn, fn, args, kwds, &call);
      if (call.kind >= 0 && send_reply(s, conn, &call) == 0 && serve &&
          (serve == 1 || local_accept(s, conn) == 0)) {
        logf_(s, "connection %" PRIu64 ": serving a client%s", conn->id,
              conn->local ? " (local channel)" : "");
        mp_obj_free(req);
        req = NULL;
        serve_client(s, conn);
      }
    } else if (rc != MP_ECLOSED) {
      logf_(s, "connection %" PRIu64 ": bad control request: %s", conn->id,
            rc ? mp_error_detail() : "not a 4-tuple");
      mp__mgr_traceback(&call, "bad request: %s",
                        rc ? mp_error_detail() : "not a 4-tuple");
      send_reply(s, conn, &call);
    }
    mp_obj_free(call.result);
    mp__free(call.text);
    mp_obj_free(req);
  }
  pthread_mutex_lock(&s->mu);
  conn_gone(s, conn);
  mp__mgr_conn **pp = &s->conns;
  while (*pp && *pp != conn) pp = &(*pp)->next;
  if (*pp) *pp = conn->next;
  mp__mgr_local_free(conn->local);
  conn->local = NULL;
  mp_connection_free(conn->c);
  conn->c = NULL;
  /* Why not free it here: serve_forever joins the thread (so every
   * thread's exit, its thread-local clean-up included, is over before the
   * server returns) and then frees the record. */
  conn->next = s->finished;
  s->finished = conn;
  s->n_threads--;
  pthread_cond_broadcast(&s->threads_cond);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void server_stop_locked(mp__mgr_server *s) {
  if (s->stop) return;
  s->stop = 1;
  /* Wake serve_forever's poll: s is the first member of the server. */
  mp_manager_server *ms = (mp_manager_server *)s;
  char ch = 1;
  ssize_t w = write(ms->stop_pipe[1], &ch, 1);
  (void)w;
  for (mp__mgr_conn *c = s->conns; c; c = c->next) {
    shutdown(c->fd, SHUT_RDWR);
    mp__mgr_local_close(c->local);
  }
  for (size_t i = 0; i < s->n_entries; i++)
    if (s->entries[i]) pthread_cond_broadcast(&s->entries[i]->cond);
  pthread_cond_broadcast(&s->stop_cond);
}

/* reap joins the connection threads that have ended and frees them. */
static void reap(mp__mgr_server *s) {
  pthread_mutex_lock(&s->mu);
  mp__mgr_conn *list = s->finished;
  s->finished = NULL;
  pthread_mutex_unlock(&s->mu);
  while (list) {
    mp__mgr_conn *next = list->next;
    pthread_join(list->thread, NULL);
    mp__free(list);
    list = next;
  }
}

/* ---- public server API ---------------------------------------------------- */

static void free_type(mp__mgr_type *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n_exposed; i++) mp__free(t->exposed[i]);
  mp__free(t->exposed);
  mp__free(t->typeid);
  mp__free(t->proxytype);
  mp__free(t);
}

/* Registered C types: the server calls the user's functions. */
typedef struct user_state {
  void *state;
  const mp_manager_type *ut;
} user_state;

static int user_create(mp__mgr_call *call, void **state) {
  const mp_manager_type *ut = call->entry->type->user;
  user_state *us = mp__calloc(1, sizeof *us);
  if (!us) return MP_ENOMEM;
  us->ut = ut;
  int rc = ut->create ? ut->create(&us->state, call->args, call->kwds, ut->ctx)
                      : 0;
  if (rc) {
    mp__free(us);
    return mp__mgr_raise_msg(call, "builtins", "RuntimeError", "%s",
                             mp_error_detail()[0] ? mp_error_detail()
                                                  : mp_error_message(rc));
  }
  *state = us;
  return 0;
}

static void user_destroy(void *state) {
  user_state *us = state;
  if (us->ut->destroy) us->ut->destroy(us->state, us->ut->ctx);
  mp__free(us);
}

static const char *code_exception(int rc) {
  switch (rc) {
  case MP_ENOENT: return "KeyError";
  case MP_ERANGE: return "IndexError";
  case MP_EVALUE: return "ValueError";
  case MP_EINVAL: return "TypeError";
  default: return "RuntimeError";
  }
}

static int user_call(mp__mgr_call *call) {
  user_state *us = call->entry->state;
  for (size_t i = 0; i < us->ut->n_methods; i++) {
    const mp_manager_method *m = &us->ut->methods[i];
    if (strcmp(m->name, call->method) != 0) continue;
    mp_obj *res = NULL;
    mp__detail_clear();
    int rc = m->fn(us->state, call->args, call->kwds, &res, us->ut->ctx);
    if (rc) {
      mp_obj_free(res);
      const char *d = mp_error_detail();
      return mp__mgr_raise_msg(call, "builtins", code_exception(rc), "%s",
                               d && d[0] ? d : mp_error_message(rc));
    }
    call->result = res;
    return 0;
  }
  return mp__mgr_traceback(call, "no method %s", call->method);
}

int mp_manager_server_register(mp_manager_server *ms, const char *typeid,
                               const mp_manager_type *type) {
  if (!ms || !typeid || !*typeid || !type)
    return mp__fail(MP_EINVAL, "register needs a server, a typeid, a type");
  if (type->n_methods > 120 || (type->n_methods && !type->methods))
    return mp__fail(MP_EINVAL, "too many methods (at most 120)");
  mp__mgr_server *s = &ms->srv;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  mp__mgr_type *t = NULL;
  if (find_type(s, typeid)) {
    rc = mp__fail(MP_EEXIST, "typeid '%s' is registered already", typeid);
    goto out;
  }
  mp__mgr_type **nt = mp__realloc(s->types, (s->n_types + 1) * sizeof *nt);
  if (!nt) {
    rc = MP_ENOMEM;
    goto out;
  }
  s->types = nt;
  t = mp__calloc(1, sizeof *t);
  if (!t || !(t->typeid = mp__strdup(typeid)) ||
      !(t->proxytype = mp__strdup("AutoProxy")) ||
      !(t->exposed = mp__calloc(type->n_methods + 1, sizeof(char *)))) {
    free_type(t);
    rc = MP_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < type->n_methods; i++) {
    if (!type->methods[i].name || !type->methods[i].fn ||
        !(t->exposed[i] = mp__strdup(type->methods[i].name))) {
      t->n_exposed = i;
      free_type(t);
      rc = mp__fail(MP_EINVAL, "method %zu has no name or function", i);
      goto out;
    }
  }
  t->n_exposed = type->n_methods;
  t->create = user_create;
  t->call = user_call;
  t->destroy = user_destroy;
  t->user = type;
  s->types[s->n_types++] = t;
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int mp_manager_server_new(mp_manager_server **out,
                          const mp_manager_opts *opts) {
  static const mp_manager_opts none = {0};
  if (!out) return mp__fail(MP_EINVAL, "out is NULL");
  if (!opts) opts = &none;
  if (opts->authkey_len > sizeof(((mp__mgr_server *)0)->key))
    return mp__fail(MP_EINVAL, "authkey longer than 256 bytes");
  mp_manager_server *ms = mp__calloc(1, sizeof *ms);
  if (!ms) return MP_ENOMEM;
  mp__mgr_server *s = &ms->srv;
  ms->stop_pipe[0] = ms->stop_pipe[1] = -1;
  int rc;
  char tmp[108];
  const char *address = opts->address;
  mp__crypto_init();
  if (!address) {
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    snprintf(tmp, sizeof tmp, "/tmp/mp-manager-%d-%08x.sock", (int)getpid(),
             r);
    address = tmp;
  }
  if (opts->authkey) {
    memcpy(s->key, opts->authkey, opts->authkey_len);
    s->keylen = opts->authkey_len;
  } else if ((rc = mp__mgr_default_key(s->key, sizeof s->key, &s->keylen))) {
    goto fail;
  }
  s->max_request = opts->max_request ? opts->max_request
                                     : MP__MGR_DEFAULT_MAX_REQUEST;
  s->log = opts->log;
  s->max_connections = opts->max_connections ? opts->max_connections : 1024;
  uint64_t r = 0;
  RAND_bytes((unsigned char *)&r, sizeof r);
  s->seq_base = 0x7f0000000000ull + ((r & 0xffffffull) << 16);
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->threads_cond, &ca);
  pthread_cond_init(&s->stop_cond, &ca);
  pthread_condattr_destroy(&ca);
  s->types = mp__calloc(MP__ARRAY_SIZE(builtin_types), sizeof *s->types);
  if (!s->types) {
    rc = MP_ENOMEM;
    goto fail_sync;
  }
  for (size_t i = 0; i < MP__ARRAY_SIZE(builtin_types); i++)
    s->types[s->n_types++] = builtin_types[i];
  if (pipe2(ms->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
    rc = -errno;
    goto fail_sync;
  }
  mp_listener_opts lo = {.backlog = 128,
                         .authkey = s->key,
                         .authkey_len = s->keylen,
                         .auth = {.timeout = MP__MGR_HANDSHAKE_TIMEOUT}};
  if ((rc = mp_listener_new(&s->listener, address, &lo))) goto fail_sync;
  snprintf(s->address, sizeof s->address, "%s",
           mp_listener_address(s->listener));
  for (size_t i = 0; i < opts->n_types; i++) {
    rc = mp_manager_server_register(ms, opts->types[i].typeid,
                                    opts->types[i].type);
    if (rc) {
      mp_manager_server_free(ms);
      return rc;
    }
  }
  *out = ms;
  return 0;
fail_sync:
  if (ms->stop_pipe[0] >= 0) {
    close(ms->stop_pipe[0]);
    close(ms->stop_pipe[1]);
  }
  mp__free(s->types);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->threads_cond);
  pthread_cond_destroy(&s->stop_cond);
fail:
  mp__free(ms);
  return rc;
}

const char *mp_manager_server_address(const mp_manager_server *ms) {
  return ms ? ms->srv.address : NULL;
}

int mp_manager_server_stop(mp_manager_server *ms) {
  if (!ms) return MP_EINVAL;
  atomic_store(&ms->stopping, 1);
  char c = 1;
  ssize_t w = write(ms->stop_pipe[1], &c, 1);
  (void)w;
  return 0;
}

int mp_manager_server_serve_forever(mp_manager_server *ms) {
  if (!ms) return mp__fail(MP_EINVAL, "server is NULL");
  if (atomic_exchange(&ms->serving, 1))
    return mp__fail(MP_ESTATE, "the server is serving already");
  mp__mgr_server *s = &ms->srv;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  logf_(s, "serving on %s", s->address);
  for (;;) {
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (stop || atomic_load(&ms->stopping)) break;
    mp_waitable w[2] = {mp_waitable_listener(s->listener),
                        mp_waitable_fd(ms->stop_pipe[0])};
    size_t ready[2];
    ssize_t n = mp_connection_wait(w, 2, 0.2, ready);
    reap(s);
    if (n <= 0) continue;
    if (ready[n - 1] == 1) break;
    mp_connection *c = NULL;
    int arc = mp_listener_accept(s->listener, &c, 0);
    if (arc == MP_EAUTH)
      logf_(s, "connection refused: handshake failed: %s", mp_error_detail());
    if (arc) continue;
    mp__mgr_tune(c);
    mp__mgr_conn *conn = mp__calloc(1, sizeof *conn);
    if (!conn) {
      mp_connection_free(c);
      continue;
    }
    conn->c = c;
    conn->fd = mp_connection_fileno(c);
    conn->srv = s;
    pthread_mutex_lock(&s->mu);
    if (s->n_threads >= s->max_connections) {
      /* Why refuse: each connection has a thread; unauthenticated clients
       * must not be able to make the server start threads without end. */
      logf_(s, "connection refused: %zu connections already", s->n_threads);
      pthread_mutex_unlock(&s->mu);
      mp_connection_free(c);
      mp__free(conn);
      continue;
    }
    conn->id = ++s->next_conn;
    conn->next = s->conns;
    s->conns = conn;
    s->n_threads++;
    logf_(s, "connection %" PRIu64 " accepted", conn->id);
    if (pthread_create(&conn->thread, &attr, conn_main, conn) != 0) {
      s->conns = conn->next;
      s->n_threads--;
      mp_connection_free(c);
      mp__free(conn);
    }
    pthread_mutex_unlock(&s->mu);
  }
  pthread_attr_destroy(&attr);
  pthread_mutex_lock(&s->mu);
  server_stop_locked(s);
  while (s->n_threads > 0) pthread_cond_wait(&s->threads_cond, &s->mu);
  pthread_mutex_unlock(&s->mu);
  reap(s);
  logf_(s, "stopped");
  atomic_store(&ms->serving, 0);
  return 0;
}

void mp_manager_server_free(mp_manager_server *ms) {
  if (!ms) return;
  mp__mgr_server *s = &ms->srv;
  pthread_mutex_lock(&s->mu);
  server_stop_locked(s);
  while (s->n_threads > 0) pthread_cond_wait(&s->threads_cond, &s->mu);
  pthread_mutex_unlock(&s->mu);
  reap(s);
  for (size_t i = 0; i < s->n_entries; i++)
    if (s->entries[i]) entry_destroy(s, s->entries[i]);
  mp__free(s->entries);
  for (size_t i = MP__ARRAY_SIZE(builtin_types); i < s->n_types; i++)
    free_type(s->types[i]);
  mp__free(s->types);
  mp_listener_free(s->listener);
  close(ms->stop_pipe[0]);
  close(ms->stop_pipe[1]);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->threads_cond);
  pthread_cond_destroy(&s->stop_cond);
  mp__free(ms);
}

/* ---- requests without a connection (the fuzzer) ----------------------------- */

int mp__mgr_handle_request(mp_manager_server *ms, const void *buf, size_t len,
                           void **reply, size_t *reply_len) {
  mp__mgr_server *s = &ms->srv;
  mp__mgr_conn conn = {.id = 1, .fd = -1, .srv = s, .no_wait = 1};
  mp__mgr_call call = {.srv = s, .conn = &conn};
  mp_obj *req = NULL;
  const char *ident, *method;
  mp_obj *args, *kwds;
  int rc = len > s->max_request ? MP_ETOOBIG : mp__mgr_decode(buf, len, &req);
  if (rc || parse_request(req, &ident, &method, &args, &kwds)) {
    mp__mgr_traceback(&call, "bad request");
  } else if (!ident) {
    if (strcmp(method, "shutdown") == 0 ||
        strcmp(method, "accept_connection") == 0 ||
        strcmp(method, "mp_local_connection") == 0)
      mp__mgr_traceback(&call, "not in place");
    else
      control(s, &conn, method, args, kwds, &call);
  } else {
    call.method = method;
    call.args = args;
    call.kwds = kwds;
    pthread_mutex_lock(&s->mu);
    dispatch_method(s, &call, ident);
    pthread_mutex_unlock(&s->mu);
  }
  if (call.kind < 0) {
    /* a wait that ended for want of a client: as Python, no reply */
    mp_obj_free(call.result);
    mp__free(call.text);
    mp_obj_free(req);
    *reply = NULL;
    *reply_len = 0;
    return 0;
  }
  pthread_mutex_lock(&s->mu);
  conn_gone(s, &conn); /* as if the client left: locks it took are freed */
  pthread_mutex_unlock(&s->mu);
  rc = encode_reply(s, &conn, &call, reply, reply_len);
  mp_obj_free(req);
  return rc;
}

void mp__mgr_server_reset(mp_manager_server *ms) {
  mp__mgr_server *s = &ms->srv;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->n_entries; i++)
    if (s->entries[i]) entry_destroy(s, s->entries[i]);
  s->n_entries = 0;
  s->seq_base = 0x7f0000000000ull;
  pthread_mutex_unlock(&s->mu);
}
