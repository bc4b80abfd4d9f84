#!/usr/bin/env bash
# HemoStat under docker-compose, in one command: builds the binaries, stages
# the images' build contexts from host files (infra/images/stage.sh, nothing
# is pulled), then runs docker-compose with compose.yaml.
#
#   scripts/compose.sh                    up -d --build: the whole stack, detached
#   scripts/compose.sh up                 in the foreground (Ctrl-C stops it)
#   scripts/compose.sh --profile demo --profile prometheus up -d
#   HEMOSTAT_NETWORK=host scripts/compose.sh up -d    on the host's network
#   scripts/compose.sh logs -f collector
#   scripts/compose.sh down -v            stop and remove everything
#
# Environment: DOCKER_HOST (the engine), HEMOSTAT_NETWORK (bridge, the
# default: compose.yaml's own network; host: with compose.host.yaml, every
# service on the host's network, for engines without bridge networks),
# HEMOSTAT_PROFILE=debug (faster
# build), HEMOSTAT_SKIP_BUILD=1 (use what target/ has), HEMOSTAT_BIN_DIR (the
# binaries' folder, default target/<profile>), and every variable of
# compose.yaml / .env.example.
#
# As scripts/stack.sh does, it gives the stack its secrets from the state
# folder ($HEMOSTAT_STATE_DIR, default .hemostat/), unless the environment
# (or .env) sets them: the emulator's token (HEMOSTAT_LAMBDA_TOKEN, a new one
# at every `up`, in lambda.token) for the emulator and the bridge, and the
# dashboard's (DASHBOARD_AUTH_TOKEN, kept in dashboard.token: the password
# a browser asks for); the dashboard's and exporter's URLs are AuthType NONE
# (HEMOSTAT_LOCAL_PARAMETER_OVERRIDES of yours come after and win); and the
# command signing key pair (`hemostat keys generate`, kept in
# command_signing.key, mode 0600, for the emulator's responder, and
# command_signing.pub for the collector). Its Redis has no user without a
# password: one ACL user per component (`hemostat acl`, passwords in
# redis/, 0600), the functions' URLs handed to the emulator in
# redis/functions.env.json, the collector's and the bridge's as
# HEMOSTAT_COLLECTOR_REDIS_URL and HEMOSTAT_BRIDGE_REDIS_URL, the operator's
# in redis.url where `hemostat` finds it. Redis keeps its data in
# redis/data (durable: infra/redis/durability.conf), which `down -v` leaves:
# delete it for an empty Redis. With REDIS_URL set (your own Redis) every
# component uses it. It prints where they are, never what.
# The collector's state folder (its place in Docker's event stream, so that
# exits while it was stopped are reported) is collector/ there, mounted at
# /var/lib/hemostat/collector.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/secrets.sh
source "$ROOT/scripts/lib/secrets.sh"
# shellcheck source=scripts/lib/redis-users.sh
source "$ROOT/scripts/lib/redis-users.sh"

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

# compose.override.yaml: the published ports (bridge); compose.host.yaml
# instead on the host's network.
files=(-f compose.yaml)
case "${HEMOSTAT_NETWORK:-bridge}" in
    bridge)
        files+=(-f compose.override.yaml)
        redis_at="redis:6379"
        ;;
    host)
        files+=(-f compose.host.yaml)
        redis_at="127.0.0.1:${HEMOSTAT_REDIS_PORT:-6379}"
        ;;
    *) echo "error: HEMOSTAT_NETWORK=${HEMOSTAT_NETWORK} is not bridge or host" >&2; exit 2 ;;
esac

# Only `up` and `build` need fresh binaries and contexts.
needs_images=0
for a in "${args[@]}"; do
    case "$a" in
        up | build) needs_images=1; break ;;
    esac
done

profile="${HEMOSTAT_PROFILE:-release}"
bin_dir="${HEMOSTAT_BIN_DIR:-target/$profile}"
hemostat="$bin_dir/hemostat"
if ((needs_images)); then
    if [[ "${HEMOSTAT_SKIP_BUILD:-0}" != 1 ]]; then
        echo "== cargo build ($profile)" >&2
        if [[ "$profile" == release ]]; then cargo build --release --bins; else cargo build --bins; fi
    fi
    echo "== staging images from $bin_dir" >&2
    bash infra/images/stage.sh --bin-dir "$bin_dir"
    # `up` rebuilds what changed (docker's layer cache makes the rest free).
    for i in "${!args[@]}"; do
        if [[ "${args[$i]}" == up ]]; then
            args=("${args[@]:0:i+1}" --build "${args[@]:i+1}")
            break
        fi
    done
fi

# The stack's secrets, as compose.yaml passes them on (a value in .env, which
# docker-compose reads itself, wins).
if [[ -f .env ]]; then
    set -a
    # shellcheck disable=SC1091
    source .env
    set +a
fi
state="${HEMOSTAT_STATE_DIR:-$ROOT/.hemostat}"
mkdir -p "$state"
# Made here, not by the engine (which would make it root's, 0755).
(umask 077 && mkdir -p "$state/collector")
starting=0
for a in "${args[@]}"; do [[ "$a" == up ]] && starting=1; done
if [[ -z "${HEMOSTAT_LAMBDA_TOKEN:-}" ]]; then
    # A new one when the stack starts; the same for anything else run on it.
    if ((starting)) || [[ ! -e "$state/lambda.token" ]]; then
        secrets_fresh "$state/lambda.token"
    else
        secrets_read "$state/lambda.token"
    fi
    export HEMOSTAT_LAMBDA_TOKEN=$REPLY
    ((starting)) && echo "== the emulator requires the token in $state/lambda.token (new every start)" >&2
fi
if [[ -z "${DASHBOARD_AUTH_TOKEN:-}" ]]; then
    secrets_keep "$state/dashboard.token"
    export DASHBOARD_AUTH_TOKEN=$REPLY
    ((starting)) && echo "== the dashboard asks for the token in $state/dashboard.token (any user name)" >&2
fi
if [[ -z "${HEMOSTAT_COMMAND_SIGNING_KEY:-}" ]]; then
    if [[ ! -e "$state/command_signing.key" ]]; then
        [[ -x "$hemostat" ]] || { echo "error: $hemostat is missing: build it (cargo build --bins) or set HEMOSTAT_COMMAND_SIGNING_KEY" >&2; exit 1; }
        "$hemostat" keys generate --dir "$state" >/dev/null
    fi
    secrets_read "$state/command_signing.key"
    export HEMOSTAT_COMMAND_SIGNING_KEY=$REPLY
    export HEMOSTAT_COMMAND_PUBLIC_KEYS="${HEMOSTAT_COMMAND_PUBLIC_KEYS:-$(<"$state/command_signing.pub")}"
    ((starting)) && echo "== commands are signed with the key in $state/command_signing.key; the collector verifies with $state/command_signing.pub" >&2
fi
if ((starting)) || [[ -x "$hemostat" ]]; then
    [[ -x "$hemostat" ]] || { echo "error: $hemostat is missing: build it (cargo build --bins)" >&2; exit 1; }
    redis_users_host
    redis_users "$state" "$HEMOSTAT_HOST" "${HEMOSTAT_REDIS_PORT:-6379}" "$hemostat" "$redis_at"
    # compose.yaml's redis reads users.acl as this user (it holds hashes
    # only), and keeps its data in redis/data, which must exist (or the
    # engine makes it, as root) and be this user's alone.
    HEMOSTAT_UID=$(id -u) HEMOSTAT_GID=$(id -g)
    export HEMOSTAT_UID HEMOSTAT_GID
    mkdir -p "$state/redis/data"
    chmod 0700 "$state/redis/data"
    if [[ -n "${REDIS_URL:-}" ]]; then
        rm -f "$state/redis.url"
        (umask 077 && echo '{}' >"$state/redis/functions.env.json")
        collector_redis_url=$REDIS_URL bridge_redis_url=$REDIS_URL
        ((starting)) && echo "== every component uses REDIS_URL" >&2
    else
        ((starting)) && echo "== Redis has no user without a password; one ACL user per component, passwords in $state/redis, the operator's URL in $state/redis.url" >&2
    fi
    export HEMOSTAT_COLLECTOR_REDIS_URL=$collector_redis_url HEMOSTAT_BRIDGE_REDIS_URL=$bridge_redis_url
fi
export HEMOSTAT_STATE_DIR=$state
export HEMOSTAT_LOCAL_PARAMETER_OVERRIDES="DashboardUrlAuthType=NONE ExporterUrlAuthType=NONE ${HEMOSTAT_LOCAL_PARAMETER_OVERRIDES:-}"

echo "== ${compose[*]} ${files[*]} ${args[*]}" >&2
exec "${compose[@]}" "${files[@]}" "${args[@]}"
