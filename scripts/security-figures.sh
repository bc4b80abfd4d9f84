#!/usr/bin/env bash
# HemoStat's security figures, measured now on this machine (the book's
# Security chapter, docs/src/security.md, quotes them): the attacks the tests try and how many were
# refused, the secrets of the redaction corpora that leak and the benign
# lines altered, and the fuzzers' executions per target.
#
#   scripts/security-figures.sh                 fuzz each target for 10 s
#   HEMOSTAT_FUZZ_SECONDS=60 scripts/security-figures.sh
#
# It starts the private Docker and Redis of the test command
# (scripts/test-env.sh) unless they already run, and stops what it started.
# An attack that is not refused fails its test, and this script with it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIR="${HEMOSTAT_TEST_DIR:-/tmp/hemostat-test}"
TEST_ENV=(bash "$ROOT/scripts/test-env.sh")
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
out="$(mktemp -d)"

started=0
if ! [[ -f "$DIR/env" ]] || ! "${TEST_ENV[@]}" status | grep -q "dockerd: running"; then
    "${TEST_ENV[@]}" install >&2
    "${TEST_ENV[@]}" start >&2
    started=1
fi
finish() {
    local status=$?
    ((started)) && "${TEST_ENV[@]}" stop >&2
    rm -rf "$out"
    exit "$status"
}
trap finish EXIT
# shellcheck source=/dev/null
source "$DIR/env"
export HEMOSTAT_TEST_REDIS=node

echo "== building" >&2
cargo build --workspace --bins >&2

# The tests that attack: each refusal prints `attack refused: <kind>: <what>`.
attacks() {
    local package=$1 test=$2
    shift 2
    echo "== $package --test $test $*" >&2
    cargo test -p "$package" --test "$test" -- --nocapture --test-threads=2 "$@" >>"$out/attacks.log" 2>&1 ||
        { tail -50 "$out/attacks.log" >&2; echo "error: an attack test failed: $package $test $*" >&2; exit 1; }
}
attacks hemostat-e2e policy forged_requests
attacks hemostat-e2e least_privilege
attacks hemostat-e2e dashboard_browser the_dashboard_refuses the_page_answers_approvals
attacks hemostat-e2e approvals answered_from_slack_and_the_dashboard
attacks hemostat-collector collector a_forged_command
attacks hemostat-collector actions refused rejected
attacks hemostat-collector dependents claiming_by_label
attacks hemostat-local access
attacks hemostat-analyzer rules_path only_alerts_their_host_attested

echo
echo "Attacks tried, by kind (every one refused; tests named in scripts/security-figures.sh):"
grep -o 'attack refused: [^:]*' "$out/attacks.log" | sed 's/attack refused: //' | sort | uniq -c |
    awk '{n=$1; $1=""; printf "  %-24s %4d refused\n", substr($0, 2), n; total+=n} END {printf "  %-24s %4d refused\n", "total", total}'

echo
echo "Redaction (collector/tests/redaction_corpus.rs):"
cargo test -p hemostat-collector --release --test redaction_corpus -- --nocapture 2>/dev/null |
    grep -E '^(== |secrets leaked|benign lines altered|throughput|no evaluation set)' | sed 's/^/  /'
echo "  (per kind: cargo test -p hemostat-collector --release --test redaction_corpus -- --nocapture)"

echo
echo "Fuzzing (${HEMOSTAT_FUZZ_SECONDS:-10} s per target; exits non-zero on a finding):"
cargo run --release -q -p hemostat-fuzz -- --seconds "${HEMOSTAT_FUZZ_SECONDS:-10}"
