/* bench_machine.c - what the machine itself gives a benchmark at the moment
 * it runs, so that two `make bench` runs can be told apart: on a virtual
 * machine the host may place the two vCPUs on cores that share a cache or
 * on cores that do not, and move them during a day. That placement alone
 * moved the bare ring's 64 B message from 18 ns to 113 ns between two runs
 * of one build, and flipped which copy of a 1 MiB message is faster; every
 * ratio against a ring or memcpy floor moves with it. No library code runs
 * here.
 *
 * machine/c2c_roundtrip   two processes pass one cache line back and forth
 *                         (each waits, spinning, for the other's increment,
 *                         then increments); ns per round trip. Tens of ns
 *                         when the two vCPUs share a cache, one to a few
 *                         hundred when the line crosses between caches.
 * machine/syscall         getpid through syscall(2), ns per call.
 * machine/fault_1MiB      the first write to each page of 1 MiB of fresh
 *                         MAP_SHARED memory, us per MiB: what a large
 *                         message's new segment pays before it is reused.
 *
 * bench/run.sh runs this program first and last, with MP_BENCH_MACHINE_AT
 * set to "at_start" or "at_end" (the system name of every row), so the
 * table shows whether the machine changed under the run. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

/* A waiter yields after this many empty looks, so that a run on an
 * oversubscribed machine still ends (an idle core never gets there). */
#define SPINS_BEFORE_YIELD 4096

typedef struct pingpong {
  _Alignas(64) _Atomic uint64_t turn;
  uint64_t rounds;
} pingpong;

/* bounce: player index moves the line from value index to index + 1,
 * every second value its own, until both have made rounds moves. */
static int bounce(void *arg, int index) {
  pingpong *p = arg;
  for (uint64_t i = 0; i < p->rounds; i++) {
    uint64_t mine = 2 * i + (uint64_t)index;
    unsigned looks = 0;
    while (atomic_load_explicit(&p->turn, memory_order_acquire) != mine) {
      __builtin_ia32_pause();
      if (++looks % SPINS_BEFORE_YIELD == 0)
        sched_yield();
    }
    atomic_store_explicit(&p->turn, mine + 1, memory_order_release);
  }
  return 0;
}

static int c2c_roundtrip(bench_run *run) {
  pingpong *p = bench_shared_new(sizeof *p);
  if (p == NULL)
    return bench_fail(run, "out of shared memory");
  p->rounds = run->iters;
  bench_workers w;
  int rc = bench_workers_start(run, &w, 2, bounce, p);
  if (rc == 0) {
    int64_t t0 = bench_workers_go(&w), t1 = 0;
    rc = bench_workers_wait(run, &w, 300.0, &t1);
    bench_timer_set(run, t0, t1);
    /* Each round trip is two moves; a run cut short leaves fewer. */
    run->done = atomic_load(&p->turn) / 2;
  }
  bench_shared_free(p, sizeof *p);
  return rc;
}

static int getpid_calls(bench_run *run) {
  uint64_t ok = 0;
  pid_t me = getpid();
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++)
    ok += syscall(SYS_getpid) == me;
  bench_timer_stop(run);
  run->done = ok;
  return 0;
}

#define MIB ((size_t)1 << 20)

static int fault_1mib(bench_run *run) {
  long page = sysconf(_SC_PAGESIZE);
  uint64_t touched = 0;
  int64_t spent = 0;
  for (uint64_t i = 0; i < run->iters; i++) {
    unsigned char *m = mmap(NULL, MIB, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
      return bench_fail(run, "mmap of 1 MiB failed");
    int64_t t0 = bench_now_ns();
    for (size_t off = 0; off < MIB; off += (size_t)page)
      m[off] = 1;
    spent += bench_now_ns() - t0;
    for (size_t off = 0; off < MIB; off += (size_t)page)
      touched += m[off];
    munmap(m, MIB);
  }
  /* Only the faults are timed, not the mmap and munmap around them. */
  bench_timer_set(run, 1, 1 + spent);
  run->done = touched / (MIB / (size_t)page);
  return 0;
}

int main(int argc, char **argv) {
  const char *at = getenv("MP_BENCH_MACHINE_AT");
  if (at == NULL || at[0] == '\0')
    at = "at_start";
  bench_case cases[] = {
      {"machine", "c2c_roundtrip", at, "64 B line", 200000, 1000, "ns/op",
       c2c_roundtrip, NULL},
      {"machine", "syscall", at, "getpid", 200000, 1000, "ns/op",
       getpid_calls, NULL},
      {"machine", "fault_1MiB", at, "1 MiB", 50, 2, "us/op", fault_1mib,
       NULL},
  };
  bench_suite suite = BENCH_SUITE("bench_machine", cases);
  return bench_main(argc, argv, &suite);
}
