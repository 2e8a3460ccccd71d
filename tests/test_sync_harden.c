/* test_sync_harden.c - a Condition with a lent lock finds it by an offset
 * from memory other processes may write (issue 8, defect 10): a scribbled
 * offset must never send it to an address of the writer's choice. The
 * creator (and its forked children) use the lock they were given, from
 * private memory; another process that maps the struct on its own follows
 * the offset only within the condition's own mapping. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* The caller's shared struct: a condition and the lock it borrows. */
typedef struct pair {
  mp_condition cond;
  mp_lock lock;
} pair;

/* The offset is the int64 after head(8) + 4 uint32 (see condition.c). */
static int64_t *offset_of(mp_condition *c) {
  return (int64_t *)(void *)((char *)c + 8 + 16);
}

static int scribbled_offset_is_refused_child(void *arg) {
  pair *p = arg;
  mp_lock *other = aligned_alloc(64, sizeof(mp_lock));
  if (other == NULL || mp_lock_init(other) != 0)
    return 1;
  /* Another lock, in another mapping (the heap). */
  *offset_of(&p->cond) = (int64_t)((char *)other - (char *)&p->cond);
  int rc = mp_condition_acquire(&p->cond, 0);
  free(other);
  if (rc != MP_EINVAL)
    return 2; /* it used a lock the writer chose */
  /* Far away, unmapped. */
  *offset_of(&p->cond) = (int64_t)1 << 40;
  if (mp_condition_acquire(&p->cond, 0) != MP_EINVAL)
    return 3;
  /* Back to the right one: it works again. */
  *offset_of(&p->cond) = (int64_t)((char *)&p->lock - (char *)&p->cond);
  if (mp_condition_acquire(&p->cond, 0) != 0 ||
      mp_condition_release(&p->cond) != 0)
    return 4;
  return 0;
}

static void scribbled_offset_is_refused(void **state) {
  (void)state;
  pair *p = mp_test_shared_map(sizeof *p);
  assert_rc(mp_lock_init(&p->lock), 0);
  assert_rc(mp_condition_init(&p->cond,
                              &(mp_condition_opts){.lock = &p->lock}),
            0);
  assert_rc(mp_condition_acquire(&p->cond, 0), 0);
  assert_rc(mp_condition_release(&p->cond), 0);
  pid_t pid = mp_test_fork(scribbled_offset_is_refused_child, p);
  int st = mp_test_wait(pid, mp_test_slack(10));
  assert_true(st != -1);
  if (WIFSIGNALED(st))
    fail_msg("died of signal %d following the offset", WTERMSIG(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  /* In the creator, too. */
  assert_int_equal(scribbled_offset_is_refused_child(p), 0);
  assert_rc(mp_condition_destroy(&p->cond), 0);
  munmap(p, sizeof *p);
}

/* A process that maps the struct on its own (here: a second mapping of
 * the same memory, at another address) follows the offset within it. */
static void other_mapping_follows_offset_within_it(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "cnd");
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 4096), 0);
  pair *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  pair *b = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  assert_true(a != MAP_FAILED && b != MAP_FAILED);
  close(fd);
  unlink(path);
  assert_rc(mp_lock_init(&a->lock), 0);
  assert_rc(mp_condition_init(&a->cond,
                              &(mp_condition_opts){.lock = &a->lock}),
            0);
  /* b is not a pair this process made: the offset is followed, and it
   * stays within b's mapping. */
  assert_rc(mp_condition_acquire(&b->cond, 0), 0);
  assert_rc(mp_condition_release(&b->cond), 0);
  /* Scribbled out of b's mapping: refused. */
  *offset_of(&b->cond) = (int64_t)8192;
  assert_rc(mp_condition_acquire(&b->cond, 0), MP_EINVAL);
  *offset_of(&b->cond) = (int64_t)((char *)&a->lock - (char *)&a->cond);
  assert_rc(mp_condition_destroy(&a->cond), 0);
  munmap(a, 4096);
  munmap(b, 4096);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(scribbled_offset_is_refused),
    cmocka_unit_test(other_mapping_follows_offset_within_it),
};

MP_TEST_MAIN(tests)
