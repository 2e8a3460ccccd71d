/* manager/client.c - the client side of the manager protocol, and Manager()
 * itself: connect to a server (C or Python) with the handshake, control
 * requests on fresh connections (create, incref, decref, dummy, shutdown),
 * method calls on one connection per (process, thread) opened with
 * accept_connection, the reply kinds turned into values and error codes;
 * and mp_manager_start, which serves a manager from a forked child.
 *
 * Proxies (proxy.c) call mp__mgr_client_call; nothing here knows a type's
 * methods. A proxy holds one reference on the server for the process that
 * made it; a forked child that uses an inherited proxy takes its own
 * reference first (ref_pid), and only the process holding a reference
 * drops one on free. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include "manager/client_internal.h"

/* ---- connections ---------------------------------------------------------- */

/* setup_wait: how long connecting (and each setup request) may take
 * within the call's deadline d: the handle's timeout, or less. */
static double setup_wait(const mp_manager *m, mp__deadline d) {
  if (mp__deadline_forever(d)) return m->timeout;
  double left = (double)mp__deadline_remaining_ns(d) / 1e9;
  if (left < 1e-3) left = 1e-3;
  return left < m->timeout ? left : m->timeout;
}

/* left: the seconds left until d (negative: without end). */
static double left(mp__deadline d) {
  if (mp__deadline_forever(d)) return MP_FOREVER;
  double s = (double)mp__deadline_remaining_ns(d) / 1e9;
  return s < 1e-3 ? 1e-3 : s;
}

static int open_conn(mp_manager *m, mp__deadline d, mp_connection **out) {
  return mp__mgr_connect(m->address, m->key, m->keylen, setup_wait(m, d), out);
}

static int client_allow(void *ctx, const char *module, const char *name) {
  (void)ctx;
  if (strcmp(module, "multiprocessing.managers") == 0) return 1;
  if (strcmp(module, "builtins") == 0)
    return strcmp(name, "eval") != 0 && strcmp(name, "exec") != 0 &&
           strcmp(name, "getattr") != 0 && strcmp(name, "__import__") != 0 &&
           strcmp(name, "compile") != 0 && strcmp(name, "open") != 0 &&
           strcmp(name, "setattr") != 0 && strcmp(name, "delattr") != 0 &&
           strcmp(name, "globals") != 0 && strcmp(name, "vars") != 0;
  if (strcmp(module, "_queue") == 0 || strcmp(module, "queue") == 0)
    return strcmp(name, "Empty") == 0 || strcmp(name, "Full") == 0;
  if (strcmp(module, "threading") == 0)
    return strcmp(name, "BrokenBarrierError") == 0;
  if (strcmp(module, "array") == 0) /* an Array's array.array, as data */
    return strcmp(name, "array") == 0 || strcmp(name, "_array_reconstructor") == 0;
  return 0;
}

/* send_request sends (ident, method, args, kwds) on c (or its local
 * channel l); args and kwds are taken. */
static int send_request(mp_connection *c, mp__mgr_local *l, const char *ident,
                        const char *method, mp_obj *args, mp_obj *kwds) {
  mp_obj *req = mp_obj_tuple_pack(
      4, ident ? mp_obj_str(ident) : mp_obj_none(), mp_obj_str(method),
      args ? args : mp_obj_tuple_from(0, NULL), kwds ? kwds : mp_obj_dict());
  if (!req) return MP_ENOMEM;
  void *buf = NULL;
  size_t len = 0;
  int rc = mp_pickle_dumps(req, &buf, &len, NULL);
  mp_obj_free(req);
  if (rc) return rc;
  rc = l ? mp__mgr_local_send(l, 1, c, buf, len)
         : mp_connection_send_bytes(c, buf, 0, len);
  free(buf);
  if (rc == MP_EPIPE || rc == -ECONNRESET || rc == MP_ECLOSED)
    return mp__fail(MP_ECLOSED, "the manager server is gone");
  return rc;
}

/* recv_reply reads one reply (kind, value) from c (or l) until the
 * deadline d. */
static int recv_reply(mp_manager *m, mp_connection *c, mp__mgr_local *l,
                      mp__deadline d, char *kind, size_t kcap, mp_obj **val) {
  void *buf = NULL;
  size_t len = 0;
  int rc;
  if (l) {
    rc = mp__mgr_local_recv(l, 0, c, d, m->max_reply, &buf, &len);
  } else {
    rc = 0;
    if (!mp__deadline_forever(d)) {
      int64_t left = mp__deadline_remaining_ns(d);
      int r = left > 0 ? mp_connection_poll(c, (double)left / 1e9) : 0;
      if (r < 0) rc = r;
      else if (r == 0) rc = mp__fail(MP_ETIMEDOUT, "no reply in time");
    }
    if (rc == 0) rc = mp_connection_recv_bytes_alloc(c, &buf, &len, m->max_reply);
  }
  if (rc == MP_ETIMEDOUT)
    return mp__fail(MP_ETIMEDOUT, "the manager sent no reply in time");
  if (rc == -ECONNRESET || rc == MP_EPROTO || rc == MP_ECLOSED)
    rc = mp__fail(MP_ECLOSED, "the manager server is gone");
  if (rc) return rc;
  mp_obj *rep = NULL;
  mp_pickle_load_opts o = {.allow = client_allow};
  rc = mp_pickle_loads(buf, len, &rep, &o);
  free(buf);
  if (rc) return rc;
  const char *k;
  if (mp_obj_type_of(rep) != MP_OBJ_TUPLE || mp_obj_len(rep) != 2 ||
      mp_obj_get_str(mp_obj_list_get(rep, 0), &k, NULL) != 0) {
    mp_obj_free(rep);
    return mp__fail(MP_EPROTO, "the manager's reply is not (kind, value)");
  }
  snprintf(kind, kcap, "%s", k);
  *val = mp_obj_copy(mp_obj_list_get(rep, 1));
  mp_obj_free(rep);
  return *val ? 0 : MP_ENOMEM;
}

/* roundtrip sends a request on c and reads its reply, waiting up to wait
 * seconds (negative: without end). */
static int roundtrip(mp_manager *m, mp_connection *c, double wait,
                     const char *ident, const char *method, mp_obj *args,
                     mp_obj *kwds, char *kind, size_t kcap, mp_obj **val) {
  int rc = send_request(c, NULL, ident, method, args, kwds);
  if (rc) return rc;
  return recv_reply(m, c, NULL, mp__deadline_from_timeout(wait), kind, kcap,
                    val);
}

static int exc_code(const char *mod, const char *name) {
  static const struct {
    const char *name;
    int code;
  } map[] = {{"KeyError", MP_ENOENT},       {"IndexError", MP_ERANGE},
             {"ValueError", MP_EVALUE},     {"TypeError", MP_EINVAL},
             {"AttributeError", MP_ENOENT}, {"RuntimeError", MP_EPERM},
             {"Empty", MP_EAGAIN},          {"Full", MP_EAGAIN},
             {"BrokenBarrierError", MP_EBROKEN},
             {"OverflowError", MP_EOVERFLOW},
             {"StopIteration", MP_ENOENT},  {"MemoryError", MP_ENOMEM}};
  (void)mod;
  for (size_t i = 0; i < MP__ARRAY_SIZE(map); i++)
    if (strcmp(map[i].name, name) == 0) return map[i].code;
  return MP_EPROTO;
}

/* Python turns dict views into list(...) when it pickles them. */
static mp_obj *unwrap(mp_obj *v) {
  const char *mod, *name;
  if (mp_obj_type_of(v) == MP_OBJ_INSTANCE &&
      mp_obj_global_name(v, &mod, &name) == 0 && strcmp(mod, "builtins") == 0 &&
      strcmp(name, "list") == 0) {
    mp_obj *args = mp_obj_instance_args(v);
    mp_obj *inner = args && mp_obj_len(args) == 1 ? mp_obj_list_get(args, 0) : NULL;
    if (inner && mp_obj_type_of(inner) == MP_OBJ_LIST) {
      mp_obj *c = mp_obj_copy(inner);
      if (c) {
        mp_obj_free(v);
        return c;
      }
    }
  }
  return v;
}

/* convert turns a reply into the result or an error code. */
static int convert(mp_manager *m, const char *kind, mp_obj *val,
                   mp_obj **result) {
  if (strcmp(kind, "#RETURN") == 0) {
    val = unwrap(val);
    if (result) *result = val;
    else mp_obj_free(val);
    return 0;
  }
  if (strcmp(kind, "#PROXY") == 0) {
    /* (exposed, token): hand back a RebuildProxy value for it; see
     * mp_proxy_from_obj. The server's creation reference stays. */
    mp_obj *tok = mp_obj_list_get(val, 1);
    mp_obj *exposed = mp_obj_list_get(val, 0);
    mp_obj *st = tok ? mp_obj_instance_state(tok) : NULL;
    const char *typeid = NULL, *ident = NULL;
    if (!st || mp_obj_get_str(mp_obj_list_get(st, 0), &typeid, NULL) ||
        mp_obj_get_str(mp_obj_list_get(st, 2), &ident, NULL)) {
      mp_obj_free(val);
      return mp__fail(MP_EPROTO, "a #PROXY reply without a Token");
    }
    mp_obj *v = mp__mgr_rebuild_obj(m, typeid, ident, exposed);
    /* The server counted a reference for this proxy (its creation):
     * {'incref': False} tells mp_proxy_from_obj (and Python's RebuildProxy)
     * to adopt it rather than take another. */
    mp_obj *kw = v ? mp_obj_list_get(mp_obj_instance_args(v), 3) : NULL;
    if (kw) mp_obj_dict_set_str(kw, "incref", mp_obj_bool(0));
    mp_obj_free(val);
    if (!v) return MP_ENOMEM;
    if (result) *result = v;
    else mp_obj_free(v);
    return 0;
  }
  if (strcmp(kind, "#ERROR") == 0) {
    const char *mod = "", *name = "";
    mp_obj_global_name(val, &mod, &name);
    char *r = mp_obj_repr(val);
    int code = exc_code(mod, name);
    mp__fail(code, "%s", r ? r : name);
    free(r);
    mp_obj_free(val);
    return code;
  }
  const char *text = "";
  mp_obj_get_str(val, &text, NULL);
  int rc = mp__fail(MP_EPROTO, "the manager failed the request (%s): %.900s",
                    kind, text);
  mp_obj_free(val);
  return rc;
}

int mp__mgr_control(mp_manager *m, const char *fn, mp_obj *args,
                    mp_obj **result) {
  return mp__mgr_control_kw(m, fn, args, NULL, result);
}

int mp__mgr_control_kw(mp_manager *m, const char *fn, mp_obj *args,
                       mp_obj *kwds, mp_obj **result) {
  /* Why the handle's timeout for these two: dummy is the connect's
   * check and shutdown must not hang a program that is ending. */
  double wait = strcmp(fn, "dummy") == 0 || strcmp(fn, "shutdown") == 0
                    ? m->timeout
                    : (m->call_timeout > 0 ? m->call_timeout : MP_FOREVER);
  mp__deadline d = mp__deadline_from_timeout(wait);
  mp_connection *c = NULL;
  int rc = open_conn(m, d, &c);
  if (rc) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return rc;
  }
  char kind[32];
  mp_obj *val = NULL;
  rc = roundtrip(m, c, left(d), NULL, fn, args, kwds, kind, sizeof kind, &val);
  mp_connection_free(c);
  if (rc) return rc;
  return convert(m, kind, val, result);
}

/* local_upgrade asks the server on c (fresh, authenticated) to take this
 * thread's calls through a local channel, and hands it one. Returns 0 with
 * *out set; 1 when the server refused ('mp_local_connection' unknown to a
 * Python server, or a TCP connection): c is then closed by the server and
 * must be dropped; or an error. */
static int local_upgrade(mp_manager *m, mp_connection *c, mp__deadline d,
                         mp__mgr_local **out) {
  char kind[32];
  mp_obj *val = NULL;
  int rc = roundtrip(m, c, setup_wait(m, d), NULL, "mp_local_connection",
                     mp_obj_tuple_pack(1, mp_obj_str("MainProcess|C")), NULL,
                     kind, sizeof kind, &val);
  if (rc) return rc;
  mp_obj_free(val);
  if (strcmp(kind, "#RETURN") != 0) return 1;
  mp__mgr_local *l = NULL;
  int fd = -1;
  rc = mp__mgr_local_new(&l, &fd);
  if (rc == 0) {
    rc = mp__mgr_local_send_fd(c, fd);
    close(fd);
  }
  if (rc == 0)
    rc = recv_reply(m, c, NULL, mp__deadline_from_timeout(setup_wait(m, d)),
                    kind, sizeof kind, &val);
  if (rc == 0) {
    mp_obj_free(val);
    if (strcmp(kind, "#RETURN") != 0) rc = 1;
  }
  if (rc) {
    mp__mgr_local_free(l);
    return rc;
  }
  *out = l;
  return 0;
}

/* method_conn returns this (process, thread)'s method connection, opening
 * it on first use: through a local channel when the server takes one
 * (a C server on a Unix socket), else Python's accept_connection. */
static int method_conn(mp_manager *m, mp__deadline d, mp__mgr_tconn **out) {
  pid_t pid = getpid();
  pthread_t self = pthread_self();
  pthread_mutex_lock(&m->mu);
  for (mp__mgr_tconn *t = m->conns; t; t = t->next)
    if (t->pid == pid && pthread_equal(t->tid, self)) {
      pthread_mutex_unlock(&m->mu);
      *out = t;
      return 0;
    }
  int try_local = m->local == 0;
  pthread_mutex_unlock(&m->mu);
  mp_connection *c = NULL;
  int rc = open_conn(m, d, &c);
  if (rc) return rc;
  mp__mgr_local *l = NULL;
  if (try_local && !mp__mgr_addr_is_tcp(m->address)) {
    rc = local_upgrade(m, c, d, &l);
    if (rc) {
      /* Refused (remember it: use Python's way from now on), or it failed
       * (memory, descriptors): this connection then goes Python's way. */
      mp_connection_free(c);
      c = NULL;
      if (rc == 1) {
        pthread_mutex_lock(&m->mu);
        m->local = -1;
        pthread_mutex_unlock(&m->mu);
      }
      if ((rc = open_conn(m, d, &c))) return rc;
    }
  }
  if (!l) {
    char kind[32];
    mp_obj *val = NULL;
    rc = roundtrip(m, c, setup_wait(m, d), NULL, "accept_connection",
                   mp_obj_tuple_pack(1, mp_obj_str("MainProcess|C")), NULL,
                   kind, sizeof kind, &val);
    if (rc == 0) rc = convert(m, kind, val, NULL);
    if (rc) {
      mp_connection_free(c);
      return rc;
    }
  }
  mp__mgr_tconn *t = mp__calloc(1, sizeof *t);
  if (!t) {
    mp__mgr_local_free(l);
    mp_connection_free(c);
    return MP_ENOMEM;
  }
  t->pid = pid;
  t->tid = self;
  t->c = c;
  t->local = l;
  pthread_mutex_lock(&m->mu);
  t->next = m->conns;
  m->conns = t;
  pthread_mutex_unlock(&m->mu);
  *out = t;
  return 0;
}

static void tconn_free(mp__mgr_tconn *t) {
  mp__mgr_local_free(t->local);
  mp_connection_free(t->c);
  mp__free(t);
}

static void drop_conn(mp_manager *m, mp__mgr_tconn *t) {
  pthread_mutex_lock(&m->mu);
  for (mp__mgr_tconn **pp = &m->conns; *pp; pp = &(*pp)->next)
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  pthread_mutex_unlock(&m->mu);
  tconn_free(t);
}

int mp__mgr_client_call(mp_manager *m, const char *ident, const char *method,
                        mp_obj *args, mp_obj *kwds, double wait,
                        mp_obj **result) {
  if (m->shut) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_ECLOSED, "the manager was shut down");
  }
  mp__deadline d = mp__deadline_from_timeout(wait);
  mp__mgr_tconn *t = NULL;
  int rc = method_conn(m, d, &t);
  if (rc) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    if (rc == -ECONNREFUSED || rc == -ENOENT)
      rc = mp__fail(MP_ECLOSED, "the manager server is gone");
    return rc;
  }
  char kind[32];
  mp_obj *val = NULL;
  rc = send_request(t->c, t->local, ident, method, args, kwds);
  if (rc == 0)
    rc = recv_reply(m, t->c, t->local, d, kind, sizeof kind, &val);
  if (rc) {
    /* The stream is out of step (a reply that did not come in time would
     * come late) or the server is gone: drop it, so the next call opens a
     * fresh connection (or reports the server gone). */
    if (rc == MP_ETIMEDOUT)
      mp__fail(MP_ETIMEDOUT, "no reply from the manager within %.3g s "
                             "(this thread's connection was closed)", wait);
    drop_conn(m, t);
    return rc;
  }
  /* A C server closes the connection after a request it could not read. */
  const char *text;
  if (strcmp(kind, "#TRACEBACK") == 0 && mp_obj_get_str(val, &text, NULL) == 0 &&
      strncmp(text, "bad request", 11) == 0)
    drop_conn(m, t);
  return convert(m, kind, val, result);
}

/* ---- Token and RebuildProxy values -------------------------------------- */

mp_obj *mp__mgr_address_obj(const mp_manager *m) {
  return mp__mgr_addr_obj(m->address);
}

const char *mp__mgr_proxytype(const char *typeid) {
  static const char *map[][2] = {
      {"dict", "DictProxy"},           {"list", "ListProxy"},
      {"Namespace", "NamespaceProxy"}, {"Value", "ValueProxy"},
      {"Array", "ArrayProxy"},         {"Lock", "AcquirerProxy"},
      {"RLock", "AcquirerProxy"},      {"Semaphore", "AcquirerProxy"},
      {"BoundedSemaphore", "AcquirerProxy"},
      {"Condition", "ConditionProxy"}, {"Event", "EventProxy"},
      {"Barrier", "BarrierProxy"},     {"Iterator", "IteratorProxy"}};
  for (size_t i = 0; i < MP__ARRAY_SIZE(map); i++)
    if (strcmp(map[i][0], typeid) == 0) return map[i][1];
  return "AutoProxy";
}

mp_obj *mp__mgr_rebuild_obj(const mp_manager *m, const char *typeid,
                            const char *ident, const mp_obj *exposed) {
  const char *pt = mp__mgr_proxytype(typeid);
  mp_obj *token = mp_obj_instance(
      mp_obj_global("multiprocessing.managers", "Token"),
      mp_obj_tuple_from(0, NULL),
      mp_obj_tuple_pack(3, mp_obj_str(typeid), mp__mgr_address_obj(m),
                        mp_obj_str(ident)),
      1);
  mp_obj *kw = mp_obj_dict();
  if (kw && strcmp(pt, "AutoProxy") == 0 && exposed)
    mp_obj_dict_set_str(kw, "exposed", mp_obj_copy(exposed));
  return mp_obj_instance(
      mp_obj_global("multiprocessing.managers", "RebuildProxy"),
      mp_obj_tuple_pack(4, mp_obj_global("multiprocessing.managers", pt), token,
                        mp_obj_str("pickle"), kw),
      NULL, 0);
}

/* ---- the handle ------------------------------------------------------------ */

static int handle_new(mp_manager **out, const mp_manager_opts *opts,
                      const char *address) {
  mp_manager *m = mp__calloc(1, sizeof *m);
  if (!m) return MP_ENOMEM;
  if (!address[0] || strlen(address) >= sizeof m->address) {
    mp__free(m);
    return mp__fail(MP_EINVAL, "manager address is empty or too long");
  }
  snprintf(m->address, sizeof m->address, "%s", address);
  if (opts->authkey) {
    if (opts->authkey_len > sizeof m->key) {
      mp__free(m);
      return mp__fail(MP_EINVAL, "authkey longer than 256 bytes");
    }
    memcpy(m->key, opts->authkey, opts->authkey_len);
    m->keylen = opts->authkey_len;
  } else {
    int rc2 = mp__mgr_default_key(m->key, sizeof m->key, &m->keylen);
    if (rc2) {
      mp__free(m);
      return rc2;
    }
  }
  m->timeout = opts->timeout > 0 ? opts->timeout : 10.0;
  m->call_timeout = opts->call_timeout > 0 ? opts->call_timeout : 0;
  m->local = opts->no_local ? -1 : 0;
  m->max_reply = (size_t)1 << 30;
  m->owner_pid = getpid();
  pthread_mutex_init(&m->mu, NULL);
  *out = m;
  return 0;
}

static void handle_free(mp_manager *m) {
  pid_t pid = getpid();
  mp__mgr_tconn *t = m->conns;
  while (t) {
    mp__mgr_tconn *n = t->next;
    (void)pid;
    tconn_free(t);
    t = n;
  }
  pthread_mutex_destroy(&m->mu);
  mp__free(m);
}

int mp_manager_connect(mp_manager **out, const mp_manager_opts *opts) {
  if (!out || !opts || !opts->address)
    return mp__fail(MP_EINVAL, "connect needs out and opts->address");
  mp_manager *m = NULL;
  int rc = handle_new(&m, opts, opts->address);
  if (rc) return rc;
  rc = mp__mgr_control(m, "dummy", NULL, NULL);
  if (rc) {
    handle_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

/* The server child: serve until shutdown, SIGTERM or the parent's death. */
static mp_manager_server *child_server;

static void *sig_thread(void *arg) {
  sigset_t *set = arg;
  int sig;
  sigwait(set, &sig);
  mp_manager_server_stop(child_server);
  return NULL;
}

static void child_main(const mp_manager_opts *opts, int wfd, pid_t parent) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  /* Why close everything inherited: a client connection of the parent's
   * (to another manager) held open here would keep that server from seeing
   * the parent die, and so from releasing the locks it held. */
  if (wfd != 3) {
    dup2(wfd, 3);
    wfd = 3;
  }
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 4u, ~0u, 0u) != 0)
#endif
  {
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
    for (int fd = 4; fd < maxfd; fd++) close(fd);
  }
  int rc = getppid() != parent ? MP_ESRCH : 0;
  if (!rc) rc = mp_manager_server_new(&child_server, opts);
  char msg[400] = {0};
  memcpy(msg, &rc, sizeof rc);
  if (!rc)
    snprintf(msg + sizeof rc, sizeof msg - sizeof rc, "%s",
             mp_manager_server_address(child_server));
  ssize_t w = write(wfd, msg, sizeof msg);
  (void)w;
  close(wfd);
  if (rc) _exit(1);
  pthread_t th;
  pthread_create(&th, NULL, sig_thread, &set);
  pthread_detach(th);
  mp_manager_server_serve_forever(child_server);
  mp_manager_server_free(child_server);
  _exit(0);
}

int mp_manager_start(mp_manager **out, const mp_manager_opts *opts) {
  static const mp_manager_opts none = {0};
  if (!out) return mp__fail(MP_EINVAL, "out is NULL");
  if (!opts) opts = &none;
  mp_manager_opts o = *opts;
  uint8_t key[MP_AUTHKEY_MAX];
  if (!o.authkey) {
    size_t kl = 0;
    int krc = mp__mgr_default_key(key, sizeof key, &kl);
    if (krc) return krc;
    o.authkey = key;
    o.authkey_len = kl;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int e = -errno;
    close(p[0]);
    close(p[1]);
    return e;
  }
  if (pid == 0) {
    close(p[0]);
    child_main(&o, p[1], parent);
  }
  close(p[1]);
  char msg[400];
  ssize_t n;
  do n = read(p[0], msg, sizeof msg);
  while (n < 0 && errno == EINTR);
  close(p[0]);
  int rc = MP_ECHILD;
  if (n == (ssize_t)sizeof msg) memcpy(&rc, msg, sizeof rc);
  if (rc) {
    waitpid(pid, NULL, 0);
    return n == (ssize_t)sizeof msg ? mp__fail(rc, "the manager server could not start: %s", mp_strerror(rc)) : mp__fail(MP_ECHILD, "the manager server died at start");
  }
  msg[sizeof msg - 1] = 0;
  mp_manager *m = NULL;
  rc = handle_new(&m, &o, msg + sizeof rc);
  if (rc == 0) {
    m->server_pid = pid;
    rc = mp__mgr_control(m, "dummy", NULL, NULL);
  }
  if (rc) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (m) handle_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

static void reap(mp_manager *m) {
  if (!m->server_pid) return;
  for (int i = 0; i < 500; i++) {
    pid_t r = waitpid(m->server_pid, NULL, WNOHANG);
    if (r == m->server_pid || (r < 0 && errno == ECHILD)) {
      m->server_pid = 0;
      /* A server that was killed could not remove its socket file; the
       * path is this server's own (pid and random bytes in it). */
      if (mp__mgr_addr_is_path(m->address)) unlink(m->address);
      return;
    }
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  kill(m->server_pid, SIGKILL);
  waitpid(m->server_pid, NULL, 0);
  if (mp__mgr_addr_is_path(m->address)) unlink(m->address);
  m->server_pid = 0;
}

int mp_manager_shutdown(mp_manager *m) {
  if (!m) return mp__fail(MP_EINVAL, "manager is NULL");
  if (m->shut) return 0;
  int rc = mp__mgr_control(m, "shutdown", NULL, NULL);
  m->shut = 1;
  if (m->server_pid && getpid() == m->owner_pid) {
    if (rc) kill(m->server_pid, SIGTERM);
    reap(m);
    rc = 0;
  }
  return rc;
}

void mp_manager_free(mp_manager *m) {
  if (!m) return;
  if (m->server_pid && getpid() == m->owner_pid && !m->shut)
    mp_manager_shutdown(m);
  handle_free(m);
}

const char *mp_manager_address(const mp_manager *m) {
  return m ? m->address : NULL;
}

pid_t mp_manager_pid(const mp_manager *m) {
  return m && getpid() == m->owner_pid ? m->server_pid : 0;
}
