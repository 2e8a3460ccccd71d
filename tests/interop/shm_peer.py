"""shm_peer.py - the Python side of tests/interop/test_interop_shm.c.

Each command is one half of a two-program exchange with the C test, over
stdin/stdout lines: the creator prints "ready" once its block is set up and
waits for a line from C before checking what C wrote; the attacher checks
what C wrote, writes its own changes and exits. Exit status 0 means every
check held; a failed check prints why and exits 1.

  create-shm NAME   SharedMemory(NAME, create=True, size=256), buf[0] = 0xab
  attach-shm NAME   attach, expect buf[0] == 0xab, write buf[1] = 0xcd
  create-sl NAME    ShareableList of every type under NAME
  attach-sl NAME    attach to C's ShareableList, check it, change it

An attacher unregisters the block from Python's resource tracker, which
would otherwise unlink a block it merely attached to when this program
exits (CPython gh-82300); multiproc's tracker never does that.
"""

import sys
from multiprocessing import resource_tracker, shared_memory


def check(cond, what):
    if not cond:
        print("FAILED: " + what, flush=True)
        sys.exit(1)


def forget(shm):
    resource_tracker.unregister(shm._name, "shared_memory")


def create_shm(name):
    shm = shared_memory.SharedMemory(name=name, create=True, size=256)
    shm.buf[0] = 0xAB
    print("ready", shm.size, flush=True)
    sys.stdin.readline()
    check(shm.buf[1] == 0xCD, "C wrote buf[1] = 0xcd, saw %d" % shm.buf[1])
    shm.close()
    shm.unlink()


def attach_shm(name):
    shm = shared_memory.SharedMemory(name=name)
    forget(shm)
    check(shm.size == 256, "size 256, saw %d" % shm.size)
    check(shm.buf[0] == 0xAB, "buf[0] == 0xab, saw %d" % shm.buf[0])
    shm.buf[1] = 0xCD
    shm.close()
    print("done", flush=True)


PY_ITEMS = [42, -1.5, True, None, "h\u00e9llo w\u00f6rld", b"by\x00tes",
            "x" * 20, False]


def create_sl(name):
    sl = shared_memory.ShareableList(PY_ITEMS, name=name)
    print("ready", sl.format, flush=True)
    line = sys.stdin.readline().rstrip("\n")
    got = list(sl)
    # What C wrote; b"ab\x00" reads back as b"ab" here because Python
    # strips trailing NULs (the C side keeps them).
    want = ["from C", b"ab", False, 7, "h\u00e9llo w\u00f6rld", b"by\x00tes",
            None, 0.25]
    check(got == want, "list after C's changes: %r" % (got,))
    check(sl.format == line, "format %r, C says %r" % (sl.format, line))
    sl.shm.close()
    sl.shm.unlink()


def attach_sl(name):
    sl = shared_memory.ShareableList(name=name)
    forget(sl.shm)
    got = list(sl)
    want = [1, 2.5, True, None, "h\u00e9llo w\u00f6rld", b"ab", "",
            -(2 ** 63)]
    check(got == want, "list made by C: %r" % (got,))
    print(sl.format, flush=True)
    sl[0] = "py"
    sl[4] = "xyz" * 5
    sl[5] = None
    sl[6] = 12345
    sl[3] = 1.5
    sl.shm.close()
    print("done", flush=True)


def main():
    cmd, name = sys.argv[1], sys.argv[2]
    {"create-shm": create_shm, "attach-shm": attach_shm,
     "create-sl": create_sl, "attach-sl": attach_sl}[cmd](name)


if __name__ == "__main__":
    main()
