/* test_tracker.c - the resource tracker's state files are files anyone can
 * plant in /dev/shm (issue 8, defect 3): mp-shm clean (and a new tracker
 * at start) acts only on a state file that is the caller's own, written by
 * nobody else, not a link; and removes only segments the caller owns.
 * Also: a state file of another PID namespace is never acted on.
 *
 * The cases run as root in CI (they hand files to uid 65534 with fchown);
 * elsewhere those skip. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "os/os.h"
#include "os/shm.h"

#define NOBODY 65534

static pid_t dead_pid(void) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(0);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
  return pid;
}

static bool shm_exists(const char *name) {
  char path[256];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  struct stat st;
  return lstat(path, &st) == 0;
}

static void shm_remove(const char *name) {
  char path[256];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  unlink(path);
}

/* make_segment creates /dev/shm/<name> (8 bytes), owned by uid. */
static uint64_t make_segment(const char *name, uid_t uid) {
  char path[256];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 8), 0);
  if (uid != geteuid())
    assert_int_equal(fchown(fd, uid, (gid_t)-1), 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  close(fd);
  return (uint64_t)st.st_ino;
}

/* plant writes a state file for the dead tracker pid listing segment name
 * (inode ino) with a dead creator, owned by uid with the given mode. */
static void plant(const char *file, pid_t dead, const char *name, uint64_t ino,
                  uid_t uid, mode_t mode) {
  char hex[256] = {0}, text[1024], path[256];
  for (size_t i = 0; name[i]; i++)
    sprintf(hex + 2 * i, "%02x", (unsigned char)name[i]);
  int n = snprintf(text, sizeof text, "mp-tracker 1 %d 0\n%d 0 8 %llu %s\n",
                   (int)dead, (int)dead, (unsigned long long)ino, hex);
  snprintf(path, sizeof path, "/dev/shm/%s", file);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, (size_t)n), n);
  if (uid != geteuid())
    assert_int_equal(fchown(fd, uid, (gid_t)-1), 0);
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static void need_root(void) {
  if (geteuid() != 0)
    mp_test_skip("needs root to give files to another user");
}

/* The control: our own private file naming our own segment of a dead
 * creator is acted on. */
static void own_private_state_file_is_cleaned(void **state) {
  (void)state;
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  plant(file, dead, seg, ino, geteuid(), 0600);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  assert_false(shm_exists(seg));
  assert_false(shm_exists(file));
  assert_true(removed >= 1);
}

/* The case: a file planted by uid 65534 naming the user's segment
 * made mp-shm clean, run by the user, unlink it. */
static void state_file_of_another_user_is_ignored(void **state) {
  (void)state;
  need_root();
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  plant(file, dead, seg, ino, NOBODY, 0600);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg);
  shm_remove(seg);
  shm_remove(file);
  assert_true(kept);
  assert_int_equal(removed, 0);
}

/* Ours, but group- or world-writable: anyone may have written it. */
static void state_file_writable_by_others_is_ignored(void **state) {
  (void)state;
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  mode_t modes[] = {0666, 0620};
  for (int i = 0; i < 2; i++) {
    plant(file, dead, seg, ino, geteuid(), modes[i]);
    size_t removed = 0;
    assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
    bool kept = shm_exists(seg);
    shm_remove(file);
    if (!kept)
      fail_msg("mode %o: the segment was removed", (unsigned)modes[i]);
  }
  shm_remove(seg);
}

/* A link under a state file's name is not followed. */
static void state_file_link_is_not_followed(void **state) {
  (void)state;
  char seg[64], file[64], target[64], tpath[300], fpath[300];
  mp_test_name(seg, sizeof seg, "seg");
  mp_test_name(target, sizeof target, "target");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  plant(target, dead, seg, ino, geteuid(), 0600);
  snprintf(tpath, sizeof tpath, "/dev/shm/%s", target);
  snprintf(fpath, sizeof fpath, "/dev/shm/%s", file);
  assert_int_equal(symlink(tpath, fpath), 0);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg);
  shm_remove(file);
  shm_remove(target);
  shm_remove(seg);
  assert_true(kept);
}

/* Our own file may name another user's segment: never removed. */
static void segment_of_another_user_is_not_removed(void **state) {
  (void)state;
  need_root();
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, NOBODY);
  plant(file, dead, seg, ino, geteuid(), 0600);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg);
  shm_remove(seg);
  shm_remove(file);
  assert_true(kept);
  assert_int_equal(removed, 0);
}

/* A state file of another PID namespace: its pids mean nothing here. */
static void state_file_of_another_namespace_is_left(void **state) {
  (void)state;
  char seg[64], file[64], path[300], text[512], hex[256] = {0};
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  for (size_t i = 0; seg[i]; i++)
    sprintf(hex + 2 * i, "%02x", (unsigned char)seg[i]);
  uint64_t other_ns = mp__os_pidns() + 1;
  int n = snprintf(text, sizeof text, "mp-tracker 1 %d 0 %llu\n%d 0 8 %llu %s\n",
                   (int)dead, (unsigned long long)other_ns, (int)dead,
                   (unsigned long long)ino, hex);
  snprintf(path, sizeof path, "/dev/shm/%s", file);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, (size_t)n), n);
  close(fd);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg) && shm_exists(file);
  shm_remove(seg);
  shm_remove(file);
  assert_true(kept);
}

/* The reading and writing calls themselves say why they refuse. */
static void private_file_calls_refuse_with_a_reason(void **state) {
  (void)state;
  char file[64];
  mp_test_name(file, sizeof file, "pf");
  assert_rc(mp__os_shm_write_file(file, "abc", 3), 0);
  char *data;
  size_t len;
  assert_rc(mp__os_shm_read_file(file, 100, &data, &len), 0);
  assert_int_equal(len, 3);
  mp__free(data);
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", file);
  assert_int_equal(chmod(path, 0622), 0);
  assert_rc(mp__os_shm_read_file(file, 100, &data, &len), MP_EPERM);
  assert_non_null(strstr(mp_error_detail(), "writable"));
  assert_rc(mp__os_shm_write_file(file, "abc", 3), MP_EPERM);
  shm_remove(file);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(own_private_state_file_is_cleaned),
    cmocka_unit_test(state_file_of_another_user_is_ignored),
    cmocka_unit_test(state_file_writable_by_others_is_ignored),
    cmocka_unit_test(state_file_link_is_not_followed),
    cmocka_unit_test(segment_of_another_user_is_not_removed),
    cmocka_unit_test(state_file_of_another_namespace_is_left),
    cmocka_unit_test(private_file_calls_refuse_with_a_reason),
};

MP_TEST_MAIN(tests)
