#!/usr/bin/env bash
# Checks of the Yocto layer meta-rustupdate and the kas files, for CI. Offline except for pip
# (oelint-adv and kas from PyPI, into a virtualenv under build/):
#   1. oelint-adv on every recipe, bbappend, class and conf file of meta-rustupdate, with the
#      checked-in meta-rustupdate/.oelint.cfg (and meta-rustupdate/oelint.constants.json); any
#      finding fails (the lint is kept clean).
#   2. meta-rustupdate/recipes-core/rustupdate/rustupdate-crates.inc is current with Cargo.lock
#      (ci/gen-crates-inc.py --check).
#   3. every kas/*.yml file validates against kas's JSON schema, and its includes exist.
#   4. the boot script templates (recipes-bsp/rustupdate-boot/files) exist and use only
#      placeholders the recipes fill in (RUSTUPDATE_BOOT_PLACEHOLDERS).
#   5. every variable assignment is one quoted value, as bitbake's parser requires
#      (ci/layer-syntax.py: oelint-adv lets a stray quote through that stops every parse).
# A parse of the layer against OpenEmbedded-Core is not part of CI (it needs the oe-core and
# bitbake trees): see ci/layer-parse-check.sh, which runs locally.
# Usage: ci/layer-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OELINT_VERSION=9.11.2
KAS_VERSION=5.5
VENV=$(realpath -m "${LAYER_CHECK_VENV:-build/layer-check-venv}")

step() { printf -- '--- %s\n' "$*"; }

if ! [[ -x "$VENV/bin/oelint-adv" && -x "$VENV/bin/kas" ]]; then
    step "virtualenv $VENV: oelint-adv $OELINT_VERSION, kas $KAS_VERSION"
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        # Debian splits venv support out of python3.
        ci/apt-install.sh python3-venv
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "oelint-adv==$OELINT_VERSION" "kas==$KAS_VERSION"
fi

step "oelint-adv (meta-rustupdate/.oelint.cfg)"
(
    cd meta-rustupdate
    mapfile -t files < <(find . \( -name '*.bb' -o -name '*.bbappend' -o -name '*.bbclass' \
        -o -name '*.conf' -o -name '*.inc' \) -type f | sort)
    # oelint-adv prints findings on stderr and exits non-zero when it prints any.
    "$VENV/bin/oelint-adv" --quiet --relpaths "${files[@]}"
)
echo "oelint-adv: clean"

step "assignments bitbake parses (ci/layer-syntax.py)"
python3 ci/layer-syntax.py

step "generated crates include"
python3 ci/gen-crates-inc.py --check

step "kas files against kas $KAS_VERSION's schema"
"$VENV/bin/python" - kas/*.yml <<'PY'
import importlib
import pathlib
import sys

import jsonschema
import yaml

schema = importlib.import_module("kas.configschema").CONFIGSCHEMA
failed = False
for name in sys.argv[1:]:
    path = pathlib.Path(name)
    try:
        config = yaml.safe_load(path.read_text())
        jsonschema.validate(config, schema)
        for include in config.get("header", {}).get("includes", []):
            if isinstance(include, str) and not pathlib.Path(include).is_file():
                raise ValueError(f"include {include} does not exist (paths are relative to the repository root)")
    except (jsonschema.ValidationError, yaml.YAMLError, ValueError) as e:
        failed = True
        print(f"{path}: INVALID: {str(e).splitlines()[0]}", file=sys.stderr)
    else:
        print(f"{path}: valid")
sys.exit(1 if failed else 0)
PY
step "boot script placeholders known to rustupdate-boot.inc"
python3 - <<'PY'
import pathlib
import re
import sys

boot = pathlib.Path("meta-rustupdate/recipes-bsp/rustupdate-boot")
inc = (boot / "rustupdate-boot.inc").read_text()
block = re.search(r'RUSTUPDATE_BOOT_PLACEHOLDERS = "(.*?)"', inc, re.S).group(1)
known = {entry.split("=", 1)[0] for entry in block.replace("\\", " ").split()}
failed = False
for template in ("grub.cfg", "boot.cmd"):
    path = boot / "files" / template
    if not path.exists():
        print(f"{path}: missing", file=sys.stderr)
        failed = True
        continue
    used = set(re.findall(r"@@([A-Z0-9_]+)@@", path.read_text()))
    unknown = sorted(used - known)
    if unknown:
        print(f"{path}: placeholders without a value in RUSTUPDATE_BOOT_PLACEHOLDERS: {unknown}", file=sys.stderr)
        failed = True
    else:
        print(f"{path}: {len(used)} placeholders, all known")
sys.exit(1 if failed else 0)
PY

echo "layer checks passed"
