"""listener_peer.py - the Python side of tests/interop/test_interop_listener.c.

Runs CPython's own multiprocessing.connection Listener or Client against a
multiproc one, so every handshake byte is CPython's.

  client ADDRESS KEY   Client(ADDRESS, authkey=KEY); send b"hello from python",
                       expect b"hello from C"
  server ADDRESS KEY   Listener(ADDRESS, authkey=KEY); print the bound address
                       (multiproc's text form) on stdout, accept one client,
                       expect b"hello from C", send b"hello from python"

ADDRESS is multiproc's text form: "host:port" (a tuple for Python), "/path"
or "@name" (Python's "\\0name"). KEY is hex, "-" for no key (None) or "empty"
for b"". Exit status: 0 all held; 3 AuthenticationError; 4 an unexpected
message (for a client without a key: the server's challenge); 5 EOFError
(the other side closed); 1 anything else.
"""

import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener


def parse_address(text):
    if text.startswith("@"):
        return "\0" + text[1:], "AF_UNIX"
    if text.startswith("/"):
        return text, "AF_UNIX"
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return (host[1:-1], int(port)), "AF_INET6"
    return (host, int(port)), "AF_INET"


def format_address(address):
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(address, bytes):
        address = address.decode()
    if address.startswith("\0"):
        return "@" + address[1:]
    return address


def parse_key(text):
    if text == "-":
        return None
    if text == "empty":
        return b""
    return bytes.fromhex(text)


def main():
    cmd, address, key = sys.argv[1], sys.argv[2], parse_key(sys.argv[3])
    addr, family = parse_address(address)
    try:
        if cmd == "client":
            conn = Client(addr, family=family, authkey=key)
            conn.send_bytes(b"hello from python")
            got = conn.recv_bytes()
            if got != b"hello from C":
                print(f"peer: unexpected {got[:40]!r}", file=sys.stderr)
                return 4
        else:
            listener = Listener(addr, family=family, authkey=key)
            print(format_address(listener.address), flush=True)
            conn = listener.accept()
            got = conn.recv_bytes()
            if got != b"hello from C":
                print(f"peer: unexpected {got[:40]!r}", file=sys.stderr)
                return 4
            conn.send_bytes(b"hello from python")
            listener.close()
        conn.close()
        return 0
    except AuthenticationError as e:
        print(f"peer: AuthenticationError {e}", file=sys.stderr)
        return 3
    except EOFError:
        print("peer: EOFError", file=sys.stderr)
        return 5


if __name__ == "__main__":
    sys.exit(main())
