#!/usr/bin/env python3
"""check_docs.py - every complete program shown in the docs equals its file
in docs/examples/, and every excerpt that follows a link to an example is a
contiguous run of that file's lines."""
import pathlib, re, sys, textwrap
root = pathlib.Path(sys.argv[1])
ex = root / "docs" / "examples"
bad = 0
pages = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
seen = set()
for page in pages:
    text = page.read_text()
    for m in re.finditer(r"```c\n(.*?)```", text, re.S):
        block = m.group(1)
        head = re.match(r"/\* (\w+\.c) - ", block)
        if head:
            f = ex / head.group(1)
            seen.add(f.name)
            if not f.exists() or f.read_text() != block:
                print(f"{page.name}: block {head.group(1)} differs from {f}")
                bad += 1
            continue
        # an excerpt: the nearest preceding link to docs/examples/X.c
        before = text[:m.start()]
        links = re.findall(r"examples/(\w+\.c)", before[-600:])
        if page.name == "README.md" and links:
            f = ex / links[-1]
            seen.add(f.name)
            want = block.rstrip("\n").split("\n")
            lines = f.read_text().split("\n")
            found = any(textwrap.dedent("\n".join(lines[i:i + len(want)])) ==
                        "\n".join(want) for i in range(len(lines)))
            if not found:
                print(f"{page.name}: excerpt not found verbatim in {f.name}:\n{block}")
                bad += 1
for f in sorted(ex.glob("*.c")):
    if f.name not in seen:
        print(f"{f.name}: not shown in any page")
print("ok" if bad == 0 else f"{bad} problem(s)")
sys.exit(1 if bad else 0)
