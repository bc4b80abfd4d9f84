#!/usr/bin/env bash
# The one command that runs every HemoStat test: provisions the private
# Docker + Redis environment, builds the binaries the end-to-end tests launch,
# runs `cargo test --workspace`, and always tears the environment down.
#
#   scripts/test.sh [cargo test args...]     e.g. scripts/test.sh -p hemostat-e2e
#
# Environment:
#   HEMOSTAT_TEST_DIR          state dir of the private dockerd/redis (default /tmp/hemostat-test)
#   HEMOSTAT_TEST_BUILD_ARGS   args for the `cargo build` phase (default "--workspace --bins");
#                              "skip" skips the phase (escape hatch while a crate is mid-edit)
#   HEMOSTAT_TEST_KEEP_ENV=1   leave dockerd/redis running afterwards (faster reruns)
#   HEMOSTAT_TEST_SKIP_CHECKS=1 skip the fmt, clippy, book, rust-version, workflow and cargo-deny
#                              gates (while iterating on one test)
#   HEMOSTAT_MSRV_TARGET_DIR   cargo's target dir for the rust-version check (default
#                              ~/.cache/hemostat/msrv-target: kept between runs and clones)
#   HEMOSTAT_ADVISORY_DB=PATH    a copy of the RustSec advisory database (git) where GitHub is unreachable
#   HEMOSTAT_TEST_FUZZ_SECONDS seconds of fuzzing per target after the build (default 2; 0 skips;
#                              longer runs: cargo run --release -p hemostat-fuzz -- --seconds 60)
#   HEMOSTAT_TEST_REDIS_MODES  the Redis the suite runs on, in turn (default "node cluster"):
#                              `node`, a redis-server per test; `cluster`, a six-node Redis
#                              Cluster per test (the harness reads HEMOSTAT_TEST_REDIS)
#   HEMOSTAT_TEST_LLM          1: the real-model test (scripts/llm.sh: llama-server, Gemma 3 270M)
#                              at the end, on each Redis mode; 0: not; default 1 when no package is picked
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEST_ENV=(bash "$ROOT/scripts/test-env.sh")
DIR="${HEMOSTAT_TEST_DIR:-/tmp/hemostat-test}"

phase() { printf '\n=== %s ===\n' "$*"; }

teardown() {
    local status=$?
    # Disarm so a signal during teardown does not run it twice.
    trap - EXIT INT TERM
    if [[ "${HEMOSTAT_TEST_KEEP_ENV:-0}" == 1 ]]; then
        phase "keeping test environment ($DIR/env)"
    else
        phase "stopping test environment"
        "${TEST_ENV[@]}" stop || echo "warning: test environment teardown failed" >&2
    fi
    # The background build, with its compilers (its own process group).
    [[ -z "${LLM_PREPARE:-}" ]] || kill -- -"$LLM_PREPARE" 2>/dev/null || true
    [[ -z "${LLM_STARTED:-}" ]] || bash "$ROOT/scripts/llm.sh" stop 2>/dev/null || true
    exit "$status"
}

check_toolchain() {
    command -v cargo >/dev/null 2>&1 ||
        { echo "error: cargo not found: install a Rust toolchain (rust-version in Cargo.toml)" >&2; exit 1; }
}

# `cargo test --workspace -p X` is rejected by cargo, so only add
# --workspace when the caller did not pick packages.
test_args() {
    local a
    for a in "$@"; do
        case "$a" in
            -p | --package | --package=* | -p?* | --workspace | --all) return 0 ;;
            --) break ;;
        esac
    done
    echo --workspace
}

# deny.toml: licenses, crates.io only, duplicate versions (reported). The
# advisories need the RustSec database from GitHub (or HEMOSTAT_ADVISORY_DB):
# checked when it can be fetched, skipped (and said so) when it cannot.
supply_chain() {
    if ! command -v cargo-deny >/dev/null 2>&1; then
        phase "installing cargo-deny (once, into ~/.cargo/bin; several minutes)"
        CARGO_INCREMENTAL=0 cargo install --locked cargo-deny
    fi
    phase "checking dependencies: cargo deny check licenses sources bans"
    cargo deny --log-level error check --hide-inclusion-graph licenses sources bans
    phase "checking advisories: cargo deny check advisories"
    # HEMOSTAT_ADVISORY_DB: a copy of the database (a git clone or mirror of
    # github.com/rustsec/advisory-db) for a machine that cannot reach GitHub;
    # git fetches from it in place of GitHub.
    local db_url=https://github.com/rustsec/advisory-db
    local -a redirect=()
    if [[ -n "${HEMOSTAT_ADVISORY_DB:-}" ]]; then
        redirect=(env GIT_CONFIG_COUNT=1 "GIT_CONFIG_KEY_0=url.$HEMOSTAT_ADVISORY_DB.insteadOf" "GIT_CONFIG_VALUE_0=$db_url")
    fi
    if timeout 120 "${redirect[@]}" cargo deny --log-level error fetch db >/dev/null 2>&1; then
        "${redirect[@]}" cargo deny --log-level error --offline check --hide-inclusion-graph advisories
        if [[ -n "${HEMOSTAT_ADVISORY_DB:-}" ]]; then
            echo "advisories: checked against the copy in $HEMOSTAT_ADVISORY_DB (its last advisory: $(git -C "$HEMOSTAT_ADVISORY_DB" log -1 --format=%cs))"
        fi
    else
        echo "advisories: skipped, the RustSec database ($db_url) is unreachable (HEMOSTAT_ADVISORY_DB: a local copy)"
    fi
}

# rust-version in Cargo.toml is the oldest toolchain that builds the
# workspace: checked with that very toolchain (installed once, minimal
# profile), in a target dir of its own that outlives the clone, so a rerun
# only checks what changed.
rust_version() {
    local version
    version="$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
    [[ -n "$version" ]] || { echo "error: no rust-version in Cargo.toml" >&2; exit 1; }
    command -v rustup >/dev/null 2>&1 ||
        { echo "rust-version: not checked, rustup is not installed (cargo +$version needs it)"; return 0; }
    if ! rustup run "$version" cargo --version >/dev/null 2>&1; then
        phase "installing Rust $version (rust-version in Cargo.toml; once)"
        rustup toolchain install "$version" --profile minimal
    fi
    # Libraries and binaries (what a user's `cargo install` or build
    # compiles); the tests are checked on the current toolchain, which keeps
    # a cold check to about half.
    phase "checking rust-version: cargo +$version check --workspace --locked"
    CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="${HEMOSTAT_MSRV_TARGET_DIR:-$HOME/.cache/hemostat/msrv-target}" \
        cargo "+$version" check --workspace --locked
}

# The GitHub workflows (.github/workflows): actionlint, with shellcheck on
# their `run:` scripts when it is installed.
workflows() {
    phase "checking workflows: actionlint"
    local tools
    tools="$(bash "$ROOT/scripts/release-tools.sh" 2>/dev/null | tail -n1)"
    "$tools/actionlint" -no-color "$ROOT"/.github/workflows/*.yml
}

# The static (musl) binaries a release ships, for the test that runs them
# (tests/tests/static_binaries.rs), dev profile (the release profile's
# optimisation adds minutes and changes nothing in how they link): for
# x86_64 every binary a tarball holds, run in an image without libc; for
# aarch64 the two a fleet host runs, the CLI and the collector, run under
# qemu-user. Each phase prints its time.
static_binaries() {
    local started
    phase "building static binaries: scripts/release.sh --target x86_64-unknown-linux-musl --profile dev --no-pack"
    started=$SECONDS
    bash "$ROOT/scripts/release.sh" --target x86_64-unknown-linux-musl --profile dev --no-pack
    echo "static x86_64 binaries: $((SECONDS - started)) s"
    phase "building static binaries: scripts/release.sh --target aarch64-unknown-linux-musl --profile dev --bin hemostat --bin hemostat-collector --no-pack"
    started=$SECONDS
    bash "$ROOT/scripts/release.sh" --target aarch64-unknown-linux-musl --profile dev \
        --bin hemostat --bin hemostat-collector --no-pack
    echo "static aarch64 binaries: $((SECONDS - started)) s"
    # What docs/src/release.md tells users to run, in the debug profile so the
    # build above is reused (cargo install would otherwise build in a
    # temporary folder of its own).
    phase "installing with cargo: cargo install --locked --path cli|collector"
    local root bin
    root="$(mktemp -d)"
    for bin in cli collector; do
        CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" \
            cargo install -q --locked --offline --debug --path "$ROOT/$bin" --root "$root"
    done
    for bin in hemostat hemostat-collector; do
        "$root/bin/$bin" --version >/dev/null || { echo "error: the installed $bin does not run" >&2; return 1; }
    done
    rm -rf "$root"
}

# Every parser of untrusted input, with the invariants of its results, for a
# few seconds each (fuzz/: seeds, findings in target/fuzz-findings/).
fuzz() {
    local seconds="${HEMOSTAT_TEST_FUZZ_SECONDS:-2}"
    if [[ "$seconds" == 0 ]]; then
        phase "skipping fuzzing (HEMOSTAT_TEST_FUZZ_SECONDS=0)"
        return 0
    fi
    phase "fuzzing: cargo run -p hemostat-fuzz -- --seconds $seconds"
    cargo run -q -p hemostat-fuzz -- --seconds "$seconds"
}

# Runs, on Redis `$1`, the test binaries of the first pass that asked which
# Redis they run on ($HEMOSTAT_TEST_MODE_LOG: `<package> --test <name>` or
# `<package> --lib` lines). One cargo test over the workspace, so features
# unify as in the first pass and nothing is built again.
mode_pass() {
    local mode="$1"
    local -a targets
    # shellcheck disable=SC2207 # the targets are words (`--test name`, `--lib`)
    targets=($(cut -d' ' -f2- "$HEMOSTAT_TEST_MODE_LOG" | sort -u | tr '\n' ' '))
    phase "running on Redis $mode the test binaries that depend on it: cargo test --no-fail-fast --workspace ${targets[*]}"
    HEMOSTAT_TEST_REDIS="$mode" cargo test --no-fail-fast --workspace "${targets[@]}"
}

main() {
    check_toolchain

    # The real model's server is built once per machine (47 minutes on two busy
    # cores the first time): in the background from here, waited for only
    # when the real-model test runs, after everything else.
    local llm="${HEMOSTAT_TEST_LLM:-}"
    [[ -n "$llm" ]] || { [[ "$(test_args "$@")" == --workspace ]] && llm=1 || llm=0; }
    if [[ "$llm" == 1 ]]; then
        phase "preparing the real model in the background (scripts/llm.sh prepare; log in ${HEMOSTAT_LLM_DIR:-/tmp/hemostat-llm})"
        setsid bash "$ROOT/scripts/llm.sh" prepare >/dev/null 2>&1 &
        LLM_PREPARE=$!
        # Until then the real-model test says it runs later, not skipped.
        export HEMOSTAT_TEST_LLM_LATER=1
    fi

    # Style and lints first: they need nothing installed, and a failure is
    # reported in a minute or two instead of after the end-to-end tests.
    if [[ "${HEMOSTAT_TEST_SKIP_CHECKS:-0}" != 1 ]]; then
        phase "checking style: cargo fmt --check"
        cargo fmt --all -- --check ||
            { echo "error: run \`cargo fmt --all\` (rustfmt.toml sets the style)" >&2; exit 1; }
        phase "checking lints: cargo clippy --workspace --all-targets -- -D warnings"
        CARGO_INCREMENTAL=0 cargo clippy --workspace --all-targets -- -D warnings
        # The book (docs/): a pinned mdBook, installed once per machine into the
        # cache (minutes the first time, then reused); its links are checked by
        # tests/tests/docs_links.rs with the rest of the suite.
        phase "building the book: scripts/docs.sh build"
        bash "$ROOT/scripts/docs.sh" build
        workflows
        rust_version
        supply_chain
    fi

    phase "installing system packages"
    "${TEST_ENV[@]}" install

    # cargo-lambda (and other pinned Python tools) for the client checks in local/tests.
    phase "installing Python tools"
    bash "$ROOT/scripts/python-tools.sh" >/dev/null

    trap teardown EXIT
    # Exit through teardown on Ctrl-C / kill with the conventional status.
    trap 'exit 130' INT
    trap 'exit 143' TERM

    phase "starting test environment"
    "${TEST_ENV[@]}" start
    # shellcheck source=/dev/null
    source "$DIR/env"
    echo "DOCKER_HOST=$DOCKER_HOST REDIS_URL=$REDIS_URL HEMOSTAT_TEST_IMAGE=$HEMOSTAT_TEST_IMAGE"

    # A one-off build gains nothing from incremental artifacts, which would
    # take gigabytes of disk beside ~70 test binaries.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
    local build_args="${HEMOSTAT_TEST_BUILD_ARGS:---workspace --bins}"
    if [[ "$build_args" == skip ]]; then
        phase "skipping build (HEMOSTAT_TEST_BUILD_ARGS=skip)"
    else
        phase "building binaries: cargo build $build_args"
        # shellcheck disable=SC2086 # word splitting intended for the arg list
        cargo build $build_args
        # Only when the end-to-end tests, where their test is, run.
        if [[ "$(test_args "$@")" == --workspace || " $* " == *" hemostat-e2e "* ]]; then
            static_binaries
        fi
    fi
    # A finding fails the run, after the tests (whose results it must not hide).
    local fuzz_status=0
    fuzz || fuzz_status=$?

    local -a extra
    read -r -a extra <<<"$(test_args "$@")"
    local status=0 mode first=1
    # The first pass runs every test; each test binary that asks which Redis
    # it runs on (tests/src/redis_server.rs, cluster_mode) is listed here,
    # and only those run again on the next Redis: the others (Docker
    # endpoints, the collector's actions, diagnosis, the book) take one node
    # or none, and would only repeat themselves.
    export HEMOSTAT_TEST_MODE_LOG="$DIR/mode-sensitive-tests"
    rm -f "$HEMOSTAT_TEST_MODE_LOG"
    for mode in ${HEMOSTAT_TEST_REDIS_MODES:-node cluster}; do
        if ((first)) || [[ ! -s "$HEMOSTAT_TEST_MODE_LOG" ]]; then
            phase "running tests on Redis $mode: cargo test --no-fail-fast ${extra[*]:+${extra[*]} }$*"
            # --no-fail-fast: one failing test binary must not hide the results of the others.
            HEMOSTAT_TEST_REDIS="$mode" cargo test --no-fail-fast "${extra[@]}" "$@" || status=$?
        else
            mode_pass "$mode" || status=$?
        fi
        first=0
    done
    if [[ "$llm" == 1 ]]; then
        phase "waiting for the real model (scripts/llm.sh wait), then starting it"
        LLM_STARTED=1
        if bash "$ROOT/scripts/llm.sh" wait && bash "$ROOT/scripts/llm.sh" start; then
            # shellcheck source=/dev/null
            source "$(bash "$ROOT/scripts/llm.sh" env)"
            unset HEMOSTAT_TEST_LLM_LATER
            for mode in ${HEMOSTAT_TEST_REDIS_MODES:-node cluster}; do
                phase "real-model test on Redis $mode ($HEMOSTAT_TEST_LLM_MODEL at $HEMOSTAT_TEST_LLM_URL)"
                HEMOSTAT_TEST_REDIS="$mode" cargo test -p hemostat-analyzer --test llm_real -- --nocapture || status=$?
            done
        else
            status=1
        fi
    fi
    if ((fuzz_status != 0)); then
        phase "fuzzing FOUND a panic or a broken invariant (exit $fuzz_status): inputs in target/fuzz-findings/"
        ((status != 0)) || status=$fuzz_status
    fi
    if ((status == 0)); then
        phase "tests passed"
    else
        phase "tests FAILED (exit $status); process logs: target/e2e-logs/"
    fi
    exit "$status"
}

main "$@"
