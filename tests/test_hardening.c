/* test_hardening.c - issue 8's defects proven at an exact moment through
 * the library's fault points (src/fault.h) rather than by racing for it.
 *
 * Defect 7, double fetch in the heap get: a LIFO/priority get checked a
 * slot's length (slot_ok) and then read the length again from shared
 * memory to deliver the message, so a writer changing it in between made
 * the get deliver bytes it never checked. The fault point between the
 * check and the delivery rewrites the length there; the get must deliver
 * what it checked. On the code before the fix each case fails every time
 * (a wrong length delivered, or MP_ETOOBIG for a length past the buffer).
 * tests/test_queue_harden.c keeps the racing version of this test.
 *
 * White-box: includes src/queue_internal.h for the slot layout. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "queue_internal.h"

static uint32_t rewrite_to;
static int rewrites;

static void rewrite_len(mp__fault_point point, void *arg) {
  if (point != MP__FAULT_HEAP_GET_CHECKED)
    return;
  mp__qslot *sl = arg;
  __atomic_store_n(&sl->len, rewrite_to, __ATOMIC_RELAXED);
  rewrites++;
}

static void get_delivers_what_it_checked(mp_queue_order order, uint32_t len) {
  mp_queue *q;
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.order = order, .maxsize = 4}),
            0);
  static const char msg[] = "checked!";
  assert_rc(mp_queue_put(q, msg, 8, 0), 0);
  rewrite_to = len == 0 ? q->inline_max : len;
  rewrites = 0;
  mp__fault_set(rewrite_len);
  static unsigned char buf[1 << 16];
  memset(buf, 0xee, sizeof buf);
  size_t got = 0;
  int rc = mp_queue_get(q, buf, sizeof buf, &got, 0);
  mp__fault_set(NULL);
  assert_int_equal(rewrites, 1);
  assert_rc(rc, 0);
  assert_int_equal(got, 8);
  assert_memory_equal(buf, msg, 8);
  assert_int_equal(buf[8], 0xee);
  /* The slot is free again: nothing else is queued. */
  assert_rc(mp_queue_get(q, buf, sizeof buf, &got, 0), MP_EAGAIN);
  mp_queue_free(q);
}

/* A length still inside the slot: the old code delivered inline_max bytes
 * (the message and whatever followed it in the slot). */
static void lifo_get_delivers_checked_length(void **state) {
  (void)state;
  get_delivers_what_it_checked(MP_QUEUE_LIFO, 0);
}

static void priority_get_delivers_checked_length(void **state) {
  (void)state;
  get_delivers_what_it_checked(MP_QUEUE_PRIORITY, 0);
}

/* A length far past the mapping: the old code answered MP_ETOOBIG here
 * (and a get into a library-allocated message read past the mapping). */
static void lifo_get_ignores_far_length_after_check(void **state) {
  (void)state;
  get_delivers_what_it_checked(MP_QUEUE_LIFO, 0x40000000u);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(lifo_get_delivers_checked_length),
    cmocka_unit_test(priority_get_delivers_checked_length),
    cmocka_unit_test(lifo_get_ignores_far_length_after_check),
};

MP_TEST_MAIN(tests)
