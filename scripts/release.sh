#!/usr/bin/env bash
# Builds HemoStat's static (musl) binaries and packs them for a release:
#
#   target/dist/hemostat-<version>-<target>.tar.gz   one per target: the binaries,
#                                                    template.yaml (the emulator's
#                                                    functions) and LICENSE
#   target/dist/SHA256SUMS                           `sha256sum -c SHA256SUMS` checks them
#
#   scripts/release.sh                               both targets, every binary, packed
#   scripts/release.sh --target x86_64-unknown-linux-musl --profile dev --no-pack
#   scripts/release.sh --target aarch64-unknown-linux-musl --profile dev \
#       --bin hemostat --bin hemostat-collector --no-pack
#                                                    what scripts/test.sh builds for
#                                                    tests/tests/static_binaries.rs
#
# Options:
#   --target TRIPLE   x86_64-unknown-linux-musl and/or aarch64-unknown-linux-musl
#                     (repeatable; default both)
#   --profile NAME    cargo profile (default dist: thin LTO, see Cargo.toml)
#   --bin NAME        a binary to build (repeatable; default every binary a user runs:
#                     hemostat, hemostat-collector, hemostat-bridge, hemostat-local and
#                     every function of template.yaml)
#   --no-pack         build and check only, no tarballs
#   --list-bins       print the default binaries, one a line, and exit (the test
#                     of the static binaries runs each of them)
#
# The binaries are linked statically against musl (no libc, no loader: they
# run in an empty image), cross-compiled with cargo-zigbuild, zig being the C
# compiler (ring) and the linker for both targets; scripts/release-tools.sh
# installs both once into ~/.cache/hemostat/tools. Each binary is checked to
# have no program interpreter and no shared library. Prints the build time
# per target and the size of every binary and tarball.
#
# Environment: CARGO_TARGET_DIR (default target/), HEMOSTAT_DIST_DIR (default
# <target dir>/dist), SOURCE_DATE_EPOCH (the tarballs' file times; default
# the last commit's).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[release] %s\n' "$*" >&2; }
die() { printf '[release] error: %s\n' "$*" >&2; exit 1; }

targets=()
bins=()
profile=dist
pack=1
list=0
while (($# > 0)); do
    case "$1" in
        --target) targets+=("$2"); shift 2 ;;
        --profile) profile="$2"; shift 2 ;;
        --bin) bins+=("$2"); shift 2 ;;
        --no-pack) pack=0; shift ;;
        --list-bins) list=1; shift ;;
        -h | --help) sed -n '2,36p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument $1 (try --help)" ;;
    esac
done
((${#targets[@]} > 0)) || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
for t in "${targets[@]}"; do
    case "$t" in
        x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) ;;
        *) die "unsupported target $t (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl)" ;;
    esac
done

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
command -v readelf >/dev/null 2>&1 || die "readelf not found (apt-get install binutils)"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
DIST="${HEMOSTAT_DIST_DIR:-$TARGET_DIR/dist}"

# Every binary a user runs: the long-running parts, the CLI, the emulator and
# the functions template.yaml declares (so a new function needs no edit here).
user_binaries() {
    printf '%s\n' hemostat hemostat-collector hemostat-bridge hemostat-local
    awk '/^[[:space:]]+Binary:[[:space:]]*/ { b = $2; gsub(/["\047]/, "", b); print b }' template.yaml
}
if ((list)); then
    user_binaries | sort -u
    exit 0
fi
((${#bins[@]} > 0)) || mapfile -t bins < <(user_binaries | sort -u)

# Which package each binary is in (cargo builds them with -p PKG --bin NAME,
# so no other package's features leak into them, e.g. hemostat-fuzz's).
metadata="$(cargo metadata --format-version 1 --no-deps --locked)"
version="$(python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["version"] for p in m["packages"] if p["name"]=="hemostat-cli"))' <<<"$metadata")"
mapfile -t packages < <(python3 -c '
import json, sys
meta = json.load(sys.stdin)
owner = {t["name"]: p["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
missing = [b for b in sys.argv[1:] if b not in owner]
if missing:
    sys.exit("no such binary in the workspace: " + " ".join(missing))
print("\n".join(sorted({owner[b] for b in sys.argv[1:]})))
' "${bins[@]}" <<<"$metadata")
((${#packages[@]} > 0)) || die "could not map the binaries to their packages"

PATH="$(bash "$ROOT/scripts/release-tools.sh" 2>/dev/null | tail -n1):$PATH"
export PATH
command -v cargo-zigbuild >/dev/null 2>&1 || die "cargo-zigbuild missing (scripts/release-tools.sh)"

if command -v rustup >/dev/null 2>&1; then
    for t in "${targets[@]}"; do
        rustup target list --installed | grep -qx "$t" || { log "rustup target add $t"; rustup target add "$t" >&2; }
    done
fi

# cargo's output folder of a profile.
profile_dir() {
    case "$1" in
        dev) echo debug ;;
        *) echo "$1" ;;
    esac
}

# A static binary has no program interpreter (PT_INTERP) and needs no shared
# library (DT_NEEDED): it runs where there is no libc at all.
check_static() {
    local file="$1" why=""
    readelf -lW "$file" | grep -q 'INTERP' && why="has a program interpreter"
    readelf -dW "$file" | grep -q '(NEEDED)' && why="${why:+$why, }needs shared libraries"
    [[ -z "$why" ]] || die "$file is not static: $why ($(readelf -dW "$file" | grep NEEDED | tr -s ' ' | tr '\n' ';'))"
}

size_mb() { python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1]) / 1048576:.1f} MB')" "$1"; }

export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
pkg_args=()
for p in "${packages[@]}"; do pkg_args+=(-p "$p"); done
bin_args=()
for b in "${bins[@]}"; do bin_args+=(--bin "$b"); done

summary=()
tarballs=()
for target in "${targets[@]}"; do
    log "cargo zigbuild --locked --profile $profile --target $target ${pkg_args[*]} ${bin_args[*]}"
    started=$SECONDS
    cargo zigbuild --locked --profile "$profile" --target "$target" "${pkg_args[@]}" "${bin_args[@]}" >&2
    took=$((SECONDS - started))
    out="$TARGET_DIR/$target/$(profile_dir "$profile")"
    summary+=("$target: built in ${took} s ($profile profile)")
    for b in "${bins[@]}"; do
        check_static "$out/$b"
        summary+=("$(printf '  %-22s %10s  static' "$b" "$(size_mb "$out/$b")")")
    done
    ((pack)) || continue

    name="hemostat-$version-$target"
    stage="$DIST/$name"
    rm -rf "$stage"
    mkdir -p "$stage"
    for b in "${bins[@]}"; do cp "$out/$b" "$stage/$b"; done
    cp template.yaml LICENSE "$stage/"
    # Same inputs, same bytes: sorted names, no owner, fixed times, no gzip timestamp.
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$DIST" -cf - "$name" |
        gzip -n -9 >"$DIST/$name.tar.gz"
    rm -rf "$stage"
    tarballs+=("$name.tar.gz")
    summary+=("$(printf '  %-22s %10s' "$name.tar.gz" "$(size_mb "$DIST/$name.tar.gz")")")
done

if ((pack)); then
    # Every tarball of this version in dist/, also one built by an earlier run
    # for the other target.
    (cd "$DIST" && sha256sum hemostat-"$version"-*.tar.gz >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
    summary+=("checksums: $DIST/SHA256SUMS")
fi

printf '%s\n' "${summary[@]}"
