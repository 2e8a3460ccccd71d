/* mp-shm.c - lists the named objects multiproc created on this machine and
 * removes what dead process trees left behind.
 *
 *   mp-shm [list]   one line per named object a resource tracker holds or
 *                   held: name, size, creator pid and whether it is alive,
 *                   tracker pid and whether it is alive, and whether the
 *                   segment still exists in /dev/shm
 *   mp-shm clean    unlinks every object whose creator and tracker are both
 *                   dead (a tracker that was itself killed could not), and
 *                   drops the lists of dead trackers; prints what it did
 *
 * Trackers clean up after a dying tree on their own; this tool is for the
 * rare case where the tracker died too (kill -9 of everything, OOM). Only
 * the calling user's objects are visible. Exit status 0, or 1 on error. */
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

static int print_one(const mp_tracked_object *o, void *arg) {
  int *n = arg;
  if (*n == 0)
    printf("%-32s %12s %8s %-5s %8s %-5s %s\n", "NAME", "SIZE", "CREATOR",
           "", "TRACKER", "", "SEGMENT");
  (*n)++;
  printf("%-32s %12zu %8d %-5s %8d %-5s %s\n", o->name, o->size,
         (int)o->creator_pid, o->creator_alive ? "alive" : "dead",
         (int)o->tracker_pid, o->tracker_alive ? "alive" : "dead",
         o->exists ? "present" : "gone");
  return 0;
}

static int usage(FILE *f) {
  fprintf(f, "usage: mp-shm [list | clean]\n"
             "  list   show the named objects that resource trackers hold\n"
             "  clean  unlink those whose creator and tracker are dead\n");
  return f == stderr ? 2 : 0;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "list";
  if (argc > 2)
    return usage(stderr);
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
    return usage(stdout);
  if (strcmp(cmd, "list") == 0) {
    int n = 0;
    int rc = mp_resource_tracker_list(print_one, &n);
    if (rc != 0) {
      fprintf(stderr, "mp-shm: %s\n", mp_strerror(rc));
      return 1;
    }
    if (n == 0)
      printf("no named objects are tracked\n");
    return 0;
  }
  if (strcmp(cmd, "clean") == 0) {
    size_t removed = 0;
    int rc = mp_resource_tracker_remove_dead(&removed);
    printf("removed %zu segment%s left by dead process trees\n", removed,
           removed == 1 ? "" : "s");
    if (rc != 0) {
      fprintf(stderr, "mp-shm: %s\n", mp_strerror(rc));
      return 1;
    }
    return 0;
  }
  return usage(stderr);
}
