# Throwaway services for tests and benchmarks. Source it; it registers its own cleanup.
# Defines: require_tools, ensure_moto_venv, start_postgres, start_moto, start_localcloud.

MOTO_VERSION="5.2.5"
AIOHTTP_VERSION="3.14.5"
VENV="${GALLERY_VENV:-$root/.cache/venv}"
WORK="$(mktemp -d /tmp/gallery-test.XXXXXX)"
chmod 755 "$WORK"
PIDS=()

cleanup() {
  local status=$?
  if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_LOGS:-}" ] && [ -d "$WORK" ]; then
    cp "$WORK"/*.log "$KEEP_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "error: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_bin_dir() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return
  echo ""
}

require_tools() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
  command -v python3 >/dev/null || die "python3 not found: install Python 3 (it runs the moto AWS emulator)"
  command -v openssl >/dev/null || die "openssl not found: apt-get install openssl (it makes the test Postgres's TLS certificate)"
  PG_BIN="$(pg_bin_dir)"
  [ -n "$PG_BIN" ] || die "PostgreSQL server binaries not found: apt-get install postgresql-15, or set PG_BIN to the folder holding initdb"
}

# What the local cloud needs, checked before anything is built: root (network and mount
# namespaces), iproute2, and a postgres user for initdb.
require_localcloud_tools() {
  [ "$(id -u)" = 0 ] || die "the local cloud runs instances in network namespaces and needs root: run scripts/test as root (sudo, a container or a VM)"
  command -v ip >/dev/null || die "ip not found: apt-get install iproute2 (the local cloud's network namespaces)"
  command -v unshare >/dev/null || die "unshare not found: apt-get install util-linux (the local cloud's sandboxes)"
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user for initdb: useradd --system postgres"
}

# Run a command as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user for initdb: useradd --system postgres"
    setpriv --reuid=postgres --regid="$(id -g postgres)" --init-groups -- "$@"
  else
    "$@"
  fi
}

ensure_moto_venv() {
  if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c "import moto,aiohttp,sys; sys.exit(moto.__version__ != '$MOTO_VERSION' or aiohttp.__version__ != '$AIOHTTP_VERSION')" 2>/dev/null; then
    return
  fi
  echo "==> installing moto[server]==$MOTO_VERSION and aiohttp==$AIOHTTP_VERSION into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed: apt-get install python3-venv"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "aiohttp==$AIOHTTP_VERSION" \
    || die "pip could not install moto[server]==$MOTO_VERSION and aiohttp==$AIOHTTP_VERSION"
}

start_postgres() {
  PG_DATA="$WORK/pg"
  PG_PORT="$(free_port)"
  mkdir -p "$PG_DATA"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK" "$PG_DATA"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log"; die "initdb failed"; }
  # TLS is required for TCP clients, as on RDS (rds.force_ssl): the app must speak it, and
  # verify it: the server's certificate is signed by a CA of the suite's own, which the
  # tests trust (sslmode=verify-full), as the app trusts the RDS CAs on AWS.
  PG_CA="$WORK/postgres-ca.crt"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=gallery test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$WORK/postgres-ca.key" -out "$PG_CA" >/dev/null 2>&1 || die "openssl could not make a CA"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$PG_DATA/server.key" -out "$WORK/server.csr" >/dev/null 2>&1 || die "openssl could not make a key"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$WORK/server.ext"
  openssl x509 -req -in "$WORK/server.csr" -CA "$PG_CA" -CAkey "$WORK/postgres-ca.key" -CAcreateserial \
    -days 2 -extfile "$WORK/server.ext" -out "$PG_DATA/server.crt" >/dev/null 2>&1 || die "openssl could not sign a certificate"
  chmod 600 "$PG_DATA/server.key"
  chmod 644 "$PG_CA"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DATA/server.key" "$PG_DATA/server.crt"
  cat >>"$PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DATA'
ssl = on
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  cat >"$PG_DATA/pg_hba.conf" <<HBA
local   all all              trust
hostssl all all 127.0.0.1/32 trust
HBA
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg.log" -w -t 60 start >/dev/null \
    || { cat "$WORK/pg.log"; die "PostgreSQL did not start"; }
  GALLERY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=verify-full&sslrootcert=$PG_CA"
  GALLERY_TEST_POSTGRES_CA="$PG_CA"
}

start_moto() {
  local port
  port="$(free_port)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
  PIDS+=("$!")
  GALLERY_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$GALLERY_TEST_S3_ENDPOINT/moto-api/')" 2>/dev/null; then
      return
    fi
    sleep 0.1
  done
  cat "$WORK/moto.log"
  die "moto server did not start on port $port"
}

# The local cloud (localcloud/): moto plus instances that boot, RDS as real PostgreSQL,
# probed target health, forwarding load balancers. Needs root for network namespaces.
start_localcloud() {
  [ "$(id -u)" = 0 ] || die "the local cloud runs instances in network namespaces and needs root: run scripts/test as root (e.g. in a container or VM)"
  local tool
  for tool in ip unshare setpriv curl openssl; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install iproute2 util-linux curl openssl"
  done
  id postgres >/dev/null 2>&1 || die "the local cloud's databases run as the 'postgres' user: useradd --system postgres"
  local ready="$WORK/localcloud.url"
  PG_BIN="$PG_BIN" PYTHONPATH="$root" "$VENV/bin/python" -m localcloud --state "$WORK/localcloud" \
    --ready-file "$ready" >"$WORK/localcloud.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 300); do
    if [ -s "$ready" ]; then
      LOCALCLOUD_URL="$(cat "$ready")"
      return
    fi
    kill -0 "${PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/localcloud.log"
  die "the local cloud did not start"
}

# Every request the suite sent was checked against AWS's service models by the local
# cloud (localcloud/validate.py); one that AWS would refuse fails the suite, even if the
# code under test coped with the refusal.
check_requests_valid() {
  local report
  report="$(python3 - "$LOCALCLOUD_URL" <<'PY'
import json, sys, urllib.request
status = json.load(urllib.request.urlopen(sys.argv[1] + "/_localcloud/status"))
faults = status["injected"]
print(f"{faults['violations']} request(s) AWS would refuse; {faults['lost_answers']} answers lost, "
      f"{faults['refused_not_visible']} calls refused as not yet visible, {faults['tokens_replayed']} client tokens replayed")
for v in faults["violation_list"]:
    print(f"  {v['operation']}: {v['code']}: {v['message']}")
sys.exit(1 if faults["violations"] else 0)
PY
)" || { echo "$report"; die "requests the local cloud refused as invalid (see localcloud/README.md, request validation)"; }
  echo "==> local cloud: $report"
}
