#!/usr/bin/env bash
# Runs the whole HemoStat stack on this machine against the host's Docker:
# redis-server (unless REDIS_URL points at one), the Lambda emulator running
# every function of template.yaml, the bridge, and the collector.
# Ctrl-C stops everything it started.
#
#   scripts/stack.sh              # build (release) and run
#   REDIS_URL=redis://:pw@h:6379 scripts/stack.sh
#   DOCKER_HOST=unix:///path/docker.sock scripts/stack.sh
#   HEMOSTAT_PROFILE=debug scripts/stack.sh     # faster build, slower binaries
#   HEMOSTAT_SKIP_BUILD=1 scripts/stack.sh      # use what target/ already has
#
# Settings come from the environment (docs/src/configuration.md: every variable), or from
# a .env file at the repository root.
#
# Set-up is its own: what it needs and lacks (redis-server and redis-cli
# unless REDIS_URL is set; a C linker to build) it installs with apt-get when
# it runs as root on a system that has apt-get, like scripts/test-env.sh
# install; otherwise it stops and prints the exact command to run. Rust
# (cargo) is never installed for you: the message says how. With everything
# present the checks cost a few `command -v`.
#
# Commands are signed (Ed25519): unless HEMOSTAT_COMMAND_SIGNING_KEY is set,
# the first start generates a key pair with `hemostat keys generate` in
# $HEMOSTAT_STATE_DIR (default .hemostat): command_signing.key (mode 0600,
# the responder's and `hemostat`'s) and command_signing.pub (the
# collector's HEMOSTAT_COMMAND_PUBLIC_KEYS); every later start reuses them.
# The collector never gets the private key. Rotate: see docs/src/cli.md.
#
# The emulator and the dashboard authenticate their callers, the same way:
# - the emulator's token (HEMOSTAT_LAMBDA_TOKEN), a new one every start in
#   $HEMOSTAT_STATE_DIR/lambda.token (0600), given to the emulator and the
#   bridge only;
# - the dashboard's token (DASHBOARD_AUTH_TOKEN), kept like the command key
#   in $HEMOSTAT_STATE_DIR/dashboard.token: the password a browser asks for.
# Locally the dashboard's and the exporter's function URLs are AuthType NONE
# (template parameters DashboardUrlAuthType, ExporterUrlAuthType): the
# dashboard then requires its token, and Prometheus scrapes the exporter on
# loopback (EXPORTER_BEARER_TOKEN makes it require one too).
# HEMOSTAT_LOCAL_PARAMETER_OVERRIDES set by you come after these and win.
#
# Redis (unless REDIS_URL is set) has no user without a password: nobody
# can log in as its default user (scripts/lib/redis-users.sh says why it is
# not simply off), and every component connects as an ACL user of its
# own with the least keys, channels and commands it needs (`hemostat acl`):
# the collector can write only its host's keys, cannot command another host
# nor ask for a remediation. Passwords in $HEMOSTAT_STATE_DIR/redis/ (0600),
# the functions' handed over by the emulator's --env-vars file there; the
# operator's URL in $HEMOSTAT_STATE_DIR/redis.url, where `hemostat` finds it.
# Its data is durable (infra/redis/durability.conf: append-only file,
# fsync every second) in $HEMOSTAT_STATE_DIR/redis/data (0700): silences,
# cooldowns, circuit breakers, the collectors' registry and the streams
# outlive a restart of the stack or a crash of Redis.
# No secret is ever printed, only where it is.
#
# The collector keeps its place in Docker's event stream in
# $HEMOSTAT_STATE_DIR/collector/ (its HEMOSTAT_COLLECTOR_STATE_DIR): stopped and
# started again, it reports the exits it missed meanwhile.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib/secrets.sh
source "$root/scripts/lib/secrets.sh"
# shellcheck source=scripts/lib/redis-users.sh
source "$root/scripts/lib/redis-users.sh"

if [[ -f .env ]]; then
  set -a
  # shellcheck disable=SC1091
  source .env
  set +a
fi

state="${HEMOSTAT_STATE_DIR:-$root/.hemostat}"
mkdir -p "$state/logs"
# Absolute: redis-server changes into its data folder before it reads its
# ACL file, and writes its pid and log files from there.
state=$(cd "$state" && pwd)
logs="$state/logs"

: "${DOCKER_HOST:=unix:///var/run/docker.sock}"
: "${HEMOSTAT_PROFILE:=release}"
: "${HEMOSTAT_LOCAL_LISTEN:=127.0.0.1:9001}"
export DOCKER_HOST

die() { echo "error: $*" >&2; exit 1; }

# --- set-up: what this script needs ------------------------------------------

# The oldest toolchain that builds the workspace (Cargo.toml's rust-version).
rust_version=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
building=1
[[ "${HEMOSTAT_SKIP_BUILD:-0}" == 1 ]] && building=0

# Debian/Ubuntu packages of the commands that are missing.
packages=()
want() { command -v "$1" >/dev/null 2>&1 || packages+=("${@:2}"); }

if ((building)); then
  command -v cargo >/dev/null 2>&1 || die "cargo (Rust $rust_version or newer) is not installed; install it with:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\"
then run scripts/stack.sh again"
  have=$(rustc --version 2>/dev/null | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
  if [[ -n "$have" && -n "$rust_version" ]] &&
    [[ "$(printf '%s\n' "$rust_version" "$have" | sort -V | head -n1)" != "$rust_version" ]]; then
    die "rustc $have is older than $rust_version, which the workspace needs; update it with: rustup update stable"
  fi
  # The linker cargo calls, and the C library it links against.
  want cc gcc libc6-dev
fi
if [[ -z "${REDIS_URL:-}" ]]; then
  want redis-server redis-server
  want redis-cli redis-tools
fi

if ((${#packages[@]})); then
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  hint=""
  [[ " ${packages[*]} " == *" redis-"* ]] && hint=" (or set REDIS_URL to a Redis of yours)"
  if ! command -v apt-get >/dev/null 2>&1; then
    die "missing: ${packages[*]} (Debian package names) and there is no apt-get here: install their equivalents with your package manager$hint, then run scripts/stack.sh again"
  fi
  if [[ "$(id -u)" != 0 ]]; then
    die "missing packages: ${packages[*]}; install them with:
  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages[*]}
then run scripts/stack.sh again$hint"
  fi
  echo "== installing: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  installed=(redis-server redis-cli)
  ((building)) && installed+=(cc)
  for c in "${installed[@]}"; do
    [[ "$c" == redis-* && -n "${REDIS_URL:-}" ]] && continue
    command -v "$c" >/dev/null 2>&1 || die "'$c' still missing after apt-get install ${packages[*]}"
  done
fi

command -v docker >/dev/null 2>&1 ||
  echo "note: no docker CLI here; HemoStat does not need it, the README's and the book's examples do (Debian/Ubuntu: apt-get install docker.io, or Docker's docker-ce-cli)" >&2

docker_socket=${DOCKER_HOST#unix://}
if [[ "$DOCKER_HOST" == unix://* ]]; then
  [[ -S "$docker_socket" ]] || die "no Docker socket at $docker_socket; start Docker or set DOCKER_HOST"
  [[ -r "$docker_socket" && -w "$docker_socket" ]] ||
    die "no permission on $docker_socket; run: sudo usermod -aG docker $(id -un) (then log in again), or run as root"
fi

# --- who may call the emulator and see the dashboard -------------------------

# Given to the emulator and the bridge below, to no other process.
if [[ -n "${HEMOSTAT_LAMBDA_TOKEN:-}" ]]; then
  lambda_token=$HEMOSTAT_LAMBDA_TOKEN
  lambda_note="HEMOSTAT_LAMBDA_TOKEN from the environment"
else
  secrets_fresh "$state/lambda.token"
  lambda_token=$REPLY
  lambda_note="the token in $state/lambda.token (new every start)"
fi
unset HEMOSTAT_LAMBDA_TOKEN
dashboard_file="$state/dashboard.token"
if [[ -n "${DASHBOARD_AUTH_TOKEN:-}" ]]; then
  dashboard_token=$DASHBOARD_AUTH_TOKEN
  dashboard_note="DASHBOARD_AUTH_TOKEN from the environment"
else
  [[ -e "$dashboard_file" ]] || echo "== generating the dashboard's token in $dashboard_file"
  secrets_keep "$dashboard_file"
  dashboard_token=$REPLY
  dashboard_note="the token in $dashboard_file (mode 0600; delete it and restart to rotate)"
fi
unset DASHBOARD_AUTH_TOKEN
echo "== the emulator requires $lambda_note; the dashboard requires $dashboard_note"

pids=()
# shellcheck disable=SC2317 # invoked by the traps below
stop_all() {
  # Ignore (not reset) further signals: a second Ctrl-C must not cut the
  # teardown short and leave redis-server behind.
  trap '' INT TERM
  trap - EXIT
  echo "stopping HemoStat..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_redis
}

# Only the redis-server this script started: a stale pidfile must never
# make us kill an unrelated process that reused the pid.
stop_redis() {
  local pidfile="$state/redis.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid=$(cat "$pidfile")
  if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server* ]]; then
    kill "$pid" 2>/dev/null || true
    # Gone before its port is looked at again (up to 5 s).
    for _ in $(seq 50); do
      [[ -e "/proc/$pid" ]] || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
}
trap stop_all EXIT
trap "stop_all; exit 130" INT
trap "stop_all; exit 143" TERM

if [[ "${HEMOSTAT_SKIP_BUILD:-0}" == 1 ]]; then
  echo "== using the binaries already built in target/$HEMOSTAT_PROFILE"
else
  # What the stack runs and nothing else: not the benchmarks, the fuzzer or
  # the all-in-one supervisor the workspace also builds.
  packages=(-p hemostat-local -p hemostat-bridge -p hemostat-collector -p hemostat-cli
    -p hemostat-analyzer -p hemostat-responder -p hemostat-alert -p hemostat-exporter -p hemostat-dashboard)
  echo "== building ($HEMOSTAT_PROFILE): the stack's packages"
  if [[ "$HEMOSTAT_PROFILE" == release ]]; then
    cargo build --release --bins "${packages[@]}"
  else
    cargo build --bins "${packages[@]}"
  fi
fi
bin="$root/target/$HEMOSTAT_PROFILE"
for b in hemostat-local hemostat-bridge hemostat-collector hemostat; do
  [[ -x "$bin/$b" ]] || die "$bin/$b is missing; build it with: cargo build --bins$([[ "$HEMOSTAT_PROFILE" == release ]] && echo " --release") ${packages[*]:-}"
done

# --- the command signing keys -------------------------------------------------

key_file="$state/command_signing.key"
public_file="$state/command_signing.pub"
if [[ -n "${HEMOSTAT_COMMAND_SIGNING_KEY:-}" ]]; then
  [[ -n "${HEMOSTAT_COMMAND_PUBLIC_KEYS:-}" ]] ||
    die "HEMOSTAT_COMMAND_SIGNING_KEY is set but HEMOSTAT_COMMAND_PUBLIC_KEYS is not: give the collector its public key"
  signing_key=$HEMOSTAT_COMMAND_SIGNING_KEY
  public_keys=$HEMOSTAT_COMMAND_PUBLIC_KEYS
  echo "== commands are signed with HEMOSTAT_COMMAND_SIGNING_KEY from the environment"
else
  if [[ ! -e "$key_file" ]]; then
    echo "== generating the command signing key pair in $state"
    "$bin/hemostat" keys generate --dir "$state" >/dev/null || die "could not generate the command signing keys in $state"
  fi
  secrets_read "$key_file"
  signing_key=$REPLY
  [[ -f "$public_file" ]] || die "$public_file is missing; delete $key_file and start again for a new pair"
  public_keys=$(<"$public_file")
  echo "== commands are signed with the key in $key_file (mode 0600); the collector verifies with $public_file"
fi
unset HEMOSTAT_COMMAND_SIGNING_KEY HEMOSTAT_COMMAND_PUBLIC_KEYS

redis_users_host

# --- Redis: ours, with one ACL user per component, or yours -----------------

redis_dir="$state/redis"
operator_url_file="$state/redis.url"
if [[ -z "${REDIS_URL:-}" ]]; then
  port=${HEMOSTAT_REDIS_PORT:-6379}
  stop_redis
  # Something else there (a packaged redis-server's service, say) would
  # answer our pings and silently become the stack's Redis.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "127.0.0.1:$port is taken (a redis-server service? systemctl stop redis-server); set HEMOSTAT_REDIS_PORT to a free port, or REDIS_URL=redis://127.0.0.1:$port to use that Redis"
  fi
  # No user without a password: nobody can log in as the default user, and
  # each component gets a user of its own with the least keys and commands
  # it needs.
  redis_users "$state" "$HEMOSTAT_HOST" "$port" "$bin/hemostat"
  # Durable: the settings compose.yaml's Redis and the durability test use
  # too; the data of every earlier start is loaded again.
  redis_data="$redis_dir/data"
  mkdir -p "$redis_data"
  chmod 0700 "$redis_data"
  echo "== starting redis-server on 127.0.0.1:$port (no user without a password; one ACL user per component, passwords in $redis_dir; data in $redis_data, append-only, fsync every second)"
  redis-server "$root/infra/redis/durability.conf" --bind 127.0.0.1 --port "$port" --dir "$redis_data" \
    --aclfile "$redis_dir/users.acl" --daemonize yes --pidfile "$state/redis.pid" --logfile "$logs/redis.log"
  pong() { [[ "$(REDISCLI_AUTH=$operator_password redis-cli --user hemostat-operator -p "$port" ping 2>/dev/null)" == PONG ]]; }
  # It answers LOADING until the earlier data is loaded: wait for that (up
  # to a minute), unless it died (a damaged AOF: its log says what to do).
  for i in $(seq 600); do
    pong && break
    redis_pid=$(cat "$state/redis.pid" 2>/dev/null || true)
    if [[ -n "$redis_pid" && ! -e "/proc/$redis_pid" ]] || [[ -z "$redis_pid" && $i -gt 50 ]]; then
      die "redis-server exited; see $logs/redis.log"
    fi
    sleep 0.1
  done
  pong || die "redis-server did not answer on 127.0.0.1:$port; see $logs/redis.log"
  env_vars="$redis_dir/functions.env.json"
  redis_note="the operator's URL in $operator_url_file (mode 0600)"
else
  # Yours: every component uses it (per-component users: `hemostat acl`, docs/src/cli.md).
  rm -f "$operator_url_file"
  collector_redis_url=$REDIS_URL
  bridge_redis_url=$REDIS_URL
  functions_redis_url=$REDIS_URL
  env_vars=""
  redis_note="the same REDIS_URL"
fi
unset REDIS_URL

start() {
  local name=$1; shift
  "$@" > >(sed -u "s/^/[$name] /" | tee -a "$logs/$name.log") 2>&1 &
  pids+=($!)
}

echo "== starting the Lambda emulator ($HEMOSTAT_LOCAL_LISTEN) with every function of template.yaml"
# Exported for the emulator alone (the dashboard function gets its token
# through it: template.yaml declares DASHBOARD_AUTH_TOKEN), then withdrawn.
export HEMOSTAT_LAMBDA_TOKEN=$lambda_token DASHBOARD_AUTH_TOKEN=$dashboard_token HEMOSTAT_COMMAND_SIGNING_KEY=$signing_key
export HEMOSTAT_LOCAL_PARAMETER_OVERRIDES="DashboardUrlAuthType=NONE ExporterUrlAuthType=NONE ${HEMOSTAT_LOCAL_PARAMETER_OVERRIDES:-}"
if [[ -n "$env_vars" ]]; then
  start local "$bin/hemostat-local" --template template.yaml --listen "$HEMOSTAT_LOCAL_LISTEN" --bin-dir "$bin" --env-vars "$env_vars"
else
  REDIS_URL=$functions_redis_url start local "$bin/hemostat-local" --template template.yaml --listen "$HEMOSTAT_LOCAL_LISTEN" --bin-dir "$bin"
fi
unset DASHBOARD_AUTH_TOKEN HEMOSTAT_COMMAND_SIGNING_KEY
for _ in $(seq 100); do
  (echo > "/dev/tcp/${HEMOSTAT_LOCAL_LISTEN%:*}/${HEMOSTAT_LOCAL_LISTEN#*:}") 2>/dev/null && break
  sleep 0.1
done

echo "== starting the bridge"
REDIS_URL=$bridge_redis_url HEMOSTAT_LAMBDA_ENDPOINT="http://$HEMOSTAT_LOCAL_LISTEN" start bridge "$bin/hemostat-bridge"
unset HEMOSTAT_LAMBDA_TOKEN

echo "== starting the collector (Docker at $DOCKER_HOST; its place in Docker's events and its outbox kept in $state/collector)"
# Its own state folder (cursor.json, outbox/): stopped and started again, it
# reports the exits it missed meanwhile, and delivers what Redis had not taken.
REDIS_URL=$collector_redis_url HEMOSTAT_COMMAND_PUBLIC_KEYS=$public_keys HEMOSTAT_COLLECTOR_STATE_DIR="$state/collector" \
  start collector "$bin/hemostat-collector"

echo "Dashboard: http://$HEMOSTAT_LOCAL_LISTEN/urls/hemostat-dashboard/ (your browser asks for a user name, any, and a password: $dashboard_note)"
if [[ "$dashboard_note" == "the token in"* ]]; then
  echo "  from a script: curl -H \"Authorization: Bearer \$(cat $dashboard_file)\" http://$HEMOSTAT_LOCAL_LISTEN/urls/hemostat-dashboard/api/containers"
fi
echo "Metrics: http://$HEMOSTAT_LOCAL_LISTEN/urls/hemostat-exporter/metrics"
echo "HemoStat is running; logs in $logs. Watch events with: $bin/hemostat events --follow"
if [[ -f "$key_file" && "$(<"$key_file")" == "$signing_key" ]]; then
  if [[ -n "${HEMOSTAT_STATE_DIR:-}" ]]; then
    key_note="with HEMOSTAT_STATE_DIR=$state it reads the signing key from $key_file"
  else
    key_note="run in $root or below, it reads the signing key from $key_file"
  fi
else
  key_note="with the same HEMOSTAT_COMMAND_SIGNING_KEY"
fi
echo "Operator command: $bin/hemostat status ($redis_note; $key_note)"
wait -n "${pids[@]}" || true
echo "a component exited; see $logs" >&2
exit 1
