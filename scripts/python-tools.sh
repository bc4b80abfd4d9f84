#!/usr/bin/env bash
# Installs the Python-packaged tools the tests and benchmarks use into a
# virtualenv the project owns (never into the system Python), idempotently.
#
#   scripts/python-tools.sh            installs the default tool list
#   scripts/python-tools.sh PKG==VER   installs these instead (pinned pip specs)
#
# Environment:
#   HEMOSTAT_VENV   where the virtualenv lives (default /tmp/hemostat-venv)
#
# Prints the virtualenv's bin directory on the last line of stdout, so callers
# can do: PATH="$(scripts/python-tools.sh | tail -n1):$PATH".
set -euo pipefail

VENV="${HEMOSTAT_VENV:-/tmp/hemostat-venv}"

# Pinned so a new release cannot change test results under us. Add tools here
# (e.g. aws-sam-cli), one pinned spec per line.
DEFAULT_TOOLS=(
    "cargo-lambda==1.9.2"
    # `sam validate --lint` (bundles cfn-lint) for the template test, and
    # `sam build` with BuildMethod rust-cargolambda.
    "aws-sam-cli==1.170.0"
    # A real SMTP server (STARTTLS, AUTH) for the alert function's email tests.
    "aiosmtpd==1.4.6"
)

if (($# > 0)); then
    TOOLS=("$@")
else
    TOOLS=("${DEFAULT_TOOLS[@]}")
fi

command -v python3 >/dev/null 2>&1 ||
    { echo "error: python3 not found (apt-get install python3 python3-venv)" >&2; exit 1; }

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating virtualenv $VENV" >&2
    python3 -m venv "$VENV" ||
        { echo "error: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
fi

# Skip pip entirely when every pinned spec is already satisfied: reruns are
# instant and work offline. `pip install` alone would also be a no-op, but it
# still contacts the index for specs with extras.
missing=()
for spec in "${TOOLS[@]}"; do
    if ! "$VENV/bin/python" - "$spec" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
spec = sys.argv[1]
name, _, wanted = spec.partition("==")
name = name.split("[", 1)[0]
try:
    have = version(name)
except PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if not wanted or have == wanted else 1)
PY
    then
        missing+=("$spec")
    fi
done

if ((${#missing[@]} > 0)); then
    echo "installing into $VENV: ${missing[*]}" >&2
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "${missing[@]}" >&2
else
    echo "already installed in $VENV: ${TOOLS[*]}" >&2
fi

for bin in cargo-lambda sam moto_server; do
    if [[ -x "$VENV/bin/$bin" ]]; then
        echo "  $bin: $VENV/bin/$bin" >&2
    fi
done
echo "$VENV/bin"
