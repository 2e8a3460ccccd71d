/* bench_csp.c - CSP channels: the classic Commstime network (prefix, delta,
 * successor, consumer on four rendezvous channels; each cycle is four
 * communications) in ns per communication, with its nodes as OS processes
 * and as threads, beside the same network in Go (goroutines on unbuffered
 * channels: bench/peers/commstime.go, built here with Debian's golang-go)
 * and in Python (multiprocessing Processes and Pipes, since PyCSP no
 * longer runs: bench/peers/commstime_pipe.py). The peers are run by this
 * program, so all four rows come from one run, and the targets of issue 12
 * are printed at the end with PASS or MISS:
 *   processes: at least 50x faster than the Python network;
 *   threads:   within 3x of Go's goroutines.
 *
 * Where the time goes (see docs/csp.md, Performance). Each Commstime run
 * also records the CPU time its four tasks used and their context
 * switches (getrusage: the benchmark itself and its forked children), per
 * communication; the csp_os_cost cases measure what the kernel charges
 * for the pieces a communication may need when its partner is not on a
 * CPU: one system call, and one hand-over of a CPU to another thread or
 * process of the same CPU (sched_yield in turn, both pinned to one CPU;
 * CPU time per hand-over). With more tasks than CPUs, every task of the
 * ring must be switched in once a cycle, so a communication costs about
 * one such switch of CPU time; Go switches goroutines in user space. The
 * summary at the end prints these figures beside the targets and, with
 * --tsv, appends them as csp_commstime_cpu and csp_commstime_switches
 * rows. */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "multiproc.h"

/* ---- the network in multiproc ----------------------------------------- */

typedef struct node {
  mp_channel_end *in, *out, *out2;
} node;

static int rd(mp_channel_end *e, int64_t *v) {
  ssize_t n = mp_channel_read(e, v, sizeof *v, MP_FOREVER);
  return n == (ssize_t)sizeof *v ? 0 : (n < 0 ? (int)n : MP_EPROTO);
}

static int wr(mp_channel_end *e, int64_t v) {
  return mp_channel_write(e, &v, sizeof v, MP_FOREVER);
}

static int prefix_fn(void *p) {
  node *n = p;
  int rc = wr(n->out, 0);
  for (int64_t v; rc == 0;)
    if ((rc = rd(n->in, &v)) == 0)
      rc = wr(n->out, v);
  return rc;
}

static int delta_fn(void *p) {
  node *n = p;
  int rc = 0;
  for (int64_t v; rc == 0;)
    if ((rc = rd(n->in, &v)) == 0 && (rc = wr(n->out, v)) == 0)
      rc = wr(n->out2, v);
  return rc;
}

static int succ_fn(void *p) {
  node *n = p;
  int rc = 0;
  for (int64_t v; rc == 0;)
    if ((rc = rd(n->in, &v)) == 0)
      rc = wr(n->out, v + 1);
  return rc;
}

/* What a Commstime run used besides wall time: CPU and context switches
 * of all its tasks, per communication (kept per case; see the summary). */
typedef struct usage {
  double cpu_ns, switches;
} usage;

static double ru_ns(const struct rusage *u) {
  return (double)(u->ru_utime.tv_sec + u->ru_stime.tv_sec) * 1e9 +
         (double)(u->ru_utime.tv_usec + u->ru_stime.tv_usec) * 1e3;
}

static double ru_csw(const struct rusage *u) {
  return (double)u->ru_nvcsw + (double)u->ru_nivcsw;
}

static usage last_usage;

static int commstime(bench_run *run, int threads) {
  int64_t cycles = (int64_t)run->iters / 4 + 1;
  mp_channel *ch[4] = {0};
  mp_channel_end *r[4] = {0}, *w[4] = {0};
  int rc = 0;
  for (int i = 0; i < 4 && rc == 0; i++) {
    rc = mp_channel_new(&ch[i], &(mp_channel_opts){.msg_max = 8});
    if (rc == 0)
      rc = mp_channel_reader(ch[i], &r[i]);
    if (rc == 0)
      rc = mp_channel_writer(ch[i], &w[i]);
  }
  if (rc != 0)
    return bench_fail(run, "channel: %s", mp_strerror(rc));
  /* a: prefix->delta, b: delta->succ, c: succ->prefix, d: delta->consumer */
  node pre = {.in = r[2], .out = w[0]};
  node del = {.in = r[0], .out = w[1], .out2 = w[3]};
  node suc = {.in = r[1], .out = w[2]};
  mp_csp_process procs[3] = {
      {.fn = prefix_fn, .arg = &pre, MP_CSP_ENDS(r[2], w[0])},
      {.fn = delta_fn, .arg = &del, MP_CSP_ENDS(r[0], w[1], w[3])},
      {.fn = succ_fn, .arg = &suc, MP_CSP_ENDS(r[1], w[2])}};
  for (int i = 0; i < 3; i++)
    procs[i].thread = threads;
  /* Forked nodes are counted whole (RUSAGE_CHILDREN once reaped); the
   * benchmark's own threads over the timed section (RUSAGE_SELF). */
  struct rusage c0, c1, s0, s1;
  getrusage(RUSAGE_CHILDREN, &c0);
  mp_csp_network *net;
  if ((rc = mp_csp_spawn(&net, procs, 3)) != 0)
    return bench_fail(run, "spawn: %s", mp_strerror(rc));
  /* The consumer: the first value starts the clock (the network is up). */
  int64_t v = -1, first = -1;
  rc = rd(r[3], &first);
  getrusage(RUSAGE_SELF, &s0);
  int64_t t0 = bench_now_ns();
  for (int64_t i = 1; i < cycles && rc == 0; i++)
    rc = rd(r[3], &v);
  int64_t t1 = bench_now_ns();
  getrusage(RUSAGE_SELF, &s1);
  /* One poison shuts the network down. */
  mp_channel_poison(r[3]);
  mp_csp_network_free(net);
  getrusage(RUSAGE_CHILDREN, &c1);
  double comms = (double)(cycles - 1) * 4;
  last_usage.cpu_ns =
      (ru_ns(&s1) - ru_ns(&s0) + ru_ns(&c1) - ru_ns(&c0)) / comms;
  last_usage.switches =
      (ru_csw(&s1) - ru_csw(&s0) + ru_csw(&c1) - ru_csw(&c0)) / comms;
  for (int i = 0; i < 4; i++) {
    mp_channel_end_free(r[i]);
    mp_channel_end_free(w[i]);
    mp_channel_free(ch[i]);
  }
  if (rc != 0)
    return bench_fail(run, "read: %s", mp_strerror(rc));
  for (int i = 0; i < 3; i++)
    if (procs[i].result != MP_EPOISONED)
      return bench_fail(run, "node %d ended with %s", i,
                        mp_err_name(procs[i].result));
  bench_timer_set(run, t0, t1);
  run->expect = run->iters / 4 * 4;
  run->done = (first == 0 && v == cycles - 1) ? (uint64_t)(cycles - 1) * 4 : 0;
  return 0;
}

static int commstime_processes(bench_run *run) { return commstime(run, 0); }
static int commstime_threads(bench_run *run) { return commstime(run, 1); }

/* ---- where the time goes ---------------------------------------------- */

/* The protocol alone, with no wake-up: one thread writes a message into a
 * buffered channel and reads it back (lock, copy in, lock, copy out); CPU
 * ns per communication (the thread's CPU time, so that a loaded machine
 * does not count other programs' time). Set beside Commstime, it shows how
 * much of a communication is the kernel's wake-up and switch. */
static int64_t cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int protocol_only(bench_run *run) {
  mp_channel *c;
  mp_channel_end *r, *w;
  if (mp_channel_new(&c, &(mp_channel_opts){.msg_max = 8, .buffer = 1}) ||
      mp_channel_reader(c, &r) || mp_channel_writer(c, &w))
    return bench_fail(run, "channel");
  uint64_t sum = 0;
  int64_t t0 = cpu_ns();
  for (uint64_t i = 0; i < run->iters; i++) {
    int64_t v = (int64_t)i;
    if (mp_channel_write(w, &v, sizeof v, 0) != 0 ||
        mp_channel_read(r, &v, sizeof v, 0) != sizeof v)
      break;
    sum += (uint64_t)v;
  }
  bench_timer_set(run, 0, cpu_ns() - t0);
  run->expect = run->iters * (run->iters - 1) / 2;
  run->done = sum;
  mp_channel_end_free(r);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return 0;
}

/* ---- what the kernel charges ------------------------------------------ */

/* One system call that does nothing (getppid): the floor of any futex
 * wait, wake or yield. CPU ns of the calling thread. */
static int os_syscall(bench_run *run) {
  int64_t t0 = cpu_ns();
  uint64_t n = 0;
  for (uint64_t i = 0; i < run->iters; i++)
    n += syscall(SYS_getppid) > 0;
  bench_timer_set(run, 0, cpu_ns() - t0);
  run->done = n;
  return 0;
}

/* Hand-overs of one CPU between two tasks that take turns: both pinned to
 * the CPU the caller is on, each yields until the shared turn word says
 * it is its turn, then passes the turn. A hand-over is one sched_yield and
 * one context switch; CPU time (of both) per hand-over, so other programs
 * on that CPU do not count. */
typedef struct turns {
  _Atomic uint64_t turn;
  uint64_t rounds;
  int cpu;
} turns;

static void pin_to(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  sched_setaffinity(0, sizeof one, &one);
}

static void take_turns(turns *t, uint64_t me) {
  for (uint64_t i = 0; i < t->rounds; i++) {
    while (atomic_load_explicit(&t->turn, memory_order_acquire) !=
           2 * i + me)
      sched_yield();
    atomic_store_explicit(&t->turn, 2 * i + me + 1, memory_order_release);
  }
}

static void *turn_thread(void *p) {
  turns *t = p;
  pin_to(t->cpu);
  take_turns(t, 1);
  return NULL;
}

static int64_t process_cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int os_switch(bench_run *run, int processes) {
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) != 0)
    return bench_fail(run, "sched_getaffinity");
  turns *t = bench_shared_new(sizeof *t);
  if (t == NULL)
    return bench_fail(run, "shared memory");
  t->rounds = run->iters / 2;
  t->cpu = sched_getcpu() < 0 ? 0 : sched_getcpu();
  pin_to(t->cpu);
  struct rusage c0, c1;
  getrusage(RUSAGE_CHILDREN, &c0);
  int64_t p0 = process_cpu_ns();
  pthread_t th;
  pid_t pid = -1;
  int rc = 0;
  if (processes) {
    pid = fork();
    if (pid == 0) {
      take_turns(t, 1); /* inherits the pinning */
      _exit(0);
    }
    rc = pid < 0;
  } else {
    rc = pthread_create(&th, NULL, turn_thread, t) != 0;
  }
  if (rc == 0) {
    take_turns(t, 0);
    if (processes)
      waitpid(pid, NULL, 0);
    else
      pthread_join(th, NULL);
  }
  int64_t p1 = process_cpu_ns();
  getrusage(RUSAGE_CHILDREN, &c1);
  sched_setaffinity(0, sizeof mask, &mask);
  uint64_t turned = atomic_load(&t->turn);
  bench_shared_free(t, sizeof *t);
  if (rc != 0)
    return bench_fail(run, "cannot start the second task");
  bench_timer_set(run, 0,
                  p1 - p0 + (int64_t)(ru_ns(&c1) - ru_ns(&c0)));
  run->expect = run->iters / 2 * 2;
  run->done = turned;
  return 0;
}

static int os_thread_switch(bench_run *run) { return os_switch(run, 0); }
static int os_process_switch(bench_run *run) { return os_switch(run, 1); }

/* ---- a channel across hosts (TCP loopback) ----------------------------- */

/* A rendezvous over a served channel: a thread connects to the channel
 * served on 127.0.0.1 (authkey handshake) and writes through its remote
 * end; the benchmark's thread reads locally. Each communication is one
 * request and one reply on the remote end's connection plus the local
 * rendezvous of the server's thread with the reader. The reference is the
 * floor of any request and reply: a round trip of 8 bytes between two
 * threads over an authenticated TCP connection (mp_client/mp_listener). */
static const char REMOTE_KEY[] = "bench-csp-remote";

typedef struct remote_arg {
  char address[MP_ADDRESS_MAX];
  uint64_t n;
  int rc;
} remote_arg;

static void *remote_writer(void *p) {
  remote_arg *a = p;
  mp_channel_connect_opts o = {.authkey = REMOTE_KEY,
                               .authkey_len = sizeof REMOTE_KEY - 1};
  mp_channel *c = NULL;
  mp_channel_end *w = NULL;
  a->rc = mp_channel_connect(&c, a->address, &o);
  if (a->rc == 0)
    a->rc = mp_channel_writer(c, &w);
  for (uint64_t i = 0; i < a->n && a->rc == 0; i++) {
    int64_t v = (int64_t)i;
    a->rc = mp_channel_write(w, &v, sizeof v, 60);
  }
  mp_channel_end_free(w);
  mp_channel_free(c);
  return NULL;
}

static int csp_remote(bench_run *run) {
  mp_channel *c = NULL;
  mp_channel_end *r = NULL;
  mp_channel_server *s = NULL;
  mp_channel_serve_opts so = {.authkey = REMOTE_KEY,
                              .authkey_len = sizeof REMOTE_KEY - 1};
  if (mp_channel_new(&c, &(mp_channel_opts){.msg_max = 8}) != 0 ||
      mp_channel_reader(c, &r) != 0 ||
      mp_channel_serve(&s, c, "127.0.0.1:0", &so) != 0) {
    mp_channel_end_free(r);
    mp_channel_free(c);
    return bench_fail(run, "serving a channel: %s", mp_error_detail());
  }
  remote_arg a = {.n = run->iters + 1};
  snprintf(a.address, sizeof a.address, "%s", mp_channel_server_address(s));
  pthread_t t;
  int rc = pthread_create(&t, NULL, remote_writer, &a);
  int64_t v = -1, sum = 0, t0 = 0, t1 = 0;
  if (rc == 0) {
    /* The first message starts the clock (connected and joined). */
    rc = rd(r, &v);
    t0 = bench_now_ns();
    for (uint64_t i = 0; i < run->iters && rc == 0; i++)
      if ((rc = rd(r, &v)) == 0)
        sum += v;
    t1 = bench_now_ns();
    pthread_join(t, NULL);
  }
  mp_channel_server_free(s);
  mp_channel_end_free(r);
  mp_channel_free(c);
  if (rc != 0 || a.rc != 0)
    return bench_fail(run, "remote rendezvous: %s / %s", mp_err_name(rc),
                      mp_err_name(a.rc));
  bench_timer_set(run, t0, t1);
  run->expect = run->iters * (run->iters + 1) / 2;
  run->done = (uint64_t)sum;
  return 0;
}

static void *rtt_echo(void *p) {
  remote_arg *a = p;
  mp_client_opts o = {.authkey = REMOTE_KEY,
                      .authkey_len = sizeof REMOTE_KEY - 1};
  mp_connection *conn = NULL;
  a->rc = mp_client(&conn, a->address, &o, 30);
  int64_t v;
  size_t len;
  for (uint64_t i = 0; i < a->n && a->rc == 0; i++)
    if ((a->rc = mp_connection_recv_bytes(conn, &v, sizeof v, &len)) == 0)
      a->rc = mp_connection_send_bytes(conn, &v, 0, sizeof v);
  mp_connection_free(conn);
  return NULL;
}

static int connection_rtt(bench_run *run) {
  mp_listener *l = NULL;
  mp_listener_opts lo = {.authkey = REMOTE_KEY,
                         .authkey_len = sizeof REMOTE_KEY - 1};
  if (mp_listener_new(&l, "127.0.0.1:0", &lo) != 0)
    return bench_fail(run, "listener: %s", mp_error_detail());
  remote_arg a = {.n = run->iters};
  snprintf(a.address, sizeof a.address, "%s", mp_listener_address(l));
  pthread_t t;
  if (pthread_create(&t, NULL, rtt_echo, &a) != 0) {
    mp_listener_free(l);
    return bench_fail(run, "thread");
  }
  mp_connection *conn = NULL;
  int rc = mp_listener_accept(l, &conn, 30);
  int64_t sum = 0, t0 = bench_now_ns();
  for (uint64_t i = 0; i < run->iters && rc == 0; i++) {
    int64_t v = (int64_t)i + 1;
    size_t len;
    if ((rc = mp_connection_send_bytes(conn, &v, 0, sizeof v)) == 0 &&
        (rc = mp_connection_recv_bytes(conn, &v, sizeof v, &len)) == 0)
      sum += v;
  }
  int64_t t1 = bench_now_ns();
  mp_connection_free(conn); /* the echo thread sees the end, if early */
  pthread_join(t, NULL);
  mp_listener_free(l);
  if (rc != 0 || a.rc != 0)
    return bench_fail(run, "round trip: %s / %s", mp_err_name(rc),
                      mp_err_name(a.rc));
  bench_timer_set(run, t0, t1);
  run->expect = run->iters * (run->iters + 1) / 2;
  run->done = (uint64_t)sum;
  return 0;
}

/* ---- the peers -------------------------------------------------------- */

static char peers_dir[4096];

static void find_peers(void) {
  char src[4096];
  snprintf(src, sizeof src, "%s", __FILE__);
  snprintf(peers_dir, sizeof peers_dir, "%s/peers", dirname(src));
}

/* run_peer runs the command, which prints "<comms> <ns> <last>", and
 * records its figures. */
static int run_peer(bench_run *run, const char *cmd, int64_t cycles) {
  FILE *f = popen(cmd, "r");
  if (f == NULL)
    return bench_fail(run, "cannot run %s", cmd);
  long long comms = -1, ns = -1, last = -1;
  int got = fscanf(f, "%lld %lld %lld", &comms, &ns, &last);
  int status = pclose(f);
  if (got != 3 || status != 0)
    return bench_fail(run, "%s: exit status %d, output unreadable", cmd,
                      status);
  bench_timer_set(run, 0, ns);
  run->expect = run->iters / 4 * 4;
  run->done = (last == cycles - 1) ? (uint64_t)comms : 0;
  return 0;
}

static char go_exe[1200];
static int go_state; /* 0 unknown, 1 built, -1 cannot */

static int go_build(bench_run *run) {
  if (go_state != 0)
    return go_state;
  if (system("command -v go >/dev/null 2>&1") != 0) {
    bench_skip(run, "go not installed (Debian: golang-go)");
    return go_state = -1;
  }
  /* Build beside this program (in the build tree), never in the cwd. */
  char exe[1024], cwd[1024];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return go_state = -1;
  exe[n] = '\0';
  snprintf(cwd, sizeof cwd, "%s", dirname(exe));
  snprintf(go_exe, sizeof go_exe, "%s/commstime_go", cwd);
  char cmd[20000];
  snprintf(cmd, sizeof cmd,
           "GOCACHE='%s/gocache' GOPATH='%s/gopath' GOTOOLCHAIN=local "
           "GOPROXY=off GOFLAGS= go build -o '%s' '%s/commstime.go' 2>&1",
           cwd, cwd, go_exe, peers_dir);
  if (system(cmd) != 0) {
    bench_fail(run, "go build failed: %s", cmd);
    return go_state = -1;
  }
  return go_state = 1;
}

static int commstime_go(bench_run *run) {
  int64_t cycles = (int64_t)run->iters / 4 + 1;
  if (go_build(run) != 1)
    return run->message[0] && strstr(run->message, "not installed")
               ? BENCH_SKIPPED
               : BENCH_FAILED;
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "'%s' %lld", go_exe, (long long)cycles);
  return run_peer(run, cmd, cycles);
}

static int commstime_python(bench_run *run) {
  int64_t cycles = (int64_t)run->iters / 4 + 1;
  if (system("command -v python3 >/dev/null 2>&1") != 0)
    return bench_skip(run, "python3 not installed");
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "PYTHONDONTWRITEBYTECODE=1 python3 '%s/commstime_pipe.py' %lld",
           peers_dir, (long long)cycles);
  return run_peer(run, cmd, cycles);
}

/* ---- the targets ------------------------------------------------------ */

/* Each case keeps its runs' figures (ns per communication); the median is
 * what the driver prints and what the targets compare. */
#define KEEP 64
typedef struct kept {
  double v[KEEP], cpu[KEEP], csw[KEEP];
  int n;
} kept;
static kept k_proc, k_thr, k_go, k_py, k_sys, k_tsw, k_psw, k_proto;

static int keep(kept *k, int (*fn)(bench_run *), bench_run *run) {
  last_usage = (usage){-1, -1};
  int rc = fn(run);
  if (rc == 0 && !run->smoke && run->done == run->expect && run->iters > 0 &&
      k->n < KEEP && run->iters >= (run->c->iters)) {
    k->cpu[k->n] = last_usage.cpu_ns;
    k->csw[k->n] = last_usage.switches;
    k->v[k->n++] = (double)(run->t1 - run->t0) / (double)run->iters;
  }
  return rc;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median_of(double *v, int n) {
  if (n == 0 || v[0] < 0)
    return -1;
  double w[KEEP];
  memcpy(w, v, sizeof w[0] * (size_t)n);
  qsort(w, (size_t)n, sizeof w[0], cmp);
  return w[n / 2];
}

static double median(kept *k) { return median_of(k->v, k->n); }

static int c_proc(bench_run *r) { return keep(&k_proc, commstime_processes, r); }
static int c_thr(bench_run *r) { return keep(&k_thr, commstime_threads, r); }
static int c_go(bench_run *r) { return keep(&k_go, commstime_go, r); }
static int c_py(bench_run *r) { return keep(&k_py, commstime_python, r); }
static int c_sys(bench_run *r) { return keep(&k_sys, os_syscall, r); }
static int c_tsw(bench_run *r) { return keep(&k_tsw, os_thread_switch, r); }
static int c_psw(bench_run *r) { return keep(&k_psw, os_process_switch, r); }
static int c_proto(bench_run *r) { return keep(&k_proto, protocol_only, r); }

static const bench_case cases[] = {
    {"csp_commstime", "processes", "multiproc", "int64", 400000, 400,
     "ns/op", c_proc, NULL},
    {"csp_commstime", "processes", "python_pipe", "int64", 40000, 40,
     "ns/op", c_py, NULL},
    {"csp_commstime", "threads", "multiproc", "int64", 400000, 400, "ns/op",
     c_thr, NULL},
    {"csp_commstime", "goroutines", "go", "int64", 400000, 400, "ns/op",
     c_go, NULL},
    {"csp_remote", "rendezvous_tcp", "multiproc", "int64", 4000, 20,
     "ns/op", csp_remote, NULL},
    {"csp_remote", "rendezvous_tcp", "connection_rtt", "int64", 4000, 20,
     "ns/op", connection_rtt, NULL},
    {"csp_protocol", "buffered_1thread", "multiproc", "int64", 2000000, 200,
     "cpu-ns/op", c_proto, NULL},
    {"csp_os_cost", "syscall", "os", "getppid", 200000, 100, "cpu-ns/op",
     c_sys, NULL},
    {"csp_os_cost", "thread_switch", "os", "yield", 40000, 100, "cpu-ns/op",
     c_tsw, NULL},
    {"csp_os_cost", "process_switch", "os", "yield", 40000, 100,
     "cpu-ns/op", c_psw, NULL},
};

/* The floor that the CPUs impose on Commstime's wall time, from measured
 * parts only (docs/csp.md, "Where the time goes"). Each cycle every one of
 * the four tasks must run (each handles one value a cycle, and a
 * rendezvous lets none run ahead). With fewer CPUs than tasks a CPU that
 * holds k > 1 of them switches at least k times a cycle. On 2 CPUs the
 * split that switches least on the busiest CPU is 2 + 2: two hand-overs a
 * cycle on each CPU, the two CPUs switching at the same time at best, so
 * 2 hand-overs of wall time per cycle of 4 communications: H / 2 per
 * communication. The protocol's own work (a write and a read, P) is spread
 * over the two CPUs at best: P / 2. On 1 CPU all four switch in turn: H +
 * P. With 3 or more CPUs the bound needs a model of which tasks share a
 * CPU; none is printed. H is the csp_os_cost hand-over (the cheapest
 * switch there is: one sched_yield, no wake-up), P the csp_protocol row. */
static double commstime_floor(double handover, double protocol) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (handover <= 0 || protocol <= 0)
    return -1;
  if (cpus == 1)
    return handover + protocol;
  if (cpus == 2)
    return (handover + protocol) / 2;
  return -1;
}

/* where_the_time_goes prints the CPU time and context switches per
 * communication of the Commstime runs beside what the kernel charges for
 * a system call and a switch, and the floor those impose, and appends
 * them to the --tsv file. */
static void where_the_time_goes(int argc, char **argv) {
  const char *tsv = NULL;
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "--tsv") == 0)
      tsv = argv[i + 1];
  double sys = median(&k_sys), tsw = median(&k_tsw), psw = median(&k_psw);
  struct {
    const char *name;
    kept *k;
    double sw;
  } rows[2] = {{"processes", &k_proc, psw}, {"threads", &k_thr, tsw}};
  printf("\nwhere the time goes (medians per communication; CPU time of all "
         "four tasks):\n");
  FILE *f = tsv != NULL ? fopen(tsv, "a") : NULL;
  for (int i = 0; i < 2; i++) {
    double wall = median(rows[i].k), cpu = median_of(rows[i].k->cpu,
                                                      rows[i].k->n),
           csw = median_of(rows[i].k->csw, rows[i].k->n);
    if (wall < 0 || cpu < 0)
      continue;
    printf("  %-9s %8.0f ns wall, %7.0f ns CPU, %.2f context switches",
           rows[i].name, wall, cpu, csw);
    if (rows[i].sw > 0)
      printf(" (x %.0f CPU ns a switch = %.0f ns)", rows[i].sw,
             csw * rows[i].sw);
    printf("\n");
    if (f != NULL) {
      fprintf(f, "csp_commstime_cpu\t%s\tmultiproc\t%.3f\tcpu-ns/op\n",
              rows[i].name, cpu);
      fprintf(f, "csp_commstime_switches\t%s\tmultiproc\t%.3f\t"
                 "switches/op\n",
              rows[i].name, csw);
    }
  }
  double proto = median(&k_proto);
  for (int i = 0; i < 2; i++) {
    double fl = commstime_floor(rows[i].sw, proto);
    if (fl < 0)
      continue;
    double wall = median(rows[i].k);
    bool two = sysconf(_SC_NPROCESSORS_ONLN) == 2;
    printf("  floor, %-9s %6.0f ns = (hand-over %.0f + protocol %.0f)%s: %s",
           rows[i].name, fl, rows[i].sw, proto, two ? " / 2" : "",
           two ? "4 tasks on 2 CPUs: >= 2 hand-overs a cycle on each CPU, "
                 "both CPUs at once, 4 communications a cycle"
               : "4 tasks on 1 CPU: 4 hand-overs a cycle");
    if (wall > 0)
      printf("; measured %.1fx the floor", wall / fl);
    printf("\n");
    if (f != NULL)
      fprintf(f, "csp_commstime\t%s\tfloor\t%.3f\tns/op\n", rows[i].name,
              fl);
  }
  if (f != NULL)
    fclose(f);
  if (sys > 0)
    printf("  one system call: %.0f CPU ns; one hand-over of a CPU: %.0f "
           "between threads, %.0f between processes\n",
           sys, tsw, psw);
}

int main(int argc, char **argv) {
  find_peers();
  static const bench_suite suite = BENCH_SUITE("bench_csp", cases);
  int status = bench_main(argc, argv, &suite);
  where_the_time_goes(argc, argv);
  double p = median(&k_proc), t = median(&k_thr), g = median(&k_go),
         y = median(&k_py);
  printf("\ntargets of issue 12 (ns per communication, medians):\n");
  if (p > 0 && y > 0)
    printf("  processes vs python_pipe: %.0f vs %.0f ns: %.1fx faster "
           "(target >= 50x) %s\n",
           p, y, y / p, y / p >= 50 ? "PASS" : "MISS");
  else
    printf("  processes vs python_pipe: not measured\n");
  if (t > 0 && g > 0)
    printf("  threads vs goroutines:    %.0f vs %.0f ns: %.2fx Go's time "
           "(target <= 3x) %s\n",
           t, g, t / g, t / g <= 3 ? "PASS" : "MISS");
  else
    printf("  threads vs goroutines: not measured\n");
  return status;
}
