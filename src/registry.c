/* registry.c - the names of targets. A spawned child is a fresh image of
 * the program and a forkserver child is forked from a server that never
 * saw the caller's function pointers, so both find their entry point by
 * the name it was registered under (mp_register_target, mp_register_run,
 * MP_TARGET). The parent turns a process object's function pointer back
 * into that name; the child turns the name into its own pointer.
 *
 * The registry is a short list under one mutex: registration happens at
 * load time or early in main, lookups once per start. */
#include <pthread.h>
#include <string.h>

#include "process_internal.h"

typedef struct entry {
  struct entry *next;
  mp__registered fn;
  char name[];
} entry;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static entry *registry;

static bool same_fn(const mp__registered *a, const mp__registered *b) {
  if (a->kind != b->kind)
    return false;
  return a->kind == MP__BOOT_TARGET ? a->target == b->target
                                    : a->run == b->run;
}

static int add(const char *name, const mp__registered *fn) {
  if (name == NULL || name[0] == '\0')
    return mp__fail(MP_EINVAL, "name is NULL or empty");
  size_t len = strlen(name);
  if (len > MP__PROCESS_NAME_MAX)
    return mp__fail(MP_EINVAL, "name is %zu bytes, over %d", len,
                    MP__PROCESS_NAME_MAX);
  int rc = 0;
  pthread_mutex_lock(&registry_lock);
  for (entry *e = registry; e != NULL; e = e->next) {
    if (strcmp(e->name, name) == 0) {
      /* Registering the same binding again is harmless. */
      rc = same_fn(&e->fn, fn)
               ? 1
               : mp__fail(MP_EEXIST, "'%s' is registered to another "
                                     "function", name);
      break;
    }
  }
  if (rc == 0) {
    entry *e = mp__alloc(sizeof *e + len + 1);
    if (e == NULL) {
      rc = MP_ENOMEM;
    } else {
      e->fn = *fn;
      memcpy(e->name, name, len + 1);
      e->next = registry;
      registry = e;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  return rc == 1 ? 0 : rc;
}

int mp_register_target(const char *name, mp_process_target_fn fn) {
  if (fn == NULL)
    return mp__fail(MP_EINVAL, "fn is NULL");
  mp__registered r = {.kind = MP__BOOT_TARGET, .target = fn};
  return add(name, &r);
}

int mp_register_run(const char *name, mp_process_run_fn fn) {
  if (fn == NULL)
    return mp__fail(MP_EINVAL, "fn is NULL");
  mp__registered r = {.kind = MP__BOOT_RUN, .run = fn};
  return add(name, &r);
}

int mp__registry_name_of(const mp_process *p, int *kind, char *out,
                         size_t cap) {
  mp__registered want = {0};
  if (p->run != NULL) {
    want.kind = MP__BOOT_RUN;
    want.run = p->run;
  } else if (p->target != NULL) {
    want.kind = MP__BOOT_TARGET;
    want.target = p->target;
  } else {
    *kind = MP__BOOT_NOTHING;
    if (cap > 0)
      out[0] = '\0';
    return 0;
  }
  int rc = MP_ENOENT;
  pthread_mutex_lock(&registry_lock);
  for (entry *e = registry; e != NULL; e = e->next) {
    if (same_fn(&e->fn, &want)) {
      size_t len = strlen(e->name);
      if (len < cap) {
        memcpy(out, e->name, len + 1);
        *kind = want.kind;
        rc = 0;
      } else {
        rc = MP_ENAMETOOLONG;
      }
      break;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  if (rc == MP_ENOENT)
    rc = mp__fail(MP_ENOENT, "the %s is not registered, so a spawn or "
                             "forkserver child cannot find it: add "
                             "MP_TARGET(fn) after the function",
                  want.kind == MP__BOOT_RUN ? "run callback" : "target");
  return rc;
}

int mp__registry_find(int kind, const char *name, mp__registered *out) {
  if (kind == MP__BOOT_NOTHING) {
    memset(out, 0, sizeof *out);
    return 0;
  }
  int rc = MP_ENOENT;
  pthread_mutex_lock(&registry_lock);
  for (entry *e = registry; e != NULL; e = e->next) {
    if (e->fn.kind == kind && strcmp(e->name, name) == 0) {
      *out = e->fn;
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  return rc;
}

/* Fork handlers (called from process.c's): a child must not inherit the
 * lock held by a thread that does not exist in it. */
void mp__registry_atfork_prepare(void) { pthread_mutex_lock(&registry_lock); }
void mp__registry_atfork_parent(void) {
  pthread_mutex_unlock(&registry_lock);
}
void mp__registry_atfork_child(void) {
  pthread_mutex_init(&registry_lock, NULL);
}
