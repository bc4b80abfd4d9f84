#!/usr/bin/env bash
# Builds every function of template.yaml for AWS Lambda (Graviton, arm64)
# with cargo-lambda, as `sam build` would, and prints each artifact's size
# zipped and unzipped beside the goal, then each function's cold start
# (init duration) under the local emulator.
#
#   scripts/lambda-build.sh                  build all, sizes, cold starts
#   scripts/lambda-build.sh analyzer alert   only these binaries
#   HEMOSTAT_SKIP_INIT=1 scripts/lambda-build.sh   sizes only
#
# Artifacts: target/lambda/<binary>/bootstrap.zip (what `sam deploy` or
# `aws lambda update-function-code --zip-file` takes).
#
# Environment:
#   HEMOSTAT_LAMBDA_TARGET_DIR  cargo's target dir for the cross build
#                               (default target/lambda-arm64: its own, so a
#                               long build never holds the lock of target/)
#   HEMOSTAT_VENV               where scripts/python-tools.sh put cargo-lambda
#
# Goals: at most 4 MB zipped per function, 8 MB for one that links the AWS
# SDK. Exit status 1 if a build failed or an artifact is over its goal.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET_TRIPLE=aarch64-unknown-linux-gnu
LAMBDA_DIR="$ROOT/target/lambda"
export CARGO_TARGET_DIR="${HEMOSTAT_LAMBDA_TARGET_DIR:-$ROOT/target/lambda-arm64}"
GOAL_MB=4
SDK_GOAL_MB=8

log() { printf '[lambda-build] %s\n' "$*" >&2; }
die() { printf '[lambda-build] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain"
command -v python3 >/dev/null 2>&1 || die "python3 not found"

# cargo-lambda (and the zig it cross-links with) from the project's venv.
VENV_BIN="$(bash "$ROOT/scripts/python-tools.sh" | tail -n1)"
export PATH="$VENV_BIN:$PATH"
command -v cargo-lambda >/dev/null 2>&1 || die "cargo-lambda missing from $VENV_BIN"

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$TARGET_TRIPLE"; then
        log "rustup target add $TARGET_TRIPLE"
        rustup target add "$TARGET_TRIPLE" >&2
    fi
fi

# The functions are what template.yaml says they are: every
# Metadata.BuildProperties.Binary of a rust-cargolambda resource.
template_binaries() {
    awk '/^[[:space:]]+Binary:[[:space:]]*/ { print $2 }' template.yaml | tr -d '"'"'" | sort -u
}

if (($# > 0)); then
    binaries=("$@")
else
    mapfile -t binaries < <(template_binaries)
fi
((${#binaries[@]} > 0)) || die "no Binary: entries in template.yaml"

# Binaries whose package depends on an AWS SDK crate get the larger goal.
mapfile -t sdk_binaries < <(cargo metadata --format-version 1 --no-deps 2>/dev/null | python3 -c '
import json, sys
meta = json.load(sys.stdin)
for pkg in meta["packages"]:
    if any(d["name"].startswith("aws-sdk-") for d in pkg["dependencies"]):
        for t in pkg["targets"]:
            if "bin" in t["kind"]:
                print(t["name"])
')

is_sdk() {
    local b
    for b in "${sdk_binaries[@]}"; do [[ "$b" == "$1" ]] && return 0; done
    return 1
}

# Cold starts: the same functions built for this machine (the arm64 ones
# cannot run here) under the local emulator, which starts one instance of
# each up front and logs its init duration (spawn to first /next, what
# Lambda's REPORT line calls Init Duration). A throwaway redis-server backs
# functions that connect at init.
measure_init() {
    local -a ids=() bins=() cargo_bins=()
    local id bin
    while read -r id bin; do
        [[ " ${binaries[*]} " == *" $bin "* ]] || continue
        ids+=("$id")
        bins+=("$bin")
        cargo_bins+=(--bin "$bin")
    done < <(awk '
        /^  [A-Za-z0-9]+:[[:space:]]*$/ { id = $1; sub(":", "", id) }
        /^[[:space:]]+Binary:[[:space:]]*/ { b = $2; gsub(/["\047]/, "", b); print id, b }
    ' template.yaml)
    ((${#ids[@]} > 0)) || return 1

    local host_target="${HEMOSTAT_HOST_TARGET_DIR:-$ROOT/target}"
    log "cargo build --release (host) of the emulator and ${bins[*]}"
    CARGO_TARGET_DIR="$host_target" cargo build --release --bin hemostat-local "${cargo_bins[@]}" >&2 || return 1
    local bindir="$host_target/release"

    local work port redis_pid="" emu_pid="" emu_log
    work="$(mktemp -d)"
    emu_log="$work/emulator.log"
    local redis_url="${REDIS_URL:-}"
    if [[ -z "$redis_url" ]] && command -v redis-server >/dev/null 2>&1; then
        port=$((20000 + RANDOM % 12000))
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" >/dev/null
        redis_url="redis://127.0.0.1:$port"
        for _ in $(seq 50); do [[ -s "$work/redis.pid" ]] && break; sleep 0.1; done
        redis_pid="$(cat "$work/redis.pid" 2>/dev/null || true)"
    fi
    # Only what this function started, by pid; also when the script dies midway.
    cleanup_init() {
        if [[ -n "$emu_pid" ]]; then kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null; fi
        if [[ -n "$redis_pid" ]]; then kill "$redis_pid" 2>/dev/null; fi
        rm -rf "$work"
        emu_pid="" redis_pid=""
    }
    trap cleanup_init EXIT

    local functions
    functions="$(IFS=,; echo "${ids[*]}")"
    REDIS_URL="${redis_url:-redis://127.0.0.1:6379}" RUST_LOG=info NO_COLOR=1 \
        "$bindir/hemostat-local" --template "$ROOT/template.yaml" --listen 127.0.0.1:0 \
        --bin-dir "$bindir" --functions "$functions" >"$emu_log" 2>&1 &
    emu_pid=$!

    local deadline=$((SECONDS + 30)) seen
    while ((SECONDS < deadline)); do
        seen="$(grep -c 'instance initialized' "$emu_log" || true)"
        ((seen >= ${#ids[@]})) && break
        kill -0 "$emu_pid" 2>/dev/null || break
        sleep 0.2
    done

    echo "cold starts under the emulator (x86_64 release build, init = spawn to first /next):"
    # Lines look like: ... instance initialized (cold start) function=NAME instance=N init_ms=12.3
    local line name ms
    while read -r line; do
        name="$(grep -o 'function=[^ ]*' <<<"$line" | head -n1 | cut -d= -f2 | tr -d '"')"
        ms="$(grep -o 'init_ms=[0-9.]*' <<<"$line" | head -n1 | cut -d= -f2)"
        printf '  %-22s %8.1f ms\n' "$name" "$ms"
    done < <(sed 's/\x1b\[[0-9;]*m//g' "$emu_log" | grep 'instance initialized')
    if ((seen < ${#ids[@]})); then
        echo "  (only $seen of ${#ids[@]} functions initialized within 30 s; emulator log:)"
        tail -n 20 "$emu_log" | sed 's/^/    /'
    fi
    cleanup_init
    trap - EXIT
}

failed=()
over=()
for bin in "${binaries[@]}"; do
    log "cargo lambda build --release --arm64 --output-format zip --bin $bin"
    started=$SECONDS
    # One binary at a time: a function that does not build (yet) must not hide
    # the sizes of the others; shared dependencies are built once anyway.
    if cargo lambda build --release --arm64 --output-format zip \
        --lambda-dir "$LAMBDA_DIR" --bin "$bin" >&2; then
        log "$bin built in $((SECONDS - started)) s"
    else
        log "$bin FAILED to build"
        failed+=("$bin")
    fi
done

echo
echo "function artifacts (arm64, provided.al2023), $LAMBDA_DIR/<function>/bootstrap.zip:"
printf '  %-12s %12s %12s  %s\n' function zipped unzipped goal
for bin in "${binaries[@]}"; do
    zip="$LAMBDA_DIR/$bin/bootstrap.zip"
    if [[ ! -f "$zip" ]] || [[ " ${failed[*]:-} " == *" $bin "* ]]; then
        printf '  %-12s %12s\n' "$bin" "(no build)"
        continue
    fi
    goal=$GOAL_MB
    is_sdk "$bin" && goal=$SDK_GOAL_MB
    read -r zipped unzipped < <(python3 - "$zip" <<'PY'
import os, sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as z:
    print(os.path.getsize(path), sum(i.file_size for i in z.infolist()))
PY
)
    verdict=ok
    if ((zipped > goal * 1024 * 1024)); then
        verdict=OVER
        over+=("$bin")
    fi
    printf '  %-12s %9.2f MB %9.2f MB  <= %d MB zipped: %s\n' "$bin" \
        "$(python3 -c "print($zipped/1048576)")" "$(python3 -c "print($unzipped/1048576)")" "$goal" "$verdict"
done

if [[ "${HEMOSTAT_SKIP_INIT:-0}" != 1 ]]; then
    echo
    measure_init || log "cold starts not measured (see above)"
fi

if ((${#failed[@]} > 0)); then
    echo "build failed: ${failed[*]}" >&2
    exit 1
fi
if ((${#over[@]} > 0)); then
    echo "over the size goal: ${over[*]}" >&2
    exit 1
fi
