#!/usr/bin/env bash
# Installs the Debian packages a `make` target needs, when they are missing.
#
#   tools/system_packages.sh venv       python3-venv (what `python3 -m venv` needs)
#   tools/system_packages.sh services   the servers the memory stores' tests start:
#                                        redis-server with RediSearch, PostgreSQL
#
# A server named by REDIS_URL or DATABASE_URL is used instead of a throwaway one, so its
# packages are not needed. Missing packages are installed with apt-get when this user may
# (root, or passwordless sudo); otherwise the script stops at once with one line naming them.
set -euo pipefail

missing=()

need_venv() {
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
}

postgres_binaries_found() {
  local bindir
  if command -v pg_config >/dev/null 2>&1; then
    bindir=$(pg_config --bindir 2>/dev/null || true)
    [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ] && return 0
  fi
  for bindir in /usr/lib/postgresql/*/bin; do
    [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ] && return 0
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

need_services() {
  if [ -z "${REDIS_URL:-}" ]; then
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    [ -e /usr/lib/redis/modules/redisearch.so ] || missing+=(redis-redisearch)
  fi
  if [ -z "${DATABASE_URL:-}" ]; then
    postgres_binaries_found || missing+=(postgresql)
  fi
}

for group in "$@"; do
  case "$group" in
    venv) need_venv ;;
    services) need_services ;;
    *) echo "system_packages.sh: unknown group '$group' (venv, services)" >&2; exit 2 ;;
  esac
done

[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    as_root=(sudo -n)
  else
    echo "missing Debian packages: ${missing[*]} — install them with: sudo apt-get install ${missing[*]} (or set REDIS_URL / DATABASE_URL to running servers)" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing packages: ${missing[*]} — this system has no apt-get: install their equivalents (or set REDIS_URL / DATABASE_URL to running servers)" >&2
  exit 1
fi

echo "installing Debian packages: ${missing[*]}"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Installing a server package starts its system service; the tests start servers of their own.
if command -v service >/dev/null 2>&1; then
  for package in "${missing[@]}"; do
    case "$package" in
      redis-server | postgresql) "${as_root[@]}" service "$package" stop >/dev/null 2>&1 || true ;;
    esac
  done
fi
