/* bench_manager.c - one synchronous request from one client to a manager's
 * dict, in ns/op: `d[k] = v` (manager_dict/set) and `d[k]` (manager_dict/get).
 *
 * Systems measured in the same run:
 *   multiproc   the C client and a C manager server (mp_manager_start on a
 *               Unix socket) as a user gets them by default: a C client of
 *               a C server on this host talks over the local channel,
 *               request and reply through two shared-memory queues, no
 *               socket wake-up;
 *   multiproc_socket  the same with no_local: every call on the socket
 *               (what a client on another host, or of a Python server,
 *               gets): pickled request, one reply;
 *   redis       redis-server (started here on a Unix socket, stopped by
 *               PID), SET and GET through hiredis with the same loop;
 *   socketpair  the floor: a 64-byte message to a forked echo process and
 *               back on a socket pair, no decoding;
 *   queue_floor the local channel's floor: a 64-byte message to a forked
 *               echo process and back through two mp_queues;
 * and, from bench/peers/py_manager.py, Python's Manager().dict() (system
 * "python"). Targets (bench/run.sh): at least 5x faster than Python and
 * 1.5x faster than Redis.
 *
 * Each case checks its work: the multiproc and redis gets read back the
 * value the set case stored (their sum is checked), the floor counts the
 * bytes echoed. Redis is skipped with the reason when redis-server or
 * hiredis is missing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

#ifdef BENCH_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#define ITERS 20000
#define SMOKE_ITERS 50

/* ---- multiproc ------------------------------------------------------------ */

static mp_manager *mgrs[2];
static mp_proxy *dicts[2];
static mp_proxy *dict;

/* mp_setup makes (once) the manager of the case: local 0 keeps calls on
 * the socket, 1 takes the local channel. */
static int mp_setup(bench_run *run, int local) {
  dict = dicts[local];
  if (dict) return 0;
  mp_manager_opts o = {.no_local = !local};
  int rc = mp_manager_start(&mgrs[local], &o);
  if (rc) return bench_fail(run, "Manager(): %s", mp_error_message(rc));
  rc = mp_manager_dict(mgrs[local], &dicts[local]);
  if (rc) return bench_fail(run, "dict(): %s", mp_error_message(rc));
  dict = dicts[local];
  return 0;
}

static int mp_set_with(bench_run *run, int local) {
  if (mp_setup(run, local)) return BENCH_FAILED;
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    int rc = mp_proxy_setitem(dict, mp_obj_str("key"), mp_obj_int((int64_t)i));
    if (rc) return bench_fail(run, "d[k] = v: %s", mp_error_message(rc));
    run->done++;
  }
  bench_timer_stop(run);
  return 0;
}

static int mp_get_with(bench_run *run, int local) {
  if (mp_setup(run, local)) return BENCH_FAILED;
  int rc = mp_proxy_setitem(dict, mp_obj_str("key"), mp_obj_int(7));
  if (rc) return bench_fail(run, "d[k] = 7: %s", mp_error_message(rc));
  uint64_t sum = 0;
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    mp_obj *v = NULL;
    rc = mp_proxy_getitem(dict, mp_obj_str("key"), &v);
    if (rc) return bench_fail(run, "d[k]: %s", mp_error_message(rc));
    int64_t x = 0;
    mp_obj_get_int(v, &x);
    mp_obj_free(v);
    sum += (uint64_t)x;
  }
  bench_timer_stop(run);
  run->done = sum;
  run->expect = 7 * run->iters;
  return 0;
}

static int mp_set(bench_run *run) { return mp_set_with(run, 0); }
static int mp_get(bench_run *run) { return mp_get_with(run, 0); }
static int mp_set_local(bench_run *run) { return mp_set_with(run, 1); }
static int mp_get_local(bench_run *run) { return mp_get_with(run, 1); }

/* ---- redis ------------------------------------------------------------------ */

#ifdef BENCH_HAVE_HIREDIS
static pid_t redis_pid;
static char redis_sock[108];
static redisContext *redis;

static void redis_stop(void) {
  if (redis) redisFree(redis);
  redis = NULL;
  if (redis_pid > 0) {
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
    unlink(redis_sock);
  }
}

static int redis_setup(bench_run *run) {
  if (redis) return 0;
  const char *bin = "/usr/bin/redis-server";
  if (access(bin, X_OK) != 0)
    return bench_skip(run, "redis-server not installed (apt-get install redis-server)");
  snprintf(redis_sock, sizeof redis_sock, "/tmp/mp-bench-redis-%d.sock", (int)getpid());
  unlink(redis_sock);
  pid_t pid = fork();
  if (pid < 0) return bench_fail(run, "fork: %s", strerror(errno));
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(bin, bin, "--port", "0", "--unixsocket", redis_sock, "--save", "",
          "--appendonly", "no", "--daemonize", "no", (char *)NULL);
    _exit(127);
  }
  redis_pid = pid;
  atexit(redis_stop);
  for (int i = 0; i < 500; i++) {
    redisContext *c = redisConnectUnix(redis_sock);
    if (c && !c->err) {
      redis = c;
      return 0;
    }
    if (c) redisFree(c);
    usleep(10000);
  }
  redis_stop();
  return bench_fail(run, "redis-server did not listen on %s", redis_sock);
}

static int redis_set(bench_run *run) {
  int rc = redis_setup(run);
  if (rc) return rc;
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    redisReply *r = redisCommand(redis, "SET key %lld", (long long)i);
    if (!r || r->type == REDIS_REPLY_ERROR) return bench_fail(run, "SET failed");
    freeReplyObject(r);
    run->done++;
  }
  bench_timer_stop(run);
  return 0;
}

static int redis_get(bench_run *run) {
  int rc = redis_setup(run);
  if (rc) return rc;
  redisReply *r = redisCommand(redis, "SET key 7");
  if (!r) return bench_fail(run, "SET failed");
  freeReplyObject(r);
  uint64_t sum = 0;
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    r = redisCommand(redis, "GET key");
    if (!r || r->type != REDIS_REPLY_STRING) return bench_fail(run, "GET failed");
    sum += (uint64_t)strtoll(r->str, NULL, 10);
    freeReplyObject(r);
  }
  bench_timer_stop(run);
  run->done = sum;
  run->expect = 7 * run->iters;
  return 0;
}
#else
static int redis_set(bench_run *run) {
  return bench_skip(run, "built without hiredis (apt-get install libhiredis-dev)");
}
static int redis_get(bench_run *run) { return redis_set(run); }
#endif

/* ---- the floor: a socketpair round trip ------------------------------------- */

static int floor_rt(bench_run *run) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return bench_fail(run, "socketpair: %s", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    char b[64];
    for (;;) {
      ssize_t n = read(sv[1], b, sizeof b);
      if (n <= 0 || write(sv[1], b, (size_t)n) != n) _exit(0);
    }
  }
  close(sv[1]);
  char msg[64] = {1}, back[64];
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    if (write(sv[0], msg, sizeof msg) != (ssize_t)sizeof msg) break;
    size_t got = 0;
    while (got < sizeof back) {
      ssize_t n = read(sv[0], back + got, sizeof back - got);
      if (n <= 0) break;
      got += (size_t)n;
    }
    if (got != sizeof back) break;
    run->done++;
  }
  bench_timer_stop(run);
  close(sv[0]);
  waitpid(pid, NULL, 0);
  return 0;
}

/* ---- the local channel's floor: a round trip through two queues -------------- */

static int queue_floor(bench_run *run) {
  mp_queue *req = NULL, *rep = NULL;
  if (mp_queue_new(&req, NULL) || mp_queue_new(&rep, NULL)) {
    mp_queue_free(req);
    return bench_fail(run, "mp_queue_new failed");
  }
  pid_t pid = fork();
  if (pid == 0) {
    char b[64];
    size_t n;
    while (mp_queue_get(req, b, sizeof b, &n, 10) == 0)
      if (mp_queue_put(rep, b, n, 10) != 0) break;
    _exit(0);
  }
  char msg[64] = {1}, back[64];
  size_t n = 0;
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    if (mp_queue_put(req, msg, sizeof msg, 10) != 0) break;
    if (mp_queue_get(rep, back, sizeof back, &n, 10) != 0 || n != sizeof back) break;
    run->done++;
  }
  bench_timer_stop(run);
  mp_queue_close(req);
  waitpid(pid, NULL, 0);
  mp_queue_free(req);
  mp_queue_free(rep);
  return 0;
}

static const bench_case cases[] = {
    {"manager_dict", "set", "multiproc", "d[k]=int", ITERS, SMOKE_ITERS, "ns/op", mp_set_local, NULL},
    {"manager_dict", "set", "multiproc_socket", "d[k]=int", ITERS, SMOKE_ITERS, "ns/op", mp_set, NULL},
    {"manager_dict", "set", "redis", "SET k int", ITERS, SMOKE_ITERS, "ns/op", redis_set, NULL},
    {"manager_dict", "set", "socketpair", "64B rtt", ITERS, SMOKE_ITERS, "ns/op", floor_rt, NULL},
    {"manager_dict", "set", "queue_floor", "64B rtt", ITERS, SMOKE_ITERS, "ns/op", queue_floor, NULL},
    {"manager_dict", "get", "multiproc", "d[k]", ITERS, SMOKE_ITERS, "ns/op", mp_get_local, NULL},
    {"manager_dict", "get", "multiproc_socket", "d[k]", ITERS, SMOKE_ITERS, "ns/op", mp_get, NULL},
    {"manager_dict", "get", "redis", "GET k", ITERS, SMOKE_ITERS, "ns/op", redis_get, NULL},
    {"manager_dict", "get", "socketpair", "64B rtt", ITERS, SMOKE_ITERS, "ns/op", floor_rt, NULL},
    {"manager_dict", "get", "queue_floor", "64B rtt", ITERS, SMOKE_ITERS, "ns/op", queue_floor, NULL},
};

int main(int argc, char **argv) {
  static const bench_suite suite = BENCH_SUITE("bench_manager", cases);
  int rc = bench_main(argc, argv, &suite);
  for (int i = 0; i < 2; i++) {
    mp_proxy_free(dicts[i]);
    mp_manager_free(mgrs[i]);
  }
  return rc;
}
