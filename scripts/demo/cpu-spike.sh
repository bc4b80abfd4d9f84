#!/usr/bin/env bash
# Demo: sustained CPU spike (the seed's `stress --cpu`). A target runs four
# busy loops (up to 400 %, as `docker stats` counts: enough to stay above
# the 85 % threshold even on a busy two-core machine); the collector alerts once it has stayed high for
# HEMOSTAT_SUSTAIN_SECONDS (default 10 s), the analyzer calls for a restart,
# the collector restarts it and checks it stays up.
#
#   scripts/demo/cpu-spike.sh [SECONDS] [WORKERS]   default 60 s, 4 workers
#
# Runs against a running stack (scripts/stack.sh or scripts/compose.sh up -d).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

secs="${1:-60}"
workers="${2:-4}"
check_stack
start_target hemostat-demo-cpu
start=$(redis_ms)
say "trigger: demo-cpu $secs $workers ($workers busy loops)"
docker exec -d "$DEMO_TARGET" demo-cpu "$secs" "$workers"
watch_events "$DEMO_TARGET" "$start" $((secs + 30)) remediation_complete false_alarm || true
summary "$start"
