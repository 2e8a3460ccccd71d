#!/usr/bin/env python3
"""gen_returns.py - writes tests/test_returns.c from the public headers, and
checks that the committed file is current.

Usage: gen_returns.py <source dir>           rewrite tests/test_returns.c
       gen_returns.py --check <source dir>   fail if it is not current

For every MP_EXTERN function of include/multiproc/*.h that returns int or
ssize_t and whose first parameter is a pointer, the suite calls it with
every pointer NULL and every other argument zero (timeouts 0: nothing
blocks) and checks the result against what its comment documents:

- the comment says what a NULL call returns ("1 for NULL", "else 0 (also
  for NULL)"): that value;
- the first parameter is options (NULL means the defaults) or a
  NULL_DOCUMENTED entry below (a count, "out may be NULL when cap is 0"):
  a result >= 0;
- otherwise MP_EINVAL, as docs/errors.md promises for "NULL where an
  object is needed".
Functions with effects outside the process (SKIP) are not called.

Out-of-range arguments: for the functions whose comment names MP_ERANGE for
an index, OUT_OF_RANGE below gives an object to call them on, and the
suite checks an index one past the end and one before the start.

One cmocka case per header (returns.<header>), so a mismatch names the
header; the message names the function and both codes.
"""
import pathlib
import re
import sys

# Functions whose comment documents a NULL / zero call that is not
# MP_EINVAL: name -> (expected C expression, the words in the comment).
NULL_DOCUMENTED = {
    "mp_connection_wait": (None, "objects NULL with n 0 waits on nothing"),
    "mp_active_children": (None, "out may be NULL when cap is 0: a count"),
    "mp_thread_enumerate": (None, "out may be NULL when cap is 0: a count"),
    "mp_resource_tracker_list": (None, "0 or the callback's value"),
}

# Functions not called: their NULL call acts on the machine (unlinks
# names of dead trackers in /dev/shm).
SKIP = {"mp_resource_tracker_remove_dead",
        # Predicates and a pickle allow-list callback: 0/1, not codes.
        "mp_obj_is_none", "mp_obj_equal", "mp_pickle_allow_manager",
        # A NULL item is MP_ENOMEM before the container is looked at (so
        # that mp_obj_list_append(l, mp_obj_int(1)) reports a failed
        # builder); tests/test_obj.c checks both orders.
        "mp_obj_list_append", "mp_obj_list_set", "mp_obj_dict_set"}

# Out-of-range calls: function -> (setup, call, cleanup), run on a real
# object; each call must return MP_ERANGE.
OUT_OF_RANGE = {
    "mp_array_get": (
        "mp_array *a; assert_rc(mp_array_new(&a, 'i', 4, NULL, NULL), 0); "
        "int x = 0;",
        ["mp_array_get(a, 4, &x)", "mp_array_get(a, -5, &x)"],
        "mp_array_free(a);"),
    "mp_array_set": (
        "mp_array *a; assert_rc(mp_array_new(&a, 'i', 4, NULL, NULL), 0); "
        "int x = 0;",
        ["mp_array_set(a, 4, &x)", "mp_array_set(a, -5, &x)"],
        "mp_array_free(a);"),
    "mp_shareable_list_get": (
        "mp_shareable_list *sl; mp_shareable_item it = mp_shareable_int(1);"
        " assert_rc(mp_shareable_list_new(&sl, &it, 1, NULL, NULL), 0);"
        " mp_shareable_item out;",
        ["mp_shareable_list_get(sl, 1, &out, NULL, 0)",
         "mp_shareable_list_get(sl, -2, &out, NULL, 0)"],
        "mp_shared_memory_unlink(mp_shareable_list_shm(sl)); "
        "mp_shareable_list_free(sl);"),
    "mp_shareable_list_set": (
        "mp_shareable_list *sl; mp_shareable_item it = mp_shareable_int(1);"
        " assert_rc(mp_shareable_list_new(&sl, &it, 1, NULL, NULL), 0);",
        ["mp_shareable_list_set(sl, 1, &it)",
         "mp_shareable_list_set(sl, -2, &it)"],
        "mp_shared_memory_unlink(mp_shareable_list_shm(sl)); "
        "mp_shareable_list_free(sl);"),
}

DECL = re.compile(
    r"MP_EXTERN\s+(?P<ret>[A-Za-z_][A-Za-z_0-9 ]*?[\s*]+)(?P<name>mp_\w+)"
    r"\s*\((?P<params>[^;]*?)\)\s*;", re.S)


def split_params(params):
    out, depth, cur = [], 0, ""
    for ch in params:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return [] if out == ["void"] else out


def param_type(p):
    """The type of a parameter declaration, without its name."""
    p = re.sub(r"\s+", " ", p).strip()
    if p == "...":
        return "..."
    m = re.match(r"(.*?)(\w+)(\s*\[\s*\])?$", p)
    t = m.group(1).strip()
    if m.group(3):
        t += " *"
    return t


def functions(header_text):
    """(name, return type, [param types], comment) of each declaration, in
    order; the comment is the last one before it (shared by a group of
    declarations that follow one comment)."""
    comment = ""
    pos = 0
    for m in DECL.finditer(header_text):
        between = header_text[pos:m.start()]
        found = re.findall(r"/\*(.*?)\*/", between, re.S)
        if found:
            comment = re.sub(r"\s*\*\s*", " ", found[-1])
            comment = re.sub(r"\s+", " ", comment)
        pos = m.end()
        ret = re.sub(r"\s+", " ", m.group("ret")).strip()
        params = [param_type(p) for p in split_params(m.group("params"))]
        yield m.group("name"), ret, params, comment


def null_value(name, comment):
    """What the comment says name returns for NULL, or None."""
    # The sentence about this function: from its name to the next one.
    i = comment.find(name)
    if i < 0:
        return None
    text = comment[i:]
    j = text.find(" mp_", len(name))
    if j > 0:
        text = text[:j]
    m = re.search(r"\b(-?\d+|MP_E[A-Z]+) for (?:a )?NULL\b", text)
    if m:
        return m.group(1)
    m = re.search(r"\b(-?\d+|MP_E[A-Z]+) \(also for NULL\)", text)
    if m:
        return m.group(1)
    return None


def generate(root):
    headers = sorted((root / "include" / "multiproc").glob("*.h"))
    cases = []
    body = []
    covered = 0
    for h in headers:
        calls = []
        for name, ret, params, comment in functions(h.read_text()):
            if ret not in ("int", "ssize_t") or not params:
                continue
            if "*" not in params[0] or name in SKIP:
                continue
            args = ", ".join("NULL" if "*" in t else f"({t}){{0}}"
                             for t in params if t != "...")
            doc = NULL_DOCUMENTED.get(name)
            said = null_value(name, comment)
            if params[0].endswith("_opts *"):
                doc = (None, "NULL options are the defaults")
            elif doc is None and said is not None:
                doc = (said, f"documented: {said} for NULL")
            if doc is not None and doc[0] is None:
                calls.append(f"  /* {name}: {doc[1]} */\n"
                             f"  assert_true({name}({args}) >= 0);")
            elif doc is not None:
                calls.append(f"  /* {name}: {doc[1]} */\n"
                             f"  expect_rc(\"{name}\", {name}({args}), "
                             f"{doc[0]});")
            else:
                calls.append(f"  expect_rc(\"{name}\", (int){name}({args}), "
                             f"MP_EINVAL);")
            covered += 1
        for name, (setup, rcalls, cleanup) in sorted(OUT_OF_RANGE.items()):
            if not re.search(r"\b" + name + r"\s*\(", h.read_text()):
                continue
            lines = [f"  {{\n    {setup}"]
            for c in rcalls:
                lines.append(f"    expect_rc(\"{name}\", {c}, MP_ERANGE);")
            lines.append(f"    {cleanup}\n  }}")
            calls.append("\n".join(lines))
        if not calls:
            continue
        case = "returns_" + h.stem
        cases.append(case)
        body.append(f"static void {case}(void **state) {{\n  (void)state;\n"
                    "  int bad = 0;\n" + "\n".join(calls) +
                    "\n  assert_int_equal(bad, 0);\n}\n")
    head = f'''/* test_returns.c - GENERATED by tests/tools/gen_returns.py from the
 * public headers; do not edit (docs.returns_current fails when it is not
 * current: run `python3 tests/tools/gen_returns.py .`).
 *
 * Each public function that returns int or ssize_t and takes a pointer
 * first is called with every pointer NULL and everything else zero, and
 * must return what its header documents: MP_EINVAL for a NULL object
 * (docs/errors.md), or the documented value for the few that accept NULL.
 * Index arguments past either end must give MP_ERANGE where documented.
 * {covered} functions; one case per header. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define expect_rc(fn, expr, want)                                            \\
  do {{                                                                       \\
    int got_ = (int)(expr), want_ = (want);                                  \\
    if (got_ != want_) {{                                                     \\
      print_error("%s returned %s (%d), its header documents %s (%d)\\n",  \\
                  fn, mp_err_name(got_), got_, mp_err_name(want_), want_);   \\
      bad++;                                                                 \\
    }}                                                                        \\
  }} while (0)

'''
    tail = "static const struct CMUnitTest tests[] = {\n" + "".join(
        f"    cmocka_unit_test({c}),\n" for c in cases) + "};\n\nMP_TEST_MAIN(tests)\n"
    return head + "\n".join(body) + "\n" + tail


def main():
    args = sys.argv[1:]
    check = bool(args) and args[0] == "--check"
    if check:
        args = args[1:]
    if len(args) != 1:
        print(__doc__)
        return 2
    root = pathlib.Path(args[0])
    text = generate(root)
    target = root / "tests" / "test_returns.c"
    if check:
        if not target.exists() or target.read_text() != text:
            print("tests/test_returns.c is not current: run "
                  "`python3 tests/tools/gen_returns.py .` and commit it")
            return 1
        print("tests/test_returns.c is current")
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
