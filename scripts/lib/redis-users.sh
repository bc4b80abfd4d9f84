# The local Redis's users (sourced by scripts/stack.sh and scripts/compose.sh
# after scripts/lib/secrets.sh, not run): no user without a password, one
# ACL user per component with the least keys, channels and commands it needs
# (`hemostat acl`; see docs/src/cli.md). Nothing here prints a secret.
#
#   redis_users_host                  pins HEMOSTAT_HOST (the collector's name)
#   redis_users STATE HOST PORT HEMOSTAT [PARTS_AT]
#
# With the `hemostat` binary HEMOSTAT, for the collector of HOST and a Redis
# on 127.0.0.1:PORT (which the parts reach at PARTS_AT, default the same:
# compose.yaml's bridge network says redis:6379), makes or reuses in STATE:
#   redis/hemostat-<role>.password  each user's password (0600, kept)
#   redis/users.acl                 the users for redis-server --aclfile
#                                   (passwords as SHA-256 only; the default
#                                   user's a hash nobody has the password of)
#   redis/functions.env.json        each function's REDIS_URL, for the
#                                   emulator's --env-vars (0600)
#   redis.url                       the operator's URL, where `hemostat`
#                                   finds it (0600)
# and sets collector_redis_url and bridge_redis_url (secret: pass them to
# that process only) and operator_password.

# HEMOSTAT_HOST, unless set: the name the collector would pick (/etc/hostname,
# else `hostname`), pinned so that its Redis user is made for the same name.
redis_users_host() {
  if [[ -z "${HEMOSTAT_HOST:-}" ]]; then
    HEMOSTAT_HOST=$(tr -d '[:space:]' </etc/hostname 2>/dev/null || true)
    [[ -n "$HEMOSTAT_HOST" ]] || HEMOSTAT_HOST=$(hostname 2>/dev/null || true)
    [[ -n "$HEMOSTAT_HOST" ]] || HEMOSTAT_HOST=localhost
  fi
  export HEMOSTAT_HOST
}

# The functions of template.yaml, each its own Redis user.
REDIS_USERS_FUNCTIONS=(analyzer responder alert exporter dashboard)

# The default user's line: nobody can log in as it (its password is the
# SHA-256 of 32 random bytes that are never kept, new at every start), so a
# client without a password is refused (NOAUTH) as with the user off, yet
# it may run everything. It must: when Redis loads its append-only file, it
# replays each MULTI/EXEC as the default user and checks that user's
# permissions again at EXEC, and Redis 7 (7.0.15 and 7.2.5 seen; fixed
# upstream by redis/redis#14545, valkey-io/valkey#3984) silently drops
# every transaction, and so every event published and every gate decision
# (scripts are written to the AOF as transactions), that the default user
# may not run.
redis_users_default() {
  local hash
  hash=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
  [[ "$hash" =~ ^[0-9a-f]{64}$ ]] || secrets_die "could not hash 32 random bytes (sha256sum)"
  printf 'user default on #%s ~* &* +@all\n' "$hash"
}

redis_users() {
  local state=$1 host=$2 port=$3 hemostat=$4 parts_at=${5:-127.0.0.1:$3}
  local dir="$state/redis" acl_file="$state/redis/users.acl" f sep
  mkdir -p "$dir"
  (
    umask 077
    "$hemostat" acl --dir "$state" --acl-file "collector:$host" bridge "${REDIS_USERS_FUNCTIONS[@]}" operator \
      >"$acl_file.tmp" 2>/dev/null &&
      redis_users_default >>"$acl_file.tmp" &&
      mv -f "$acl_file.tmp" "$acl_file"
  ) || secrets_die "could not make the Redis users in $dir (hemostat acl)"

  # The URL of ACL user $1 at $2 (default: where the parts reach it), in $REPLY.
  redis_users_url() {
    secrets_read "$dir/$1.password"
    REPLY="redis://$1:$REPLY@${2:-$parts_at}"
  }
  # The operator's, from this machine.
  redis_users_url hemostat-operator "127.0.0.1:$port"
  (umask 077 && printf '%s\n' "$REPLY" >"$state/redis.url.tmp" && mv -f "$state/redis.url.tmp" "$state/redis.url")
  secrets_read "$dir/hemostat-operator.password"
  operator_password=$REPLY
  redis_users_url "hemostat-collector-$host"
  collector_redis_url=$REPLY
  redis_users_url hemostat-bridge
  bridge_redis_url=$REPLY
  {
    printf '{'
    sep=""
    for f in "${REDIS_USERS_FUNCTIONS[@]}"; do
      redis_users_url "hemostat-$f"
      printf '%s"hemostat-%s": {"REDIS_URL": "%s"}' "$sep" "$f" "$REPLY"
      sep=", "
    done
    printf '}\n'
  } | (umask 077 && cat >"$dir/functions.env.json.tmp" && mv -f "$dir/functions.env.json.tmp" "$dir/functions.env.json")
}
