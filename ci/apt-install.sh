#!/usr/bin/env bash
# Installs those of the given Debian packages that are missing (idempotent: no apt-get call when
# all are present). Used by ci/install-deps.sh, ci/e2e/deps.sh and ci/layer-check.sh.
# Usage: ci/apt-install.sh PACKAGE...
set -euo pipefail
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    # Wait for another apt-get (a benchmark installing its tools beside the e2e set-up) rather
    # than fail on its lock.
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
