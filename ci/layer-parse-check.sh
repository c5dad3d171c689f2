#!/usr/bin/env bash
# LOCAL ONLY, not part of CI: parses meta-rustupdate against OpenEmbedded-Core yocto-6.0.2 and
# resolves the dependencies of rustupdate-image, offline, per machine (and bootloader, where a
# machine is given as MACHINE:BOOTLOADER), with "rustupdate" in DISTRO_FEATURES (for systemd-boot
# also checking the rendered client configuration, loader.conf, entries and ESP file list against
# docs/boot-contract.md), and once without it, to see that the layer stays inert: only the sanity
# warning, and the same task signatures of core-image-minimal as without the layer), then runs
# yocto-check-layer on the layer. For qemuarm64 it also sets the trust-document and encryption
# variables (keys and a trust document made with the host tool rustupdate-artifact) and checks
# the rendered [keys] table, the files rustupdate-conf installs, the artifact's --encrypt-to and
# the layer's fatal errors for private keys where public ones belong (check_trust_encryption).
# It needs the
# openembedded-core and bitbake trees and a few minutes of CPU per machine (2 cores: bitbake -p
# 1-3 min, bitbake -g seconds, bitbake -n about 5 min).
#
# Prepare once, OUTSIDE this repository (never commit these trees):
#   git clone -b yocto-6.0.2 https://git.openembedded.org/openembedded-core "$OE_DIR/openembedded-core"
#   git clone -b yocto-6.0.2 https://git.openembedded.org/bitbake "$OE_DIR/bitbake"
#   (from local mirrors: git clone --shared -b yocto-6.0.2 <mirror.git> <dest>)
#   host packages: gawk chrpath diffstat cpio file lz4 zstd wget, locale en_US.UTF-8 (locales);
#   for qemuarm64, the host tool: cargo build --release -p rustupdate-artifact (RUSTUPDATE_ARTIFACT);
#   bitbake refuses to run as root: an unprivileged user (OE_USER) with
#   git config --global safe.directory '*'. Run as root, this script copies the checkout to
#   $BUILD_ROOT/rustupdate-checkout (rsync) and re-runs itself as OE_USER on that copy.
#
# Usage: ci/layer-parse-check.sh [-n] [MACHINE[:BOOTLOADER]...]
#        (default: qemux86-64 qemux86-64:systemd-boot qemuarm64; without :BOOTLOADER the layer's
#        default, grub on EFI machines and uboot elsewhere)
#   -n   also dry-run every task of rustupdate-image (bitbake -n)
# Environment: OE_DIR (default /work/oe), OE_USER (default oebuild),
#   BUILD_ROOT (build directories, default $OE_DIR/build), RUSTUPDATE_REPO (the checkout whose
#   meta-rustupdate is checked, default this one; not a git worktree: its .git file points into
#   the main checkout, where externalsrc's "git add -A" would write, so check a clone of it),
#   RUSTUPDATE_ARTIFACT (the host tool rustupdate-artifact, default
#   $RUSTUPDATE_REPO/target/release/rustupdate-artifact).
set -euo pipefail

REPO=${RUSTUPDATE_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
OE_DIR=${OE_DIR:-/work/oe}
OE_USER=${OE_USER:-oebuild}
BUILD_ROOT=${BUILD_ROOT:-$OE_DIR/build}
ARTIFACT_TOOL=${RUSTUPDATE_ARTIFACT:-$REPO/target/release/rustupdate-artifact}

if [[ $(id -u) -eq 0 ]]; then
    # externalsrc hashes the checkout with "git add -A" into the checkout's .git, which OE_USER
    # cannot write in a root-owned tree: check a copy of the working tree (with its .git and
    # uncommitted changes, without build output) that OE_USER owns.
    copy=$BUILD_ROOT/rustupdate-checkout
    mkdir -p "$copy"
    rsync -a --delete --exclude /build --exclude /target --exclude /fuzz/target "$REPO/" "$copy/"
    chown "$OE_USER:" "$BUILD_ROOT"
    chown -R "$OE_USER:" "$copy"
    # The tool may sit in a tree OE_USER cannot read (or in the build output the copy leaves out).
    if [[ -x $ARTIFACT_TOOL ]]; then
        install -D -o "$OE_USER" -m 0755 "$ARTIFACT_TOOL" "$BUILD_ROOT/bin/rustupdate-artifact"
        ARTIFACT_TOOL=$BUILD_ROOT/bin/rustupdate-artifact
    fi
    exec runuser -u "$OE_USER" -- env OE_DIR="$OE_DIR" BUILD_ROOT="$BUILD_ROOT" RUSTUPDATE_REPO="$copy" \
        RUSTUPDATE_ARTIFACT="$ARTIFACT_TOOL" "$0" "$@"
fi

DRY_RUN=0
if [[ "${1:-}" == "-n" ]]; then
    DRY_RUN=1
    shift
fi
MACHINES=("$@")
((${#MACHINES[@]})) || MACHINES=(qemux86-64 qemux86-64:systemd-boot qemuarm64)

for tree in openembedded-core bitbake; do
    [[ -d "$OE_DIR/$tree" ]] || { echo "missing $OE_DIR/$tree (see the header of $0)" >&2; exit 1; }
done

# Writes conf/ of build directory $1 for machine $2; $3 = 1 enables the layer's distro feature,
# 0 adds the layer without enabling it, "absent" leaves the layer out; $4 (optional) sets
# RUSTUPDATE_BOOTLOADER.
write_conf() {
    local dir=$1 machine=$2 enabled=$3 bootloader=${4:-} layers="$OE_DIR/openembedded-core/meta $REPO/meta-rustupdate"
    [[ $enabled == absent ]] && layers="$OE_DIR/openembedded-core/meta"
    mkdir -p "$dir/conf" "$BUILD_ROOT/downloads"
    cat > "$dir/conf/bblayers.conf" <<EOF
LCONF_VERSION = "7"
BBPATH = "\${TOPDIR}"
BBFILES ?= ""
BBLAYERS = "$layers"
EOF
    cat > "$dir/conf/local.conf" <<EOF
CONF_VERSION = "2"
MACHINE = "$machine"
DISTRO ?= "nodistro"
DL_DIR = "$BUILD_ROOT/downloads"
# Offline: no fetches, no uninative tarball, no SRCREV lookups.
BB_NO_NETWORK = "1"
BB_SRCREV_POLICY = "cache"
INHERIT_DISTRO:remove = "uninative"
EOF
    if [[ $enabled == 1 ]]; then
        # The same settings as kas/base.yml and the machine's kas file.
        cat >> "$dir/conf/local.conf" <<'EOF'
DISTRO_FEATURES:append = " rustupdate"
RUSTUPDATE_SIGNING_KEY = "${RUSTUPDATE_DEV_SIGNING_KEY}"
RUSTUPDATE_PUBLIC_KEYS = "${RUSTUPDATE_DEV_PUBLIC_KEY}"
INHERIT += "externalsrc"
RUSTUPDATE_CHECKOUT = "${@os.path.dirname(d.getVar('RUSTUPDATE_LAYERDIR'))}"
EXTERNALSRC:pn-rustupdate = "${RUSTUPDATE_CHECKOUT}"
EXTERNALSRC:pn-rustupdate-artifact-native = "${RUSTUPDATE_CHECKOUT}"
EOF
        case $machine in
            qemux86-64)
                cat >> "$dir/conf/local.conf" <<'EOF'
MACHINE_FEATURES:append = " efi"
EFI_PROVIDER = "grub-efi"
EXTRA_IMAGEDEPENDS += "ovmf"
QB_DEFAULT_FSTYPE = "wic"
EOF
                if [[ $bootloader == systemd-boot ]]; then
                    # systemd-boot rather than grub-efi in packagegroup-core-boot (README.md).
                    sed -i 's/^EFI_PROVIDER = .*/EFI_PROVIDER = "systemd-boot"/' "$dir/conf/local.conf"
                fi
                ;;
            qemuarm64)
                cat >> "$dir/conf/local.conf" <<'EOF'
EXTRA_IMAGEDEPENDS += "u-boot"
QB_DEFAULT_BIOS = "u-boot.bin"
QB_DEFAULT_FSTYPE = "wic"
EOF
                ;;
        esac
        if [[ -n $bootloader ]]; then
            echo "RUSTUPDATE_BOOTLOADER = \"$bootloader\"" >> "$dir/conf/local.conf"
        fi
    fi
}

# Runs bitbake with the given arguments in build directory $1.
run_bitbake() {
    local dir=$1
    shift
    echo "+ (cd $dir && bitbake $*)"
    (
        set +u  # oe-init-build-env reads unset variables
        cd "$OE_DIR/openembedded-core"
        # shellcheck disable=SC1091
        source ./oe-init-build-env "$dir" > /dev/null
        bitbake "$@"
    )
}

# Prints the value of variable $3 of recipe $2 in build directory $1, expanded.
getvar() {
    local dir=$1 recipe=$2 var=$3
    (
        set +u
        cd "$OE_DIR/openembedded-core"
        # shellcheck disable=SC1091
        source ./oe-init-build-env "$dir" > /dev/null
        bitbake-getvar --quiet -r "$recipe" --value "$var"
    )
}

# Fails unless $2 (expected) equals $3 (actual), naming $1 and printing both; $4 names the document
# that promises the value (default docs/boot-contract.md).
expect() {
    local what=$1 expected=$2 actual=$3 doc=${4:-docs/boot-contract.md}
    if [[ "$actual" == "$expected" ]]; then
        echo "$what: as $doc says"
    else
        printf '%s differs from %s:\n--- expected\n%s\n--- actual\n%s\n' "$what" "$doc" "$expected" "$actual" >&2
        return 1
    fi
}

# What the layer renders for systemd-boot (docs/boot-contract.md, "systemd-boot (UEFI)") in a
# qemux86-64 build: the client's [bootloader] table, loader.conf, the two entries, the ESP's files
# and the masked systemd-bless-boot.service. The entries and the table come from the recipes' own
# functions, evaluated by bitbake in the recipe's context (a local.conf variable each, removed after).
check_systemd_boot() {
    local dir=$1 failed=0 options="console=ttyS0,115200 rootwait" install
    cat >> "$dir/conf/local.conf" <<'EOF'
RUSTUPDATE_CHECK_ENTRY_A = "${@rustupdate_sdboot_entry(d, 'a', '2')}"
RUSTUPDATE_CHECK_ENTRY_B = "${@rustupdate_sdboot_entry(d, 'b', '1')}"
RUSTUPDATE_CHECK_BOOTLOADER_KEYS = "${@rustupdate_bootloader_keys(d)}"
EOF
    # rustupdate_bootloader_keys gives sed's \n escapes.
    expect "[bootloader] of rustupdate.toml" 'type = "systemd-boot"\nesp = "/boot/efi"' \
        "$(getvar "$dir" rustupdate-conf RUSTUPDATE_CHECK_BOOTLOADER_KEYS)" || failed=1
    expect "[bootloader] bootlimit" 3 "$(getvar "$dir" rustupdate-conf RUSTUPDATE_BOOTLIMIT)" || failed=1
    expect "loader/loader.conf" $'timeout 0\neditor no\ndefault rustupdate-*' \
        "$(grep -v '^#' "$REPO/meta-rustupdate/recipes-bsp/rustupdate-boot/files/loader.conf")" || failed=1
    expect "loader/entries/rustupdate-a.conf" "title rustupdate slot a
sort-key rustupdate
version 2
linux /rustupdate/a/bzImage
options root=PARTLABEL=rootfs_a rustupdate.slot=a $options" \
        "$(getvar "$dir" rustupdate-boot-systemd-boot RUSTUPDATE_CHECK_ENTRY_A)" || failed=1
    expect "loader/entries/rustupdate-b.conf" "title rustupdate slot b
sort-key rustupdate
version 1
linux /rustupdate/b/bzImage
options root=PARTLABEL=rootfs_b rustupdate.slot=b $options" \
        "$(getvar "$dir" rustupdate-boot-systemd-boot RUSTUPDATE_CHECK_ENTRY_B)" || failed=1
    expect "ESP files (RUSTUPDATE_BOOT_FILES)" "systemd-bootx64.efi;EFI/BOOT/BOOTX64.EFI rustupdate-loader.conf;loader/loader.conf rustupdate-entry-a.conf;loader/entries/rustupdate-a.conf bzImage;rustupdate/a/bzImage rustupdate-entry-b.conf;loader/entries/rustupdate-b.conf bzImage;rustupdate/b/bzImage" \
        "$(getvar "$dir" rustupdate-image RUSTUPDATE_BOOT_FILES)" || failed=1
    expect "ESP partition name and mount point" "esp /boot/efi" \
        "$(getvar "$dir" rustupdate-image RUSTUPDATE_BOOT_LABEL) $(getvar "$dir" rustupdate-image RUSTUPDATE_BOOT_MOUNTPOINT)" || failed=1
    install=$(getvar "$dir" rustupdate-conf do_install)
    if grep -q '"systemd-boot" = "systemd-boot" \] && true; then' <<< "$install" \
            && grep -q 'ln -sf /dev/null .*/etc/systemd/system/systemd-bless-boot.service$' <<< "$install"; then
        echo "systemd-bless-boot.service: masked by rustupdate-conf"
    else
        echo "rustupdate-conf's do_install does not mask systemd-bless-boot.service" >&2
        failed=1
    fi
    sed -i '/^RUSTUPDATE_CHECK_/d' "$dir/conf/local.conf"
    return $failed
}

# Makes the keys and the trust document of check_trust_encryption in $1 with the host tool:
# two root keys (threshold 2) signing trust.json, which names one release key, and an X25519
# recipient key pair.
make_trust_keys() {
    local keys=$1 tool=$ARTIFACT_TOOL
    if ! [[ -x $tool ]]; then
        echo "no rustupdate-artifact at $tool: cargo build --release -p rustupdate-artifact, or set RUSTUPDATE_ARTIFACT" >&2
        return 1
    fi
    rm -rf "$keys"  # keygen never overwrites a key
    mkdir -p "$keys"
    (
        cd "$keys"
        "$tool" keygen -o root-a && "$tool" keygen -o root-b && "$tool" keygen -o release \
            && "$tool" keygen --recipient -o fleet \
            && "$tool" trust init -o trust.json --root-key root-a.pub.pem --root-key root-b.pub.pem \
                --root-threshold 2 --release-key release.pub.pem \
            && "$tool" trust sign trust.json --key root-a.key.pem --key root-b.key.pem \
            && "$tool" trust inspect trust.json --root-anchor root-a.pub.pem --root-anchor root-b.pub.pem \
                --anchor-threshold 2
    ) > "$keys.log" 2>&1 || { cat "$keys.log" >&2; return 1; }
    echo "trust document and keys: $keys ($(grep -F 'image document:' "$keys.log" | tr -s ' '))"
}

# The trust-document and encryption settings of meta-rustupdate/README.md, with the keys of $2,
# appended to the local.conf of build directory $1.
write_trust_conf() {
    local dir=$1 keys=$2
    cat >> "$dir/conf/local.conf" <<EOF
# check_trust_encryption (ci/layer-parse-check.sh)
RUSTUPDATE_TRUST_DOCUMENT = "$keys/trust.json"
RUSTUPDATE_TRUST_ROOT_KEYS = "$keys/root-a.pub.pem $keys/root-b.pub.pem"
RUSTUPDATE_TRUST_ROOT_THRESHOLD = "2"
RUSTUPDATE_ENCRYPT_TO = "$keys/fleet.pub.pem"
RUSTUPDATE_DECRYPTION_KEY = "/data/rustupdate/device-x25519.pem"
EOF
}

# Prints flag $4 of variable $3 of recipe $2 in build directory $1, expanded.
getflag() {
    local dir=$1 recipe=$2 var=$3 flag=$4
    (
        set +u
        cd "$OE_DIR/openembedded-core"
        # shellcheck disable=SC1091
        source ./oe-init-build-env "$dir" > /dev/null
        bitbake-getvar --quiet -r "$recipe" -f "$flag" --value "$var"
    )
}

# Succeeds when $2 holds the fragment $3; otherwise names $1, prints $2 and fails.
holds() {
    local what=$1 text=$2 fragment=$3
    if grep -qF -- "$fragment" <<< "$text"; then
        echo "$what: $fragment"
    else
        printf '%s lacks: %s\n--- it is\n%s\n' "$what" "$fragment" "$text" >&2
        return 1
    fi
}

# Succeeds when the shell command $2 fails and its output holds each further argument; $1 names
# the case. Prints the first output line holding each.
fails_with() {
    local what=$1 command=$2 out rc=0 fragment failed=0
    shift 2
    out=$(eval "$command" 2>&1) || rc=$?
    if [[ $rc -eq 0 ]]; then
        printf '%s: expected a failure, it succeeded:\n%s\n' "$what" "$out" >&2
        return 1
    fi
    for fragment in "$@"; do
        if grep -qF -- "$fragment" <<< "$out"; then
            echo "$what: fails with: $(grep -F -- "$fragment" <<< "$out" | head -1 | sed 's/^ *//')"
        else
            printf '%s: the failure lacks: %s\n--- output\n%s\n' "$what" "$fragment" "$out" >&2
            failed=1
        fi
    done
    return $failed
}

# The trust-document and encryption variables (meta-rustupdate/README.md, docs/config.md,
# docs/trust.md, docs/encryption.md) in build directory $1, whose local.conf has write_trust_conf's
# settings with the keys of $2 (and was parsed with them):
# - the [keys] table rustupdate-conf renders (rustupdate_keys_section, as do_compile calls it);
# - rustupdate-conf's do_install installs trust.json and the root public keys, whose contents are
#   in its file-checksums, and its prefunc rustupdate_conf_check_keys accepts them;
# - do_image_rua, as image.bbclass generated it, passes --encrypt-to for the recipient (the task's
#   own shell lines that collect those options, run here), checksums the recipient key and runs
#   the prefunc rustupdate_check_files, which accepts it;
# - private keys in RUSTUPDATE_TRUST_ROOT_KEYS, RUSTUPDATE_ENCRYPT_TO and RUSTUPDATE_PUBLIC_KEYS
#   stop bitbake at its start (the sanity check of rustupdate_global.bbclass); set for one recipe
#   only (past that check), the tasks' prefuncs refuse them with the same messages.
# The prefuncs are task functions: they run here through bb.build.exec_func from a local.conf
# variable each, in the recipe's context. The tasks themselves (do_compile's sed, do_install, the
# artifact build) do not run: that needs a build.
check_trust_encryption() {
    local dir=$1 keys=$2 conf=$1/conf/local.conf failed=0 install rua options
    local prefuncs="RUSTUPDATE_CHECK_CONF_PREFUNC = \"\${@bb.build.exec_func('rustupdate_conf_check_keys', d) or 'accepted'}\"
RUSTUPDATE_CHECK_RUA_PREFUNC = \"\${@bb.build.exec_func('rustupdate_check_files', d) or 'accepted'}\""
    cp "$conf" "$conf.trust-check"
    cat >> "$conf" <<EOF
RUSTUPDATE_CHECK_KEYS = "\${@rustupdate_keys_section(d)}"
$prefuncs
EOF
    # rustupdate_keys_section gives sed's \n escapes.
    expect "[keys] of rustupdate.toml" 'trust-document = "/etc/rustupdate/trust.json"\nroot-dir = "/etc/rustupdate/root-keys"\nroot-threshold = 2\ndecryption-key = "/data/rustupdate/device-x25519.pem"' \
        "$(getvar "$dir" rustupdate-conf RUSTUPDATE_CHECK_KEYS)" docs/config.md || failed=1
    expect "rustupdate-conf's key check (do_install prefunc)" accepted \
        "$(getvar "$dir" rustupdate-conf RUSTUPDATE_CHECK_CONF_PREFUNC)" meta-rustupdate/README.md || failed=1
    install=$(getvar "$dir" rustupdate-conf do_install)
    holds "rustupdate-conf do_install" "$(grep -F "$keys/trust.json" <<< "$install")" \
        "install -m 0644 $keys/trust.json " || failed=1
    holds "rustupdate-conf do_install" "$(grep -F "install -m 0644 $keys/trust.json " <<< "$install")" \
        "/etc/rustupdate/trust.json" || failed=1
    holds "rustupdate-conf do_install" "$install" "for key in $keys/root-a.pub.pem $keys/root-b.pub.pem; do" || failed=1
    # shellcheck disable=SC2016  # the task's shell text
    holds "rustupdate-conf do_install" "$install" '/etc/rustupdate/root-keys/$(basename $key .pem).pem' || failed=1
    holds "rustupdate-conf do_install[file-checksums]" "$(getflag "$dir" rustupdate-conf do_install file-checksums)" \
        "$keys/trust.json:True $keys/root-a.pub.pem:True $keys/root-b.pub.pem:True" || failed=1
    rua=$(getvar "$dir" rustupdate-image do_image_rua)
    # The task's lines from files="" to the recipient loop's done, run as the task runs them.
    options=$(sed -n '/^ *files=""$/,/^ *done$/p' <<< "$rua")
    expect "options do_image_rua adds to the build" "--encrypt-to $keys/fleet.pub.pem" \
        "$(bash -c "$options"$'\necho $files')" meta-rustupdate/README.md || failed=1
    # shellcheck disable=SC2016  # the task's shell text
    holds "do_image_rua" "$(grep -F 'rustupdate-artifact build' -A 2 <<< "$rua")" '$files $keys -o "$tmp"' || failed=1
    holds "do_image_rua[file-checksums]" "$(getflag "$dir" rustupdate-image do_image_rua file-checksums)" \
        "$keys/fleet.pub.pem:True" || failed=1
    holds "do_image_rua[prefuncs]" "$(getflag "$dir" rustupdate-image do_image_rua prefuncs)" \
        rustupdate_check_files || failed=1
    expect "rustupdate-image's key check (do_image_rua prefunc)" accepted \
        "$(getvar "$dir" rustupdate-image RUSTUPDATE_CHECK_RUA_PREFUNC)" meta-rustupdate/README.md || failed=1

    # Private keys where public ones belong, for the whole configuration: bitbake stops at its start.
    cp "$conf.trust-check" "$conf"
    sed -i -e "s|^RUSTUPDATE_TRUST_ROOT_KEYS = .*|RUSTUPDATE_TRUST_ROOT_KEYS = \"$keys/root-a.key.pem $keys/root-b.pub.pem\"|" \
        -e "s|^RUSTUPDATE_ENCRYPT_TO = .*|RUSTUPDATE_ENCRYPT_TO = \"$keys/fleet.key.pem\"|" \
        -e "s|^RUSTUPDATE_PUBLIC_KEYS = .*|RUSTUPDATE_PUBLIC_KEYS = \"$keys/release.key.pem\"|" "$conf"
    # shellcheck disable=SC2016  # fails_with evaluates it
    fails_with "private keys in local.conf, bitbake -p" 'run_bitbake "$dir" -p' \
        "RUSTUPDATE_PUBLIC_KEYS: $keys/release.key.pem is a PRIVATE key; it must never be installed on a device" \
        "RUSTUPDATE_TRUST_ROOT_KEYS: $keys/root-a.key.pem is a PRIVATE key; root keys stay offline" \
        "RUSTUPDATE_ENCRYPT_TO: $keys/fleet.key.pem is a PRIVATE key; give the public half" || failed=1
    # The same for one recipe each: past the sanity check, the tasks' prefuncs refuse them.
    cp "$conf.trust-check" "$conf"
    cat >> "$conf" <<EOF
$prefuncs
RUSTUPDATE_TRUST_ROOT_KEYS:pn-rustupdate-conf = "$keys/root-a.key.pem $keys/root-b.pub.pem"
RUSTUPDATE_ENCRYPT_TO:pn-rustupdate-image = "$keys/fleet.key.pem"
EOF
    # shellcheck disable=SC2016  # fails_with evaluates it
    fails_with "private root key for rustupdate-conf, do_install prefunc" \
        'getvar "$dir" rustupdate-conf RUSTUPDATE_CHECK_CONF_PREFUNC' \
        "RUSTUPDATE_TRUST_ROOT_KEYS: $keys/root-a.key.pem is a PRIVATE key; root keys stay offline" || failed=1
    # shellcheck disable=SC2016  # fails_with evaluates it
    fails_with "private recipient key for rustupdate-image, do_image_rua prefunc" \
        'getvar "$dir" rustupdate-image RUSTUPDATE_CHECK_RUA_PREFUNC' \
        "RUSTUPDATE_ENCRYPT_TO: $keys/fleet.key.pem is a PRIVATE key; give the public half" || failed=1
    mv "$conf.trust-check" "$conf"
    return $failed
}

status=0
for variant in "${MACHINES[@]}"; do
    machine=${variant%%:*}
    bootloader=""
    if [[ $variant == *:* ]]; then bootloader=${variant#*:}; fi
    dir="$BUILD_ROOT/${variant/:/-}"
    echo "=== $machine${bootloader:+, RUSTUPDATE_BOOTLOADER = $bootloader}, DISTRO_FEATURES += rustupdate ($dir) ==="
    write_conf "$dir" "$machine" 1 "$bootloader"
    trust=0
    if [[ $variant == qemuarm64 ]]; then
        if make_trust_keys "$dir/trust-keys"; then
            write_trust_conf "$dir" "$dir/trust-keys"
            trust=1
        else
            status=1
        fi
    fi
    run_bitbake "$dir" -p || status=1
    run_bitbake "$dir" -g rustupdate-image || status=1
    if [[ $DRY_RUN -eq 1 ]]; then
        run_bitbake "$dir" -n rustupdate-image || status=1
    fi
    if [[ $variant == qemux86-64:systemd-boot ]]; then
        check_systemd_boot "$dir" || status=1
    fi
    if [[ $trust -eq 1 ]]; then
        check_trust_encryption "$dir" "$dir/trust-keys" || status=1
    fi
done

machine=${MACHINES[0]%%:*}
dir="$BUILD_ROOT/$machine-disabled"
echo "=== $machine, layer present but not enabled ($dir): expect the sanity warning only ==="
write_conf "$dir" "$machine" 0
run_bitbake "$dir" -p || status=1

# Task signatures of core-image-minimal with the layer absent and with it present but not
# enabled: they must be identical (the stamp file names carry the task hashes). One build
# directory for both, since TOPDIR is part of some image tasks' signatures.
signatures() {
    local dir=$1 layer=$2
    write_conf "$dir" "$machine" "$layer"
    rm -rf "$dir/tmp/stamps"  # only this run's signatures
    run_bitbake "$dir" -S none core-image-minimal > /dev/null || return 1
    (cd "$dir/tmp/stamps" && find . -name '*.sigdata.*' | sort) > "$dir/signatures-$layer.txt"
}
dir="$BUILD_ROOT/$machine-sigcheck"
echo "=== $machine: task signatures of core-image-minimal without the layer and with it not enabled ==="
if signatures "$dir" absent && signatures "$dir" 0 \
        && diff -u "$dir/signatures-absent.txt" "$dir/signatures-0.txt"; then
    echo "signatures: $(wc -l < "$dir/signatures-0.txt") tasks, identical"
else
    echo "signatures could not be computed or differ (above): adding the layer alone changes the build" >&2
    status=1
fi

# The Yocto Project's own compliance check (README, LAYERSERIES_COMPAT, parse, signatures,
# bitbake world with and without the layer) for the layer added to a build that does not enable it.
dir="$BUILD_ROOT/$machine-check-layer"
echo "=== $machine: yocto-check-layer ($dir) ==="
write_conf "$dir" "$machine" absent
(
    set +u
    cd "$OE_DIR/openembedded-core"
    # shellcheck disable=SC1091
    source ./oe-init-build-env "$dir" > /dev/null
    yocto-check-layer --no-auto-dependency "$REPO/meta-rustupdate"
) || status=1

exit $status
