/* alloc.c - the one allocation wrapper, so tests can fail the Nth
 * allocation and check that every failure path cleans up. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Countdown to the failing allocation; 0 disables injection. */
static _Atomic long fail_countdown;

void mp__alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }

static bool should_fail(void) {
  long left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
  if (left == 0)
    return false;
  return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

bool mp__alloc_fails_now(void) { return should_fail(); }

void *mp__alloc(size_t size) { return should_fail() ? NULL : malloc(size); }

void *mp__calloc(size_t n, size_t size) {
  return should_fail() ? NULL : calloc(n, size);
}

void *mp__realloc(void *p, size_t size) {
  return should_fail() ? NULL : realloc(p, size);
}

char *mp__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = mp__alloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

void mp__free(void *p) { free(p); }
