# Shared by scripts/run.sh, scripts/test.sh and scripts/bench.sh: toolchain set-up and the private
# PostgreSQL cluster. Sourced, never run. Every step checks before it installs, so it is idempotent.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.enclii"            # ignored by git: databases, logs, pid files
CARGO_LEPTOS_VERSION="0.3.7"
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# cargo-leptos runs the Node tools it finds on PATH instead of downloading its own (none can be fetched).
export LEPTOS_TAILWIND_VERSION="v4.3.5"
# Queries are checked at compile time against the committed .sqlx/ data (scripts/sqlx-prepare.sh).
export SQLX_OFFLINE=true

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

apt_install() {
  say "installing from apt: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# The wasm-bindgen CLI must be exactly the library version the lock file resolved.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_toolchain() {
  command -v curl >/dev/null 2>&1 || apt_install curl
  command -v node >/dev/null 2>&1 || apt_install nodejs npm
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(cargo leptos --version 2>/dev/null)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 20 minutes on 2 cores, once per machine)"
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
  fi
  local wbg
  wbg="$(wasm_bindgen_version)"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wbg" ]; then
    say "installing wasm-bindgen-cli $wbg"
    # Not --locked: one of its locked dependencies is no longer in the registry.
    cargo install wasm-bindgen-cli --version "$wbg"
  fi
  if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    say "installing Node tools (Tailwind, wasm-opt, Playwright, oidc-provider)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

# PostgreSQL server binaries: on PATH, or where Debian's packages put them.
pg_bin() {
  if command -v initdb >/dev/null 2>&1; then
    # Resolve symlinks: psql and createdb sit beside the real initdb, not beside a link to it.
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$dir" ]; then
    apt_install postgresql
    dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  echo "$dir"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root; run it as the `postgres` system user then.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    # From /, so that an unreadable working directory does not bother PostgreSQL's tools.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# pg_dir NAME: the data directory of the private cluster NAME: .enclii/NAME, unless the `postgres`
# user cannot reach the checkout (a clone under /root, say); then a directory of this checkout's own
# under /var/tmp, linked from .enclii/NAME.
pg_dir() {
  local dir="$STATE/$1"
  mkdir -p "$STATE"
  if [ "$(id -u)" = 0 ] && ! { as_pg_user true && runuser -u postgres -- test -x "$STATE"; } 2>/dev/null; then
    local alt
    alt="/var/tmp/enclii-pg-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)/$1"
    mkdir -p "$alt"
    chown postgres "$alt" "$(dirname "$alt")"
    [ -L "$dir" ] || { rm -rf "$dir"; ln -s "$alt" "$dir"; }
    dir="$alt"
  fi
  echo "$dir"
}

# pg_start NAME [fast]: starts (or reuses) the private cluster $STATE/NAME on a free loopback port and
# exports PG_URL_BASE (no database name). "fast" turns durability off: for throwaway test data only.
pg_start() {
  local name="$1" mode="${2:-}" dir bin port
  dir="$(pg_dir "$1")"
  bin="$(pg_bin)"
  mkdir -p "$STATE"
  if [ ! -f "$dir/PG_VERSION" ]; then
    say "creating PostgreSQL cluster in .enclii/$name"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then as_pg_user true; chown postgres "$dir"; fi
    as_pg_user "$bin/initdb" -D "$dir" --username=enclii --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  if as_pg_user "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    port="$(cat "$dir/enclii.port")"
  else
    port="$(free_port)"
    local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200"
    if [ "$mode" = fast ]; then
      opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    as_pg_user "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -o "$opts" start >/dev/null
    echo "$port" > "$dir/enclii.port"
  fi
  export PG_URL_BASE="postgres://enclii@127.0.0.1:$port"
  say "PostgreSQL .enclii/$name on 127.0.0.1:$port"
}

pg_stop() {
  local dir
  dir="$(pg_dir "$1")"
  [ -f "$dir/PG_VERSION" ] || return 0
  as_pg_user "$(pg_bin)/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
}

# pg_create_db NAME: creates the database on the running cluster unless it exists.
pg_create_db() {
  local bin
  bin="$(pg_bin)"
  local port="${PG_URL_BASE##*:}"
  if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U enclii -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$1'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U enclii "$1"
  fi
}

# standin_start PORT RP_ORIGIN: (re)starts the Plinto stand-in (a real OpenID provider, npm
# oidc-provider) on 127.0.0.1:PORT for a Switchyard at RP_ORIGIN; exports STANDIN_PID and the
# ENCLII_OIDC__* settings that point Switchyard at it. Development and tests only.
standin_start() {
  local port="$1" origin="$2" pidfile="$STATE/standin-$1.pid"
  mkdir -p "$STATE"
  if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  OP_PORT="$port" RP_ORIGIN="$origin" node "$ROOT/standin/plinto.mjs" >"$STATE/standin-$port.log" 2>&1 &
  STANDIN_PID=$!
  echo "$STANDIN_PID" > "$pidfile"
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" >/dev/null 2>&1 && break
    kill -0 "$STANDIN_PID" 2>/dev/null || { cat "$STATE/standin-$port.log" >&2; echo "the Plinto stand-in did not start" >&2; return 1; }
    sleep 0.1
  done
  export ENCLII_OIDC__ISSUER="http://127.0.0.1:$port"
  export ENCLII_OIDC__CLIENT_ID="switchyard"
  export ENCLII_OIDC__CLIENT_SECRET="switchyard-dev-secret"
  export ENCLII_OIDC__API_AUDIENCE="urn:switchyard:api"
  say "Plinto stand-in on http://127.0.0.1:$port (any login works; logins starting with 'admin' are platform admins)"
}

# dev_secrets_key: a random AES-256 key for secret values, kept in .enclii/ (development only; in
# production secrets.key comes from the operator's secret store).
dev_secrets_key() {
  local file="$STATE/secrets.key"
  mkdir -p "$STATE"
  [ -s "$file" ] || python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())' > "$file"
  chmod 600 "$file"
  ENCLII_SECRETS__KEY="$(cat "$file")"
  export ENCLII_SECRETS__KEY
}
