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
# Settings come from the environment (see README: every variable), or from
# a .env file at the repository root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state="$root/.hemostat"
logs="$state/logs"
mkdir -p "$logs"

if [[ -f .env ]]; then
  set -a
  # shellcheck disable=SC1091
  source .env
  set +a
fi

: "${DOCKER_HOST:=unix:///var/run/docker.sock}"
: "${HEMOSTAT_PROFILE:=release}"
: "${HEMOSTAT_LOCAL_LISTEN:=127.0.0.1:9001}"
export DOCKER_HOST

pids=()
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
  if [[ "$(ps -p "$pid" -o comm= 2>/dev/null)" == redis-server* ]]; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
trap stop_all EXIT
trap "stop_all; exit 130" INT
trap "stop_all; exit 143" TERM

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is not installed ($2)" >&2; exit 1; }
}

docker_socket=${DOCKER_HOST#unix://}
if [[ "$DOCKER_HOST" == unix://* && ! -S "$docker_socket" ]]; then
  echo "error: no Docker socket at $docker_socket; start Docker or set DOCKER_HOST" >&2
  exit 1
fi

if [[ "${HEMOSTAT_SKIP_BUILD:-0}" == 1 ]]; then
  echo "== using the binaries already built in target/$HEMOSTAT_PROFILE"
elif [[ "$HEMOSTAT_PROFILE" == release ]]; then
  echo "== building (release)"
  cargo build --release --bins
else
  echo "== building ($HEMOSTAT_PROFILE)"
  cargo build --bins
fi
bin="$root/target/$HEMOSTAT_PROFILE"

if [[ -z "${REDIS_URL:-}" ]]; then
  need redis-server "apt-get install redis-server, or set REDIS_URL"
  port=${HEMOSTAT_REDIS_PORT:-6379}
  echo "== starting redis-server on 127.0.0.1:$port"
  stop_redis
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize yes --pidfile "$state/redis.pid" --logfile "$logs/redis.log"
  export REDIS_URL="redis://127.0.0.1:$port"
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
export REDIS_URL

start() {
  local name=$1; shift
  "$@" > >(sed -u "s/^/[$name] /" | tee -a "$logs/$name.log") 2>&1 &
  pids+=($!)
}

echo "== starting the Lambda emulator ($HEMOSTAT_LOCAL_LISTEN) with every function of template.yaml"
start local "$bin/hemostat-local" --template template.yaml --listen "$HEMOSTAT_LOCAL_LISTEN" --bin-dir "$bin"
for _ in $(seq 100); do
  (echo > "/dev/tcp/${HEMOSTAT_LOCAL_LISTEN%:*}/${HEMOSTAT_LOCAL_LISTEN#*:}") 2>/dev/null && break
  sleep 0.1
done

echo "== starting the bridge"
HEMOSTAT_LAMBDA_ENDPOINT="http://$HEMOSTAT_LOCAL_LISTEN" start bridge "$bin/hemostat-bridge"

echo "== starting the collector (Docker at $DOCKER_HOST)"
start collector "$bin/hemostat-collector"

echo "Dashboard: http://$HEMOSTAT_LOCAL_LISTEN/urls/hemostat-dashboard/   Metrics: http://$HEMOSTAT_LOCAL_LISTEN/urls/hemostat-exporter/metrics"
echo "HemoStat is running; logs in $logs. Watch events with: redis-cli -u \"\$REDIS_URL\" SUBSCRIBE 'hemostat:*'"
wait -n "${pids[@]}" || true
echo "a component exited; see $logs" >&2
exit 1
