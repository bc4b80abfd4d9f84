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

main() {
    check_toolchain

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
    fi

    local -a extra
    read -r -a extra <<<"$(test_args "$@")"
    phase "running tests: cargo test --no-fail-fast ${extra[*]:+${extra[*]} }$*"
    local status=0
    # --no-fail-fast: one failing test binary must not hide the results of the others.
    cargo test --no-fail-fast "${extra[@]}" "$@" || status=$?
    if ((status == 0)); then
        phase "tests passed"
    else
        phase "tests FAILED (exit $status); process logs: target/e2e-logs/"
    fi
    exit "$status"
}

main "$@"
