#!/usr/bin/env bash
# Stages, out of files already on this host, everything compose.yaml's images
# are built from, and builds their common base image. Nothing is pulled: the
# base is this host's glibc (the libraries `ldd` says HemoStat, redis-server
# and prometheus need) plus a static busybox for a shell, so the HemoStat
# binaries built here run in it unchanged.
#
#   infra/images/stage.sh                     binaries from target/release
#   infra/images/stage.sh --bin-dir target/debug
#
# Then: docker-compose up --build   (or scripts/compose.sh, which does both).
#
# Output (build contexts, one per image; the Dockerfiles are in infra/):
#   target/images/base        -> hemostat/base:local   (built here: the others start FROM it)
#   target/images/hemostat    -> hemostat:local        (collector, bridge, emulator + every function)
#   target/images/redis       -> hemostat/redis:local  (the host's redis-server and redis-cli,
#                                                      infra/redis/durability.conf)
#   target/images/prometheus  -> hemostat/prometheus:local (the host's prometheus, if installed)
#   target/images/all-in-one  -> hemostat/all-in-one:local (one container: Redis, the emulator with
#                                                      every function, bridge, collector, `hemostat`,
#                                                      under hemostat-supervisor)
#   target/images/collector   -> hemostat/collector:local (a fleet host's: collector + `hemostat`)
#
#   infra/images/stage.sh --build all-in-one collector   also builds those images (hemostat/X:local)
#
# Environment: DOCKER_HOST (the engine to build the base in),
# HEMOSTAT_IMAGES_DIR (default target/images), HEMOSTAT_BASE_IMAGE
# (default hemostat/base:local).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${HEMOSTAT_IMAGES_DIR:-$ROOT/target/images}"
BASE_IMAGE="${HEMOSTAT_BASE_IMAGE:-hemostat/base:local}"
BIN_DIR="$ROOT/target/release"
BUILD=()

log() { printf '[stage] %s\n' "$*" >&2; }
die() { printf '[stage] error: %s\n' "$*" >&2; exit 1; }

while (($# > 0)); do
    case "$1" in
        --bin-dir) BIN_DIR="$(cd "$2" && pwd)"; shift 2 ;;
        --bin-dir=*) BIN_DIR="$(cd "${1#*=}" && pwd)"; shift ;;
        --build)
            shift
            while (($# > 0)) && [[ "$1" != --* ]]; do BUILD+=("$1"); shift; done
            ;;
        -h | --help) sed -n '2,28p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument $1 (try --help)" ;;
    esac
done

command -v ldd >/dev/null 2>&1 || die "ldd not found (libc-bin)"
command -v docker >/dev/null 2>&1 || die "docker not found"

# The HemoStat binaries: the long-running parts, the emulator, and every
# function template.yaml declares (so a new function needs no edit here).
hemostat_binaries() {
    printf '%s\n' hemostat-local hemostat-bridge hemostat-collector
    awk '/^[[:space:]]+Binary:[[:space:]]*/ { b = $2; gsub(/["\047]/, "", b); print b }' "$ROOT/template.yaml"
}

# Shared libraries (and the dynamic loader) FILE... load, one path a line
# (ldd heads each file's list with "FILE:" when given several).
closure() {
    ldd "$@" 2>/dev/null | awk '
        $2 == "=>" && $3 ~ /^\// { print $3 }
        $1 ~ /^\// && $1 !~ /:$/ { print $1 }
    ' | sort -u
}

# Copies host FILE into ROOTFS at the same path, following symlinks.
put() {
    local rootfs="$1" file="$2"
    mkdir -p "$rootfs$(dirname "$file")"
    cp -L "$file" "$rootfs$file"
}

# Copies the libraries FILE... need into ROOTFS, except those the base has.
put_libraries() {
    local rootfs="$1" lib
    shift
    while read -r lib; do
        [[ -e "$OUT/base$lib" ]] || put "$rootfs" "$lib"
    done < <(closure "$@")
}

stage_base() {
    local rootfs="$OUT/base" busybox applet
    busybox="$(command -v busybox || true)"
    [[ -n "$busybox" ]] || die "busybox not found: apt-get install busybox-static"
    ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked: apt-get install busybox-static"
    rm -rf "$rootfs"
    mkdir -p "$rootfs"/{bin,etc,tmp,usr/local/bin,var/run,data}
    chmod 1777 "$rootfs/tmp"
    cp "$busybox" "$rootfs/bin/busybox"
    while read -r applet; do
        [[ -n "$applet" && "$applet" != busybox ]] && ln -sf busybox "$rootfs/bin/$applet"
    done < <("$busybox" --list)
    # glibc as every image needs it: what the HemoStat binaries, redis and
    # prometheus link against, from the one glibc they were all built for.
    local -a linked=()
    local b
    while read -r b; do
        [[ -x "$BIN_DIR/$b" ]] && linked+=("$BIN_DIR/$b")
    done < <(hemostat_binaries)
    for b in /usr/bin/redis-server /usr/bin/prometheus; do
        [[ -x "$b" ]] && linked+=("$b")
    done
    while read -r b; do
        case "$(basename "$b")" in
            ld-linux* | libc.so* | libm.so* | libgcc_s.so* | libpthread.so* | libdl.so* | librt.so*) put "$rootfs" "$b" ;;
        esac
    done < <(closure "${linked[@]}")
    # TLS to Slack, LLM APIs and rediss:// with the host's CAs.
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        put "$rootfs" /etc/ssl/certs/ca-certificates.crt
    fi
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
}

stage_hemostat() {
    local rootfs="$OUT/hemostat" b missing=()
    rm -rf "$rootfs"
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/hemostat"
    while read -r b; do
        if [[ ! -x "$BIN_DIR/$b" ]]; then
            missing+=("$b")
            continue
        fi
        put_binary "$rootfs" "$b"
    done < <(hemostat_binaries | sort -u)
    ((${#missing[@]} == 0)) ||
        die "not built in $BIN_DIR: ${missing[*]} (cargo build --release --bins, or pass --bin-dir)"
    cp "$ROOT/template.yaml" "$rootfs/etc/hemostat/template.yaml"
    put_libraries "$rootfs" "$rootfs"/usr/local/bin/*
}

stage_redis() {
    local rootfs="$OUT/redis" b
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    for b in /usr/bin/redis-server /usr/bin/redis-cli; do
        [[ -x "$b" ]] || die "$b not found: apt-get install redis-server redis-tools"
        put "$rootfs" "$b"
    done
    put_libraries "$rootfs" /usr/bin/redis-server /usr/bin/redis-cli
    # Its durability, the same file scripts/stack.sh runs redis-server with.
    mkdir -p "$rootfs/etc/hemostat"
    cp "$ROOT/infra/redis/durability.conf" "$rootfs/etc/hemostat/durability.conf"
}

# One binary of BIN_DIR into ROOTFS's /usr/local/bin, without its debug info.
put_binary() {
    local rootfs="$1" b="$2"
    mkdir -p "$rootfs/usr/local/bin"
    # Debug builds carry hundreds of MB of DWARF an image does not need.
    if command -v objcopy >/dev/null 2>&1; then
        objcopy --strip-debug "$BIN_DIR/$b" "$rootfs/usr/local/bin/$b"
    else
        cp "$BIN_DIR/$b" "$rootfs/usr/local/bin/$b"
    fi
}

# The all-in-one image: hemostat:local's binaries (hard links, no second
# copy), `hemostat`, the supervisor, and redis:local's files.
stage_all_in_one() {
    local rootfs="$OUT/all-in-one" b
    rm -rf "$rootfs"
    for b in hemostat hemostat-supervisor; do
        if [[ ! -x "$BIN_DIR/$b" ]]; then
            log "no $BIN_DIR/$b (cargo build --bins): the all-in-one and collector images cannot be built"
            return 0
        fi
    done
    cp -al "$OUT/hemostat" "$rootfs"
    cp -alf "$OUT/redis/." "$rootfs/"
    put_binary "$rootfs" hemostat
    put_binary "$rootfs" hemostat-supervisor
    put_libraries "$rootfs" "$rootfs/usr/local/bin/hemostat" "$rootfs/usr/local/bin/hemostat-supervisor"
    mkdir -p "$rootfs/var/lib/hemostat"
}

# A fleet host's collector image: the collector and `hemostat`.
stage_collector() {
    local rootfs="$OUT/collector" b
    rm -rf "$rootfs"
    [[ -x "$BIN_DIR/hemostat" ]] || return 0
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/var/lib/hemostat"
    ln "$OUT/hemostat/usr/local/bin/hemostat-collector" "$rootfs/usr/local/bin/hemostat-collector"
    ln "$OUT/all-in-one/usr/local/bin/hemostat" "$rootfs/usr/local/bin/hemostat" 2>/dev/null || put_binary "$rootfs" hemostat
    put_libraries "$rootfs" "$rootfs"/usr/local/bin/*
}

stage_prometheus() {
    local rootfs="$OUT/prometheus"
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    if [[ ! -x /usr/bin/prometheus ]]; then
        # Only the `prometheus` profile needs it; its Dockerfile says what to do.
        log "no /usr/bin/prometheus (apt-get install prometheus): the prometheus profile cannot be built"
        return 0
    fi
    # The binary alone: the API and scraping need nothing else (Debian's web
    # assets are symlinks into hundreds of MB of packaged JavaScript).
    put "$rootfs" /usr/bin/prometheus
    put_libraries "$rootfs" /usr/bin/prometheus
}

mkdir -p "$OUT"
log "staging from $BIN_DIR into $OUT"
stage_base
stage_hemostat
stage_redis
stage_prometheus
stage_all_in_one
stage_collector

log "building $BASE_IMAGE"
docker build -q -t "$BASE_IMAGE" -f "$ROOT/infra/Dockerfile.base" "$OUT/base" >/dev/null
for image in "${BUILD[@]}"; do
    case "$image" in
        all-in-one | collector) ;;
        *) die "--build: $image is not all-in-one or collector (compose.yaml builds the others)" ;;
    esac
    [[ -d "$OUT/$image" ]] || die "$image was not staged (see above)"
    log "building hemostat/$image:local"
    docker build -q -t "hemostat/$image:local" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        -f "$ROOT/infra/Dockerfile.$image" "$OUT/$image" >/dev/null
done
log "done: docker-compose up --build"
