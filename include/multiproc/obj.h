/* multiproc/obj.h - mp_obj, the dynamic value that C and Python send each
 * other, and its two codecs: pickle (what Python's Connection.send/recv and
 * Queue put on the wire) and MessagePack (for C-to-C and other languages).
 *
 * An mp_obj is one of Python's plain values: None, bool, int (64-bit),
 * float, str (UTF-8, checked), bytes, list, tuple and dict, whose keys may
 * be any hashable value (None, bool, int, float, str, bytes, a tuple of
 * hashables). Equality and hashing follow Python: 1 == 1.0 == True, so
 * those three are one dict key. Two more kinds exist for the manager
 * protocol: MP_OBJ_GLOBAL, a reference to a Python class or function by
 * module and qualified name, and MP_OBJ_INSTANCE, an object Python would
 * build by calling one (KeyError('x'), slice(1, 3, None), a manager's
 * Token). They are plain data: the library never imports or calls
 * anything, it only records the names and arguments and can write them
 * back.
 *
 * Ownership. A value owns its children: a tree, never a graph, never a
 * cycle. Functions that return `mp_obj *` return a new value the caller
 * frees with mp_obj_free, or NULL on failure (mp_error_code() and
 * mp_error_detail() say why: MP_ENOMEM, or MP_EINVAL for a bad argument
 * such as a str that is not UTF-8). Functions named ..._get return a
 * borrowed pointer into the container, valid until the container changes
 * or is freed. Functions that put a value into a container (append, set,
 * the pack constructors) take ownership of it on success and on failure
 * alike, and accept NULL (they then fail with the code that NULL stands
 * for), so calls nest without leaks:
 *   mp_obj *v = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
 *                                mp_obj_str("hello"));
 *   char *s = mp_obj_repr(v);          // "[42, None, 'hello']"
 *
 * Threads and processes. A value is plain private memory: no locks; any
 * number of threads may read one value at once, one may change it. A
 * forked child gets its own copy. */
#ifndef MULTIPROC_OBJ_H
#define MULTIPROC_OBJ_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "connection.h"
#include "queue.h"
#include "shared.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_obj mp_obj;

/* mp_obj_type is the kind of a value, as Python's type(). */
typedef enum mp_obj_type {
  MP_OBJ_NONE = 1,
  MP_OBJ_BOOL = 2,
  MP_OBJ_INT = 3,
  MP_OBJ_FLOAT = 4,
  MP_OBJ_STR = 5,
  MP_OBJ_BYTES = 6,
  MP_OBJ_LIST = 7,
  MP_OBJ_TUPLE = 8,
  MP_OBJ_DICT = 9,
  MP_OBJ_GLOBAL = 10,  /* a class or function named by module, qualname */
  MP_OBJ_INSTANCE = 11 /* what calling a GLOBAL with arguments would make */
} mp_obj_type;

/* ==== building values ====================================================
 * Each returns a new value or NULL (see Ownership above). */
MP_EXTERN mp_obj *mp_obj_none(void);
MP_EXTERN mp_obj *mp_obj_bool(int value);
MP_EXTERN mp_obj *mp_obj_int(int64_t value);
MP_EXTERN mp_obj *mp_obj_float(double value);
/* mp_obj_str copies the NUL-terminated UTF-8 string s; mp_obj_str_len
 * copies len bytes (which may hold NUL characters). MP_EINVAL when the
 * bytes are not valid UTF-8 (surrogates, overlong forms and code points
 * above U+10FFFF are refused) or s is NULL. */
MP_EXTERN mp_obj *mp_obj_str(const char *s);
MP_EXTERN mp_obj *mp_obj_str_len(const char *s, size_t len);
/* mp_obj_bytes copies len bytes from p (p may be NULL when len is 0). */
MP_EXTERN mp_obj *mp_obj_bytes(const void *p, size_t len);
/* mp_obj_list and mp_obj_dict make empty containers. */
MP_EXTERN mp_obj *mp_obj_list(void);
MP_EXTERN mp_obj *mp_obj_dict(void);
/* mp_obj_list_pack and mp_obj_tuple_pack make a list or tuple of the n
 * values that follow, taking ownership of each (on failure too: a NULL
 * among them makes the call fail with MP_ENOMEM and frees the others).
 * mp_obj_tuple_from takes the n values of items[] the same way (the array
 * itself is the caller's). */
MP_EXTERN mp_obj *mp_obj_list_pack(size_t n, ...);
MP_EXTERN mp_obj *mp_obj_tuple_pack(size_t n, ...);
MP_EXTERN mp_obj *mp_obj_tuple_from(size_t n, mp_obj *const *items);
/* mp_obj_global makes a reference to module.qualname (both copied; both
 * must be non-empty UTF-8 without newlines). */
MP_EXTERN mp_obj *mp_obj_global(const char *module, const char *qualname);
/* mp_obj_instance makes the object callable(*args) with optional state,
 * taking ownership of all three: callable must be an MP_OBJ_GLOBAL, args a
 * tuple, state NULL or any value (what Python's __setstate__ or BUILD would
 * apply). With newobj nonzero the pickle encoder writes it as
 * cls.__new__(cls, *args) (NEWOBJ, as Python pickles a Token); with 0 as a
 * call (REDUCE, as Python pickles KeyError('x') or slice(1, 3, None)). */
MP_EXTERN mp_obj *mp_obj_instance(mp_obj *callable, mp_obj *args,
                                  mp_obj *state, int newobj);

/* ==== typed access =======================================================
 * mp_obj_type_of returns the kind (0 for NULL); mp_obj_type_name returns
 * Python's type name ("NoneType", "int", "dict", ...; "global" and
 * "instance" for the two manager kinds). */
MP_EXTERN mp_obj_type mp_obj_type_of(const mp_obj *o);
MP_EXTERN const char *mp_obj_type_name(const mp_obj *o);

/* The getters check the kind and return 0, or MP_EINVAL (detail: "expected
 * int, got str") leaving *out unchanged. mp_obj_get_int accepts an int or
 * a bool (Python's bool is an int); mp_obj_get_float accepts a float, an
 * int or a bool (as Python's float(x)). The str and bytes getters lend the
 * value's own bytes (a str's are followed by a NUL); len may be NULL. */
MP_EXTERN int mp_obj_get_bool(const mp_obj *o, int *out);
MP_EXTERN int mp_obj_get_int(const mp_obj *o, int64_t *out);
MP_EXTERN int mp_obj_get_float(const mp_obj *o, double *out);
MP_EXTERN int mp_obj_get_str(const mp_obj *o, const char **out, size_t *len);
MP_EXTERN int mp_obj_get_bytes(const mp_obj *o, const void **out,
                               size_t *len);
/* mp_obj_is_none returns 1 for None, else 0. */
MP_EXTERN int mp_obj_is_none(const mp_obj *o);

/* mp_obj_len returns Python's len(o): the items of a list, tuple or dict,
 * the code points of a str, the bytes of a bytes; MP_EINVAL for the other
 * kinds. */
MP_EXTERN ssize_t mp_obj_len(const mp_obj *o);

/* ==== list and tuple =====================================================
 * mp_obj_list_append appends item (ownership taken) to list. Returns 0,
 * MP_EINVAL (list is not a list, or item is NULL: MP_ENOMEM then),
 * MP_ENOMEM. */
MP_EXTERN int mp_obj_list_append(mp_obj *list, mp_obj *item);
/* mp_obj_list_get returns item index of a list or tuple, borrowed; a
 * negative index counts from the end. NULL with MP_ERANGE (Python's
 * IndexError) or MP_EINVAL (not a list or tuple) in mp_error_code(). */
MP_EXTERN mp_obj *mp_obj_list_get(const mp_obj *seq, ssize_t index);
/* mp_obj_list_set replaces item index of a list (ownership of item taken,
 * the old item freed). Returns 0, MP_ERANGE, MP_EINVAL, MP_ENOMEM (item
 * NULL). */
MP_EXTERN int mp_obj_list_set(mp_obj *list, ssize_t index, mp_obj *item);
/* mp_obj_list_index returns the first index whose item equals value (with
 * Python's equality), as Python's list.index, for a list or tuple;
 * MP_EVALUE when none does (Python's ValueError), MP_EINVAL. */
MP_EXTERN ssize_t mp_obj_list_index(const mp_obj *seq, const mp_obj *value);

/* ==== dict ===============================================================
 * A dict keeps insertion order, as Python's. Keys must be hashable (see
 * mp_obj_hash); setting a key equal to an existing one (1 and 1.0) keeps
 * the existing key and replaces the value, as Python does.
 *
 * mp_obj_dict_set sets dict[key] = value, taking ownership of both (on
 * failure too). Returns 0, MP_EINVAL (not a dict; an unhashable key, with
 * detail "unhashable type: 'list'"), MP_ENOMEM (also for a NULL key or
 * value). mp_obj_dict_set_str does it with a str key made from key. */
MP_EXTERN int mp_obj_dict_set(mp_obj *dict, mp_obj *key, mp_obj *value);
MP_EXTERN int mp_obj_dict_set_str(mp_obj *dict, const char *key,
                                  mp_obj *value);
/* mp_obj_dict_get returns dict[key], borrowed, or NULL: MP_ENOENT when the
 * key is absent (Python's KeyError), MP_EINVAL (not a dict, unhashable key)
 * in mp_error_code(). mp_obj_dict_get_str looks up a str key. */
MP_EXTERN mp_obj *mp_obj_dict_get(const mp_obj *dict, const mp_obj *key);
MP_EXTERN mp_obj *mp_obj_dict_get_str(const mp_obj *dict, const char *key);
/* mp_obj_dict_del removes key and frees key and value (Python's del d[k]).
 * Returns 0, MP_ENOENT, MP_EINVAL. */
MP_EXTERN int mp_obj_dict_del(mp_obj *dict, const mp_obj *key);
/* mp_obj_dict_next iterates in insertion order: start with *pos = 0; each
 * call that returns 1 stores the next pair (borrowed; either pointer may be
 * NULL) and advances *pos; 0 at the end; MP_EINVAL when dict is not a
 * dict. Changing the dict while iterating is allowed for mp_obj_dict_set
 * on an existing key only. */
MP_EXTERN int mp_obj_dict_next(const mp_obj *dict, size_t *pos,
                               mp_obj **key, mp_obj **value);

/* ==== GLOBAL and INSTANCE ================================================
 * mp_obj_global_name lends the module and qualified name of a GLOBAL, or
 * of an INSTANCE's callable. Returns 0 or MP_EINVAL. Either out may be
 * NULL. */
MP_EXTERN int mp_obj_global_name(const mp_obj *o, const char **module,
                                 const char **qualname);
/* mp_obj_instance_args returns an INSTANCE's argument tuple, and
 * mp_obj_instance_state its state (NULL when it has none), borrowed; NULL
 * with MP_EINVAL when o is not an INSTANCE. mp_obj_instance_newobj returns
 * 1 for an instance made with NEWOBJ, 0 for one made with REDUCE,
 * MP_EINVAL. */
MP_EXTERN mp_obj *mp_obj_instance_args(const mp_obj *o);
MP_EXTERN mp_obj *mp_obj_instance_state(const mp_obj *o);
MP_EXTERN int mp_obj_instance_newobj(const mp_obj *o);

/* ==== equality, hashing, copy, free, repr ================================
 * mp_obj_equal returns 1 when a == b in Python (1 == 1.0 == True; 'a' !=
 * b'a'; [1, 2] != (1, 2); nan != nan; containers compare item by item,
 * dicts regardless of order), else 0. NULL equals only NULL. */
MP_EXTERN int mp_obj_equal(const mp_obj *a, const mp_obj *b);
/* mp_obj_hash stores Python's hash() for numbers (hash(1) == hash(1.0) ==
 * hash(True) == 1, hash(-1) == -2, hash(0.5) == 1152921504606846976) and a
 * hash consistent with mp_obj_equal for str, bytes, None and tuples (not
 * Python's randomised string hash). Returns 0, or MP_EINVAL for an
 * unhashable value (list, dict, a tuple holding one, INSTANCE). */
MP_EXTERN int mp_obj_hash(const mp_obj *o, int64_t *out);
/* mp_obj_copy returns a deep copy of o, or NULL (MP_ENOMEM, MP_EINVAL for
 * NULL). */
MP_EXTERN mp_obj *mp_obj_copy(const mp_obj *o);
/* mp_obj_free frees o and everything it holds. NULL is a no-op. */
MP_EXTERN void mp_obj_free(mp_obj *o);
/* mp_obj_repr returns Python's repr(o) as a new NUL-terminated string the
 * caller frees with free(): "[42, None, 'hello']", "{'a': (1,), 'b':
 * b'\\x00'}", floats as Python prints them ("1.0", "1e+16", "0.1", "inf",
 * "nan"), strings with Python's choice of quotes and escapes. A GLOBAL
 * prints as module.qualname, an INSTANCE as qualname(args) (the module
 * omitted for builtins: "KeyError('x')"). NULL on MP_ENOMEM or for NULL o
 * (MP_EINVAL). */
MP_EXTERN char *mp_obj_repr(const mp_obj *o);
/* mp_obj_print writes what Python's print(o, file=f) writes: str(o) and a
 * newline (str(o) is the text itself for a str, repr(o) for the others).
 * Returns 0, MP_EINVAL, MP_ENOMEM, MP_EIO. */
MP_EXTERN int mp_obj_print(FILE *f, const mp_obj *o);

/* ==== pickle =============================================================
 * mp_pickle_dumps encodes o as a pickle Python's pickle.loads reads (3.x),
 * into a new buffer (*out, *len; the caller frees it with free()).
 * Protocol 4 with one FRAME by default, as Python 3.11-3.13 write; 2 to 5
 * on request (under 2, bytes are written as Python writes them there,
 * _codecs.encode(str, 'latin1')). No memo is written: shared values are
 * written once per occurrence. Returns 0, MP_EINVAL (NULL argument, a
 * protocol outside 2..5), MP_ENOMEM, MP_ETOOBIG (nesting deeper than
 * max_depth). */
typedef struct mp_pickle_dump_opts {
  int protocol;     /* 0: 4 */
  size_t max_depth; /* 0: MP_PICKLE_DEFAULT_DEPTH */
} mp_pickle_dump_opts;

MP_EXTERN int mp_pickle_dumps(const mp_obj *o, void **out, size_t *len,
                              const mp_pickle_dump_opts *opts);

/* mp_pickle_allow_fn decides whether the decoder may read a reference to
 * module.qualname (GLOBAL or STACK_GLOBAL): nonzero allows it. It runs in
 * the decoding thread, during mp_pickle_loads, with no library lock held.
 * An allowed reference becomes an MP_OBJ_GLOBAL; a REDUCE or NEWOBJ on it
 * becomes an MP_OBJ_INSTANCE holding the arguments, and a BUILD on that
 * instance its state. Nothing is imported or called. */
typedef int (*mp_pickle_allow_fn)(void *ctx, const char *module,
                                  const char *qualname);

/* mp_pickle_allow_manager is an mp_pickle_allow_fn that admits what
 * Python's manager protocol pickles: multiprocessing.managers.Token,
 * RebuildProxy and the proxy classes (names ending in "Proxy"), the
 * builtin exception classes (KeyError, ValueError, ...), slice, list and
 * complex (in builtins or __builtin__). ctx is unused. */
MP_EXTERN int mp_pickle_allow_manager(void *ctx, const char *module,
                                      const char *qualname);

#define MP_PICKLE_DEFAULT_DEPTH 1000
#define MP_PICKLE_DEFAULT_MEMO (1u << 20)
#define MP_PICKLE_DEFAULT_NODES (1u << 22)

/* mp_pickle_load_opts holds the decoder's limits and the allow-list;
 * zeros mean the defaults. */
typedef struct mp_pickle_load_opts {
  size_t max_depth; /* nesting of containers; 0: MP_PICKLE_DEFAULT_DEPTH */
  size_t max_memo;  /* memo entries (highest index + 1); 0: default */
  size_t max_nodes; /* values in the result, counting every copy a shared
                     * reference makes; 0: MP_PICKLE_DEFAULT_NODES */
  mp_pickle_allow_fn allow; /* NULL: no GLOBAL allowed */
  void *allow_ctx;          /* passed to allow */
} mp_pickle_load_opts;

/* mp_pickle_loads decodes the pickle in buf (len bytes; protocols 0-5
 * framing, but only the binary opcodes Python 3 writes for protocols 2 to
 * 5) into a new value in *out. It reads None, bool, int, float, str,
 * bytes, bytearray (as bytes), list, tuple, dict, set (as a list), frozenset
 * (as a tuple), the memo (MEMOIZE, PUT, GET: each reference becomes a copy),
 * FRAME, and protocol 2's forms of bytes and sets. Returns 0, or:
 *   MP_EPROTO     malformed or refused input; the detail names the opcode:
 *                 "opcode STACK_GLOBAL refused: it would import os.system",
 *                 "opcode REDUCE refused: it would call a function", a
 *                 truncated pickle, an unknown opcode, a recursive value
 *                 (a list that contains itself), data after STOP;
 *   MP_EOVERFLOW  an int beyond 64 bits;
 *   MP_ETOOBIG    a limit of opts was reached (detail says which);
 *   MP_EINVAL     a NULL argument, a str that is not UTF-8, an unhashable
 *                 dict key (detail says which);
 *   MP_ENOMEM.
 * *out is untouched on failure. */
MP_EXTERN int mp_pickle_loads(const void *buf, size_t len, mp_obj **out,
                              const mp_pickle_load_opts *opts);

/* ==== MessagePack ========================================================
 * mp_msgpack_packb encodes o with msgpack-c: None as nil, bool, int, float
 * (float 64), str (str), bytes (bin), list and tuple both as arrays, dict
 * as a map. GLOBAL and INSTANCE have no MessagePack form (MP_ENOTSUP).
 * *out is a new buffer the caller frees with free(). Returns 0, MP_EINVAL,
 * MP_ENOTSUP, MP_ENOMEM, MP_ETOOBIG (nesting beyond max_depth). */
typedef struct mp_msgpack_opts {
  size_t max_depth; /* 0: MP_PICKLE_DEFAULT_DEPTH */
  size_t max_nodes; /* decoder only; 0: MP_PICKLE_DEFAULT_NODES */
} mp_msgpack_opts;

MP_EXTERN int mp_msgpack_packb(const mp_obj *o, void **out, size_t *len,
                               const mp_msgpack_opts *opts);
/* mp_msgpack_unpackb decodes one MessagePack value filling buf exactly:
 * arrays become lists (tuples when they are map keys, so they can be
 * hashed), maps dicts, uint above INT64_MAX MP_EOVERFLOW, float 32 a
 * float, ext types MP_EPROTO. Returns 0, MP_EPROTO (malformed, truncated,
 * trailing bytes, ext), MP_EOVERFLOW, MP_ETOOBIG (a limit, or more than 32
 * nested arrays and maps: msgpack-c reads no deeper), MP_EINVAL (str not
 * UTF-8, unhashable key), MP_ENOMEM. *out untouched on failure. */
MP_EXTERN int mp_msgpack_unpackb(const void *buf, size_t len, mp_obj **out,
                                 const mp_msgpack_opts *opts);

/* ==== on a connection and a queue ========================================
 * mp_connection_send sends o pickled (protocol 4) as one message, as
 * Python's conn.send(obj): Python's conn.recv() reads it. It copies o.
 * Returns what mp_pickle_dumps and mp_connection_send_bytes return. */
MP_EXTERN int mp_connection_send(mp_connection *c, const mp_obj *o);
/* mp_connection_recv receives one message and decodes it as a pickle, as
 * Python's conn.recv(): a Python conn.send(obj) of plain data arrives as
 * a value. It blocks as mp_connection_recv_bytes does. Returns 0 with a
 * new value in *out, the errors of mp_connection_recv_bytes_alloc
 * (MP_ECLOSED at end of stream; messages over 64 MiB are MP_ETOOBIG and
 * stay unread) and of mp_pickle_loads (the message is consumed). */
MP_EXTERN int mp_connection_recv(mp_connection *c, mp_obj **out);
/* mp_connection_recv_ex is mp_connection_recv with a message limit
 * (maxlength bytes; MP_CONNECTION_NO_LIMIT) and decoder options (NULL for
 * the defaults). */
MP_EXTERN int mp_connection_recv_ex(mp_connection *c, mp_obj **out,
                                    size_t maxlength,
                                    const mp_pickle_load_opts *opts);
/* mp_connection_send_msgpack and mp_connection_recv_msgpack do the same
 * with MessagePack, for C-to-C and other languages. */
MP_EXTERN int mp_connection_send_msgpack(mp_connection *c, const mp_obj *o);
MP_EXTERN int mp_connection_recv_msgpack(mp_connection *c, mp_obj **out);

/* mp_queue_put_obj puts o (pickled; copied) on q, waiting up to timeout
 * for room, as Python's q.put(obj). mp_queue_get_obj takes the next
 * message and decodes it into a new value, as q.get(). Returns what
 * mp_queue_put / mp_queue_get and the codec return. */
MP_EXTERN int mp_queue_put_obj(mp_queue *q, const mp_obj *o, double timeout);
MP_EXTERN int mp_queue_get_obj(mp_queue *q, mp_obj **out, double timeout);

/* mp_shareable_list_get_obj reads item index of a ShareableList as a new
 * value (None, int, float, bool, str or bytes), so it prints with
 * mp_obj_repr as Python prints sl[index]. Returns 0, MP_ENOMEM, and the
 * errors of mp_shareable_list_get. */
MP_EXTERN int mp_shareable_list_get_obj(mp_shareable_list *sl, ssize_t index,
                                        mp_obj **out);

/* ==== printing, and Value and Array as values (src/obj/format.c) =========
 * mp_obj_printf writes format to f with each field replaced by the next
 * argument, a const mp_obj * (borrowed), as Python's
 * print("Name: {}".format(x), end=""): "{}" (or "{!s}") is str(x), the
 * text itself for a str and repr(x) for the others; "{!r}" is repr(x);
 * "{{" and "}}" are braces. The whole text is formatted before anything is
 * written. Returns 0; MP_EINVAL (NULL f or format, a NULL argument (detail
 * "format: value 2 is NULL"), a field other than {}, {!s}, {!r}, a single
 * '}'), MP_ENOMEM, MP_EIO. Pass exactly one value per field. */
MP_EXTERN int mp_obj_printf(FILE *f, const char *format, ...);

/* mp_value_get_obj reads v.value as a new value: an int for the integer
 * typecodes, a float for 'f' and 'd', a bytes of one byte for 'c' (as
 * Python's Value('c').value), under v's lock as mp_value_get. Returns 0,
 * MP_EOWNERDEAD (read, and *out set, but a holder of the lock died: check
 * the data), MP_EOVERFLOW (a 'Q' or 'L' above INT64_MAX), MP_EINVAL (NULL
 * v or out), MP_ENOMEM. On an error *out is untouched.
 * mp_value_set_obj sets v.value from o (borrowed): an int or bool for the
 * integer typecodes, a float, int or bool for 'f' and 'd', a bytes of
 * length 1 for 'c'. Returns 0, MP_EINVAL (NULL, or the wrong kind: detail
 * "expected int, got str"), MP_EOVERFLOW, MP_EOWNERDEAD as mp_value_set.
 * mp_array_get_obj reads a[:] in one copy under the lock as a new list of
 * such values (a bytes for a 'c' Array, as Python's); returns as
 * mp_value_get_obj. */
MP_EXTERN int mp_value_get_obj(mp_value *v, mp_obj **out);
MP_EXTERN int mp_value_set_obj(mp_value *v, const mp_obj *o);
MP_EXTERN int mp_array_get_obj(mp_array *a, mp_obj **out);

/* mp_value_print writes what print(v.value) writes ("20", "3.1415927"),
 * mp_array_print what print(a[:]) writes ("[0, -1, -2]"), with a newline.
 * Returns 0 or the errors of mp_value_get_obj / mp_array_get_obj and
 * mp_obj_print (MP_EINVAL for a NULL f). */
MP_EXTERN int mp_value_print(FILE *f, mp_value *v);
MP_EXTERN int mp_array_print(FILE *f, mp_array *a);

#ifdef __cplusplus
}
#endif
#endif
