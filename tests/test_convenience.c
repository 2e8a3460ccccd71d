/* test_convenience.c - the one-call helpers a Python programmer expects:
 * start+join of processes and threads (mp_process_start_join[_n],
 * mp_thread_start_join_n), mp_process_join_check, mp_popen and
 * mp_subprocess_run; mp_obj_printf; Value and Array as mp_obj and their
 * print; mp_proxy_print and mp_proxy_getattr_int. Success and failure
 * paths of each, allocation failures included. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define SENTINEL ((void *)0x5e471e1)

static mp_value *counter; /* anonymous: shared with forked children */

static int count_up(void *arg) {
  (void)arg;
  return mp_value_fetch_add(counter, 1, NULL) == 0 ? 0 : 2;
}
static int exit_3(void *arg) {
  (void)arg;
  return 3;
}
static int killed(void *arg) {
  (void)arg;
  raise(SIGKILL);
  return 0;
}
static int checked(void *arg) {
  (void)arg;
  if (freopen("/dev/null", "w", stderr) == NULL)
    return 9;
  MP_CHECK(mp_sleep(-1));
  return 0;
}
static mp_event *go; /* anonymous: the child waits for the parent's word */
static int sleeper(void *arg) {
  (void)arg;
  return mp_event_wait(go, 30.0) == 0 ? 0 : 2;
}

static int64_t counted(void) {
  int64_t v = -1;
  assert_rc(mp_value_get_int(counter, &v), 0);
  return v;
}

static void start_join_runs_and_joins_all(void **state) {
  (void)state;
  assert_rc(mp_value_new(&counter, 'q', NULL, NULL), 0);
  assert_rc(mp_process_start_join(count_up, NULL, NULL), 0);
  assert_int_equal(counted(), 1);
  assert_rc(mp_process_start_join_n(5, count_up, NULL, NULL), 0);
  assert_int_equal(counted(), 6);
  assert_rc(mp_process_start_join_n(0, count_up, NULL, NULL), 0);
  assert_int_equal(counted(), 6);
  /* A NULL target makes children that exit with 0. */
  assert_rc(mp_process_start_join_n(2, NULL, NULL, NULL), 0);
  mp_process *left[4];
  assert_int_equal(mp_active_children(left, 4), 0);
  mp_value_free(counter);
}

static void start_join_reports_a_failed_child(void **state) {
  (void)state;
  assert_rc(mp_process_start_join(exit_3, NULL,
                                  &(mp_process_opts){.name = "three"}),
            MP_EWORKERDIED);
  assert_string_equal(mp_error_detail(), "three exited with status 3");
  assert_rc(mp_process_start_join(killed, NULL, NULL), MP_EWORKERDIED);
  assert_non_null(strstr(mp_error_detail(), "was killed by SIGKILL"));
  /* MP_CHECK's message in the child is in the detail. */
  assert_rc(mp_process_start_join(checked, NULL, NULL), MP_EWORKERDIED);
  assert_non_null(strstr(mp_error_detail(), "exited with status 1: "));
  assert_non_null(strstr(mp_error_detail(), "mp_sleep(-1): MP_EINVAL"));
  /* Of several, one failing fails the call; all are joined. */
  assert_rc(mp_value_new(&counter, 'q', NULL, NULL), 0);
  assert_rc(mp_process_start_join_n(3, killed, NULL, NULL), MP_EWORKERDIED);
  mp_process *left[4];
  assert_int_equal(mp_active_children(left, 4), 0);
  mp_value_free(counter);
}

static void start_join_refuses_bad_arguments(void **state) {
  (void)state;
  assert_rc(mp_process_start_join_n(4097, count_up, NULL, NULL), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "at most 4096"));
  /* mp_process_new's refusal comes back, nothing started. */
  assert_rc(mp_process_start_join_n(3, count_up, NULL,
                                    &(mp_process_opts){.arg_size = 4}),
            MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "arg_size"));
  /* A start that fails after some children started: those are joined. */
  mp_context *spawn;
  assert_rc(mp_context_new(&spawn, MP_START_SPAWN), 0);
  assert_rc(mp_process_start_join(count_up, NULL,
                                  &(mp_process_opts){.context = spawn}),
            MP_ENOENT);
  mp_context_free(spawn);
  mp_process *left[4];
  assert_int_equal(mp_active_children(left, 4), 0);
}

static void start_join_under_allocation_failure(void **state) {
  (void)state;
  assert_rc(mp_value_new(&counter, 'q', NULL, NULL), 0);
  bool ok = false;
  for (long n = 1; n < 100 && !ok; n++) {
    mp__alloc_fail_after(n);
    int rc = mp_process_start_join_n(2, count_up, NULL, NULL);
    mp__alloc_fail_after(0);
    ok = rc == 0;
    if (!ok)
      assert_true(rc < 0);
  }
  assert_true(ok);
  mp_process *left[4];
  assert_int_equal(mp_active_children(left, 4), 0);
  mp_value_free(counter);
}

static void join_check_says_how_it_ended(void **state) {
  (void)state;
  assert_rc(mp_process_join_check(NULL, 0), MP_EINVAL);
  mp_process *p;
  assert_rc(mp_event_new(&go, NULL), 0);
  assert_rc(mp_process_new(&p, sleeper, NULL, NULL), 0);
  assert_rc(mp_process_join_check(p, 0), MP_ESTATE); /* not started */
  assert_rc(mp_process_start(p), 0);
  assert_rc(mp_process_join_check(p, 0), MP_ETIMEDOUT); /* still waiting */
  assert_rc(mp_event_set(go), 0);
  assert_rc(mp_process_join_check(p, MP_FOREVER), 0);
  mp_process_free(p);
  mp_event_free(go);
  assert_rc(mp_process_new(&p, exit_3, NULL, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  assert_rc(mp_process_join_check(p, MP_FOREVER), MP_EWORKERDIED);
  assert_non_null(strstr(mp_error_detail(), "exited with status 3"));
  mp_process_free(p);
}

static void popen_runs_a_program(void **state) {
  (void)state;
  mp_process *p = SENTINEL;
  assert_rc(mp_popen(&p, (char *[]){"true", NULL}, NULL, 0), 0);
  assert_ptr_not_equal(p, SENTINEL);
  assert_string_equal(mp_process_name(p), "true");
  assert_rc(mp_process_join_check(p, MP_FOREVER), 0);
  mp_process_free(p);
  assert_rc(mp_popen(&p, (char *[]){"false", NULL}, NULL, 0), 0);
  assert_rc(mp_process_join_check(p, MP_FOREVER), MP_EWORKERDIED);
  assert_string_equal(mp_error_detail(), "false exited with status 1");
  mp_process_free(p);
  /* A descriptor passed under a chosen number. */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  char *argv[] = {"sh", "-c", "echo hi >&5", NULL};
  assert_rc(mp_popen(&p, argv, &(mp_pass_fd){fds[1], 5}, 1), 0);
  close(fds[1]);
  char buf[16] = "";
  assert_int_equal(read(fds[0], buf, sizeof buf), 3);
  assert_memory_equal(buf, "hi\n", 3);
  close(fds[0]);
  assert_rc(mp_process_join_check(p, MP_FOREVER), 0);
  mp_process_free(p);
}

static void popen_failures_leave_out_untouched(void **state) {
  (void)state;
  mp_process *p = SENTINEL;
  assert_rc(mp_popen(NULL, (char *[]){"true", NULL}, NULL, 0), MP_EINVAL);
  assert_rc(mp_popen(&p, NULL, NULL, 0), MP_EINVAL);
  assert_rc(mp_popen(&p, (char *[]){NULL}, NULL, 0), MP_EINVAL);
  assert_rc(mp_popen(&p, (char *[]){"", NULL}, NULL, 0), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "argv"));
  assert_rc(mp_popen(&p, (char *[]){"/nonexistent/mp-prog", NULL}, NULL, 0),
            MP_ENOENT);
  assert_rc(mp_popen(&p, (char *[]){"true", NULL}, &(mp_pass_fd){999, 3}, 1),
            MP_EBADF);
  assert_ptr_equal(p, SENTINEL);
  mp_process *left[4];
  assert_int_equal(mp_active_children(left, 4), 0);
}

static void subprocess_run_checks_the_exit(void **state) {
  (void)state;
  assert_rc(mp_subprocess_run((char *[]){"true", NULL}, NULL, 0), 0);
  assert_rc(mp_subprocess_run((char *[]){"sh", "-c", "exit 7", NULL}, NULL,
                              0),
            MP_EWORKERDIED);
  assert_string_equal(mp_error_detail(), "sh exited with status 7");
  assert_rc(mp_subprocess_run((char *[]){"sh", "-c", "kill -9 $$", NULL},
                              NULL, 0),
            MP_EWORKERDIED);
  assert_string_equal(mp_error_detail(), "sh was killed by SIGKILL");
  assert_rc(mp_subprocess_run((char *[]){"/nonexistent/mp-prog", NULL}, NULL,
                              0),
            MP_ENOENT);
  assert_rc(mp_subprocess_run(NULL, NULL, 0), MP_EINVAL);
}

static int thread_count;
static void thread_add(void *arg) {
  (void)arg;
  __atomic_add_fetch(&thread_count, 1, __ATOMIC_SEQ_CST);
}

static void thread_start_join_n_runs_all(void **state) {
  (void)state;
  thread_count = 0;
  assert_rc(mp_thread_start_join_n(20, thread_add, NULL, NULL), 0);
  assert_int_equal(thread_count, 20);
  assert_rc(mp_thread_start_join_n(0, thread_add, NULL, NULL), 0);
  assert_rc(mp_thread_start_join_n(4097, thread_add, NULL, NULL), MP_EINVAL);
  char long_name[300];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  assert_rc(mp_thread_start_join_n(3, thread_add, NULL,
                                   &(mp_thread_opts){.name = long_name}),
            MP_EINVAL);
  assert_int_equal(thread_count, 20);
  bool ok = false;
  for (long n = 1; n < 100 && !ok; n++) {
    mp__alloc_fail_after(n);
    int rc = mp_thread_start_join_n(3, thread_add, NULL, NULL);
    mp__alloc_fail_after(0);
    ok = rc == 0;
    if (!ok)
      assert_rc(rc, MP_ENOMEM);
  }
  assert_true(ok);
}

/* ---- mp_obj_printf ----------------------------------------------------- */

/* A temporary file to print into; mem_close reads back what was written
 * into printed (static) and closes it. */
static char printed[512];
static FILE *mem_open(char **text, size_t *len) {
  (void)text;
  (void)len;
  FILE *f = tmpfile();
  assert_non_null(f);
  return f;
}
static void mem_close(FILE *f, char *text) {
  (void)text;
  fflush(f);
  rewind(f);
  size_t n = fread(printed, 1, sizeof printed - 1, f);
  printed[n] = '\0';
  fclose(f);
}

static void printf_formats_like_python(void **state) {
  (void)state;
  char *text = NULL;
  size_t len = 0;
  FILE *f = mem_open(&text, &len);
  mp_obj *s = mp_obj_str("yuan"), *i = mp_obj_int(3);
  mp_obj *l = mp_obj_list_pack(2, mp_obj_float(0.1), mp_obj_str("a"));
  assert_rc(mp_obj_printf(f, "Name: {} {}\n", s, (mp_obj *)NULL), MP_EINVAL);
  mem_close(f, text);
  assert_string_equal(printed, ""); /* nothing written on failure */
  f = mem_open(&text, &len);
  mp_obj *none = mp_obj_none();
  assert_rc(mp_obj_printf(f, "Name: {}, {!r}; {!s} {} {{x}} {}\n", s, s, i, l,
                          none),
            0);
  mem_close(f, text);
  assert_string_equal(printed,
                      "Name: yuan, 'yuan'; 3 [0.1, 'a'] {x} None\n");
  f = mem_open(&text, &len);
  assert_rc(mp_obj_printf(f, "no fields"), 0);
  mem_close(f, text);
  assert_string_equal(printed, "no fields");
  mp_obj_free(s);
  mp_obj_free(i);
  mp_obj_free(l);
  mp_obj_free(none);
}

static void printf_refuses_bad_formats(void **state) {
  (void)state;
  char *text = NULL;
  size_t len = 0;
  mp_obj *i = mp_obj_int(1);
  FILE *f = mem_open(&text, &len);
  assert_rc(mp_obj_printf(f, "a } b", i), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "single '}'"));
  assert_rc(mp_obj_printf(f, "{0}", i), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "not {}, {!s} or {!r}"));
  assert_rc(mp_obj_printf(f, "{:d}", i), MP_EINVAL);
  assert_rc(mp_obj_printf(f, "{} {}", i, (mp_obj *)NULL), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "format: value 2 is NULL");
  assert_rc(mp_obj_printf(NULL, "{}", i), MP_EINVAL);
  assert_rc(mp_obj_printf(f, NULL), MP_EINVAL);
  mem_close(f, text);
  assert_string_equal(printed, "");
  /* A stream that cannot be written. */
  FILE *ro = fopen("/dev/null", "r");
  assert_non_null(ro);
  assert_rc(mp_obj_printf(ro, "x{}", i), MP_EIO);
  fclose(ro);
  /* Allocation failure: MP_ENOMEM, nothing written. */
  f = mem_open(&text, &len);
  mp__alloc_fail_after(1);
  int rc = mp_obj_printf(f, "{}", i);
  mp__alloc_fail_after(0);
  assert_rc(rc, MP_ENOMEM);
  mem_close(f, text);
  assert_string_equal(printed, "");
  mp_obj_free(i);
}

/* ---- Value and Array as values ----------------------------------------- */

static void value_and_array_as_objects(void **state) {
  (void)state;
  mp_value *v, *d, *c, *q;
  assert_rc(mp_value_new(&v, 'i', &(int){10}, NULL), 0);
  assert_rc(mp_value_new(&d, 'd', &(double){3.1415927}, NULL), 0);
  assert_rc(mp_value_new(&c, 'c', "x", NULL), 0);
  assert_rc(mp_raw_value_new(&q, 'Q', &(unsigned long long){~0ULL}, NULL), 0);
  mp_obj *o = SENTINEL;
  assert_rc(mp_value_get_obj(v, &o), 0);
  int64_t i = 0;
  assert_rc(mp_obj_get_int(o, &i), 0);
  assert_int_equal(i, 10);
  mp_obj_free(o);
  assert_rc(mp_value_get_obj(c, &o), 0);
  char *r = mp_obj_repr(o);
  assert_string_equal(r, "b'x'");
  free(r);
  mp_obj_free(o);
  o = SENTINEL;
  assert_rc(mp_value_get_obj(q, &o), MP_EOVERFLOW);
  assert_ptr_equal(o, SENTINEL);
  assert_rc(mp_value_get_obj(NULL, &o), MP_EINVAL);
  assert_rc(mp_value_get_obj(v, NULL), MP_EINVAL);

  mp_obj *twenty = mp_obj_int(20), *s = mp_obj_str("no");
  mp_obj *half = mp_obj_float(0.5), *b = mp_obj_bytes("y", 1);
  mp_obj *b2 = mp_obj_bytes("yz", 2), *big = mp_obj_int(1LL << 40);
  assert_rc(mp_value_set_obj(v, twenty), 0);
  assert_rc(mp_value_set_obj(v, s), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "expected int, got str");
  assert_rc(mp_value_set_obj(v, big), MP_EOVERFLOW);
  assert_rc(mp_value_set_obj(d, half), 0);
  assert_rc(mp_value_set_obj(d, twenty), 0); /* float(20) */
  assert_rc(mp_value_set_obj(c, b), 0);
  assert_rc(mp_value_set_obj(c, b2), MP_EINVAL);
  assert_rc(mp_value_set_obj(c, twenty), MP_EINVAL);
  assert_rc(mp_value_set_obj(NULL, twenty), MP_EINVAL);
  assert_rc(mp_value_set_obj(v, NULL), MP_EINVAL);

  char *text = NULL;
  size_t len = 0;
  FILE *f = mem_open(&text, &len);
  assert_rc(mp_value_print(f, v), 0);
  assert_rc(mp_value_print(f, d), 0);
  assert_rc(mp_value_print(f, c), 0);
  assert_rc(mp_value_print(f, q), MP_EOVERFLOW);
  assert_rc(mp_value_print(f, NULL), MP_EINVAL);
  assert_rc(mp_value_print(NULL, v), MP_EINVAL);
  mem_close(f, text);
  assert_string_equal(printed, "20\n20.0\nb'y'\n");

  int init[4] = {0, -1, 2, -3};
  mp_array *a, *ca, *empty;
  assert_rc(mp_array_new(&a, 'i', 4, init, NULL), 0);
  assert_rc(mp_array_new(&ca, 'c', 3, "abc", NULL), 0);
  assert_rc(mp_array_new(&empty, 'd', 0, NULL, NULL), 0);
  f = mem_open(&text, &len);
  assert_rc(mp_array_print(f, a), 0);
  assert_rc(mp_array_print(f, ca), 0);
  assert_rc(mp_array_print(f, empty), 0);
  assert_rc(mp_array_print(f, NULL), MP_EINVAL);
  assert_rc(mp_array_print(NULL, a), MP_EINVAL);
  mem_close(f, text);
  assert_string_equal(printed, "[0, -1, 2, -3]\nb'abc'\n[]\n");
  o = SENTINEL;
  assert_rc(mp_array_get_obj(NULL, &o), MP_EINVAL);
  assert_rc(mp_array_get_obj(a, NULL), MP_EINVAL);
  for (long n = 1; n < 50; n++) { /* allocation failure: *out untouched */
    mp__alloc_fail_after(n);
    int rc = mp_array_get_obj(a, &o);
    mp__alloc_fail_after(0);
    if (rc == 0) {
      assert_int_equal(mp_obj_len(o), 4);
      mp_obj_free(o);
      break;
    }
    assert_rc(rc, MP_ENOMEM);
    assert_ptr_equal(o, SENTINEL);
  }
  mp_obj_free(twenty);
  mp_obj_free(s);
  mp_obj_free(half);
  mp_obj_free(b);
  mp_obj_free(b2);
  mp_obj_free(big);
  mp_value_free(v);
  mp_value_free(d);
  mp_value_free(c);
  mp_value_free(q);
  mp_array_free(a);
  mp_array_free(ca);
  mp_array_free(empty);
}

/* ---- proxies ----------------------------------------------------------- */

static void proxy_print_and_getattr_int(void **state) {
  (void)state;
  mp_manager *m;
  mp_proxy *ns, *l;
  assert_rc(mp_manager_start(&m, NULL), 0);
  assert_rc(mp_manager_namespace(m, &ns), 0);
  assert_rc(mp_manager_list(m, &l), 0);
  assert_rc(mp_proxy_setattr(ns, "x", mp_obj_int(42)), 0);
  assert_rc(mp_proxy_setattr(ns, "s", mp_obj_str("text")), 0);
  assert_rc(mp_proxy_setattr(ns, "t", mp_obj_bool(1)), 0);
  assert_rc(mp_proxy_append(l, mp_obj_int(1)), 0);
  int64_t x = -1;
  assert_rc(mp_proxy_getattr_int(ns, "x", &x), 0);
  assert_int_equal(x, 42);
  assert_rc(mp_proxy_getattr_int(ns, "t", &x), 0);
  assert_int_equal(x, 1);
  x = -7;
  assert_rc(mp_proxy_getattr_int(ns, "s", &x), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "expected int, got str");
  assert_rc(mp_proxy_getattr_int(ns, "missing", &x), MP_ENOENT);
  assert_int_equal(x, -7);
  assert_rc(mp_proxy_getattr_int(ns, "x", NULL), MP_EINVAL);
  assert_rc(mp_proxy_getattr_int(NULL, "x", &x), MP_EINVAL);

  char *text = NULL;
  size_t len = 0;
  FILE *f = mem_open(&text, &len);
  assert_rc(mp_proxy_print(f, ns), 0);
  assert_rc(mp_proxy_print(f, l), 0);
  assert_rc(mp_proxy_print(NULL, l), MP_EINVAL);
  assert_rc(mp_proxy_print(f, NULL), MP_EINVAL);
  mem_close(f, text);
  assert_string_equal(printed, "Namespace(s='text', t=True, x=42)\n[1]\n");
  /* A server that is gone: an error, never a hang. */
  assert_rc(mp_manager_shutdown(m), 0);
  f = mem_open(&text, &len);
  assert_true(mp_proxy_print(f, ns) < 0);
  assert_true(mp_proxy_getattr_int(ns, "x", &x) < 0);
  mem_close(f, text);
  assert_string_equal(printed, "");
  mp_proxy_free(ns);
  mp_proxy_free(l);
  mp_manager_free(m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(start_join_runs_and_joins_all),
    cmocka_unit_test(start_join_reports_a_failed_child),
    cmocka_unit_test(start_join_refuses_bad_arguments),
    cmocka_unit_test(start_join_under_allocation_failure),
    cmocka_unit_test(join_check_says_how_it_ended),
    cmocka_unit_test(popen_runs_a_program),
    cmocka_unit_test(popen_failures_leave_out_untouched),
    cmocka_unit_test(subprocess_run_checks_the_exit),
    cmocka_unit_test(thread_start_join_n_runs_all),
    cmocka_unit_test(printf_formats_like_python),
    cmocka_unit_test(printf_refuses_bad_formats),
    cmocka_unit_test(value_and_array_as_objects),
    cmocka_unit_test(proxy_print_and_getattr_int),
};

MP_TEST_MAIN(tests)
