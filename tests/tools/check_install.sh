#!/bin/sh
# check_install.sh BUILD_DIR CC - installs the build into a scratch prefix,
# as `make install PREFIX=...` does, and builds a small pool program against
# it the two ways users do: with pkg-config (shared, and static with
# --static, which must name every library the archive needs: libcrypto,
# msgpack and, when the MPI backend is in, libmpi) and with CMake's
# find_package. Each program must run and print the pool's result.
set -eu
build=$1
cc=${2:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pcdir=$(dirname "$(find "$tmp/prefix" -name multiproc.pc | head -n 1)")
libdir=$(dirname "$pcdir")
export PKG_CONFIG_PATH="$pcdir"
cat >"$tmp/prog.c" <<'PROG'
#include <multiproc.h>
#include <stdio.h>

static int square(const void *in, void *out) {
  *(int *)out = *(const int *)in * *(const int *)in;
  return 0;
}
MP_POOL_MAP(square)

int main(int argc, char **argv) {
  MP_CHECK(mp_child_main(argc, argv));
  int in[3] = {1, 2, 3}, out[3];
  mp_pool *p;
  MP_CHECK(mp_pool_new(&p, &(mp_pool_opts){.processes = 2}));
  MP_CHECK(mp_pool_map(p, square, in, 3, sizeof *in, out, sizeof *out, NULL));
  mp_pool_free(p);
  printf("%d %d %d\n", out[0], out[1], out[2]);
  return 0;
}
PROG
check() {
  out=$("$1")
  if [ "$out" != "1 4 9" ]; then
    echo "check_install: $1 printed '$out', not '1 4 9'" >&2
    exit 1
  fi
}
# Shared, through pkg-config.
# shellcheck disable=SC2046
"$cc" "$tmp/prog.c" -o "$tmp/shared" $(pkg-config --cflags --libs multiproc) \
  -Wl,-rpath,"$libdir"
check "$tmp/shared"
# Static, through pkg-config --static: the archive instead of the .so.
libs=$(pkg-config --static --libs multiproc | sed 's/-lmultiproc/-l:libmultiproc.a/')
# shellcheck disable=SC2086
"$cc" "$tmp/prog.c" -o "$tmp/static" $(pkg-config --cflags multiproc) $libs
if ldd "$tmp/static" | grep -q libmultiproc; then
  echo "check_install: the static program still loads libmultiproc.so" >&2
  exit 1
fi
check "$tmp/static"
# CMake's find_package, static and shared targets.
mkdir "$tmp/cm"
cp "$tmp/prog.c" "$tmp/cm/prog.c"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(multiproc REQUIRED)
add_executable(prog_shared prog.c)
target_link_libraries(prog_shared PRIVATE multiproc::multiproc)
add_executable(prog_static prog.c)
target_link_libraries(prog_static PRIVATE multiproc::multiproc_static)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
check "$tmp/cm/build/prog_shared"
check "$tmp/cm/build/prog_static"
echo "check_install: pkg-config (shared, static) and find_package (shared, static) programs run"
