#!/bin/sh
# install-deps.sh - install the Debian packages a make target needs.
# Arguments are "probe:package" pairs; a probe is a command name or a file
# path. Missing packages are installed with apt-get when running as root;
# otherwise the exact apt-get line is printed and the script fails.
set -eu
missing=""
for pair in "$@"; do
  probe=${pair%%:*}
  pkg=${pair#*:}
  case "$probe" in
    /*) [ -e "$probe" ] && continue ;;
    *) command -v "$probe" >/dev/null 2>&1 && continue ;;
  esac
  case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "missing packages; run as root:" >&2
  echo "  apt-get install -y$missing" >&2
  exit 1
fi
