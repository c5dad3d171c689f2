#!/usr/bin/env bash
# Lints every Python file under ci/ and bench/ (the e2e harness, the fleet test helpers,
# ci/gen-crates-inc.py, bench/lib) with ruff and mypy --strict, as configured in pyproject.toml
# (rules, line length, strictness and the reasons for each are there).
#
#   ci/python-lint.sh            exit 0: both are clean; 1: findings (printed); 2: cannot install
#
# The tools are pinned (RUFF_VERSION, MYPY_VERSION below) and installed with pip into a private
# virtual environment, build/python-lint/venv (git-ignored; $PYTHON_LINT_VENV overrides), when it
# does not hold exactly those versions yet; later runs reuse it (about 2 s for both tools).
# Caches go to build/python-lint/ too, so nothing is written into the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."

RUFF_VERSION=0.17.5
MYPY_VERSION=2.4.1
STATE=build/python-lint
VENV=${PYTHON_LINT_VENV:-$STATE/venv}

fail() { echo "python-lint: $*" >&2; exit 2; }

have() {  # have TOOL VERSION: the venv's TOOL reports exactly VERSION
    [[ -x "$VENV/bin/$1" ]] && [[ $("$VENV/bin/$1" --version 2>/dev/null) =~ (^|[[:space:]])$2([[:space:]]|$) ]]
}

if ! have ruff "$RUFF_VERSION" || ! have mypy "$MYPY_VERSION"; then
    echo "python-lint: installing ruff $RUFF_VERSION and mypy $MYPY_VERSION into $VENV"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" ||
        fail "cannot create a virtual environment at $VENV (python3 -m venv; Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "ruff==$RUFF_VERSION" "mypy==$MYPY_VERSION" ||
        fail "pip could not install ruff==$RUFF_VERSION mypy==$MYPY_VERSION"
    if ! have ruff "$RUFF_VERSION" || ! have mypy "$MYPY_VERSION"; then
        fail "after the install, $VENV does not report ruff $RUFF_VERSION and mypy $MYPY_VERSION"
    fi
fi

mapfile -t FILES < <(find ci bench -name '*.py' -not -path '*/__pycache__/*' -not -path '*/target/*' | sort)
((${#FILES[@]})) || fail "no Python files found under ci/ and bench/"
echo "python-lint: ${#FILES[@]} files; ruff $RUFF_VERSION, mypy $MYPY_VERSION (--strict, pyproject.toml)"

status=0
echo "--- ruff check"
RUFF_CACHE_DIR=$STATE/ruff-cache "$VENV/bin/ruff" check --no-fix "${FILES[@]}" || status=1
echo "--- mypy"
"$VENV/bin/mypy" --cache-dir "$STATE/mypy-cache" "${FILES[@]}" || status=1
if ((status)); then
    echo "python-lint: FAILED (fix the findings above; the rules are in pyproject.toml)" >&2
else
    echo "python-lint: ok"
fi
exit $status
