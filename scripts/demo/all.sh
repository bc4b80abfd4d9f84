#!/usr/bin/env bash
# Runs every demo scenario in turn against the running stack.
#   scripts/demo/all.sh
set -euo pipefail
dir="$(dirname "${BASH_SOURCE[0]}")"
for demo in cpu-spike memory-pressure restart-limit false-alarm; do
    printf '\n=== %s ===\n' "$demo"
    bash "$dir/$demo.sh"
done
