/* queue_fixture.h - what the queue suites share: qnew, which makes a queue
 * or fails the case (qnew_mib: with a 1 MiB ring), STREAK, and the counts
 * of a queue's large-message segments in /dev/shm (white-box: a queue's
 * segment name prefix comes from src/queue_internal.h). Included by one suite file each: its statics are
 * that suite's own. */
#ifndef MP_TEST_QUEUE_FIXTURE_H
#define MP_TEST_QUEUE_FIXTURE_H

#include <dirent.h>
#include <stdbool.h>
#include <string.h>

#include "harness.h"
#include "queue_internal.h"

#define MP__QFIXTURE_UNUSED __attribute__((unused))

static MP__QFIXTURE_UNUSED mp_queue *qnew(const mp_queue_opts *o) {
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, o), 0);
  assert_non_null(q);
  return q;
}

/* qnew_mib: a queue with a 1 MiB ring, for the lock and fast-path suites. */
static MP__QFIXTURE_UNUSED mp_queue *qnew_mib(void) {
  return qnew(&(mp_queue_opts){.capacity = 1 << 20});
}

/* Enough takes for a side's lock to become a bias, with some to spare. */
#define STREAK (MP__QLOCK_BIAS_STREAK + 8)

/* count_names counts the queue's large-message segments in /dev/shm:
 * messages' (spares false) or those kept for reuse (spares true); not an
 * anonymous queue's guard, "<prefix>+", nor a named queue's users' links,
 * "<prefix>+=<pid>" (queue.c, "The guard"). */
static MP__QFIXTURE_UNUSED int count_names(mp_queue *q, bool spares) {
  size_t plen = strlen(q->prefix);
  DIR *d = opendir("/dev/shm");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, q->prefix, plen) == 0 && e->d_name[plen] == '+' &&
        e->d_name[plen + 1] != '\0' && e->d_name[plen + 1] != '=')
      n += (e->d_name[plen + 1] == 's') == spares;
  closedir(d);
  return n;
}

static MP__QFIXTURE_UNUSED int count_large(mp_queue *q) {
  return count_names(q, false);
}

static MP__QFIXTURE_UNUSED int count_spares(mp_queue *q) {
  return count_names(q, true);
}

#endif
