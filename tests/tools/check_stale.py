#!/usr/bin/env python3
"""check_stale.py - fails when a doc promises for later something the
README's "Python to C name map" already lists.

Usage: check_stale.py <source dir>      check README.md, docs/*.md and
                                        include/multiproc/*.h
       check_stale.py --self-test        check the checker on samples

A promise is a sentence with "later release(s)", "later module(s)",
"future release", "is/are planned", "will come/follow", "comes with",
"not yet available/implemented", "coming soon" or "(later)". Its words (one at a
time, and two joined: "shared memory" -> "sharedmemory"; a plural s
dropped) are compared with the concepts of the name map: the capitalised
Python names and module names of its first column (Queue, Pool,
SharedMemory, shared_memory) and the nouns of its mp_<noun>_new/_open
calls. A word qualified by an acronym before it ("MPI pool", "an
MPI-backed pool") names something else and is not compared.
"""
import pathlib
import re
import sys

PROMISE = re.compile(
    r"later releases?|later modules?|future releases?|\b(?:is|are) planned"
    r"|will (?:come|follow|arrive)|\bcomes? with\b"
    r"|not yet (?:available|implemented)|coming soon|\(later\)", re.I)


def norm(s):
    return re.sub(r"[^a-z0-9]", "", s.lower())


def name_map_concepts(readme_text):
    start = readme_text.find("## Python to C name map")
    if start < 0:
        raise SystemExit("README.md has no 'Python to C name map' section")
    end = readme_text.find("\n## ", start + 1)
    table = readme_text[start:end if end > 0 else None]
    keys = set()
    for line in table.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cols = line.split("|")
        if len(cols) < 3:
            continue
        for ident in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", cols[1]):
            if ident[0].isupper() or "_" in ident:
                keys.add(norm(ident))
        for noun in re.findall(r"\bmp_([a-z_]+?)_(?:new|open)\b", cols[2]):
            keys.add(norm(noun))
    keys.discard("")
    return keys


def sentences(text):
    # Join wrapped lines, drop code blocks and comment markers.
    text = re.sub(r"```.*?```", ". ", text, flags=re.S)
    text = re.sub(r"^\s*(?:/?\*+/?|//)", " ", text, flags=re.M)
    text = re.sub(r"\s+", " ", text)
    return re.split(r"(?<=[.!?])\s+|\|", text)


# Plain English words that are also names in the map; in prose they rarely
# mean the object ("the values managers exchange", "by name").
STOP = {"python", "name", "value", "multiprocessing"}


def stale_words(sentence, keys):
    words = re.findall(r"[A-Za-z][A-Za-z0-9_'-]*", sentence)
    found = []
    for i, w in enumerate(words):
        prev = words[i - 1] if i > 0 else ""
        if re.search(r"[A-Z]{2,}", prev):
            continue
        cands = [norm(w)]
        if i + 1 < len(words):
            cands.append(norm(w + words[i + 1]))
        for c in cands:
            for k in (c, c[:-1] if c.endswith("s") else None):
                if k and k in keys and len(k) > 2 and k not in STOP:
                    found.append(k)
    return sorted(set(found))


def check_text(text, keys):
    problems = []
    for s in sentences(text):
        if PROMISE.search(s):
            words = stale_words(s, keys)
            if words:
                problems.append((s.strip(), words))
    return problems


def self_test():
    readme = ("## Python to C name map\n\n| Python | multiproc | Notes |\n"
              "|---|---|---|\n"
              "| `shared_memory.SharedMemory(name)` | "
              "`mp_shared_memory_new(&s, n, 1, NULL)` | |\n"
              "| `multiprocessing.Pool(n)` | `mp_pool_new(&p, NULL)` | |\n"
              "| `Pipe()` | `mp_pipe(&a, &b, 1)` | |\n")
    keys = name_map_concepts(readme)
    stale = ["Shared memory and connections are planned for later releases.",
             "Pools follow in later releases.",
             "A pipe will come in a future release."]
    fine = ["Managers and the MPI pool follow in later releases.",
            "An MPI-backed pool is planned.",
            "Pools exist; nothing is promised here."]
    bad = 0
    for s in stale:
        if not check_text(s, keys):
            print("self-test: not flagged:", s)
            bad += 1
    for s in fine:
        if check_text(s, keys):
            print("self-test: flagged wrongly:", s)
            bad += 1
    print("self-test:", "FAILED" if bad else "ok")
    return 1 if bad else 0


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    root = pathlib.Path(sys.argv[1])
    keys = name_map_concepts((root / "README.md").read_text())
    files = [root / "README.md"] + sorted((root / "docs").glob("*.md")) + \
        sorted((root / "include" / "multiproc").glob("*.h"))
    bad = 0
    for f in files:
        for s, words in check_text(f.read_text(), keys):
            print(f"{f.relative_to(root)}: promises for later what the name "
                  f"map has ({', '.join(words)}):\n    {s}")
            bad += 1
    if bad:
        print(f"{bad} stale promise(s): update the text")
        return 1
    print(f"no stale promises ({len(files)} files, {len(keys)} concepts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
