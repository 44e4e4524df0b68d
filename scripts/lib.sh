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

# The container image (scripts/image.sh): a static binary needs the musl target and, for the C in
# `ring` and mimalloc, musl-gcc; Debian's buildah builds the Containerfile without a daemon (vfs
# storage, no RUN steps so no runtime), umoci unpacks the result for its test, skopeo pushes it.
MUSL_TARGET="x86_64-unknown-linux-musl"
ensure_image_tools() {
  if ! rustup target list --installed | grep -qx "$MUSL_TARGET"; then
    say "adding the $MUSL_TARGET target"
    rustup target add "$MUSL_TARGET"
  fi
  local missing=()
  command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
  command -v buildah >/dev/null 2>&1 || missing+=(buildah)
  command -v umoci >/dev/null 2>&1 || missing+=(umoci)
  command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
  [ "${#missing[@]}" = 0 ] || apt_install "${missing[@]}"
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

# dev_registry_key: the EC P-256 key that signs builds' registry tokens (pipeline/registry.rs),
# made once per checkout; exports ENCLII_PIPELINE__REGISTRY_TOKEN__SIGNING_KEY.
dev_registry_key() {
  local file="$STATE/registry-token.pem"
  mkdir -p "$STATE"
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  [ -s "$file" ] || (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$file" 2>/dev/null)
  ENCLII_PIPELINE__REGISTRY_TOKEN__SIGNING_KEY="$(cat "$file")"
  export ENCLII_PIPELINE__REGISTRY_TOKEN__SIGNING_KEY
}

# registry_build: the registry the token service's test pushes to (CNCF distribution, pinned),
# built once from its Go module; exports ENCLII_TEST_REGISTRY_BIN.
REGISTRY_VERSION="v3.1.2"
registry_build() {
  local dir="${ENCLII_CACHE:-$HOME/.cache/enclii}/registry/$REGISTRY_VERSION"
  if [ ! -x "$dir/registry" ]; then
    command -v go >/dev/null 2>&1 || apt_install golang-go
    say "building the registry $REGISTRY_VERSION from its Go module (about a minute, once per machine)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    GOBIN="$dir.tmp" go install -trimpath -ldflags "-s -w" \
      "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  export ENCLII_TEST_REGISTRY_BIN="$dir/registry"
}

# py_tools: the notification tests' receivers (an SMTP server, aiosmtpd) and the Standard Webhooks
# reference library that verifies our signatures, pinned in server/tests/receivers/requirements.txt,
# in a venv keyed by that file; exports ENCLII_TEST_PYTHON.
py_tools() {
  local req="$ROOT/server/tests/receivers/requirements.txt" key dir
  key="$(sha256sum "$req" | cut -c1-12)"
  dir="${ENCLII_CACHE:-$HOME/.cache/enclii}/py/$key"
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    say "installing the notification tests' Python receivers (aiosmtpd, standardwebhooks)"
    rm -rf "$dir.tmp"
    python3 -m venv "$dir.tmp"
    "$dir.tmp/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  export ENCLII_TEST_PYTHON="$dir/bin/python"
}

# ---- The local Kubernetes control plane (scripts/cluster.sh) ------------------------------------

K8S_VERSION="v1.37.2"
# Keyed by the version and by cluster/go.sum, so that a change of any pinned module rebuilds.
cluster_bin_dir() {
  local key
  key="$(cat "$ROOT/cluster/go.mod" "$ROOT/cluster/go.sum" "$ROOT"/cluster/cmd/*/*.go | sha256sum | cut -c1-12)"
  echo "${ENCLII_CACHE:-$HOME/.cache/enclii}/cluster/$K8S_VERSION-$key/bin"
}

cluster_build() {
  local bin
  bin="$(cluster_bin_dir)"
  if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ] && [ -x "$bin/etcd" ]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || apt_install golang-go
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  say "building the control plane $K8S_VERSION from Go modules into $bin (about 25 minutes on 2 cores, once per machine)"
  mkdir -p "$bin.tmp"
  local ldflags="-s -w"
  local v
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=37 -X $v.gitTreeState=clean"
  done
  (cd "$ROOT/cluster" && go build -trimpath -ldflags "$ldflags" -o "$bin.tmp/" \
      ./cmd/etcd \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler)
  rm -rf "$bin"
  mv "$bin.tmp" "$bin"
}

# Pods of the simulated nodes get addresses in their stack's network, 10.N.0.0/16, which the
# machine routes to itself (like 127.0.0.0/8): the node simulator answers on them, and unlike
# loopback addresses the API server accepts them in EndpointSlices, so Services, the service proxy
# and Prometheus' scrapes all take their real paths. One network per stack, so that the test and
# bench stacks run beside the development one: STACK_NET (the N) is 244 for `run.sh`, 245 for
# `test.sh`, 246 for the deploy bench.
STACK_NETS="244 245 246"

ensure_pod_network() {
  local net="10.$1.0.0/16" routes
  routes="$(ip route show table local 2>/dev/null || true)"
  if ! grep -q "^local $net " <<<"$routes"; then
    command -v ip >/dev/null 2>&1 || apt_install iproute2
    say "routing $net to this machine (the simulated pods' addresses)"
    $SUDO ip route add local "$net" dev lo
  fi
}

# pki DIR: a CA and the certificates and keys of one local cluster (kept across restarts).
cluster_pki() {
  local pki="$1/pki"
  [ -s "$pki/done" ] && return 0
  mkdir -p "$pki"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
    -subj "/CN=enclii-local-ca" 2>/dev/null
  # cert NAME SUBJECT [SANS]
  cert() {
    local ext="$pki/$1.ext"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' > "$ext"
    [ -n "${3:-}" ] && printf 'subjectAltName=%s\n' "$3" >> "$ext"
    openssl req -new "${ec[@]}" -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "$2" 2>/dev/null
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 3650 -extfile "$ext" -out "$pki/$1.crt" 2>/dev/null
    rm -f "$pki/$1.csr" "$ext"
  }
  local n advertised=""
  for n in $STACK_NETS; do advertised="$advertised,IP:10.$n.0.1"; done
  cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1$advertised,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=enclii-local-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  # The simulated kubelets' serving certificate: every node address the simulator may use.
  local sans="DNS:localhost" i
  for n in $STACK_NETS; do
    for i in $(seq 10 29); do sans="$sans,IP:10.$n.0.$i"; done
  done
  cert kubelet "/CN=enclii-simulated-kubelet" "$sans"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key
  echo ok > "$pki/done"
}

# kubeconfig FILE SERVER USER: a kubeconfig that authenticates with USER's client certificate.
cluster_kubeconfig() {
  local file="$1" server="$2" user="$3" pki
  pki="$(dirname "$file")/pki"
  cat > "$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: enclii-local
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $pki/$user.crt
    client-key: $pki/$user.key
contexts:
- name: enclii-local
  context: {cluster: enclii-local, user: $user}
current-context: enclii-local
KUBECONFIG
  chmod 600 "$file"
}

# daemon DIR NAME CMD...: starts CMD in the background with its log and pid in DIR.
daemon() {
  local dir="$1" name="$2"
  shift 2
  "$@" >"$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# supervised DIR NAME CMD...: like `daemon`, but starts CMD again whenever it exits, as a kubelet
# does with a control plane's static pods: the controller-manager exits when it loses the API
# server while it builds its controllers (an API server restart). Its pid file names the
# supervisor; stopping that stops both.
supervised() {
  local dir="$1" name="$2"
  shift 2
  (
    child=""
    trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT
    while true; do
      "$@" >>"$dir/$name.log" 2>&1 &
      child=$!
      wait "$child" || true
      sleep 1
    done
  ) </dev/null >/dev/null 2>&1 &
  echo $! > "$dir/$name.pid"
}

# cluster_start DIR: starts (or reuses) a local control plane whose state lives in DIR; exports
# CLUSTER_DIR, CLUSTER_URL and ADMIN_KUBECONFIG (system:masters: for the node simulator and
# set-up only; Switchyard gets its ServiceAccount's kubeconfig from `enclii-nodes setup`).
cluster_start() {
  local dir="$1" bin
  cluster_build
  bin="$(cluster_bin_dir)"
  STACK_NET="${STACK_NET:-244}"
  ensure_pod_network "$STACK_NET"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  cluster_pki "$dir"
  export CLUSTER_DIR="$dir" ADMIN_KUBECONFIG="$dir/admin.kubeconfig"
  if alive "$dir/etcd.pid" && alive "$dir/kube-apiserver.pid" && alive "$dir/kube-controller-manager.pid" \
      && alive "$dir/kube-scheduler.pid"; then
    CLUSTER_URL="$(cat "$dir/url")"
    export CLUSTER_URL
    say "local cluster already running at $CLUSTER_URL"
    return 0
  fi
  cluster_stop "$dir"
  local etcd_port peer_port api_port cm_port sched_port
  etcd_port="$(free_port)"; peer_port="$(free_port)"; api_port="$(free_port)"
  cm_port="$(free_port)"; sched_port="$(free_port)"
  CLUSTER_URL="https://127.0.0.1:$api_port"
  export CLUSTER_URL
  echo "$CLUSTER_URL" > "$dir/url"
  local pki="$dir/pki"
  say "starting the local cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) at $CLUSTER_URL"
  # No fsync: a development and test cluster, recreated at will.
  daemon "$dir" etcd "$bin/etcd" --name local --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "local=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
  daemon "$dir" kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address "10.$STACK_NET.0.1" \
    --endpoint-reconciler-type none \
    --cert-dir "$pki" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --requestheader-client-ca-file "$pki/ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP
  cluster_kubeconfig "$dir/admin.kubeconfig" "$CLUSTER_URL" admin
  cluster_kubeconfig "$dir/controller-manager.kubeconfig" "$CLUSTER_URL" controller-manager
  cluster_kubeconfig "$dir/scheduler.kubeconfig" "$CLUSTER_URL" scheduler
  local i
  for i in $(seq 1 300); do
    if curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$CLUSTER_URL/readyz" >/dev/null 2>&1; then
      break
    fi
    alive "$dir/kube-apiserver.pid" || { tail -n 30 "$dir/kube-apiserver.log" >&2; echo "kube-apiserver exited" >&2; return 1; }
    [ "$i" = 300 ] && { tail -n 30 "$dir/kube-apiserver.log" >&2; echo "kube-apiserver not ready after 30 s" >&2; return 1; }
    sleep 0.1
  done
  : > "$dir/kube-controller-manager.log"; : > "$dir/kube-scheduler.log"
  supervised "$dir" kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$cm_port" --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key"
  supervised "$dir" kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
  # Ready once both have built their controllers: a controller-manager that loses the API server
  # while it still creates its controllers' clients exits (a kubelet would restart it; nothing
  # here does).
  local name port
  for name in kube-controller-manager:$cm_port kube-scheduler:$sched_port; do
    port="${name#*:}"; name="${name%%:*}"
    for i in $(seq 1 300); do
      curl -fsSk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
      alive "$dir/$name.pid" || { tail -n 20 "$dir/$name.log" >&2; echo "$name exited" >&2; return 1; }
      [ "$i" = 300 ] && { tail -n 20 "$dir/$name.log" >&2; echo "$name not healthy after 30 s" >&2; return 1; }
      sleep 0.1
    done
  done
  say "local cluster ready at $CLUSTER_URL (kubectl --kubeconfig $dir/admin.kubeconfig)"
}

cluster_stop() {
  local dir="$1" name
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if alive "$dir/$name.pid"; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$dir/$name.pid" || break; sleep 0.1; done
      alive "$dir/$name.pid" && kill -9 "$(cat "$dir/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

# The Gateway API CRDs, from the sigs.k8s.io/gateway-api module (standard channel).
GATEWAY_API_VERSION="v1.6.3"
gateway_api_crds() {
  local moddir
  moddir="$(cd "$ROOT/cluster" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  echo "$moddir/config/crd/standard"
}

# target_prune: the shared target directory keeps every test binary and incremental cache each
# build leaves (tens of GB after a few sessions; a full disk fails or stalls a run). Keeps the
# newest test executable and the two newest incremental caches of each crate.
target_prune() {
  local dir
  # The image's static build (scripts/image.sh --debug) keeps its own debug directory.
  for dir in "$(target_dir)/debug" "$(target_dir)/$MUSL_TARGET/debug"; do
    [ -d "$dir/deps" ] && target_prune_dir "$dir"
  done
  return 0
}

target_prune_dir() {
  python3 - "$1" <<'PY'
import collections, os, re, shutil, sys
root = sys.argv[1]
def newest(names, keep, path):
    groups = collections.defaultdict(list)
    for name in names:
        m = re.match(r'(.+)-[0-9a-z]+$', name)
        if m:
            groups[m.group(1)].append(name)
    for versions in groups.values():
        versions.sort(key=lambda n: os.path.getmtime(os.path.join(path, n)), reverse=True)
        for old in versions[keep:]:
            p = os.path.join(path, old)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
deps = os.path.join(root, 'deps')
newest([n for n in os.listdir(deps) if '.' not in n and os.access(os.path.join(deps, n), os.X_OK)
        and os.path.isfile(os.path.join(deps, n))], 1, deps)
inc = os.path.join(root, 'incremental')
if os.path.isdir(inc):
    newest(os.listdir(inc), 2, inc)
PY
}

# ---- The node simulator and Prometheus beside the local cluster ---------------------------------

target_dir() {
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then echo "$CARGO_TARGET_DIR"; else echo "$ROOT/target"; fi
}

# prometheus_start DIR SWITCHYARD_ADDR: Debian's Prometheus, scraping the simulated pods (listed
# by the node simulator, labelled by namespace, service and track as the canary queries expect)
# and Switchyard's own /metrics at SWITCHYARD_ADDR; exports PROMETHEUS_URL.
prometheus_start() {
  local dir="$1" switchyard="$2" interval="${PROMETHEUS_SCRAPE_INTERVAL:-5s}"
  command -v prometheus >/dev/null 2>&1 || apt_install prometheus
  if alive "$dir/prometheus.pid"; then
    PROMETHEUS_URL="$(cat "$dir/prometheus.url")"
    SWITCHYARD_METRICS_TOKEN="$(cat "$dir/metrics.token")"
    export PROMETHEUS_URL SWITCHYARD_METRICS_TOKEN
    return 0
  fi
  local port
  port="$(free_port)"
  PROMETHEUS_URL="http://127.0.0.1:$port"
  export PROMETHEUS_URL
  echo "$PROMETHEUS_URL" > "$dir/prometheus.url"
  # Switchyard's /metrics answers only this token (http.metrics_token).
  [ -s "$dir/metrics.token" ] || (umask 077; openssl rand -hex 24 > "$dir/metrics.token")
  cat > "$dir/prometheus.yml" <<PROM
global:
  scrape_interval: $interval
  scrape_timeout: $interval
scrape_configs:
  # Debian builds Prometheus without Kubernetes discovery: the node simulator writes the running
  # pods' http ports (labelled namespace, service, track, pod) to this file instead.
  - job_name: enclii-pods
    file_sd_configs:
      - files: ['$dir/scrape-targets.json']
        refresh_interval: 5s
  - job_name: switchyard
    authorization:
      type: Bearer
      credentials_file: '$dir/metrics.token'
    static_configs:
      - targets: ['$switchyard']
PROM
  daemon "$dir" prometheus prometheus --config.file "$dir/prometheus.yml" \
    --storage.tsdb.path "$dir/prometheus-data" --storage.tsdb.retention.time 2d \
    --web.listen-address "127.0.0.1:$port" --log.level warn
  for _ in $(seq 1 100); do
    curl -fsS "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1 && break
    alive "$dir/prometheus.pid" || { tail -n 20 "$dir/prometheus.log" >&2; echo "prometheus exited" >&2; return 1; }
    sleep 0.1
  done
  SWITCHYARD_METRICS_TOKEN="$(cat "$dir/metrics.token")"
  export SWITCHYARD_METRICS_TOKEN
  say "Prometheus on $PROMETHEUS_URL"
}

# local_stack_start DIR SWITCHYARD_ADDR: the local cluster, set up for Switchyard (Gateway API
# CRDs, deploy/rbac.yaml, a kubeconfig of its ServiceAccount at DIR/switchyard.kubeconfig), the
# node simulator and Prometheus. Exports CLUSTER_URL, ADMIN_KUBECONFIG, SWITCHYARD_KUBECONFIG,
# PROMETHEUS_URL, SWITCHYARD_METRICS_TOKEN.
local_stack_start() {
  local dir="$1" switchyard="$2"
  cluster_start "$dir"
  dir="$CLUSTER_DIR"
  (cd "$ROOT" && cargo build --quiet -p enclii-sandbox --bin enclii-nodes)
  local nodes
  nodes="$(target_dir)/debug/enclii-nodes"
  "$nodes" setup --kubeconfig "$ADMIN_KUBECONFIG" --crds "$(gateway_api_crds)" \
    --apply "$ROOT/deploy/rbac.yaml" --apply "$ROOT/sandbox/cluster/simulated-behaviours.yaml" \
    --service-account enclii-system/switchyard --write-kubeconfig "$dir/switchyard.kubeconfig"
  export SWITCHYARD_KUBECONFIG="$dir/switchyard.kubeconfig"
  if ! alive "$dir/nodes.pid"; then
    daemon "$dir" nodes "$nodes" run --kubeconfig "$ADMIN_KUBECONFIG" --pki "$dir/pki" \
      --ready-delay-ms "${NODES_READY_DELAY_MS:-1500}" --log-interval-ms "${NODES_LOG_INTERVAL_MS:-500}" \
      --scrape-targets "$dir/scrape-targets.json" --network "10.$STACK_NET.0.0/16"
  fi
  prometheus_start "$dir" "$switchyard"
  say "node simulator running (log: $dir/nodes.log)"
}

local_stack_stop() {
  local dir="$1" name
  for name in prometheus nodes; do
    alive "$dir/$name.pid" && kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
  cluster_stop "$dir"
}
