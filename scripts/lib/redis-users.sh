# The local Redis's users (sourced by scripts/stack.sh and scripts/compose.sh
# after scripts/lib/secrets.sh, not run): no user without a password, one
# ACL user per component with the least keys, channels and commands it needs
# (`hemostat acl`; see the README). Nothing here prints a secret.
#
#   redis_users_host                  pins HEMOSTAT_HOST (the collector's name)
#   redis_users STATE HOST PORT HEMOSTAT
#
# With the `hemostat` binary HEMOSTAT, for the collector of HOST and a Redis
# on 127.0.0.1:PORT, makes or reuses in STATE:
#   redis/hemostat-<role>.password  each user's password (0600, kept)
#   redis/users.acl                 the users for redis-server --aclfile
#                                   (passwords as SHA-256 only; default off)
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

redis_users() {
  local state=$1 host=$2 port=$3 hemostat=$4
  local dir="$state/redis" acl_file="$state/redis/users.acl" f sep
  mkdir -p "$dir"
  (
    umask 077
    "$hemostat" acl --dir "$state" --acl-file "collector:$host" bridge "${REDIS_USERS_FUNCTIONS[@]}" operator \
      >"$acl_file.tmp" 2>/dev/null &&
      echo "user default off resetkeys resetchannels -@all" >>"$acl_file.tmp" &&
      mv -f "$acl_file.tmp" "$acl_file"
  ) || secrets_die "could not make the Redis users in $dir (hemostat acl)"

  # The URL of ACL user $1, in $REPLY.
  redis_users_url() {
    secrets_read "$dir/$1.password"
    REPLY="redis://$1:$REPLY@127.0.0.1:$port"
  }
  redis_users_url hemostat-operator
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
