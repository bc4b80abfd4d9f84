#!/usr/bin/env bash
# HemoStat under docker-compose, in one command: builds the binaries, stages
# the images' build contexts from host files (infra/images/stage.sh, nothing
# is pulled), then runs docker-compose with compose.yaml.
#
#   scripts/compose.sh                    up -d --build: the whole stack, detached
#   scripts/compose.sh up                 in the foreground (Ctrl-C stops it)
#   scripts/compose.sh --profile prometheus up -d
#   scripts/compose.sh logs -f collector
#   scripts/compose.sh down -v            stop and remove everything
#
# Environment: DOCKER_HOST (the engine), HEMOSTAT_PROFILE=debug (faster
# build), HEMOSTAT_SKIP_BUILD=1 (use what target/ has), and every variable of
# compose.yaml / .env.example.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    echo "error: neither docker-compose nor the docker compose plugin is installed (apt-get install docker-compose)" >&2
    exit 1
fi

args=("$@")
((${#args[@]} > 0)) || args=(up -d)

# Only `up` and `build` need fresh binaries and contexts.
needs_images=0
for a in "${args[@]}"; do
    case "$a" in
        up | build) needs_images=1; break ;;
    esac
done

if ((needs_images)); then
    profile="${HEMOSTAT_PROFILE:-release}"
    if [[ "${HEMOSTAT_SKIP_BUILD:-0}" != 1 ]]; then
        echo "== cargo build ($profile)"
        if [[ "$profile" == release ]]; then cargo build --release --bins; else cargo build --bins; fi
    fi
    echo "== staging images from target/$profile"
    bash infra/images/stage.sh --bin-dir "target/$profile"
    # `up` rebuilds what changed (docker's layer cache makes the rest free).
    for i in "${!args[@]}"; do
        if [[ "${args[$i]}" == up ]]; then
            args=("${args[@]:0:i+1}" --build "${args[@]:i+1}")
            break
        fi
    done
fi

echo "== ${compose[*]} ${args[*]}"
exec "${compose[@]}" -f compose.yaml "${args[@]}"
