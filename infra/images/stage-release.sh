#!/usr/bin/env bash
# Stages the build context of the multi-arch release image
# (infra/Dockerfile.release) out of the release tarballs scripts/release.sh
# made: one root filesystem per Docker architecture, the Dockerfile picking
# its own with TARGETARCH. The binaries are static, so the image needs no
# libc: only the binaries, template.yaml, CA certificates and a /tmp.
#
#   infra/images/stage-release.sh [DIST_DIR] [OUT_DIR]
#       DIST_DIR  the tarballs (default target/dist)
#       OUT_DIR   the context (default target/images/release):
#                 OUT_DIR/amd64/...  from hemostat-<version>-x86_64-unknown-linux-musl.tar.gz
#                 OUT_DIR/arm64/...  from hemostat-<version>-aarch64-unknown-linux-musl.tar.gz
#
# Then: docker buildx build --platform linux/amd64,linux/arm64 \
#           -f infra/Dockerfile.release target/images/release
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIST="${1:-$ROOT/target/dist}"
OUT="${2:-$ROOT/target/images/release}"

log() { printf '[stage-release] %s\n' "$*" >&2; }
die() { printf '[stage-release] error: %s\n' "$*" >&2; exit 1; }

[[ -f "$DIST/SHA256SUMS" ]] || die "no $DIST/SHA256SUMS: run scripts/release.sh first"
(cd "$DIST" && sha256sum -c --quiet SHA256SUMS) || die "the tarballs in $DIST do not match SHA256SUMS"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[[ -f "$CA_BUNDLE" ]] || die "$CA_BUNDLE not found (apt-get install ca-certificates)"

rm -rf "$OUT"
staged=0
for arch in amd64 arm64; do
    case "$arch" in
        amd64) triple=x86_64-unknown-linux-musl ;;
        arm64) triple=aarch64-unknown-linux-musl ;;
    esac
    tarball="$(find "$DIST" -maxdepth 1 -name "hemostat-*-$triple.tar.gz" | sort | tail -n1)"
    if [[ -z "$tarball" ]]; then
        log "no $triple tarball in $DIST: no $arch image"
        continue
    fi
    rootfs="$OUT/$arch"
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/hemostat" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    # hemostat-<version>-<triple>/{binaries, template.yaml, LICENSE}
    tar -xzf "$tarball" -C "$rootfs/usr/local/bin" --strip-components=1
    mv "$rootfs/usr/local/bin/template.yaml" "$rootfs/etc/hemostat/template.yaml"
    rm -f "$rootfs/usr/local/bin/LICENSE"
    # TLS to Slack, LLM APIs, AWS and rediss:// with the usual CAs.
    cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    log "$arch: $(basename "$tarball")"
    staged=$((staged + 1))
done
((staged > 0)) || die "no tarball staged from $DIST"
echo "$OUT"
