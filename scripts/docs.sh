#!/usr/bin/env bash
# The book (docs/, an mdBook): builds it with a pinned mdBook, which is
# installed once per machine into the cache and reused afterwards.
#
#   scripts/docs.sh install   # only make sure mdbook is there; prints its path
#   scripts/docs.sh build     # mdbook build docs, into $CARGO_TARGET_DIR/book (default target/book)
#   scripts/docs.sh check     # build, then the link check: every relative link and #anchor of
#                             # README.md and docs/src/*.md resolves (cargo test -p hemostat-e2e --test docs_links)
#
# Environment:
#   HEMOSTAT_CACHE_DIR   the cache (default ~/.cache/hemostat): mdbook/<version>/bin/mdbook
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Pinned: the book is built the same way on every machine. 0.5 needs Rust 1.88.
MDBOOK_VERSION=0.5.4
CACHE="${HEMOSTAT_CACHE_DIR:-$HOME/.cache/hemostat}"
TOOL_DIR="$CACHE/mdbook/$MDBOOK_VERSION"
MDBOOK="$TOOL_DIR/bin/mdbook"

install_mdbook() {
    if [[ -x "$MDBOOK" ]]; then
        return 0
    fi
    command -v cargo >/dev/null 2>&1 ||
        { echo "error: cargo not found: install a Rust toolchain (rust-version in Cargo.toml)" >&2; exit 1; }
    echo "installing mdbook $MDBOOK_VERSION into $TOOL_DIR (once per machine; a few minutes)" >&2
    mkdir -p "$CACHE/mdbook"
    local started=$SECONDS
    # Without `serve` and `watch`, which a build does not use (no web server
    # to compile). CARGO_TARGET_DIR is unset so that cargo builds in a
    # temporary folder and removes it, instead of filling the project's.
    env -u CARGO_TARGET_DIR CARGO_INCREMENTAL=0 cargo install --locked --quiet \
        --root "$TOOL_DIR.partial" --version "=$MDBOOK_VERSION" --no-default-features --features search mdbook
    # An interrupted install leaves only the .partial folder, never a half tool.
    rm -rf "$TOOL_DIR"
    mv "$TOOL_DIR.partial" "$TOOL_DIR"
    echo "installed mdbook $MDBOOK_VERSION in $((SECONDS - started)) s" >&2
}

build() {
    install_mdbook
    local dest="${CARGO_TARGET_DIR:-$ROOT/target}/book"
    "$MDBOOK" build "$ROOT/docs" --dest-dir "$dest"
    echo "book: $dest/index.html" >&2
}

case "${1:-}" in
    install)
        install_mdbook
        echo "$MDBOOK"
        ;;
    build) build ;;
    check)
        build
        cargo test -q -p hemostat-e2e --test docs_links
        ;;
    *)
        echo "usage: scripts/docs.sh install|build|check" >&2
        exit 2
        ;;
esac
