/* bench_object.c - what sending a value costs: a round trip of
 * {'id': 7, 'name': 'yuan', 'tags': [1, 2.5, None]} over a Pipe, one
 * object per round trip. The parent sends it, a forked child receives it
 * (decoding it into a value), sends it back (encoding it again), and the
 * parent receives and checks it. (Python's conn.send/conn.recv of the same
 * dict is measured by bench/peers/py_object.py in the same `make bench`
 * run.)
 *
 * object_roundtrip/small_dict  multiproc: mp_connection_send and
 *                              mp_connection_recv (pickle protocol 4, as
 *                              Python sends); multiproc_msgpack: the
 *                              MessagePack variant; multiproc_nospin:
 *                              pickle with the spin before sleeping
 *                              turned off on both ends. ns per round trip.
 *                              Target: 5x faster than Python or better.
 *                              floor_block, floor_busy_poll: the same
 *                              bytes on the wire (the pickle's length
 *                              plus the 4-byte header) over a bare socket
 *                              pair, no library, no codec (floor.h):
 *                              what the kernel costs here, blocking and
 *                              busy-polling; python / floor_busy_poll
 *                              (bench/run.sh prints it) is the best ratio
 *                              to Python this machine allows.
 * The work check counts the round trips whose answer equals the dict. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"
#include "floor.h"

#define ITERS 20000
#define SMOKE_ITERS 200

static mp_obj *small_dict(void) {
  mp_obj *d = mp_obj_dict();
  mp_obj_dict_set_str(d, "id", mp_obj_int(7));
  mp_obj_dict_set_str(d, "name", mp_obj_str("yuan"));
  mp_obj_dict_set_str(d, "tags", mp_obj_list_pack(3, mp_obj_int(1),
                                                   mp_obj_float(2.5),
                                                   mp_obj_none()));
  return d;
}

/* The spin budget of both ends; < 0: the default. */
static double spin = -1;

typedef int (*send_fn)(mp_connection *, const mp_obj *);
typedef int (*recv_fn)(mp_connection *, mp_obj **);

static int roundtrip(bench_run *run, send_fn snd, recv_fn rcv) {
  mp_connection *parent, *child;
  if (mp_pipe(&parent, &child, 1) != 0)
    return bench_fail(run, "mp_pipe failed");
  if (spin >= 0) {
    mp_connection_set_spin(parent, spin);
    mp_connection_set_spin(child, spin);
  }
  pid_t pid = fork();
  if (pid < 0)
    return bench_fail(run, "fork failed");
  if (pid == 0) { /* the echo: decode, encode, send back */
    mp_connection_free(parent);
    for (;;) {
      mp_obj *v;
      if (rcv(child, &v) != 0)
        _exit(0);
      int rc = snd(child, v);
      mp_obj_free(v);
      if (rc != 0)
        _exit(1);
    }
  }
  mp_connection_free(child);
  mp_obj *d = small_dict();
  uint64_t ok = 0;
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    mp_obj *back;
    if (snd(parent, d) != 0 || rcv(parent, &back) != 0)
      break;
    ok += mp_obj_equal(back, d);
    mp_obj_free(back);
  }
  bench_timer_stop(run);
  mp_obj_free(d);
  mp_connection_free(parent); /* the child reads end of stream and exits */
  int status;
  waitpid(pid, &status, 0);
  run->done = ok;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return bench_fail(run, "the echo child failed");
  return 0;
}

static int case_pickle(bench_run *run) {
  spin = -1;
  return roundtrip(run, mp_connection_send, mp_connection_recv);
}

static int case_pickle_nospin(bench_run *run) {
  spin = 0;
  return roundtrip(run, mp_connection_send, mp_connection_recv);
}

static int case_msgpack(bench_run *run) {
  spin = -1;
  return roundtrip(run, mp_connection_send_msgpack,
                   mp_connection_recv_msgpack);
}

/* pickled_len is the length of the dict's pickle as mp_connection_send
 * writes it (0 when it cannot be encoded). */
static size_t pickled_len(void) {
  mp_obj *d = small_dict();
  void *buf = NULL;
  size_t len = 0;
  if (mp_pickle_dumps(d, &buf, &len, NULL) != 0)
    len = 0;
  free(buf);
  mp_obj_free(d);
  return len;
}

static int case_floor(bench_run *run, int wait) {
  size_t len = pickled_len();
  if (len == 0)
    return bench_fail(run, "cannot pickle the dict");
  return floor_rtt(run, FLOOR_SOCKETPAIR, wait, len);
}

static int case_floor_block(bench_run *run) {
  return case_floor(run, FLOOR_BLOCK);
}

static int case_floor_busy(bench_run *run) {
  return case_floor(run, FLOOR_BUSY_POLL);
}

static const bench_case cases[] = {
    {"object_roundtrip", "small_dict", "multiproc", "3-key dict", ITERS,
     SMOKE_ITERS, "ns/op", case_pickle, NULL},
    {"object_roundtrip", "small_dict", "multiproc_msgpack", "3-key dict",
     ITERS, SMOKE_ITERS, "ns/op", case_msgpack, NULL},
    {"object_roundtrip", "small_dict", "multiproc_nospin", "3-key dict",
     ITERS, SMOKE_ITERS, "ns/op", case_pickle_nospin, NULL},
    {"object_roundtrip", "small_dict", "floor_block", "3-key dict", ITERS,
     SMOKE_ITERS, "ns/op", case_floor_block, NULL},
    {"object_roundtrip", "small_dict", "floor_busy_poll", "3-key dict",
     ITERS, SMOKE_ITERS, "ns/op", case_floor_busy, NULL},
};

int main(int argc, char **argv) {
  static const bench_suite suite = BENCH_SUITE("bench_object", cases);
  return bench_main(argc, argv, &suite);
}
