/* test_manager_local.c - the manager's local channel (method calls of a C
 * client of a C server on this host through two shared-memory queues) and
 * the client's per-call deadlines (mp_proxy_call_timeout, call_timeout,
 * and blocking calls that honour the caller's timeout even when the server
 * is stuck). Each deadline case runs on the local channel and on the
 * socket. test_manager.c runs the whole manager on the local channel (the
 * default) and its crash cases on the socket too. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "manager/client_internal.h"
#include "manager_fixture.h"

/* thread_local_channel: 1 when this thread's method connection on m uses
 * the local channel, 0 when the socket, -1 when it has none. */
static int thread_local_channel(mp_manager *m) {
  for (mp__mgr_tconn *t = m->conns; t; t = t->next)
    if (t->pid == getpid() && pthread_equal(t->tid, pthread_self()))
      return t->local != NULL;
  return -1;
}

/* ---- the local channel ------------------------------------------------------ */

static void local_channel_is_the_default(void **state) {
  (void)state;
  mp_proxy *d;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("k"), I(1)), 0);
  assert_int_equal(thread_local_channel(M), 1);
  /* a second handle that keeps to the socket sees the same dict */
  mp_manager_opts o = {.address = mp_manager_address(M), .no_local = 1};
  mp_manager *m2;
  assert_rc(mp_manager_connect(&m2, &o), 0);
  char tok[128];
  assert_rc(mp_proxy_token(d, tok, sizeof tok), 0);
  mp_proxy *d2;
  assert_rc(mp_proxy_open(m2, tok, &d2), 0);
  mp_obj *v = NULL;
  assert_rc(mp_proxy_getitem(d2, S("k"), &v), 0);
  int64_t x = 0;
  assert_rc(mp_obj_get_int(v, &x), 0);
  assert_int_equal(x, 1);
  mp_obj_free(v);
  assert_int_equal(thread_local_channel(m2), 0);
  /* errors come back through the channel as they do on the socket */
  assert_rc(mp_proxy_getitem(d, S("missing"), &v), MP_ENOENT);
  check_detail("KeyError");
  mp_proxy_free(d2);
  mp_manager_free(m2);
  mp_proxy_free(d);
}

static void large_messages_take_the_socket(void **state) {
  (void)state;
  /* Around the queues' inline limit (64 KiB) and well over it. */
  static const size_t sizes[] = {100, 65400, 65536, 70000, 1u << 20};
  mp_proxy *d;
  assert_rc(mp_manager_dict(M, &d), 0);
  for (size_t i = 0; i < MP__ARRAY_SIZE(sizes); i++) {
    char *blob = malloc(sizes[i]);
    assert_non_null(blob);
    for (size_t j = 0; j < sizes[i]; j++) blob[j] = (char)(j * 7 + i);
    assert_rc(mp_proxy_setitem(d, S("b"), mp_obj_bytes(blob, sizes[i])), 0);
    mp_obj *v = NULL;
    assert_rc(mp_proxy_getitem(d, S("b"), &v), 0);
    const void *p;
    size_t n;
    assert_rc(mp_obj_get_bytes(v, &p, &n), 0);
    assert_int_equal(n, sizes[i]);
    assert_memory_equal(p, blob, n);
    mp_obj_free(v);
    free(blob);
    /* small calls still take the queues afterwards */
    assert_int_equal(mp_proxy_len(d), 1);
  }
  assert_int_equal(thread_local_channel(M), 1);
  mp_proxy_free(d);
}

static void tcp_keeps_the_socket(void **state) {
  (void)state;
  mp_manager_opts o = {.address = "127.0.0.1:0", .authkey = "k", .authkey_len = 1};
  mp_manager *m;
  assert_rc(mp_manager_start(&m, &o), 0);
  mp_proxy *d;
  assert_rc(mp_manager_dict(m, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("k"), I(1)), 0);
  assert_int_equal(thread_local_channel(m), 0);
  /* a request for a local channel on TCP is refused with a #TRACEBACK */
  mp_connection *c;
  assert_rc(mp__mgr_connect(mp_manager_address(m), (const uint8_t *)"k", 1, 5, &c), 0);
  mp_obj *req = mp_obj_tuple_pack(4, mp_obj_none(), S("mp_local_connection"),
                                  mp_obj_tuple_pack(1, S("t")), mp_obj_dict());
  void *buf;
  size_t len;
  assert_rc(mp_pickle_dumps(req, &buf, &len, NULL), 0);
  mp_obj_free(req);
  assert_rc(mp_connection_send_bytes(c, buf, 0, len), 0);
  free(buf);
  assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 1 << 20), 0);
  assert_true(len > 12 && memmem(buf, len, "#TRACEBACK", 10) != NULL);
  assert_true(memmem(buf, len, "Unix socket", 11) != NULL);
  free(buf);
  mp_connection_free(c);
  mp_proxy_free(d);
  mp_manager_free(m);
}

static void bad_descriptor_is_refused(void **state) {
  (void)state;
  /* A client that asks for the channel and then sends no descriptor (or
   * not a channel) gets a #TRACEBACK and the connection closes; the
   * server goes on. */
  for (int round = 0; round < 3; round++) {
    mp_connection *c;
    assert_rc(mp__mgr_connect(mp_manager_address(M), M->key, M->keylen, 5, &c), 0);
    mp_obj *req = mp_obj_tuple_pack(4, mp_obj_none(), S("mp_local_connection"),
                                    mp_obj_tuple_pack(1, S("t")), mp_obj_dict());
    void *buf;
    size_t len;
    assert_rc(mp_pickle_dumps(req, &buf, &len, NULL), 0);
    mp_obj_free(req);
    assert_rc(mp_connection_send_bytes(c, buf, 0, len), 0);
    free(buf);
    assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 1 << 20), 0);
    assert_true(memmem(buf, len, "#RETURN", 7) != NULL);
    free(buf);
    if (round == 0) {
      /* a descriptor that is not a channel: a pipe */
      int p[2];
      assert_int_equal(pipe(p), 0);
      assert_rc(mp__mgr_local_send_fd(c, p[0]), 0);
      close(p[0]);
      close(p[1]);
    } else if (round == 1) {
      /* a memfd of the right size that is not sealed: it could shrink
       * under the server's mapping */
      int fd = memfd_create("t", MFD_CLOEXEC);
      mp__mgr_local *l;
      int lfd;
      assert_rc(mp__mgr_local_new(&l, &lfd), 0);
      struct stat st;
      assert_int_equal(fstat(lfd, &st), 0);
      assert_int_equal(ftruncate(fd, st.st_size), 0);
      assert_rc(mp__mgr_local_send_fd(c, fd), 0);
      close(fd);
      close(lfd);
      mp__mgr_local_free(l);
    } else {
      /* a byte without a descriptor */
      assert_int_equal(write(mp_connection_fileno(c), "L", 1), 1);
    }
    assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 1 << 20), 0);
    assert_true(memmem(buf, len, "#TRACEBACK", 10) != NULL);
    if (round == 1) assert_true(memmem(buf, len, "sealed", 6) != NULL);
    free(buf);
    mp_connection_free(c);
  }
  mp_proxy *d;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_int_equal(mp_proxy_len(d), 0);
  mp_proxy_free(d);
}

/* ---- deadlines ------------------------------------------------------------------ */

static void server_timeouts_are_honoured_with(int no_local) {
  mp_manager_opts o = {.address = mp_manager_address(M), .no_local = no_local};
  mp_manager *m;
  assert_rc(mp_manager_connect(&m, &o), 0);
  mp_proxy *q, *l, *e, *c, *b;
  assert_rc(mp_manager_queue(m, 0, &q), 0);
  assert_rc(mp_manager_lock(m, &l), 0);
  assert_rc(mp_manager_event(m, &e), 0);
  assert_rc(mp_manager_condition(m, &c), 0);
  assert_rc(mp_manager_barrier(m, 2, &b), 0);
  assert_rc(mp_proxy_acquire(l, MP_FOREVER), 0);
  double t0 = mp_test_now();
  mp_obj *v = NULL;
  assert_rc(mp_proxy_get(q, &v, 0.2), MP_ETIMEDOUT);
  assert_rc(mp_proxy_acquire(l, 0.2), MP_ETIMEDOUT); /* not reentrant */
  assert_rc(mp_proxy_wait(e, 0.2, NULL), MP_ETIMEDOUT);
  assert_rc(mp_proxy_acquire(c, MP_FOREVER), 0);
  assert_rc(mp_proxy_wait(c, 0.2, NULL), MP_ETIMEDOUT);
  assert_rc(mp_proxy_release(c), 0);
  int brc = mp_proxy_wait(b, 0.2, NULL);
  assert_true(brc == MP_ETIMEDOUT || brc == MP_EBROKEN);
  double took = mp_test_now() - t0;
  assert_true(took >= 1.0 - 0.01);
  assert_true(took < mp_test_slack(10));
  assert_int_equal(thread_local_channel(m), !no_local);
  assert_rc(mp_proxy_call_timeout(q, "qsize", NULL, NULL, NAN, NULL), MP_EINVAL);
  assert_rc(mp_proxy_call_timeout(q, "qsize", NULL, NULL, 5, &v), 0);
  mp_obj_free(v);
  mp_proxy_free(q);
  mp_proxy_free(l);
  mp_proxy_free(e);
  mp_proxy_free(c);
  mp_proxy_free(b);
  mp_manager_free(m);
}

static void server_timeouts_are_honoured(void **state) {
  (void)state;
  server_timeouts_are_honoured_with(0);
  server_timeouts_are_honoured_with(1);
}

/* stop_process sends SIGSTOP and waits until pid is stopped (the signal
 * is delivered asynchronously). */
static void stop_process(pid_t pid) {
  assert_int_equal(kill(pid, SIGSTOP), 0);
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  double end = mp_test_now() + mp_test_slack(10);
  while (mp_test_now() < end) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (p && (p[2] == 'T' || p[2] == 't')) return;
    usleep(1000);
  }
  fail_msg("process %d did not stop", (int)pid);
}

/* A stopped (SIGSTOP) server answers nothing: every call still returns by
 * its deadline. */
static void stuck_server_with(int no_local) {
  mp_manager_opts o = {.address = mp_manager_address(M), .no_local = no_local,
                       .call_timeout = 0.3};
  mp_manager *m;
  assert_rc(mp_manager_connect(&m, &o), 0);
  mp_proxy *d, *q, *l, *e, *c, *b;
  assert_rc(mp_manager_dict(m, &d), 0);
  assert_rc(mp_manager_queue(m, 0, &q), 0);
  assert_rc(mp_manager_lock(m, &l), 0);
  assert_rc(mp_manager_event(m, &e), 0);
  assert_rc(mp_manager_condition(m, &c), 0);
  assert_rc(mp_manager_barrier(m, 2, &b), 0);
  assert_rc(mp_proxy_setitem(d, S("k"), I(1)), 0);
  assert_int_equal(thread_local_channel(m), !no_local);
  pid_t server = mp_manager_pid(M);
  stop_process(server);
  double t0 = mp_test_now();
  mp_obj *v = NULL;
  /* a plain call with its own deadline, then the handle's call_timeout */
  assert_rc(mp_proxy_call_timeout(d, "__len__", NULL, NULL, 0.2, &v), MP_ETIMEDOUT);
  check_detail("no reply from the manager");
  assert_rc(mp_proxy_setitem(d, S("k"), I(2)), MP_ETIMEDOUT);
  /* blocking calls: their timeout plus call_timeout */
  assert_rc(mp_proxy_get(q, &v, 0.1), MP_ETIMEDOUT);
  assert_rc(mp_proxy_acquire(l, 0.1), MP_ETIMEDOUT);
  assert_rc(mp_proxy_wait(e, 0.1, NULL), MP_ETIMEDOUT);
  assert_rc(mp_proxy_wait(b, 0.1, NULL), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.2 + 0.3 + 4 * 0.4 - 0.05);
  assert_true(took < mp_test_slack(15));
  assert_int_equal(kill(server, SIGCONT), 0);
  /* the server goes on; the next call opens a fresh connection */
  assert_rc(mp_proxy_call_timeout(d, "__getitem__", mp_obj_tuple_pack(1, S("k")),
                                  NULL, mp_test_slack(10), &v), 0);
  int64_t x = 0;
  assert_rc(mp_obj_get_int(v, &x), 0);
  assert_true(x == 1 || x == 2); /* the set that timed out may have run */
  mp_obj_free(v);
  assert_rc(mp_proxy_acquire(c, MP_FOREVER), 0);
  assert_rc(mp_proxy_release(c), 0);
  mp_proxy_free(d);
  mp_proxy_free(q);
  mp_proxy_free(l);
  mp_proxy_free(e);
  mp_proxy_free(c);
  mp_proxy_free(b);
  mp_manager_free(m);
}

static void stuck_server_cannot_hang_a_client(void **state) {
  (void)state;
  stuck_server_with(0);
  stuck_server_with(1);
}

/* ---- crashes on the local channel ------------------------------------------------- */

static mp_proxy *shared_lock;

static int hold_and_die(void *arg) {
  (void)arg;
  if (mp_proxy_acquire(shared_lock, MP_FOREVER) != 0) return 1;
  if (thread_local_channel(M) != 1) return 2;
  _exit(0); /* dies holding the lock, without a word */
}

static void dead_local_client_releases_its_lock(void **state) {
  (void)state;
  assert_rc(mp_manager_lock(M, &shared_lock), 0);
  pid_t pid = mp_test_fork(hold_and_die, NULL);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  double t0 = mp_test_now();
  assert_rc(mp_proxy_acquire(shared_lock, mp_test_slack(10)), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  assert_rc(mp_proxy_release(shared_lock), 0);
  mp_proxy_free(shared_lock);
}

static void *blocked_get(void *arg) {
  mp_proxy *q = arg;
  mp_obj *v = NULL;
  intptr_t rc = mp_proxy_get(q, &v, MP_FOREVER);
  mp_obj_free(v);
  return (void *)rc;
}

static void server_shutdown_wakes_local_waiters(void **state) {
  (void)state;
  mp_proxy *q;
  assert_rc(mp_manager_queue(M, 0, &q), 0);
  pthread_t th;
  pthread_create(&th, NULL, blocked_get, q);
  usleep(100000);
  /* another handle asks the server to stop: the waiter wakes at once */
  mp_manager_opts o = {.address = mp_manager_address(M)};
  mp_manager *m2;
  assert_rc(mp_manager_connect(&m2, &o), 0);
  double t0 = mp_test_now();
  assert_rc(mp_manager_shutdown(m2), 0);
  void *rc;
  pthread_join(th, &rc);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  assert_int_equal((intptr_t)rc, MP_ECLOSED);
  mp_manager_free(m2);
  mp_proxy_free(q);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(local_channel_is_the_default, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(large_messages_take_the_socket, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(tcp_keeps_the_socket, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(bad_descriptor_is_refused, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(server_timeouts_are_honoured, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(stuck_server_cannot_hang_a_client, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(dead_local_client_releases_its_lock, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(server_shutdown_wakes_local_waiters, mgr_setup, mgr_teardown),
};

MP_TEST_MAIN(tests)
