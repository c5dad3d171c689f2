#!/usr/bin/env bash
# ROOTFS_HOOK for bench/rootfs-images.sh (used by bench/delta-pairs.sh): the application-release
# pair. Called as `app-release-hook.sh v1|v2 TREE` (root). v1 gets /opt/app, a Python virtualenv
# with the wheels of APP_V1 from PyPI and the application's own code; v2 is a copy of v1 in which
# the same venv is upgraded to APP_V2 (what `pip install -r requirements.txt` of the next release
# does on a build host) and the code's version bumped.
#
# Reproducible: every version is pinned and installed with --no-deps (the lists are complete),
# binary wheels only, no pip cache, no byte-compiled files (--no-compile and
# PYTHONDONTWRITEBYTECODE: a .pyc would hold the install time); rootfs-images.sh clamps the mtimes.
# The wheels (manylinux x86_64, CPython 3.11, as bookworm's python3) are downloaded by the host's
# pip (`python3 -m pip download`, so its index, proxy and CA settings apply; the chroot trusts
# only Debian's CAs) into <ROOTFS_OUT>/wheels, kept there as a cache, and copied into the tree's
# /tmp (rootfs-images.sh empties it). The venv is made without pip; Debian's pip (python3-pip, in
# ROOTFS_BASE with python3-venv) installs into it with --python, from those files only.
set -euo pipefail

# A small data service: Flask on top of pandas/numpy, requests as its HTTP client.
APP_V1="numpy==1.26.3 pandas==2.1.4 python-dateutil==2.8.2 pytz==2023.3.post1 tzdata==2023.4
six==1.16.0 requests==2.31.0 urllib3==2.1.0 idna==3.6 certifi==2023.11.17 charset-normalizer==3.3.2
flask==3.0.0 werkzeug==3.0.1 jinja2==3.1.2 markupsafe==2.1.3 itsdangerous==2.1.2 click==8.1.7
blinker==1.7.0"
# The next release, about two months later: numpy, pandas, pytz, tzdata, urllib3, certifi, flask,
# jinja2 and markupsafe moved; the rest stayed.
APP_V2="numpy==1.26.4 pandas==2.2.0 python-dateutil==2.8.2 pytz==2024.1 tzdata==2024.1
six==1.16.0 requests==2.31.0 urllib3==2.2.0 idna==3.6 certifi==2024.2.2 charset-normalizer==3.3.2
flask==3.0.2 werkzeug==3.0.1 jinja2==3.1.3 markupsafe==2.1.5 itsdangerous==2.1.2 click==8.1.7
blinker==1.7.0"

version=$1
root=$2
case $version in
v1) wheels=$APP_V1 app_version=1.4.0 ;;
v2) wheels=$APP_V2 app_version=1.5.0 ;;
*) echo "usage: $0 v1|v2 TREE" >&2; exit 64 ;;
esac

in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root \
        SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

# The tree is <ROOTFS_OUT>/rootfs-work/<version>.
cache=$(realpath -m "$root/../../wheels")
mkdir -p "$cache" "$root/tmp/wheels"
# shellcheck disable=SC2086 # $wheels is a list of requirement specifiers
python3 -m pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 --no-input --progress-bar off \
    -d "$cache" $wheels >&2
cp "$cache"/*.whl "$root/tmp/wheels/"

if [[ $version == v1 ]]; then
    in_root python3 -m venv --without-pip /opt/app
fi
# shellcheck disable=SC2086 # $wheels is a list of requirement specifiers
in_root python3 -m pip --python /opt/app/bin/python install --no-compile --no-deps \
    --only-binary=:all: --no-index --find-links /tmp/wheels --no-input --progress-bar off \
    $wheels >&2
rm -rf "$root/tmp/wheels"

mkdir -p "$root/opt/app/src/dataservice"
cat >"$root/opt/app/src/dataservice/__init__.py" <<PY
"""The bench's application: serves CSV summaries over HTTP."""
__version__ = "$app_version"
PY
cat >"$root/opt/app/src/dataservice/app.py" <<'PY'
import io

import flask
import pandas as pd

app = flask.Flask(__name__)


@app.post("/summary")
def summary():
    frame = pd.read_csv(io.BytesIO(flask.request.get_data()))
    return frame.describe().to_json()
PY
find "$root/opt/app" -name __pycache__ -prune -exec rm -rf {} +
# The summary line rootfs-images.sh keeps: what this version holds.
echo "/opt/app dataservice $app_version: ${wheels//$'\n'/ }"
