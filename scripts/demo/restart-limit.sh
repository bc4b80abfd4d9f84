#!/usr/bin/env bash
# Demo: restart limit reached (the seed's "after 3 restarts, cooldown
# prevents the 4th"). The target crashes CRASHES times; HemoStat restarts
# it, then the safety gate refuses: within RESPONDER_COOLDOWN_SECONDS
# (default 3600) of a restart, and beyond RESPONDER_MAX_RETRIES_PER_HOUR
# (default 3) restarts an hour. With the default cooldown the second crash
# is already refused; start the stack with RESPONDER_COOLDOWN_SECONDS=0 to
# watch the circuit breaker (and the analyzer's repeated-failure rule) stop
# the later ones. After a refusal the demo starts the target again itself,
# as an operator would, to crash it once more. Each crash is provoked from
# outside (`docker kill -s USR1`, the service exits 1): the analyzer tells
# such a crash from one that repeats on its own, which it would stop
# itself as deterministic before the gate is asked.
#
#   scripts/demo/restart-limit.sh [CRASHES]     default 4
#
# Runs against a running stack (scripts/stack.sh or scripts/compose.sh up -d).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

crashes="${1:-4}"
check_stack
start_target hemostat-demo-restart
restarted=0
refused=0
for ((i = 1; i <= crashes; i++)); do
    if ! wait_running "$DEMO_TARGET" 1; then
        say "(the target is down: starting it by hand, as an operator would)"
        docker start "$DEMO_TARGET" >/dev/null
        wait_running "$DEMO_TARGET" 10 || die "$DEMO_TARGET did not start"
        sleep 1
    fi
    DEMO_SEEN=()
    start=$(redis_ms)
    say ""
    say "crash $i of $crashes: docker kill -s USR1 (the service exits 1)"
    docker kill --signal USR1 "$DEMO_TARGET" >/dev/null || true
    watch_events "$DEMO_TARGET" "$start" 30 remediation_complete false_alarm || say "  (no outcome within 30 s)"
    fix=$(first_seen remediation_complete)
    if [[ -n "$fix" ]] &&
        rcli --json XRANGE hemostat:stream:remediation_complete "$fix" + COUNT 50 |
        jq -e --arg name "$DEMO_TARGET" '[.[] | (.[1][1] | fromjson).data | select(.container == $name)][0].result.status == "success"' >/dev/null; then
        restarted=$((restarted + 1))
        # Past the collector's verification, so the next crash is a new one.
        sleep 1
    else
        refused=$((refused + 1))
    fi
done
say ""
say "HemoStat: restarted the target $restarted time(s), declined $refused time(s) out of $crashes crashes."
