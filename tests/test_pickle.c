/* test_pickle.c - the pickle codec: round trips under every protocol,
 * pickles Python wrote (embedded here, so these cases need no Python), the
 * manager's objects through the allow-list, and hostile input: a pickle
 * that would import os.system, every opcode that imports or calls, deep
 * nesting, huge announced lengths, a memo bomb, a value that contains
 * itself, truncation at every byte. Python on the other end:
 * tests/interop/test_interop_obj.c. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define P(s) (const uint8_t *)(s), sizeof(s) - 1

static char *repr_of(const mp_obj *o) {
  char *s = mp_obj_repr(o);
  assert_non_null(s);
  return s;
}

/* load decodes and checks the repr (want NULL: expects failure rc). */
static void load_expect(const uint8_t *p, size_t n, const mp_pickle_load_opts *o,
                        int rc, const char *want) {
  mp_obj *v = NULL;
  int got = mp_pickle_loads(p, n, &v, o);
  if (got != rc)
    fail_msg("loads returned %s, expected %s (%s)", mp_err_name(got),
             mp_err_name(rc), mp_error_detail());
  if (rc != 0) {
    assert_null(v);
    return;
  }
  char *s = repr_of(v);
  assert_string_equal(s, want);
  free(s);
  mp_obj_free(v);
}

static mp_obj *sample(void) {
  mp_obj *d = mp_obj_dict();
  mp_obj_dict_set_str(d, "id", mp_obj_int(7));
  mp_obj_dict_set_str(d, "name", mp_obj_str("yuan \xe4\xb8\xad"));
  mp_obj_dict_set_str(d, "tags", mp_obj_list_pack(3, mp_obj_int(1),
                                                   mp_obj_float(2.5),
                                                   mp_obj_none()));
  mp_obj *ints = mp_obj_list();
  const int64_t iv[] = {0, 1, 255, 256, 65535, 65536, -1, -129,
                        INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1,
                        (int64_t)INT32_MIN - 1, INT64_MAX, INT64_MIN,
                        1LL << 40, -(1LL << 40)};
  for (size_t k = 0; k < sizeof iv / sizeof *iv; k++)
    mp_obj_list_append(ints, mp_obj_int(iv[k]));
  mp_obj_dict_set_str(d, "ints", ints);
  mp_obj_dict_set(d, mp_obj_tuple_pack(2, mp_obj_bool(0), mp_obj_bytes("k", 1)),
                  mp_obj_tuple_pack(4, mp_obj_bytes("\x00\xff\x80", 3),
                                    mp_obj_bytes(NULL, 0), mp_obj_float(-0.0),
                                    mp_obj_float(INFINITY)));
  mp_obj *big = mp_obj_list();
  for (int k = 0; k < 2500; k++) /* more than one APPENDS batch */
    mp_obj_list_append(big, mp_obj_int(k));
  mp_obj_dict_set_str(d, "big", big);
  mp_obj *bigd = mp_obj_dict();
  for (int k = 0; k < 1500; k++)
    mp_obj_dict_set(bigd, mp_obj_int(k), mp_obj_none());
  mp_obj_dict_set_str(d, "bigd", bigd);
  char *long_text = malloc(70000);
  memset(long_text, 'x', 69999);
  long_text[69999] = '\0';
  mp_obj_dict_set_str(d, "long", mp_obj_str(long_text));
  free(long_text);
  mp_obj_dict_set_str(d, "one", mp_obj_list_pack(1, mp_obj_dict()));
  return d;
}

static void roundtrip_every_protocol(void **state) {
  (void)state;
  mp_obj *v = sample();
  for (int proto = 2; proto <= 5; proto++) {
    void *buf;
    size_t len;
    mp_pickle_dump_opts o = {.protocol = proto};
    assert_rc(mp_pickle_dumps(v, &buf, &len, &o), 0);
    const uint8_t *b = buf;
    assert_int_equal(b[0], 0x80);
    assert_int_equal(b[1], proto);
    if (proto >= 4)
      assert_int_equal(b[2], 0x95); /* FRAME */
    assert_int_equal(b[len - 1], '.');
    mp_obj *w;
    assert_rc(mp_pickle_loads(buf, len, &w, NULL), 0);
    if (!mp_obj_equal(v, w))
      fail_msg("protocol %d does not round-trip", proto);
    mp_obj_free(w);
    free(buf);
  }
  /* NaN is not equal to itself: check it by kind. */
  mp_obj *nan = mp_obj_float(NAN), *w;
  void *buf;
  size_t len;
  assert_rc(mp_pickle_dumps(nan, &buf, &len, NULL), 0);
  assert_int_equal(len, 21); /* PROTO, FRAME, BINFLOAT, STOP */
  assert_rc(mp_pickle_loads(buf, len, &w, NULL), 0);
  double f;
  assert_rc(mp_obj_get_float(w, &f), 0);
  assert_true(isnan(f));
  free(buf);
  mp_obj_free(w);
  mp_obj_free(nan);
  mp_pickle_dump_opts bad = {.protocol = 6};
  assert_rc(mp_pickle_dumps(v, &buf, &len, &bad), MP_EINVAL);
  assert_rc(mp_pickle_dumps(NULL, &buf, &len, NULL), MP_EINVAL);
  mp_obj_free(v);
}

static void encoder_writes_pythons_bytes(void **state) {
  (void)state;
  /* pickle.dumps([42, None, 'hello'], 4) without Python's MEMOIZE ops. */
  mp_obj *v = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                               mp_obj_str("hello"));
  void *buf;
  size_t len;
  assert_rc(mp_pickle_dumps(v, &buf, &len, NULL), 0);
  static const char want[] = "\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00"
                             "](K*N\x8c\x05helloe.";
  assert_int_equal(len, sizeof want - 1);
  assert_memory_equal(buf, want, len);
  free(buf);
  mp_obj_free(v);
  /* Protocol 2 bytes: Python's _codecs.encode form. */
  mp_obj *b = mp_obj_bytes("\x00\xff", 2);
  mp_pickle_dump_opts o2 = {.protocol = 2};
  assert_rc(mp_pickle_dumps(b, &buf, &len, &o2), 0);
  static const char want2[] = "\x80\x02" "c_codecs\nencode\n"
                              "X\x03\x00\x00\x00\x00\xc3\xbf"
                              "X\x06\x00\x00\x00latin1\x86R.";
  assert_int_equal(len, sizeof want2 - 1);
  assert_memory_equal(buf, want2, len);
  mp_obj *back;
  assert_rc(mp_pickle_loads(buf, len, &back, NULL), 0);
  assert_true(mp_obj_equal(b, back));
  mp_obj_free(back);
  free(buf);
  mp_obj_free(b);
  /* Deeper than max_depth. */
  mp_obj *deep = mp_obj_list();
  for (int k = 0; k < 20; k++)
    deep = mp_obj_list_pack(1, deep);
  mp_pickle_dump_opts shallow = {.max_depth = 10};
  assert_rc(mp_pickle_dumps(deep, &buf, &len, &shallow), MP_ETOOBIG);
  mp_obj_free(deep);
}

/* Written by Python 3.12: pickle.dumps([b'\x00\xff', {1}, frozenset([2]),
 * b'', bytearray(b'z')], 2). */
static const char py_proto2[] =
    "\x80\x02\x5d\x71\x00\x28\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e"
    "\x63\x6f\x64\x65\x0a\x71\x01\x58\x03\x00\x00\x00\x00\xc3\xbf\x71\x02"
    "\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x03\x86\x71\x04\x52"
    "\x71\x05\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x73\x65"
    "\x74\x0a\x71\x06\x5d\x71\x07\x4b\x01\x61\x85\x71\x08\x52\x71\x09\x63"
    "\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x66\x72\x6f\x7a\x65"
    "\x6e\x73\x65\x74\x0a\x71\x0a\x5d\x71\x0b\x4b\x02\x61\x85\x71\x0c\x52"
    "\x71\x0d\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x62\x79"
    "\x74\x65\x73\x0a\x71\x0e\x29\x52\x71\x0f\x63\x5f\x5f\x62\x75\x69\x6c"
    "\x74\x69\x6e\x5f\x5f\x0a\x62\x79\x74\x65\x61\x72\x72\x61\x79\x0a\x71"
    "\x10\x68\x01\x58\x01\x00\x00\x00\x7a\x71\x11\x68\x03\x86\x71\x12\x52"
    "\x71\x13\x85\x71\x14\x52\x71\x15\x65\x2e";

/* pickle.dumps([Token('dict', '/tmp/x.sock', '7f00'), KeyError('missing'),
 * slice(1, 3, None)], 4). */
static const char py_manager[] =
    "\x80\x04\x95\x87\x00\x00\x00\x00\x00\x00\x00\x5d\x94\x28\x8c\x18\x6d"
    "\x75\x6c\x74\x69\x70\x72\x6f\x63\x65\x73\x73\x69\x6e\x67\x2e\x6d\x61"
    "\x6e\x61\x67\x65\x72\x73\x94\x8c\x05\x54\x6f\x6b\x65\x6e\x94\x93\x94"
    "\x29\x81\x94\x8c\x04\x64\x69\x63\x74\x94\x8c\x0b\x2f\x74\x6d\x70\x2f"
    "\x78\x2e\x73\x6f\x63\x6b\x94\x8c\x04\x37\x66\x30\x30\x94\x87\x94\x62"
    "\x8c\x08\x62\x75\x69\x6c\x74\x69\x6e\x73\x94\x8c\x08\x4b\x65\x79\x45"
    "\x72\x72\x6f\x72\x94\x93\x94\x8c\x07\x6d\x69\x73\x73\x69\x6e\x67\x94"
    "\x85\x94\x52\x94\x68\x09\x8c\x05\x73\x6c\x69\x63\x65\x94\x93\x94\x4b"
    "\x01\x4b\x03\x4e\x87\x94\x52\x94\x65\x2e";

/* A pickle that runs os.system('echo pwned') in Python (protocol 4). */
static const char py_os_system[] =
    "\x80\x04\x95\x25\x00\x00\x00\x00\x00\x00\x00\x8c\x05\x70\x6f\x73\x69"
    "\x78\x94\x8c\x06\x73\x79\x73\x74\x65\x6d\x94\x93\x94\x8c\x0a\x65\x63"
    "\x68\x6f\x20\x70\x77\x6e\x65\x64\x94\x85\x94\x52\x94\x2e";

/* The same under protocol 0 (GLOBAL). */
static const char py_os_system0[] =
    "cposix\nsystem\np0\n(Vecho pwned\np1\ntp2\nRp3\n.";

static void reads_python_protocol2_forms(void **state) {
  (void)state;
  load_expect(P(py_proto2), NULL, 0, "[b'\\x00\\xff', [1], (2,), b'', b'z']");
  /* The WIRE.md reply frame ('#RETURN', None), as Python 3.12 sends it. */
  load_expect(P("\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00\x8c\x07#RETURN"
                "\x94N\x86\x94."),
              NULL, 0, "('#RETURN', None)");
  /* A set and a frozenset under protocol 4. */
  load_expect(P("\x80\x04\x8f(K\x01K\x02\x90\x91."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04](\x8f(K\x01K\x02\x90(K\x03\x91" "e."), NULL, 0,
              "[[1, 2], (3,)]");
}

static void refuses_os_system(void **state) {
  (void)state;
  load_expect(P(py_os_system), NULL, MP_EPROTO, NULL);
  assert_non_null(strstr(mp_error_detail(), "STACK_GLOBAL"));
  assert_non_null(strstr(mp_error_detail(), "posix.system"));
  load_expect(P(py_os_system0), NULL, MP_EPROTO, NULL);
  assert_non_null(strstr(mp_error_detail(), "opcode GLOBAL refused"));
  /* A constructor name used as a value, not called. */
  load_expect(P("\x80\x02" "c__builtin__\nset\n."), NULL, MP_EPROTO, NULL);
  assert_non_null(strstr(mp_error_detail(), "GLOBAL"));
  /* set() called with what is not plain data. */
  load_expect(P("\x80\x02" "c__builtin__\nset\nK\x01\x85R."), NULL, MP_EPROTO,
              NULL);
  assert_non_null(strstr(mp_error_detail(), "REDUCE"));
}

/* Every opcode that imports or calls is refused, named in the detail. */
static void refuses_every_import_or_call(void **state) {
  (void)state;
  struct {
    const char *p;
    size_t n;
    const char *name;
  } cases[] = {
      {"\x80\x02N)R.", 5, "REDUCE"},
      {"\x80\x02N)\x81.", 5, "NEWOBJ"},
      {"\x80\x04N)}\x92.", 6, "NEWOBJ_EX"},
      {"\x80\x02]}b.", 5, "BUILD"},
      {"\x80\x02(ios\nsystem\n.", 15, "INST"},
      {"\x80\x02(N)o.", 6, "OBJ"},
      {"\x80\x02\x82\x01.", 5, "EXT1"},
      {"\x80\x02\x83\x01\x00.", 6, "EXT2"},
      {"\x80\x02\x84\x01\x00\x00\x00.", 8, "EXT4"},
      {"\x80\x02Pabc\n.", 8, "PERSID"},
      {"\x80\x02NQ.", 4, "BINPERSID"},
      {"\x80\x05\x97.", 4, "NEXT_BUFFER"},
      {"\x80\x02\x8c\x02os\x8c\x06system\x93.", 15, "STACK_GLOBAL"},
      {"\x80\x02" "cos\nsystem\n.", 13, "GLOBAL"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    mp_obj *v = NULL;
    int rc = mp_pickle_loads(cases[k].p, cases[k].n, &v, NULL);
    if (rc != MP_EPROTO)
      fail_msg("case %s: %s", cases[k].name, mp_err_name(rc));
    char want[64];
    snprintf(want, sizeof want, "opcode %s ", cases[k].name);
    if (strstr(mp_error_detail(), want) == NULL)
      fail_msg("case %s: detail '%s'", cases[k].name, mp_error_detail());
    assert_null(v);
  }
}

struct allow_log {
  int calls;
};

static int allow_manager(void *ctx, const char *module, const char *name) {
  struct allow_log *log = ctx;
  log->calls++;
  return (strcmp(module, "multiprocessing.managers") == 0 &&
          strcmp(name, "Token") == 0) ||
         (strcmp(module, "builtins") == 0 &&
          (strcmp(name, "KeyError") == 0 || strcmp(name, "slice") == 0));
}

static void allow_list_reads_manager_objects(void **state) {
  (void)state;
  struct allow_log log = {0};
  mp_pickle_load_opts o = {.allow = allow_manager, .allow_ctx = &log};
  mp_obj *v;
  assert_rc(mp_pickle_loads(P(py_manager), &v, &o), 0);
  assert_int_equal(log.calls, 3); /* the memo's copy is not asked again */
  char *s = repr_of(v);
  assert_string_equal(s, "[multiprocessing.managers.Token() with state "
                         "('dict', '/tmp/x.sock', '7f00'), "
                         "KeyError('missing'), slice(1, 3, None)]");
  free(s);
  mp_obj *tok = mp_obj_list_get(v, 0);
  assert_int_equal(mp_obj_type_of(tok), MP_OBJ_INSTANCE);
  assert_int_equal(mp_obj_instance_newobj(tok), 1);
  assert_int_equal(mp_obj_len(mp_obj_instance_args(tok)), 0);
  /* Written back and read again: the same values. */
  void *buf;
  size_t len;
  assert_rc(mp_pickle_dumps(v, &buf, &len, NULL), 0);
  mp_obj *w;
  assert_rc(mp_pickle_loads(buf, len, &w, &o), 0);
  assert_true(mp_obj_equal(v, w));
  mp_obj_free(w);
  /* Without the allow-list the same bytes are refused. */
  assert_rc(mp_pickle_loads(buf, len, &w, NULL), MP_EPROTO);
  assert_non_null(strstr(mp_error_detail(), "multiprocessing.managers.Token"));
  free(buf);
  mp_obj_free(v);
  /* An allowed global still cannot be called with keywords or twice-built. */
  load_expect(P("\x80\x04\x8c\x08" "builtins\x8c\x05slice\x93)}K\x01K\x02s\x92."), &o,
              MP_EPROTO, NULL);
  assert_non_null(strstr(mp_error_detail(), "NEWOBJ_EX"));
  load_expect(P("\x80\x04\x8c\x08" "builtins\x8c\x05slice\x93)\x81NbNb."), &o,
              MP_EPROTO, NULL);
  assert_non_null(strstr(mp_error_detail(), "BUILD"));
}

static void allow_manager_admits_the_protocols_names(void **state) {
  (void)state;
  assert_true(mp_pickle_allow_manager(NULL, "multiprocessing.managers",
                                      "Token"));
  assert_true(mp_pickle_allow_manager(NULL, "multiprocessing.managers",
                                      "RebuildProxy"));
  assert_true(mp_pickle_allow_manager(NULL, "multiprocessing.managers",
                                      "DictProxy"));
  assert_true(mp_pickle_allow_manager(NULL, "builtins", "KeyError"));
  assert_true(mp_pickle_allow_manager(NULL, "__builtin__", "slice"));
  assert_false(mp_pickle_allow_manager(NULL, "multiprocessing.managers",
                                       "Server"));
  assert_false(mp_pickle_allow_manager(NULL, "multiprocessing.managers",
                                       "Proxy"));
  assert_false(mp_pickle_allow_manager(NULL, "builtins", "eval"));
  assert_false(mp_pickle_allow_manager(NULL, "os", "system"));
  assert_false(mp_pickle_allow_manager(NULL, "posix", "KeyError"));
  assert_false(mp_pickle_allow_manager(NULL, NULL, "KeyError"));
  mp_pickle_load_opts o = {.allow = mp_pickle_allow_manager};
  mp_obj *v;
  assert_rc(mp_pickle_loads(P(py_manager), &v, &o), 0);
  mp_obj_free(v);
  assert_rc(mp_pickle_loads(P(py_os_system), &v, &o), MP_EPROTO);
}

static void deep_nesting_is_refused(void **state) {
  (void)state;
  /* 100000 nested lists: EMPTY_LIST x n, then APPEND x (n - 1). */
  size_t n = 100000;
  uint8_t *p = malloc(2 * n + 3);
  size_t k = 0;
  p[k++] = 0x80;
  p[k++] = 4;
  for (size_t i = 0; i < n; i++)
    p[k++] = ']';
  for (size_t i = 0; i + 1 < n; i++)
    p[k++] = 'a';
  p[k++] = '.';
  mp_obj *v;
  assert_rc(mp_pickle_loads(p, k, &v, NULL), MP_ETOOBIG);
  assert_non_null(strstr(mp_error_detail(), "max_depth"));
  /* Within a smaller limit the same shape at depth 50 loads. */
  k = 2;
  for (size_t i = 0; i < 50; i++)
    p[k++] = ']';
  for (size_t i = 0; i + 1 < 50; i++)
    p[k++] = 'a';
  p[k++] = '.';
  mp_pickle_load_opts o = {.max_depth = 50};
  assert_rc(mp_pickle_loads(p, k, &v, &o), 0);
  mp_obj_free(v);
  o.max_depth = 48;
  assert_rc(mp_pickle_loads(p, k, &v, &o), MP_ETOOBIG);
  free(p);
}

static void huge_announced_lengths_are_refused(void **state) {
  (void)state;
  load_expect(P("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f"), NULL,
              MP_EPROTO, NULL);
  assert_non_null(strstr(mp_error_detail(), "announced"));
  load_expect(P("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff."), NULL,
              MP_EPROTO, NULL);
  load_expect(P("\x80\x04" "B\xff\xff\xff\xff" "ab."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04X\xff\xff\xff\x7f."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04\x96\x00\x00\x00\x00\x00\x00\x00\x80."), NULL,
              MP_EPROTO, NULL);
  load_expect(P("\x80\x04\x8b\xff\xff\xff\x7f."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04\x8b\xff\xff\xff\xff."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN."), NULL,
              MP_EPROTO, NULL);
  /* A memo index far out: a limit, not a huge allocation. */
  load_expect(P("\x80\x04Nr\xff\xff\xff\xff."), NULL, MP_ETOOBIG, NULL);
  assert_non_null(strstr(mp_error_detail(), "max_memo"));
}

static void truncated_input_fails_at_every_byte(void **state) {
  (void)state;
  mp_obj *v = sample();
  const uint8_t *srcs[3];
  size_t lens[3];
  void *buf;
  assert_rc(mp_pickle_dumps(v, &buf, &lens[0], NULL), 0);
  srcs[0] = buf;
  srcs[1] = (const uint8_t *)py_manager;
  lens[1] = sizeof py_manager - 1;
  srcs[2] = (const uint8_t *)py_proto2;
  lens[2] = sizeof py_proto2 - 1;
  struct allow_log log = {0};
  mp_pickle_load_opts o = {.allow = allow_manager, .allow_ctx = &log};
  for (int s = 0; s < 3; s++) {
    size_t step = lens[s] > 5000 ? 97 : 1;
    for (size_t n = 0; n < lens[s]; n += step) {
      mp_obj *w = NULL;
      int rc = mp_pickle_loads(srcs[s], n, &w, &o);
      if (rc != MP_EPROTO)
        fail_msg("source %d cut at %zu: %s", s, n, mp_err_name(rc));
      assert_null(w);
    }
  }
  free(buf);
  mp_obj_free(v);
  /* Data after STOP; an empty pickle; no STOP. */
  load_expect(P("\x80\x04N.N"), NULL, MP_EPROTO, NULL);
  load_expect((const uint8_t *)"", 0, NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04N"), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x06N."), NULL, MP_EPROTO, NULL); /* protocol 6 */
  load_expect(P("\x80\x04NN."), NULL, MP_EPROTO, NULL); /* two values left */
  load_expect(P("\x80\x04" "a."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04" "e."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04(N."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04NN\x87."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04}(Nu."), NULL, MP_EPROTO, NULL); /* odd SETITEMS */
  load_expect(P("\x80\x04K\x01K\x02s."), NULL, MP_EPROTO, NULL);
  load_expect(P("\x80\x04h\x05."), NULL, MP_EPROTO, NULL); /* memo unset */
  load_expect(P("\x80\x04\xff."), NULL, MP_EPROTO, NULL);  /* unknown */
  load_expect(P("I1\n."), NULL, MP_EPROTO, NULL); /* protocol 0 text */
  assert_rc(mp_pickle_loads(NULL, 1, &v, NULL), MP_EINVAL);
}

static void memo_bomb_is_bounded(void **state) {
  (void)state;
  /* a = [1]; 40 times a = [a, a]: 2**40 values from 500 bytes. */
  uint8_t p[1024];
  size_t k = 0;
  p[k++] = 0x80;
  p[k++] = 4;
  p[k++] = ']';
  p[k++] = 'K';
  p[k++] = 1;
  p[k++] = 'a';
  p[k++] = 0x94; /* memo 0 */
  p[k++] = '0';  /* POP: only the memo holds it now */
  for (int i = 0; i < 40; i++) {
    p[k++] = 'h'; /* the previous one twice */
    p[k++] = (uint8_t)i;
    p[k++] = 'h';
    p[k++] = (uint8_t)i;
    p[k++] = 0x86;
    p[k++] = 0x94; /* memo i + 1 */
    p[k++] = '0';
  }
  p[k++] = 'h';
  p[k++] = 40;
  p[k++] = '.';
  mp_obj *v;
  mp_pickle_load_opts small = {.max_nodes = 100000};
  assert_rc(mp_pickle_loads(p, k, &v, &small), MP_ETOOBIG);
  assert_non_null(strstr(mp_error_detail(), "max_nodes"));
  /* Shared references that fit: [x, x] arrives as two copies. */
  load_expect(P("\x80\x04](K\x01\x94h\x00h\x00" "e."), NULL, 0, "[1, 1, 1]");
  load_expect(P("\x80\x04]\x94(]\x94K\x07" "ah\x01h\x01\x85" "e."), NULL, 0,
              "[[7], [7], ([7],)]");
  mp_pickle_load_opts o = {.max_nodes = 5};
  load_expect(P("\x80\x04](K\x01K\x02K\x03K\x04K\x05" "e."), &o, MP_ETOOBIG,
              NULL);
}

static void recursive_values_are_refused(void **state) {
  (void)state;
  /* l = [1]; l.append(l) as Python writes it. */
  load_expect(P("\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01h"
                "\x00" "e."),
              NULL, MP_EPROTO, NULL);
  assert_non_null(strstr(mp_error_detail(), "contains itself"));
  /* d = {}; d['x'] = [d] */
  load_expect(P("\x80\x02}q\x00X\x01\x00\x00\x00xq\x01]q\x02h\x00" "as."), NULL,
              MP_EPROTO, NULL);
  /* A memo read of a finished container is fine. */
  load_expect(P("\x80\x02]q\x00K\x01" "a]q\x01h\x00" "a\x86."), NULL, 0,
              "([1], [[1]])");
}

/* A key replaced in a dict stays alive until the end: a memo read of it
 * later is a copy, not a use after free (ASan checks). */
static void replaced_dict_entries_stay_valid(void **state) {
  (void)state;
  load_expect(P("\x80\x04}\x8c\x01" "a\x94K\x01s\x8c\x01" "a\x94K\x02s"
                "h\x01" "0."),
              NULL, 0, "{'a': 2}");
  load_expect(P("\x80\x04}\x8c\x01" "a]\x94s\x8c\x01" "aK\x02s(h\x00t0."),
              NULL, 0, "{'a': 2}");
  /* DICT and LIST from a mark, POP_MARK, DUP. */
  load_expect(P("\x80\x04((K\x01K\x02" "d(K\x03K\x04l(N1]2t."), NULL, 0,
              "({1: 2}, [3, 4], [], [])");
}

static void ints_beyond_64_bits_overflow(void **state) {
  (void)state;
  load_expect(P("\x80\x04\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00."), NULL,
              MP_EOVERFLOW, NULL);
  load_expect(P("\x80\x04\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff."), NULL,
              MP_EOVERFLOW, NULL);
  load_expect(P("\x80\x04\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00."),
              NULL, MP_EOVERFLOW, NULL);
  load_expect(P("\x80\x04\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80."), NULL, 0,
              "-9223372036854775808");
  load_expect(P("\x80\x04\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\x00."), NULL,
              0, "9223372036854775807");
  load_expect(P("\x80\x04\x8a\x00."), NULL, 0, "0");
  load_expect(P("\x80\x04\x8a\x01\xff."), NULL, 0, "-1");
  load_expect(P("\x80\x04J\xff\xff\xff\xff."), NULL, 0, "-1");
  load_expect(P("\x80\x04M\xff\xff."), NULL, 0, "65535");
}

static void strings_must_be_utf8(void **state) {
  (void)state;
  /* Python writes a lone surrogate with 'surrogatepass': refused here. */
  load_expect(P("\x80\x04\x8c\x03\xed\xa0\x80."), NULL, MP_EINVAL, NULL);
  load_expect(P("\x80\x04\x8c\x01\xff."), NULL, MP_EINVAL, NULL);
  /* Unhashable keys from a peer. */
  load_expect(P("\x80\x04}]K\x01s."), NULL, MP_EINVAL, NULL);
  load_expect(P("\x80\x04}]\x94" "0h\x00\x85K\x01s."), NULL, MP_EINVAL,
              NULL);
}

/* Empty batches, which Python reads and never writes: MARK APPENDS (or
 * ADDITEMS, SETITEMS) on an empty container leaves it empty. Found by
 * fuzz_manager_request (UBSan: + 0 on the empty list's NULL items). */
static void empty_batches_are_accepted(void **state) {
  (void)state;
  load_expect(P("\x80\x04](e."), NULL, 0, "[]");
  load_expect(P("\x80\x04](e(K\x01" "e(e."), NULL, 0, "[1]");
  load_expect(P("\x80\x04}(u."), NULL, 0, "{}");
  load_expect(P("\x80\x04](e\x85."), NULL, 0, "([],)");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(roundtrip_every_protocol),
    cmocka_unit_test(encoder_writes_pythons_bytes),
    cmocka_unit_test(reads_python_protocol2_forms),
    cmocka_unit_test(refuses_os_system),
    cmocka_unit_test(refuses_every_import_or_call),
    cmocka_unit_test(allow_list_reads_manager_objects),
    cmocka_unit_test(allow_manager_admits_the_protocols_names),
    cmocka_unit_test(deep_nesting_is_refused),
    cmocka_unit_test(huge_announced_lengths_are_refused),
    cmocka_unit_test(truncated_input_fails_at_every_byte),
    cmocka_unit_test(memo_bomb_is_bounded),
    cmocka_unit_test(recursive_values_are_refused),
    cmocka_unit_test(replaced_dict_entries_stay_valid),
    cmocka_unit_test(ints_beyond_64_bits_overflow),
    cmocka_unit_test(strings_must_be_utf8),
    cmocka_unit_test(empty_batches_are_accepted),
};

MP_TEST_MAIN(tests)
