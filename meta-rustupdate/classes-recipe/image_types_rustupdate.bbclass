# image_types_rustupdate.bbclass: the image type "rua", a signed rustupdate artifact of the image.
#
# WHAT IT DOES
#   For an image with "rua" in IMAGE_FSTYPES, do_image_rua packs the root filesystem image
#   (RUSTUPDATE_IMAGE_FSTYPE, ext4 by default) into <IMAGE_NAME>.rua next to it in
#   DEPLOY_DIR_IMAGE, plus the usual <IMAGE_LINK_NAME>.rua symlink, with
#       rustupdate-artifact build --image <image>.ext4 --name ... --version ... --device-type ... \
#           [--security-version N] [--compression C] [--level N] --key K1 [--key K2 ...] -o <image>.rua
#   then, with an external signer, adds its signature without rebuilding:
#       rustupdate-artifact sign --signer-cmd "<RUSTUPDATE_SIGNING_CMD>" \
#           --public-key <RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY> <image>.rua
#   and finally checks the result against RUSTUPDATE_PUBLIC_KEYS (the keys the devices of this
#   build trust) with "rustupdate-artifact verify", so an artifact that the devices would refuse
#   fails the build instead of failing in the field. The tool is rustupdate-artifact-native.
#
# ENABLING
#   Inherited through IMAGE_CLASSES when "rustupdate" is in DISTRO_FEATURES (see
#   conf/distro/include/rustupdate.inc); images that inherit rustupdate_image get
#   IMAGE_FSTYPES += "wic rua". Any other image can add "rua" to its IMAGE_FSTYPES, or inherit
#   this class directly. The root filesystem image type is built first (IMAGE_TYPEDEP).
#
# VARIABLES (defaults and [doc] in classes-global/rustupdate_global.bbclass)
#   RUSTUPDATE_ARTIFACT_NAME          manifest name (default IMAGE_BASENAME)
#   RUSTUPDATE_ARTIFACT_VERSION       manifest version (default DISTRO_VERSION + build date; the date
#                                     is excluded from the task signature, like DATETIME/IMAGE_ID)
#   RUSTUPDATE_ARTIFACT_DEVICE_TYPES  compatible device types (default RUSTUPDATE_DEVICE_TYPE = MACHINE)
#   RUSTUPDATE_SECURITY_VERSION       optional anti-downgrade counter
#   RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT optional trust document the artifact carries (--trust-document)
#   RUSTUPDATE_ENCRYPT_TO             optional X25519 recipient public keys (--encrypt-to each)
#   RUSTUPDATE_IMAGE_FSTYPE           payload image type (ext4)
#   RUSTUPDATE_COMPRESSION            zstd (default), gzip (format version 1 only) or none
#   RUSTUPDATE_FORMAT_VERSION         2 (default) or 1
#   RUSTUPDATE_COMPRESSION_LEVEL      optional level
#   RUSTUPDATE_ROOTFS_SIZE            slot size in MiB: a payload that does not fit is a fatal error
#   RUSTUPDATE_SIGNING_KEY            private key file(s), PKCS#8 PEM (openssl genpkey -algorithm ed25519)
#   RUSTUPDATE_SIGNING_CMD            external signer: reads the bytes to sign on stdin, prints the raw
#                                     64-byte ed25519 signature on stdout
#   RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY the signer's public key, SPKI PEM
#   RUSTUPDATE_SIGN_LATER             "1": build unsigned on purpose, sign offline later
#   RUSTUPDATE_PUBLIC_KEYS            trusted public keys (verification after signing)
#
# SIGNING
#   At least one of RUSTUPDATE_SIGNING_KEY and RUSTUPDATE_SIGNING_CMD must be set, or
#   RUSTUPDATE_SIGN_LATER = "1"; otherwise the task fails with bbfatal. Both may be set (two
#   signatures, e.g. for RUSTUPDATE_KEY_THRESHOLD = "2").
#   - Key files: their contents are in the task's file-checksums, so a new key re-signs even from
#     sstate; their paths are not in the signature (move the key freely, share sstate between CI
#     machines). Keep keys outside the layer and the build directory, readable by the build user.
#   - External signer: the command runs under the image's fakeroot environment with network access
#     enabled for this task only. It is part of the task signature: reference secrets through
#     files or environment variables (add them to BB_ENV_PASSTHROUGH_ADDITIONS), never inline.
#     Example with a key held by openssl (stands for any HSM tool):
#       RUSTUPDATE_SIGNING_CMD = "f=$(mktemp) && cat >$f && openssl pkeyutl -sign -rawin -inkey /keys/release.pem -in $f; rm -f $f"
#   - Offline: RUSTUPDATE_SIGN_LATER = "1", copy <image>.rua to the signing machine and run
#       rustupdate-artifact sign --key release.key.pem <image>.rua
#     The payload is not rebuilt; the devices refuse the artifact until enough keys signed it.
#   - The layer's development key (files/dev-keys, RUSTUPDATE_DEV_SIGNING_KEY) is public: using it
#     prints a warning on every build.
#
# OUTPUT
#   ${IMGDEPLOYDIR}/${IMAGE_NAME}.rua (deployed to DEPLOY_DIR_IMAGE with the image), symlink
#   ${IMAGE_LINK_NAME}.rua. Inspect with "rustupdate-artifact inspect", install on a device with
#   "rustupdate install <file|url>". The artifact's creation time is SOURCE_DATE_EPOCH, so the same
#   inputs give the same bytes.

IMAGE_TYPES += "rua"
# "rua" is an image type (IMAGE_TYPEDEP:<type>), not an override.
# nooelint: oelint.vars.specific
IMAGE_TYPEDEP:rua = "${RUSTUPDATE_IMAGE_FSTYPE}"
do_image_rua[depends] += "rustupdate-artifact-native:do_populate_sysroot"

# Key contents, not paths, decide whether the artifact must be signed again (":True": the file
# must exist; bitbake skips ":False" entries entirely).
do_image_rua[file-checksums] += "${@rustupdate_key_checksums(d)}"

# A remote signing service needs the network; nothing else in this task does, and without
# RUSTUPDATE_SIGNING_CMD the flag is "0".
# nooelint: oelint.task.network
do_image_rua[network] = "${@rustupdate_has_signer(d)}"

def rustupdate_key_files(d):
    """All key files this task reads (private, signer public, trusted public, carried trust document)."""
    files = []
    for var in ('RUSTUPDATE_SIGNING_KEY', 'RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY', 'RUSTUPDATE_PUBLIC_KEYS',
                'RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT', 'RUSTUPDATE_ENCRYPT_TO'):
        files.extend((d.getVar(var) or '').split())
    return files

def rustupdate_key_checksums(d):
    return ' '.join('%s:True' % f for f in rustupdate_key_files(d))

def rustupdate_has_signer(d):
    return '1' if d.getVar('RUSTUPDATE_SIGNING_CMD') else '0'

def rustupdate_signing_cmd_quoted(d):
    """RUSTUPDATE_SIGNING_CMD as one shell word, so the task's shell does not expand $(...) or $VAR in it."""
    import shlex
    return shlex.quote(d.getVar('RUSTUPDATE_SIGNING_CMD') or '')

def rustupdate_args(d):
    """build options that come from variables, validated at parse time. Not the file paths:
    image.bbclass evaluates ${@...} in IMAGE_CMD with every variable of IMAGE_CMD:rua[vardepsexclude]
    deleted, so a path read here would always be empty; the shell loops of IMAGE_CMD:rua expand them."""
    args = []
    for t in (d.getVar('RUSTUPDATE_ARTIFACT_DEVICE_TYPES') or '').split():
        args.append('--device-type %s' % t)
    security = d.getVar('RUSTUPDATE_SECURITY_VERSION')
    if security:
        if not security.isdigit():
            bb.fatal('RUSTUPDATE_SECURITY_VERSION must be a non-negative integer, not "%s"' % security)
        args.append('--security-version %s' % security)
    compression = d.getVar('RUSTUPDATE_COMPRESSION')
    if compression not in ('zstd', 'gzip', 'none'):
        bb.fatal('RUSTUPDATE_COMPRESSION must be zstd, gzip or none, not "%s"' % compression)
    args.append('--compression %s' % compression)
    format_version = d.getVar('RUSTUPDATE_FORMAT_VERSION')
    if format_version not in ('1', '2'):
        bb.fatal('RUSTUPDATE_FORMAT_VERSION must be 1 or 2, not "%s"' % format_version)
    if compression == 'gzip' and format_version != '1':
        bb.fatal('RUSTUPDATE_COMPRESSION = "gzip" needs RUSTUPDATE_FORMAT_VERSION = "1"')
    args.append('--format-version %s' % format_version)
    level = d.getVar('RUSTUPDATE_COMPRESSION_LEVEL')
    if level:
        args.append('--level %s' % level)
    return ' '.join(args)

IMAGE_CMD:rua () {
    src="${IMGDEPLOYDIR}/${IMAGE_NAME}.${RUSTUPDATE_IMAGE_FSTYPE}"
    out="${IMGDEPLOYDIR}/${IMAGE_NAME}.rua"
    tmp="${out}.tmp"

    if [ -z "${RUSTUPDATE_ARTIFACT_DEVICE_TYPES}" ]; then
        bbfatal "RUSTUPDATE_ARTIFACT_DEVICE_TYPES is empty: an artifact must name the device types it is for"
    fi
    slot_bytes=$(expr ${RUSTUPDATE_ROOTFS_SIZE} \* 1048576)
    image_bytes=$(stat -L -c %s "$src")
    if [ "$image_bytes" -gt "$slot_bytes" ]; then
        bbfatal "$src is $image_bytes bytes; the slots are ${RUSTUPDATE_ROOTFS_SIZE} MiB (RUSTUPDATE_ROOTFS_SIZE)"
    fi

    keys=""
    for k in ${RUSTUPDATE_SIGNING_KEY}; do
        [ -r "$k" ] || bbfatal "RUSTUPDATE_SIGNING_KEY: cannot read $k"
        keys="$keys --key $k"
    done
    if [ -z "$keys" ] && [ "${@rustupdate_has_signer(d)}" != "1" ] && [ "${RUSTUPDATE_SIGN_LATER}" != "1" ]; then
        bbfatal "No signing key: set RUSTUPDATE_SIGNING_KEY (PKCS#8 PEM file) or RUSTUPDATE_SIGNING_CMD, or RUSTUPDATE_SIGN_LATER = \"1\" to sign offline (see image_types_rustupdate.bbclass)"
    fi

    # Shell, not ${@...}: see rustupdate_args. rustupdate_check_files checked these files.
    files=""
    if [ -n "${RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT}" ]; then
        files="$files --trust-document ${RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT}"
    fi
    for recipient in ${RUSTUPDATE_ENCRYPT_TO}; do
        files="$files --encrypt-to $recipient"
    done

    rm -f "$tmp"
    rustupdate-artifact build --image "$src" \
        --name "${RUSTUPDATE_ARTIFACT_NAME}" --version "${RUSTUPDATE_ARTIFACT_VERSION}" \
        ${@rustupdate_args(d)} $files $keys -o "$tmp"

    if [ "${@rustupdate_has_signer(d)}" = "1" ]; then
        [ -r "${RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY}" ] || \
            bbfatal "RUSTUPDATE_SIGNING_CMD needs RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY (the signer's public key, SPKI PEM)"
        # The command reaches the tool verbatim (single-quoted here); the tool runs it with sh -c.
        rustupdate-artifact sign --signer-cmd ${@rustupdate_signing_cmd_quoted(d)} \
            --public-key "${RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY}" "$tmp"
    fi

    if [ "${RUSTUPDATE_SIGN_LATER}" = "1" ]; then
        bbwarn "$out is UNSIGNED (RUSTUPDATE_SIGN_LATER = \"1\"): sign it with 'rustupdate-artifact sign' before devices can install it"
    elif [ -n "${RUSTUPDATE_PUBLIC_KEYS}" ]; then
        trusted=""
        for k in ${RUSTUPDATE_PUBLIC_KEYS}; do
            trusted="$trusted --key $k"
        done
        rustupdate-artifact verify $trusted "$tmp" || \
            bbfatal "$out is not signed by any key in RUSTUPDATE_PUBLIC_KEYS: devices built with this configuration would refuse it"
    fi
    chmod 0644 "$tmp"
    mv "$tmp" "$out"
}
# The build date in the version (IMAGE_VERSION_SUFFIX, DATETIME) is kept out of the signature by
# image.bbclass; key paths are kept out here because file-checksums covers the key contents.
IMAGE_CMD:rua[vardepsexclude] += "DATETIME IMAGE_ID RUSTUPDATE_SIGNING_KEY RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY RUSTUPDATE_PUBLIC_KEYS \
    RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT RUSTUPDATE_ENCRYPT_TO"

python rustupdate_dev_key_warning () {
    import filecmp
    dev = {
        'private': d.getVar('RUSTUPDATE_DEV_SIGNING_KEY'),
        'public': d.getVar('RUSTUPDATE_DEV_PUBLIC_KEY'),
    }
    for var in ('RUSTUPDATE_SIGNING_KEY', 'RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY', 'RUSTUPDATE_PUBLIC_KEYS',
                'RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT'):
        for f in (d.getVar(var) or '').split():
            for kind, devfile in dev.items():
                if os.path.exists(f) and os.path.exists(devfile) and filecmp.cmp(f, devfile, shallow=False):
                    bb.warn('%s: %s is the INSECURE development %s key of meta-rustupdate (it is public): '
                            'anyone can sign updates for these devices. Use your own keys for anything '
                            'that leaves your desk (see meta-rustupdate/README.md).' % (var, f, kind))
}
do_image_rua[prefuncs] += "rustupdate_dev_key_warning"
rustupdate_dev_key_warning[vardepsexclude] += "RUSTUPDATE_DEV_SIGNING_KEY RUSTUPDATE_DEV_PUBLIC_KEY RUSTUPDATE_LAYERDIR \
    RUSTUPDATE_SIGNING_KEY RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY RUSTUPDATE_PUBLIC_KEYS"

# A private key among the recipients (or the trusted keys) or recipients without format version 2
# fail the task before anything is built; rustupdate_global.bbclass's sanity check already refuses
# them when bitbake starts.
python rustupdate_check_files () {
    problems = rustupdate_key_problems(d)
    if problems:
        bb.fatal('\n'.join(problems))
}
do_image_rua[prefuncs] += "rustupdate_check_files"
rustupdate_check_files[vardepsexclude] += "RUSTUPDATE_ENCRYPT_TO RUSTUPDATE_TRUST_ROOT_KEYS RUSTUPDATE_PUBLIC_KEYS"
