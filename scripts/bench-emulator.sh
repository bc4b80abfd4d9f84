#!/usr/bin/env bash
# Emulator overhead benchmark: release-builds the emulator and the functions,
# installs cargo-lambda (scripts/python-tools.sh), and runs bench-emulator,
# which measures the no-op function behind hemostat-local and behind
# `cargo lambda watch` side by side, with two floors measured by the same
# client in the same run (a bare Runtime API serving the same function, a
# hyper echo server), and prints cold starts.
#
#   scripts/bench-emulator.sh [bench-emulator args...]   e.g. --requests 5000
#   scripts/bench-emulator.sh --baseline-emulator /tmp/hemostat-local-old   (compare builds)
#
# Exit status 1 when the goal (p50 <= 1 ms and <= half of cargo lambda watch) is not met.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

cargo build --release -p hemostat-local --bins
# The real functions' cold starts are reported when they build; a crate that
# is mid-edit must not stop the emulator's own benchmark.
cargo build --release -p hemostat-analyzer -p hemostat-responder ||
    echo "warning: analyzer/responder did not build; their cold starts are skipped" >&2

VENV_BIN="$(bash "$ROOT/scripts/python-tools.sh" | tail -n1)"

exec "$ROOT/target/release/bench-emulator" \
    --bin-dir "$ROOT/target/release" \
    --workspace "$ROOT" \
    --cargo-lambda "$VENV_BIN/cargo-lambda" \
    "$@"
