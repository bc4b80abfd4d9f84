#!/usr/bin/env bash
# Demo: memory pressure (the seed's high-memory trigger). A target holds
# PERCENT of its 256 MiB limit; above 95 % is critical, and once that has
# lasted HEMOSTAT_SUSTAIN_SECONDS the analyzer calls for a restart, which
# gives the memory back.
#
#   scripts/demo/memory-pressure.sh [PERCENT] [SECONDS]   default 97 % for 90 s
#
# Runs against a running stack (scripts/stack.sh or scripts/compose.sh up -d).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pct="${1:-97}"
secs="${2:-90}"
check_stack
start_target hemostat-demo-memory
start=$(redis_ms)
say "trigger: demo-memory $pct $secs (hold $pct % of the memory limit)"
docker exec -d "$DEMO_TARGET" demo-memory "$pct" "$secs"
watch_events "$DEMO_TARGET" "$start" $((secs + 30)) remediation_complete false_alarm || true
summary "$start"
