#!/usr/bin/env bash
# Demo: false alarm (the seed's "minor spike that goes away"). First a short
# CPU burst, shorter than HEMOSTAT_SUSTAIN_SECONDS: the collector does not
# even alert. Then memory above THRESHOLD_MEMORY_PERCENT (80) but far from
# critical, held long enough to alert: the analyzer finds no crash, no
# critical level and no leak, judges it transient (confidence 0.65, under
# ANALYZER_CONFIDENCE_THRESHOLD 0.7) and publishes false_alarm; nothing is
# restarted.
#
#   scripts/demo/false-alarm.sh
#
# Runs against a running stack (scripts/stack.sh or scripts/compose.sh up -d).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_stack
start_target hemostat-demo-false-alarm
start=$(redis_ms)
say "trigger 1: demo-cpu 4 (a 4 s burst)"
docker exec -d "$DEMO_TARGET" demo-cpu 4 1
if ! watch_events "$DEMO_TARGET" "$start" 12 health_alert; then
    say "  (no alert: the burst did not last HEMOSTAT_SUSTAIN_SECONDS)"
fi
DEMO_SEEN=()
start=$(redis_ms)
say "trigger 2: demo-memory 88 25 (88 % of the limit for 25 s, then released)"
docker exec -d "$DEMO_TARGET" demo-memory 88 25
watch_events "$DEMO_TARGET" "$start" 60 false_alarm remediation_complete || true
summary "$start"
