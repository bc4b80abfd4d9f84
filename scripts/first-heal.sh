#!/usr/bin/env bash
# Time to first heal: from `docker run` of the all-in-one image (a fresh
# state volume: keys, tokens and Redis users are made first) until a crashed
# container is running again because HemoStat restarted it. Prints seconds:
#
#   docker run -> collector ready        HemoStat watching (its "collector ready" line)
#   crash -> healed                      a container with no restart policy, crashed (exit 1)
#                                        once HemoStat watches, running again
#   time to first heal                   the two together, from `docker run`
#
#   scripts/first-heal.sh                      the image hemostat/all-in-one:local, as it is
#   scripts/first-heal.sh --build [BIN_DIR]    stage and build it first (infra/images/stage.sh;
#                                              BIN_DIR default target/release)
#   HEMOSTAT_IMAGE=hemostat/all-in-one:1.0 scripts/first-heal.sh
#   scripts/first-heal.sh --from-source        a fresh `git clone` of this checkout's HEAD and
#                                              `scripts/stack.sh` with its defaults (the build
#                                              included: a new target folder), until a crash is
#                                              healed; the clone is removed afterwards
#
# Environment: DOCKER_HOST (the engine), HEMOSTAT_NETWORK (default host: an
# engine without a bridge network works too; `bridge` publishes the dashboard
# with -p instead), HEMOSTAT_FIRST_HEAL_RUNS (default 1; several print each
# run and the median). The target is a busybox of the engine's: the image
# itself, whose sh is busybox. Everything it starts is removed at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${HEMOSTAT_IMAGE:-hemostat/all-in-one:local}"
NETWORK="${HEMOSTAT_NETWORK:-host}"
RUNS="${HEMOSTAT_FIRST_HEAL_RUNS:-1}"
TARGET_IMAGE="${HEMOSTAT_FIRST_HEAL_TARGET:-}"

die() { echo "error: $*" >&2; exit 1; }

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# A port nobody listens on (host networking shares the host's ports).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

# Waits up to $2 seconds for `$1` to succeed; dies with $3 otherwise.
wait_until() {
    local since
    since=$(now)
    until eval "$1"; do
        awk -v a="$since" -v b="$(now)" -v t="$2" 'BEGIN { exit !(b - a > t) }' && die "$3"
        sleep 0.2
    done
}

# From a fresh clone: scripts/stack.sh builds the stack's packages (crates
# already downloaded are reused: the registry cache is cargo's, not the
# clone's), starts it on ports of its own, and heals a crash of a target
# container started once the collector is ready.
from_source() {
    # stack_pid is global: the EXIT trap reads it after this function returns.
    local dir id target started ready crashed healed before after
    dir=$(mktemp -d)
    id="$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    target="hemostat-first-heal-target-$id"
    # shellcheck disable=SC2064 # this run's names
    trap "[[ -n \"\${stack_pid:-}\" ]] && kill -TERM -- -\$stack_pid 2>/dev/null; sleep 2; docker rm -f $target >/dev/null 2>&1; rm -rf $dir" EXIT
    git clone -q "$ROOT" "$dir/hemostat"
    echo "fresh clone of $(git -C "$ROOT" rev-parse --short HEAD) in $dir/hemostat; scripts/stack.sh with its defaults (log: $dir/stack.log)"
    started=$(now)
    (
        cd "$dir/hemostat"
        unset CARGO_TARGET_DIR HEMOSTAT_PROFILE HEMOSTAT_SKIP_BUILD REDIS_URL
        export HEMOSTAT_REDIS_PORT HEMOSTAT_LOCAL_LISTEN HEMOSTAT_LABEL_SELECTOR="hemostat.first-heal=$id"
        HEMOSTAT_REDIS_PORT=$(free_port) HEMOSTAT_LOCAL_LISTEN="127.0.0.1:$(free_port)"
        exec setsid bash scripts/stack.sh
    ) >"$dir/stack.log" 2>&1 &
    stack_pid=$!
    wait_until "grep -q 'collector ready' '$dir/stack.log' || ! kill -0 $stack_pid 2>/dev/null" 3600 \
        "no 'collector ready' within an hour: $dir/stack.log"
    grep -q 'collector ready' "$dir/stack.log" || { tail -30 "$dir/stack.log" >&2; die "scripts/stack.sh exited"; }
    ready=$(now)
    docker run -d --name "$target" --network none --label "hemostat.first-heal=$id" "$TARGET_IMAGE" sh \
        -c 'trap "exit 1" USR1; while :; do sleep 0.2; done' >/dev/null
    wait_until "[[ \$(docker inspect -f '{{.State.Running}}' $target) == true ]]" 30 "the target did not start"
    sleep 1
    before=$(docker inspect -f '{{.State.StartedAt}}' "$target")
    docker kill -s USR1 "$target" >/dev/null
    crashed=$(now)
    wait_until "after=\$(docker inspect -f '{{.State.Running}} {{.State.StartedAt}}' $target); [[ \$after == 'true '* && \${after#true } != '$before' ]]" 120 \
        "the crashed container was not restarted within 120 s: $dir/stack.log"
    healed=$(now)
    echo "git clone + scripts/stack.sh -> collector ready $(seconds "$started" "$ready") s; crash -> healed $(seconds "$crashed" "$healed") s"
    echo "time to first heal from a fresh clone: $(seconds "$started" "$healed") s ($(awk -v a="$started" -v b="$healed" 'BEGIN { printf "%.1f", (b - a) / 60 }') min, of which the crash and its heal $(seconds "$ready" "$healed") s)"
}

if [[ -z "$TARGET_IMAGE" ]] && [[ "${1:-}" == --from-source ]]; then
    TARGET_IMAGE=busybox
    docker image inspect hemostat/base:local >/dev/null 2>&1 && TARGET_IMAGE=hemostat/base:local
    docker image inspect "$TARGET_IMAGE" >/dev/null 2>&1 || TARGET_IMAGE=hemostat/busybox:test
fi
if [[ "${1:-}" == --from-source ]]; then
    from_source
    exit 0
fi

if [[ "${1:-}" == --build ]]; then
    bin_dir="${2:-$ROOT/target/release}"
    bash "$ROOT/infra/images/stage.sh" --bin-dir "$bin_dir" --build all-in-one >&2
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: run scripts/first-heal.sh --build, or infra/images/stage.sh --build all-in-one"
if [[ -z "$TARGET_IMAGE" ]]; then
    TARGET_IMAGE=busybox
    docker image inspect hemostat/base:local >/dev/null 2>&1 && TARGET_IMAGE=hemostat/base:local
fi


run_once() {
    local id name volume target scope started ready crashed healed before after log
    id="$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    name="hemostat-first-heal-$id" volume="hemostat-first-heal-$id" target="hemostat-first-heal-target-$id"
    scope="hemostat.first-heal=$id"
    # shellcheck disable=SC2064 # the names of this run
    trap "docker rm -f -v $name $target >/dev/null 2>&1 || true; docker volume rm -f $volume >/dev/null 2>&1 || true" RETURN

    # The target: runs until SIGUSR1, then exits 1. No restart policy.
    docker run -d --name "$target" --network none --label "$scope" "$TARGET_IMAGE" sh \
        -c 'trap "exit 1" USR1; while :; do sleep 0.2; done' >/dev/null

    local -a net=(--network host -e "HEMOSTAT_REDIS_PORT=$(free_port)" -e "HEMOSTAT_LOCAL_PORT=$(free_port)"
        -e "HEMOSTAT_DASHBOARD_PORT=$(free_port)" -e HEMOSTAT_DASHBOARD_ADDRESS=127.0.0.1)
    [[ "$NETWORK" == bridge ]] && net=(-p "127.0.0.1:$(free_port):8080")
    local socket="${DOCKER_HOST:-unix:///var/run/docker.sock}"
    socket="${socket#unix://}"

    started=$(now)
    docker run -d --name "$name" -v "$socket:/var/run/docker.sock" -v "$volume:/var/lib/hemostat" \
        -e "HEMOSTAT_HOST=$name" -e "HEMOSTAT_LABEL_SELECTOR=$scope" "${net[@]}" "$IMAGE" >/dev/null
    until docker logs "$name" 2>&1 | grep -q "collector ready"; do
        [[ "$(docker inspect -f '{{.State.Running}}' "$name")" == true ]] || { docker logs "$name" >&2; die "$IMAGE exited"; }
        awk -v a="$started" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }' && die "no 'collector ready' within 120 s"
        sleep 0.1
    done
    ready=$(now)

    before=$(docker inspect -f '{{.State.StartedAt}}' "$target")
    docker kill -s USR1 "$target" >/dev/null
    crashed=$(now)
    while :; do
        after=$(docker inspect -f '{{.State.Running}} {{.State.StartedAt}}' "$target")
        [[ "$after" == "true "* && "${after#true }" != "$before" ]] && break
        awk -v a="$crashed" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }' && {
            log=$(docker logs --tail 30 "$name" 2>&1)
            die "the crashed container was not restarted within 120 s; HemoStat's log:
$log"
        }
        sleep 0.1
    done
    healed=$(now)
    echo "run $1: docker run -> collector ready $(seconds "$started" "$ready") s; crash -> healed $(seconds "$crashed" "$healed") s; time to first heal $(seconds "$started" "$healed") s"
    TOTALS+=("$(seconds "$started" "$healed")")
}

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB; network $NETWORK"
TOTALS=()
for ((i = 1; i <= RUNS; i++)); do run_once "$i"; done
median=$(printf '%s\n' "${TOTALS[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "time to first heal (median of $RUNS): $median s"
