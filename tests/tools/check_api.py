#!/usr/bin/env python3
"""check_api.py - the docs and the headers agree, and the library exports
exactly the API.

1. Every function declared with MP_EXTERN under include/ is documented in
   docs/ (its name appears in a reference page).
2. Every mp_ function the shared library exports is declared under include/
   (what is not declared there is not API), and every declared function is
   exported.

Usage: check_api.py SOURCE_DIR LIBRARY.so
"""
import os
import re
import subprocess
import sys


def declared(src):
    names = set()
    pat = re.compile(r"MP_EXTERN\s+[^;(]*?\**\s*\b(mp_[a-z0-9_]+)\s*\(", re.S)
    for root, _, files in os.walk(os.path.join(src, "include")):
        for f in files:
            if f.endswith(".h"):
                text = open(os.path.join(root, f), encoding="utf-8").read()
                names.update(pat.findall(text))
    return names


def documented(src):
    text = ""
    docs = os.path.join(src, "docs")
    for root, _, files in os.walk(docs):
        for f in files:
            if f.endswith(".md"):
                text += open(os.path.join(root, f), encoding="utf-8").read()
    return set(re.findall(r"\b(mp_[a-z0-9_]+)\b", text))


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib],
                         capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtDdBbRr" and \
                parts[2].startswith("mp"):
            names.add(parts[2])
    return names


def main():
    src, lib = sys.argv[1], sys.argv[2]
    decl = declared(src)
    problems = []
    undocumented = sorted(decl - documented(src))
    for n in undocumented:
        problems.append(f"declared but not documented in docs/: {n}")
    exp = exported(lib)
    # mp__ names are internal; the only one exported is the test hook.
    allowed_internal = {"mp__alloc_fail_after"}
    for n in sorted(exp - decl - allowed_internal):
        problems.append(f"exported but not declared under include/: {n}")
    for n in sorted(decl - exp):
        problems.append(f"declared but not exported by the library: {n}")
    for p in problems:
        print(p)
    print(f"{len(decl)} declared, {len(exp)} exported, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
