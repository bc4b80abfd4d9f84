#!/usr/bin/env bash
# Private test environment for HemoStat's end-to-end tests: a dockerd and a
# redis-server that belong to this script alone, so tests never touch (or
# depend on) whatever Docker or Redis the host already runs.
#
#   scripts/test-env.sh install   install missing system packages (apt-get)
#   scripts/test-env.sh start     start dockerd + redis-server, write $DIR/env
#   scripts/test-env.sh stop      remove containers, stop what `start` started
#   scripts/test-env.sh status    show what is running
#
# State lives in ${HEMOSTAT_TEST_DIR:-/tmp/hemostat-test}; `source $DIR/env`
# exports DOCKER_HOST, REDIS_URL and HEMOSTAT_TEST_IMAGE for the tests.
set -euo pipefail

DIR="${HEMOSTAT_TEST_DIR:-/tmp/hemostat-test}"
IMAGE="hemostat/busybox:test"
# Separate containerd namespaces keep our containers invisible to a host
# dockerd that happens to share the system containerd.
CONTAINERD_NS="hemostat-test"

DOCKER_SOCK="$DIR/docker.sock"
DOCKER_PIDFILE="$DIR/docker.pid"
DOCKER_LOG="$DIR/dockerd.log"
# dockerd's supervised containerd writes its pid here (state dir under exec-root).
CONTAINERD_PIDFILE="$DIR/exec/containerd/containerd.pid"
REDIS_PIDFILE="$DIR/redis.pid"
REDIS_PORTFILE="$DIR/redis.port"
REDIS_LOG="$DIR/redis.log"
ENV_FILE="$DIR/env"

log() { printf '[test-env] %s\n' "$*" >&2; }
die() { printf '[test-env] error: %s\n' "$*" >&2; exit 1; }

# --- process helpers -------------------------------------------------------

# Prints the pid from a pidfile if that process is alive and its command line
# mentions $2; the check guards against a recycled pid belonging to someone
# else, so we never signal a process we did not start.
owned_pid() {
    local pidfile="$1" marker="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    printf '%s\n' "$pid"
}

# Sends SIGTERM, waits up to $2 seconds, then SIGKILL.
terminate() {
    local pid="$1" timeout="$2" what="$3" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { log "stopped $what (pid $pid)"; return 0; }
        sleep 0.1
    done
    log "$what (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "warning: $what (pid $pid) still alive after SIGKILL"
}

docker_cli() { docker -H "unix://$DOCKER_SOCK" "$@"; }

# `timeout`: the docker and redis clients have no deadline of their own, and a
# wedged daemon must not hang CI.
docker_ready() { timeout 10 docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1; }

redis_ping() {
    [[ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
}

# True if something accepts connections on 127.0.0.1:$1 (bash's /dev/tcp
# avoids depending on ss/netstat, which a minimal image may lack).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- install ---------------------------------------------------------------

cmd_install() {
    local -a missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    # The TLS engine's test: a client with no certificate must be refused.
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    # Podman's Docker-compatible API, for the collector's read paths.
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    # compose.yaml's test (docker-compose 1.x) and the demo scripts (jq).
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    # Bridge networking in a private engine's own network namespace (compose's
    # default, the all-in-one image's documented command): unshare, nsenter, ip.
    command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
    command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    # The dashboard's browser test: Debian's Chromium driven by playwright-core.
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    # The exporter's tests: a real Prometheus scrapes it; promtool checks
    # its output and infra/prometheus (both in Debian's prometheus).
    command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    # `hemostat man`'s test renders the page as man(1) does.
    command -v groff >/dev/null 2>&1 || missing+=(groff-base)
    # An ssh:// engine: the collector's forward (ssh) to a private sshd.
    command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
    command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    # The aarch64 static binaries run under qemu-user (tests/tests/static_binaries.rs),
    # called by name: the test needs no binfmt registration.
    command -v qemu-aarch64-static >/dev/null 2>&1 || command -v qemu-aarch64 >/dev/null 2>&1 ||
        missing+=(qemu-user-static)
    if ((${#missing[@]} == 0)); then
        log "all packages present"
        install_browser_driver
        return 0
    fi
    # Deduplicate (docker.io provides both dockerd and docker).
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [[ "$(id -u)" == 0 ]] || die "missing packages (${missing[*]}) and not root: install them with apt-get or rerun as root"
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and apt-get is not available"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages install their services stopped (openssh-server would start
    # an sshd on every address): the tests start their own, on loopback.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ -n "$made_policy" ]]; then rm -f "$policy"; fi
    for c in dockerd docker redis-server redis-cli busybox openssl curl podman chromium node npm docker-compose jq unshare nsenter ip prometheus promtool ssh ssh-keygen /usr/sbin/sshd; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' still missing after apt-get install"
    done
    command -v qemu-aarch64-static >/dev/null 2>&1 || command -v qemu-aarch64 >/dev/null 2>&1 ||
        die "'qemu-aarch64-static' still missing after apt-get install"
    log "installed: ${missing[*]}"
    install_browser_driver
}

# playwright-core (no dependencies, no browser download of its own: it drives
# /usr/bin/chromium) at the exact version tests/browser/package.json pins,
# into tests/browser/node_modules.
install_browser_driver() {
    local dir want have
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/browser" && pwd)"
    want="$(node -p "require('$dir/package.json').dependencies['playwright-core']")"
    have="$(node -p "try { require('$dir/node_modules/playwright-core/package.json').version } catch (e) { '' }")"
    if [[ "$have" == "$want" ]]; then
        log "playwright-core $have present"
        return 0
    fi
    log "installing playwright-core $want into $dir/node_modules"
    (cd "$dir" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null) ||
        die "npm install playwright-core@$want failed"
}

# --- start -----------------------------------------------------------------

require() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' not found: run 'scripts/test-env.sh install' first"
    done
}

start_dockerd() {
    if owned_pid "$DOCKER_PIDFILE" "$DIR" >/dev/null && docker_ready; then
        log "reusing dockerd at unix://$DOCKER_SOCK"
        return 0
    fi
    # Unix socket paths are limited to 108 bytes; fail early with a clear
    # message instead of dockerd's cryptic bind error.
    ((${#DOCKER_SOCK} < 100)) || die "socket path too long (${#DOCKER_SOCK} chars): set HEMOSTAT_TEST_DIR to a shorter directory"
    local pid
    if pid="$(owned_pid "$DOCKER_PIDFILE" "$DIR")"; then
        log "dockerd (pid $pid) is alive but not answering; restarting it"
        terminate "$pid" 20 dockerd
    fi
    rm -f "$DOCKER_PIDFILE" "$DOCKER_SOCK"
    mkdir -p "$DIR/data" "$DIR/exec"

    log "starting dockerd (log: $DOCKER_LOG)"
    # setsid: keep the daemon out of our process group so a Ctrl-C aimed at
    # the tests does not kill it before `stop` can remove containers cleanly.
    setsid dockerd \
        --data-root "$DIR/data" \
        --exec-root "$DIR/exec" \
        -H "unix://$DOCKER_SOCK" \
        --pidfile "$DOCKER_PIDFILE" \
        --bridge=none --iptables=false --ip6tables=false \
        --containerd-namespace "$CONTAINERD_NS" \
        --containerd-plugins-namespace "$CONTAINERD_NS-plugins" \
        </dev/null >>"$DOCKER_LOG" 2>&1 &
    local launched=$! deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        docker_ready && { log "dockerd ready (pid $launched)"; return 0; }
        if ! kill -0 "$launched" 2>/dev/null; then
            tail -n 40 "$DOCKER_LOG" >&2 || true
            die "dockerd exited during startup (log above, full log: $DOCKER_LOG)"
        fi
        sleep 0.1
    done
    tail -n 40 "$DOCKER_LOG" >&2 || true
    die "dockerd did not answer 'docker info' within 60s (log above, full log: $DOCKER_LOG)"
}

# A minimal image built from the host's static busybox: no registry access is
# needed, and it gives tests sh, sleep, trap, nc, wget, etc.
build_image() {
    if docker_cli image inspect "$IMAGE" >/dev/null 2>&1; then
        log "image $IMAGE present"
        return 0
    fi
    local busybox rootfs applet
    busybox="$(command -v busybox)"
    # A dynamically linked busybox would not run in an empty image.
    if ! file_is_static "$busybox"; then
        die "$busybox is not statically linked: install busybox-static"
    fi
    rootfs="$(mktemp -d "$DIR/rootfs.XXXXXX")"
    mkdir -p "$rootfs/bin" "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    cp "$busybox" "$rootfs/bin/busybox"
    while read -r applet; do
        [[ -n "$applet" && "$applet" != busybox ]] || continue
        ln -sf busybox "$rootfs/bin/$applet"
    done < <("$busybox" --list)
    log "building image $IMAGE"
    tar -C "$rootfs" -c . | docker_cli import -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
    rm -rf "$rootfs"
    docker_cli image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE missing after import"
}

# ldd is the usual check, but it is not guaranteed on a slim system; reading
# the ELF program headers for a PT_INTERP entry needs nothing extra.
file_is_static() {
    if command -v ldd >/dev/null 2>&1; then
        ! ldd "$1" >/dev/null 2>&1 || ldd "$1" 2>&1 | grep -q 'not a dynamic executable'
    else
        ! grep -qa 'ld-linux' "$1"
    fi
}

start_redis() {
    local pid port
    if pid="$(owned_pid "$REDIS_PIDFILE" redis-server)" && [[ -s "$REDIS_PORTFILE" ]]; then
        port="$(<"$REDIS_PORTFILE")"
        if redis_ping "$port"; then
            log "reusing redis-server on 127.0.0.1:$port"
            return 0
        fi
        log "redis-server (pid $pid) not answering; restarting it"
        terminate "$pid" 10 redis-server
    fi
    rm -f "$REDIS_PIDFILE" "$REDIS_PORTFILE"

    local attempt i
    for attempt in 1 2 3 4 5; do
        # Random high port outside the kernel's ephemeral range
        # (32768-60999), so it cannot clash with outgoing connections.
        port=$((20000 + RANDOM % 12000))
        port_in_use "$port" && continue
        redis-server --bind 127.0.0.1 --port "$port" \
            --save '' --appendonly no --dir "$DIR" \
            --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" \
            </dev/null >/dev/null 2>&1 || continue
        for ((i = 0; i < 100; i++)); do
            if redis_ping "$port"; then
                printf '%s\n' "$port" >"$REDIS_PORTFILE"
                log "redis-server ready on 127.0.0.1:$port"
                return 0
            fi
            sleep 0.1
        done
        # Likely lost a race for the port; clean up and try another.
        if pid="$(owned_pid "$REDIS_PIDFILE" redis-server)"; then
            terminate "$pid" 5 redis-server
        fi
        log "redis-server failed on port $port (attempt $attempt)"
    done
    tail -n 20 "$REDIS_LOG" >&2 || true
    die "could not start redis-server (log above, full log: $REDIS_LOG)"
}

write_env() {
    local tmp="$ENV_FILE.tmp"
    cat >"$tmp" <<EOF
# Written by scripts/test-env.sh start; source it before running tests.
export DOCKER_HOST=unix://$DOCKER_SOCK
export REDIS_URL=redis://127.0.0.1:$(<"$REDIS_PORTFILE")
export HEMOSTAT_TEST_IMAGE=$IMAGE
EOF
    mv "$tmp" "$ENV_FILE"
}

cmd_start() {
    require dockerd docker redis-server redis-cli busybox setsid tar timeout
    [[ "$(id -u)" == 0 ]] || die "dockerd needs root: run as root"
    mkdir -p "$DIR"
    start_dockerd
    build_image
    start_redis
    write_env
    log "environment ready; source $ENV_FILE"
}

# --- stop ------------------------------------------------------------------

stop_dockerd() {
    local pid ids
    if pid="$(owned_pid "$DOCKER_PIDFILE" "$DIR")"; then
        if docker_ready; then
            ids="$(timeout 30 docker -H "unix://$DOCKER_SOCK" ps -aq || true)"
            if [[ -n "$ids" ]]; then
                log "removing $(wc -w <<<"$ids") container(s)"
                # shellcheck disable=SC2086 # word splitting intended: one id per word
                timeout 120 docker -H "unix://$DOCKER_SOCK" rm -f $ids >/dev/null ||
                    log "warning: some containers could not be removed"
            fi
        fi
        terminate "$pid" 30 dockerd
    else
        log "dockerd not running"
    fi
    # dockerd normally stops its containerd itself; this catches the case
    # where dockerd was SIGKILLed or crashed and left it orphaned.
    if pid="$(owned_pid "$CONTAINERD_PIDFILE" "$DIR")"; then
        terminate "$pid" 10 containerd
    fi
    rm -f "$DOCKER_PIDFILE" "$DOCKER_SOCK"
}

stop_redis() {
    local pid
    if pid="$(owned_pid "$REDIS_PIDFILE" redis-server)"; then
        terminate "$pid" 10 redis-server
    else
        log "redis-server not running"
    fi
    rm -f "$REDIS_PIDFILE" "$REDIS_PORTFILE"
}

cmd_stop() {
    [[ -d "$DIR" ]] || { log "nothing to stop ($DIR absent)"; return 0; }
    rm -f "$ENV_FILE"
    stop_dockerd
    stop_redis
}

cmd_status() {
    local pid
    if pid="$(owned_pid "$DOCKER_PIDFILE" "$DIR")"; then
        echo "dockerd: running (pid $pid, unix://$DOCKER_SOCK)"
    else
        echo "dockerd: stopped"
    fi
    if pid="$(owned_pid "$REDIS_PIDFILE" redis-server)"; then
        echo "redis-server: running (pid $pid, port $(cat "$REDIS_PORTFILE" 2>/dev/null || echo '?'))"
    else
        echo "redis-server: stopped"
    fi
}

usage() {
    echo "usage: $0 {install|start|stop|status}" >&2
    exit 2
}

main() {
    (($# == 1)) || usage
    case "$1" in
        install) cmd_install ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
