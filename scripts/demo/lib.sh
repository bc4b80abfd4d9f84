# Shared by scripts/demo/*.sh (sourced, not run): finds the running stack,
# starts a demo target container, and reads back from Redis what HemoStat
# did about it, with timings.
#
# Environment (also read from .env at the repository root):
#   REDIS_URL             the stack's Redis (default: the operator's URL that
#                         scripts/stack.sh and scripts/compose.sh keep in
#                         $HEMOSTAT_STATE_DIR/redis.url, else
#                         redis://127.0.0.1:6379)
#   DOCKER_HOST           the Docker engine the collector watches
#   HEMOSTAT_DEMO_IMAGE   the target's image (default hemostat/demo:local,
#                         built from infra/Dockerfile.demo when missing)
#   HEMOSTAT_DEMO_BASE    its base when hemostat/base:local is absent
#                         (default busybox:stable, pulled)
#   HEMOSTAT_DEMO_LABELS  extra labels for the target, k=v,k2=v2 (to match
#                         the collector's HEMOSTAT_LABEL_SELECTOR)
#   HEMOSTAT_DEMO_KEEP=1  leave the target container behind afterwards

DEMO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -f "$DEMO_ROOT/.env" ]]; then
    set -a
    # shellcheck disable=SC1091
    source "$DEMO_ROOT/.env"
    set +a
fi
if [[ -z "${REDIS_URL:-}" && -f "${HEMOSTAT_STATE_DIR:-$DEMO_ROOT/.hemostat}/redis.url" ]]; then
    REDIS_URL=$(<"${HEMOSTAT_STATE_DIR:-$DEMO_ROOT/.hemostat}/redis.url")
fi
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
DEMO_IMAGE="${HEMOSTAT_DEMO_IMAGE:-hemostat/demo:local}"
DEMO_KINDS=(health_alert remediation_needed false_alarm remediation_complete system_alert)

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

for tool in docker redis-cli jq; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (apt-get install docker.io redis-tools jq)"
done

rcli() { redis-cli -u "$REDIS_URL" --no-auth-warning "$@"; }

# The Redis server's clock in ms: stream ids are on it, so offsets measured
# against it are free of any clock skew between this shell and Redis.
redis_ms() {
    local t
    mapfile -t t < <(rcli TIME)
    echo $((t[0] * 1000 + 10#${t[1]} / 1000))
}

check_stack() {
    [[ "$(rcli PING 2>/dev/null)" == PONG ]] ||
        die "no Redis at $(redact "$REDIS_URL"): start the stack first (scripts/stack.sh, or scripts/compose.sh up -d)"
    local now newest
    now=$(redis_ms)
    newest=$(rcli ZREVRANGE hemostat:collectors 0 0 WITHSCORES 2>/dev/null | sed -n 2p)
    if [[ -z "$newest" ]] || ((now - ${newest%.*} > 60000)); then
        say "warning: no collector heartbeat in the last minute (hemostat:collectors); is the collector running?" >&2
    fi
}

# Credentials in a Redis URL never reach the terminal.
redact() { sed -E 's#://([^@/]*)@#://***@#' <<<"$1"; }

ensure_image() {
    docker image inspect "$DEMO_IMAGE" >/dev/null 2>&1 && return 0
    local base="${HEMOSTAT_DEMO_BASE:-busybox:stable}"
    docker image inspect hemostat/base:local >/dev/null 2>&1 && base=hemostat/base:local
    say "building $DEMO_IMAGE (FROM $base)"
    docker build -q --build-arg "BASE_IMAGE=$base" -t "$DEMO_IMAGE" \
        -f "$DEMO_ROOT/infra/Dockerfile.demo" "$DEMO_ROOT/infra/images/demo" >/dev/null
}

DEMO_TARGET=""
cleanup_target() {
    [[ -n "$DEMO_TARGET" && "${HEMOSTAT_DEMO_KEEP:-0}" != 1 ]] &&
        docker rm -f "$DEMO_TARGET" >/dev/null 2>&1
    return 0
}

# start_target NAME: a fresh target (fresh, so no earlier cooldown applies),
# with a 256 MiB memory limit and no network; removed on exit.
start_target() {
    DEMO_TARGET="$1"
    ensure_image
    docker rm -f "$DEMO_TARGET" >/dev/null 2>&1 || true
    local -a labels=(--label hemostat.demo=true --label hemostat.enable=true)
    local l
    if [[ -n "${HEMOSTAT_DEMO_LABELS:-}" ]]; then
        IFS=, read -r -a extra <<<"$HEMOSTAT_DEMO_LABELS"
        for l in "${extra[@]}"; do labels+=(--label "$l"); done
    fi
    trap cleanup_target EXIT
    docker run -d --name "$DEMO_TARGET" --memory 256m --shm-size 512m --network none \
        -e DEMO_PORT=none "${labels[@]}" --restart no "$DEMO_IMAGE" >/dev/null
    wait_running "$DEMO_TARGET" 10 || die "$DEMO_TARGET did not start"
    # Let the collector see it (events stream, first stats) before we start.
    sleep 2
    say "target: container $DEMO_TARGET (256 MiB limit), image $DEMO_IMAGE"
}

wait_running() {
    local name="$1" secs="$2" i
    for ((i = 0; i < secs * 10; i++)); do
        [[ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" == true ]] && return 0
        sleep 0.1
    done
    return 1
}

# One line per event: offset from START_MS, type, what it says.
DEMO_JQ='
  def pct: if . == null then "?" else (. * 10 | round / 10 | tostring) + "%" end;
  def conf: if . == null then "" else " (confidence \(.))" end;
  .[] | (.[0] | split("-")[0] | tonumber) as $ms | (.[1][1] | fromjson) as $e | $e.data as $d
  | select(($d.container // "") == $name)
  | [$ms, $e.type,
     (if $e.type == "health_alert" then ($d.issues | join("; ")) + "  [cpu " + ($d.metrics.cpu_pct | pct) + ", memory " + ($d.metrics.memory_pct | pct) + "]"
      elif $e.type == "remediation_needed" then "\($d.action)\($d.confidence | conf): \($d.reason)"
      elif $e.type == "false_alarm" then "\($d.reason)\($d.confidence | conf)"
      elif $e.type == "remediation_complete" then "\($d.action) \($d.result.status)"
           + (if $d.result.duration_ms then " in \($d.result.duration_ms) ms" else "" end)
           + ": " + ($d.result.error // $d.result.reason // $d.reason // "")
           + (if $d.result.details then " (\($d.result.details))" else "" end)
      else ($d.message // ($d | tostring)) end)]
  | @tsv'

declare -A DEMO_LAST=()
DEMO_SEEN=()
DEMO_STATS_KEY=""
DEMO_PEAK_CPU=0
DEMO_PEAK_MEM=0

# Tracks the highest CPU and memory the collector reported for NAME
# (hemostat:stats:<host>/<name>), to explain an alert that did not come.
sample_stats() {
    local name="$1" values cpu mem
    if [[ -z "$DEMO_STATS_KEY" ]]; then
        DEMO_STATS_KEY=$(rcli --scan --pattern "hemostat:stats:*/$name" | head -n1)
        [[ -n "$DEMO_STATS_KEY" ]] || return 0
    fi
    values=$(rcli GET "$DEMO_STATS_KEY" | jq -r '"\(.cpu_pct // 0) \(.memory_pct // 0)"' 2>/dev/null) || return 0
    read -r cpu mem <<<"$values"
    [[ -n "$cpu" ]] || return 0
    DEMO_PEAK_CPU=$(awk "BEGIN { print ($cpu > $DEMO_PEAK_CPU) ? $cpu : $DEMO_PEAK_CPU }")
    DEMO_PEAK_MEM=$(awk "BEGIN { print ($mem > $DEMO_PEAK_MEM) ? $mem : $DEMO_PEAK_MEM }")
}

# watch_events NAME START_MS TIMEOUT_S KIND...: prints NAME's events since
# START_MS as they arrive; returns 0 at the first event of one of KIND...,
# 1 when TIMEOUT_S passes first. DEMO_SEEN collects "kind<TAB>ms" lines.
watch_events() {
    local name="$1" start="$2" timeout="$3"
    shift 3
    local deadline=$((SECONDS + timeout)) kind from ms type text stop done=1
    while ((SECONDS < deadline)); do
        for kind in "${DEMO_KINDS[@]}"; do
            from="${DEMO_LAST[$kind]:-$start}"
            [[ "$from" == *-* ]] && from="($from"
            local reply
            reply=$(rcli --json XRANGE "hemostat:stream:$kind" "$from" + COUNT 200)
            [[ "$reply" == "[]" || -z "$reply" ]] && continue
            DEMO_LAST[$kind]=$(jq -r '.[-1][0]' <<<"$reply")
            while IFS=$'\t' read -r ms type text; do
                [[ -n "$ms" ]] || continue
                printf '  +%6.1f s  %-21s %s\n' "$(awk "BEGIN { print ($ms - $start) / 1000 }")" "$type" "$text"
                DEMO_SEEN+=("$type"$'\t'"$ms")
                for stop in "$@"; do [[ "$type" == "$stop" ]] && done=0; done
            done < <(jq -r --arg name "$name" "$DEMO_JQ" <<<"$reply")
        done
        ((done == 0)) && return 0
        sample_stats "$name"
        sleep 0.5
    done
    return 1
}

# first_seen KIND: ms of the first KIND event watched so far (empty if none).
first_seen() {
    local line
    for line in "${DEMO_SEEN[@]}"; do
        [[ "${line%%$'\t'*}" == "$1" ]] && { echo "${line#*$'\t'}"; return 0; }
    done
    return 0
}

seconds_since() { awk "BEGIN { printf \"%.1f\", ($1 - $2) / 1000 }"; }

# summary START_MS: what HemoStat did, and how long detection and repair took.
summary() {
    local start="$1" alert fix fa
    alert=$(first_seen health_alert)
    fix=$(first_seen remediation_complete)
    fa=$(first_seen false_alarm)
    say ""
    if [[ -z "$alert" ]]; then
        say "HemoStat: no health alert. The collector saw at most ${DEMO_PEAK_CPU}% CPU and ${DEMO_PEAK_MEM}% memory;"
        say "an alert needs more than THRESHOLD_CPU_PERCENT (85) or THRESHOLD_MEMORY_PERCENT (80) for"
        say "HEMOSTAT_SUSTAIN_SECONDS (10 s) without a dip. On a busy machine the target may not get"
        say "the CPU it asks for: try more workers, or run the stack with a lower threshold."
        return 0
    fi
    say "HemoStat: detected after $(seconds_since "$alert" "$start") s."
    if [[ -n "$fix" ]]; then
        local status
        status=$(rcli --json XRANGE hemostat:stream:remediation_complete "$fix" + COUNT 50 |
            jq -r --arg name "$DEMO_TARGET" '[.[] | (.[1][1] | fromjson).data | select(.container == $name)][0] | "\(.action) \(.result.status)"')
        say "HemoStat: $status, $(seconds_since "$fix" "$start") s after the trigger ($(seconds_since "$fix" "$alert") s after detection)."
    elif [[ -n "$fa" ]]; then
        say "HemoStat: judged it a false alarm $(seconds_since "$fa" "$start") s after the trigger; no action."
    else
        say "HemoStat: no remediation reported (yet)."
    fi
}
