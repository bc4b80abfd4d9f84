# The local stack's secrets in its state folder (sourced by scripts/stack.sh
# and scripts/compose.sh, not run): each is 32 random bytes as 64 hex
# digits, in a file of its own that is private (mode 0600) from its first
# byte, one line of printable characters (what `hemostat` accepts too).
# Nothing here ever prints a secret.
#
#   secrets_keep FILE      the secret in FILE, generated the first time and
#                          kept across starts (the command key, the
#                          dashboard's token)
#   secrets_fresh FILE     a new secret in FILE on every call (the emulator's
#                          token: one per start of the stack)
#
# Both leave the value in $REPLY and fail (exit) with a message on stderr
# when the file is not a private regular file of one printable line.

secrets_die() { echo "error: $*" >&2; exit 1; }

# 32 random bytes from the kernel, as hex, into a new private file next to
# FILE; prints its name.
secrets_new_file() {
  local file=$1 tmp value
  tmp=$(umask 077 && mktemp "$(dirname "$file")/.$(basename "$file").XXXXXX") ||
    secrets_die "cannot create a file next to $file"
  value=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
  if [[ ${#value} != 64 ]]; then
    rm -f "$tmp"
    secrets_die "could not read 32 random bytes from /dev/urandom"
  fi
  printf '%s\n' "$value" >"$tmp"
  printf '%s' "$tmp"
}

# FILE must be a private regular file of one printable line; $REPLY is it.
secrets_read() {
  local file=$1 mode
  [[ -f "$file" && ! -L "$file" ]] || secrets_die "$file is not a regular file; delete it and start again"
  mode=$(stat -c %a "$file")
  (((8#$mode & 8#077) == 0)) || secrets_die "$file has mode $mode, open to group or others: run chmod 600 $file"
  REPLY=$(<"$file")
  [[ -n "$REPLY" && -z "$(printf '%s' "$REPLY" | LC_ALL=C tr -d '!-~')" ]] ||
    secrets_die "$file is not one line of printable characters; delete it and start again for a new one"
}

secrets_keep() {
  local file=$1 tmp
  if [[ ! -e "$file" ]]; then
    tmp=$(secrets_new_file "$file")
    # A hard link never replaces a secret another start wrote meanwhile.
    ln "$tmp" "$file" 2>/dev/null || true
    rm -f "$tmp"
  fi
  secrets_read "$file"
}

secrets_fresh() {
  local file=$1 tmp
  tmp=$(secrets_new_file "$file")
  mv -f "$tmp" "$file"
  secrets_read "$file"
}
