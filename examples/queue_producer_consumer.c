/* queue_producer_consumer.c - the producer/consumer model: cooks put baozi
 * on a queue, customers take them, neither waits for the other except
 * through the queue. Two producers and three consumers, each a process.
 *
 * It mirrors this Python program (seed 001, "2.8.5 生产者消费者模型"), which
 * runs one producer and one consumer thread (and has c2, c3 commented out):
 *
 *   import time, random, queue, threading
 *   q = queue.Queue()
 *   def Producer(name):
 *       count = 0
 *       while count < 10:
 *           print("making........")
 *           time.sleep(random.randrange(3))
 *           q.put(count)
 *           print('Producer %s has produced %s baozi..' % (name, count))
 *           count += 1
 *       print("ok......")
 *   def Consumer(name):
 *       count = 0
 *       while count < 10:
 *           time.sleep(random.randrange(4))
 *           if not q.empty():
 *               data = q.get()
 *               print('Consumer %s has eat %s baozi...' % (name, data))
 *           else:
 *               print("-----no baozi anymore----")
 *           count += 1
 *
 * With several consumers, "if not q.empty(): q.get()" can block forever:
 * another consumer may take the last baozi between the two calls. Here the
 * consumer asks with get_nowait, which tells "empty" (MP_EAGAIN) instead.
 * At the end the parent counts what is left, so every baozi is accounted
 * for: eaten, or still on the queue.
 *
 * Usage: queue_producer_consumer [--quick]
 *   The Python program sleeps 0-2 s and 0-3 s; this one sleeps tenths of
 *   that (0-0.2 s, 0-0.3 s), and with --quick thousandths. */
#include <multiproc.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PRODUCERS 2
#define CONSUMERS 3
#define ROUNDS 10

static double unit_s = 0.1; /* Python's one second, scaled */

/* random.randrange(n), from a generator seeded per process. */
static unsigned randrange(unsigned n) {
  return (unsigned)rand() % n;
}

static void sleep_units(unsigned n) {
  double s = n * unit_s;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

typedef struct person {
  mp_queue *q;
  mp_queue *eaten; /* how many each consumer ate, for the final count */
  char name;
} person;

static int producer(void *arg) {
  person *p = arg;
  srand((unsigned)getpid());
  for (int64_t count = 0; count < ROUNDS; count++) {
    printf("making........\n");
    sleep_units(randrange(3));
    /* The baozi's number tells whose it is: A0..A9, B0..B9. */
    MP_CHECK(
        mp_queue_put_int64(p->q, (p->name - 'A') * 100 + count, MP_FOREVER));
    printf("Producer %c has produced %" PRId64 " baozi..\n", p->name, count);
    fflush(stdout);
  }
  printf("ok......\n");
  return 0;
}

static int consumer(void *arg) {
  person *p = arg;
  srand((unsigned)getpid() * 7919u);
  int64_t ate = 0;
  for (int count = 0; count < ROUNDS; count++) {
    sleep_units(randrange(4));
    int64_t data;
    int rc = mp_queue_get_int64(p->q, &data, 0);
    if (rc == 0) {
      printf("\033[32;1mConsumer %c has eat %c%" PRId64 " baozi...\033[0m\n",
             p->name, (char)('A' + data / 100), data % 100);
      ate++;
    } else if (rc == MP_EAGAIN) {
      printf("-----no baozi anymore----\n");
    } else {
      MP_CHECK(rc);
    }
    fflush(stdout);
  }
  MP_CHECK(mp_queue_put_int64(p->eaten, ate, MP_FOREVER));
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    unit_s = 0.001;
  mp_queue *q, *eaten;
  MP_CHECK(mp_queue_new(&q, NULL));
  MP_CHECK(mp_queue_new(&eaten, NULL));
  person people[PRODUCERS + CONSUMERS];
  mp_process *procs[PRODUCERS + CONSUMERS];
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
    people[i] = (person){q, eaten, (char)('A' + i)};
    MP_CHECK(mp_process_new(&procs[i], i < PRODUCERS ? producer : consumer,
                            &people[i], NULL));
    MP_CHECK(mp_process_start(procs[i]));
  }
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
    MP_CHECK(mp_process_join(procs[i], MP_FOREVER));
    mp_process_free(procs[i]);
  }
  int64_t total = 0, left = mp_queue_qsize(q);
  for (int i = 0; i < CONSUMERS; i++) {
    int64_t n;
    MP_CHECK(mp_queue_get_int64(eaten, &n, MP_FOREVER));
    total += n;
  }
  printf("%d baozi made, %" PRId64 " eaten, %" PRId64 " left on the queue\n",
         PRODUCERS * ROUNDS, total, left);
  mp_queue_free(q);
  mp_queue_free(eaten);
  return total + left == PRODUCERS * ROUNDS ? 0 : 1;
}
