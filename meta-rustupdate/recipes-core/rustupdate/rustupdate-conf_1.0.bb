SUMMARY = "rustupdate device configuration: rustupdate.toml, trusted keys, health checks"
DESCRIPTION = "Machine-specific configuration of the rustupdate client, generated from \
RUSTUPDATE_* variables: /etc/rustupdate/rustupdate.toml (device type, slots, bootloader, key \
threshold, timeouts), the trusted public keys in /etc/rustupdate/keys/, the selected example \
health checks in /etc/rustupdate/health.d/ and, for U-Boot, /etc/fw_env.config; for systemd-boot \
it masks systemd-bless-boot.service."
HOMEPAGE = "https://github.com/rustupdate/rustupdate"
BUGTRACKER = "https://github.com/rustupdate/rustupdate/issues"
SECTION = "admin"
LICENSE = "MIT"
# The layer's own files (COPYING.MIT); they have no upstream source tree to point into.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

SRC_URI = " \
    file://rustupdate.toml.in \
    file://health.d/10-data-writable \
    file://health.d/20-no-failed-units \
"

S = "${UNPACKDIR}"
B = "${WORKDIR}/build"

# Text files only: no target compiler needed.
INHIBIT_DEFAULT_DEPS = "1"

inherit features_check
REQUIRED_DISTRO_FEATURES = "rustupdate"

# EFIDIR, EFI_FILES_PATH (oe-core, found through BBPATH)
# nooelint: oelint.file.requirenotfound
require conf/image-uefi.conf

# Device type, slot names, bootloader and keys differ per machine.
PACKAGE_ARCH = "${MACHINE_ARCH}"

# The trusted keys are read from RUSTUPDATE_PUBLIC_KEYS at do_install: their contents, not their
# paths, are in the task signature (":True": the file must exist).
do_install[file-checksums] += "${@' '.join('%s:True' % k for k in rustupdate_conf_key_files(d))}"
do_install[vardepsexclude] += "RUSTUPDATE_PUBLIC_KEYS RUSTUPDATE_TRUST_DOCUMENT RUSTUPDATE_TRUST_ROOT_KEYS"

def rustupdate_conf_key_files(d):
    """Every key or trust file do_install installs."""
    names = ['RUSTUPDATE_PUBLIC_KEYS', 'RUSTUPDATE_TRUST_DOCUMENT', 'RUSTUPDATE_TRUST_ROOT_KEYS']
    return [f for name in names for f in (d.getVar(name) or '').split()]

def rustupdate_keys_section(d):
    """The [keys] table (docs/config.md): a trust document with its root keys, or fixed keys; and
    where the device keeps its decryption key (a path only: the key never enters the image)."""
    etc = d.getVar('sysconfdir')
    if d.getVar('RUSTUPDATE_TRUST_DOCUMENT'):
        section = 'trust-document = "%s/rustupdate/trust.json"\\nroot-dir = "%s/rustupdate/root-keys"\\nroot-threshold = %s' % (
            etc, etc, d.getVar('RUSTUPDATE_TRUST_ROOT_THRESHOLD'))
    else:
        section = 'trusted-dir = "%s/rustupdate/keys"\\nthreshold = %s' % (etc, d.getVar('RUSTUPDATE_KEY_THRESHOLD'))
    decryption = d.getVar('RUSTUPDATE_DECRYPTION_KEY')
    if decryption:
        if not decryption.startswith('/'):
            bb.fatal('RUSTUPDATE_DECRYPTION_KEY must be an absolute path on the device, not "%s"' % decryption)
        section += '\\ndecryption-key = "%s"' % decryption
    return section

def rustupdate_bootloader_keys(d):
    """The [bootloader] table's keys for RUSTUPDATE_BOOTLOADER (docs/config.md)."""
    bootloader = d.getVar('RUSTUPDATE_BOOTLOADER')
    if bootloader == 'grub':
        esp = d.getVar('RUSTUPDATE_BOOT_MOUNTPOINT') + d.getVar('EFIDIR')
        return 'type = "grub"\\ngrubenv = "%s/grubenv"\\ngrubenv-redund = "%s/grubenv-redund"' % (esp, esp)
    if bootloader == 'uboot':
        return 'type = "uboot"\\nfw-env-config = "%s/fw_env.config"' % d.getVar('sysconfdir')
    if bootloader == 'systemd-boot':
        # slot-boot-dir: the client's default, /boot (each slot's kernel, rustupdate_image.bbclass).
        return 'type = "systemd-boot"\\nesp = "%s"' % d.getVar('RUSTUPDATE_BOOT_MOUNTPOINT')
    bb.fatal('RUSTUPDATE_BOOTLOADER must be grub, uboot or systemd-boot, not "%s"' % bootloader)

def rustupdate_server_section(d):
    """The [server] table for RUSTUPDATE_SERVER_URL (docs/config.md), or nothing."""
    url = d.getVar('RUSTUPDATE_SERVER_URL')
    if not url:
        return ''
    return '\\n[server]\\nurl = "%s"\\ntoken-file = "%s"\\nreboot = "%s"\\n' % (
        url, d.getVar('RUSTUPDATE_SERVER_TOKEN_FILE'), d.getVar('RUSTUPDATE_SERVER_REBOOT'))

do_compile () {
    sed -e 's|@DEVICE_TYPE@|${RUSTUPDATE_DEVICE_TYPE}|' \
        -e 's|@DATA_MOUNTPOINT@|${RUSTUPDATE_DATA_MOUNTPOINT}|' \
        -e 's|@SLOT_A_LABEL@|${RUSTUPDATE_SLOT_A_LABEL}|' \
        -e 's|@SLOT_B_LABEL@|${RUSTUPDATE_SLOT_B_LABEL}|' \
        -e 's|@BOOTLOADER_KEYS@|${@rustupdate_bootloader_keys(d)}|' \
        -e 's|@BOOTLIMIT@|${RUSTUPDATE_BOOTLIMIT}|' \
        -e 's|@KEYS@|${@rustupdate_keys_section(d)}|' \
        -e 's|@HEALTH_TIMEOUT@|${RUSTUPDATE_HEALTH_TIMEOUT}|' \
        -e 's|@TRIAL_TIMEOUT@|${RUSTUPDATE_TRIAL_TIMEOUT}|' \
        -e 's|@SYSCONFDIR@|${sysconfdir}|' \
        -e 's|@BASE_SBINDIR@|${base_sbindir}|' \
        ${UNPACKDIR}/rustupdate.toml.in > ${B}/rustupdate.toml
    # %b: the section's \n escapes become newlines, and a % in the URL stays a %.
    printf '%b' '${@rustupdate_server_section(d)}' >> ${B}/rustupdate.toml
    if grep -q '@[A-Z_]*@' ${B}/rustupdate.toml; then
        bbfatal "rustupdate.toml: unsubstituted placeholder: $(grep '@[A-Z_]*@' ${B}/rustupdate.toml)"
    fi

    for check in ${UNPACKDIR}/health.d/*; do
        sed -e 's|@DATA_MOUNTPOINT@|${RUSTUPDATE_DATA_MOUNTPOINT}|g' $check > ${B}/$(basename $check)
    done

    if [ "${RUSTUPDATE_BOOTLOADER}" = "uboot" ]; then
        # libubootenv format: device/file, offset, size; two lines: a redundant environment, one
        # copy per file on the boot partition (docs/boot-contract.md). fw_printenv/fw_setenv, the
        # client and boot.scr share it.
        printf '%s\t0x0\t%s\n' "${RUSTUPDATE_BOOT_MOUNTPOINT}/uboot.env" "${RUSTUPDATE_UBOOT_ENV_SIZE}" > ${B}/fw_env.config
        printf '%s\t0x0\t%s\n' "${RUSTUPDATE_BOOT_MOUNTPOINT}/uboot-redund.env" "${RUSTUPDATE_UBOOT_ENV_SIZE}" >> ${B}/fw_env.config
    fi
}

python rustupdate_conf_check_keys () {
    import filecmp, json
    # Private keys, in any of the key variables (also with a trust document, where
    # RUSTUPDATE_PUBLIC_KEYS is still installed): rustupdate_global.bbclass.
    problems = rustupdate_key_problems(d)
    if problems:
        bb.fatal('\n'.join(problems))
    trust = d.getVar('RUSTUPDATE_TRUST_DOCUMENT')
    if trust:
        # The signatures are the client's to check (its rules refuse a document its root keys
        # did not sign); here: the right kind of files, and never a private key.
        try:
            with open(trust) as f:
                kind = json.load(f).get('signed', {}).get('type')
        except (OSError, ValueError) as err:
            bb.fatal('RUSTUPDATE_TRUST_DOCUMENT: %s: %s' % (trust, err))
        if kind != 'rustupdate-trust':
            bb.fatal('RUSTUPDATE_TRUST_DOCUMENT: %s is not a trust document (make one with rustupdate-artifact trust init)' % trust)
        for key in (d.getVar('RUSTUPDATE_TRUST_ROOT_KEYS') or '').split():
            with open(key) as f:
                text = f.read()
            if '-----BEGIN PUBLIC KEY-----' not in text:
                bb.fatal('RUSTUPDATE_TRUST_ROOT_KEYS: %s is not a PEM public key (SubjectPublicKeyInfo)' % key)
        return
    keys = (d.getVar('RUSTUPDATE_PUBLIC_KEYS') or '').split()
    if not keys:
        bb.fatal('RUSTUPDATE_PUBLIC_KEYS is empty: name the public key(s) (SPKI PEM) that devices trust. '
                 'For a trial only: RUSTUPDATE_PUBLIC_KEYS = "${RUSTUPDATE_DEV_PUBLIC_KEY}" (insecure).')
    names = set()
    for key in keys:
        if not os.path.isfile(key):
            bb.fatal('RUSTUPDATE_PUBLIC_KEYS: %s does not exist' % key)
        with open(key) as f:
            text = f.read()
        if '-----BEGIN PUBLIC KEY-----' not in text:
            bb.fatal('RUSTUPDATE_PUBLIC_KEYS: %s is not a PEM public key (SubjectPublicKeyInfo)' % key)
        name = os.path.basename(key)
        if name in names:
            bb.fatal('RUSTUPDATE_PUBLIC_KEYS: two keys are named %s; they would overwrite each other' % name)
        names.add(name)
        dev = d.getVar('RUSTUPDATE_DEV_PUBLIC_KEY')
        if os.path.exists(dev) and filecmp.cmp(key, dev, shallow=False):
            bb.warn('*** rustupdate-conf: %s is the INSECURE development key of meta-rustupdate. Its private '
                    'half is public: anyone can sign updates these devices will install. Use it for CI and '
                    'trials only; set RUSTUPDATE_PUBLIC_KEYS to your own keys for anything else. ***' % key)
}
rustupdate_conf_check_keys[vardepsexclude] += "RUSTUPDATE_PUBLIC_KEYS RUSTUPDATE_DEV_PUBLIC_KEY RUSTUPDATE_LAYERDIR \
    RUSTUPDATE_TRUST_DOCUMENT RUSTUPDATE_TRUST_ROOT_KEYS RUSTUPDATE_ENCRYPT_TO"
do_install[prefuncs] += "rustupdate_conf_check_keys"

do_install () {
    install -d ${D}${sysconfdir}/rustupdate/keys ${D}${sysconfdir}/rustupdate/health.d ${D}${sysconfdir}/rustupdate/hooks.d
    install -m 0644 ${B}/rustupdate.toml ${D}${sysconfdir}/rustupdate/rustupdate.toml

    for key in ${RUSTUPDATE_PUBLIC_KEYS}; do
        name=$(basename $key .pem).pem
        install -m 0644 $key ${D}${sysconfdir}/rustupdate/keys/$name
    done
    if [ -n "${RUSTUPDATE_TRUST_DOCUMENT}" ]; then
        install -m 0644 ${RUSTUPDATE_TRUST_DOCUMENT} ${D}${sysconfdir}/rustupdate/trust.json
        install -d ${D}${sysconfdir}/rustupdate/root-keys
        for key in ${RUSTUPDATE_TRUST_ROOT_KEYS}; do
            install -m 0644 $key ${D}${sysconfdir}/rustupdate/root-keys/$(basename $key .pem).pem
        done
    fi

    for check in ${RUSTUPDATE_HEALTH_CHECKS}; do
        [ -f ${B}/$check ] || bbfatal "RUSTUPDATE_HEALTH_CHECKS: no example health check named $check"
        install -m 0755 ${B}/$check ${D}${sysconfdir}/rustupdate/health.d/$check
    done
    install -d ${D}${datadir}/rustupdate/examples/health.d
    for check in ${UNPACKDIR}/health.d/*; do
        install -m 0644 ${B}/$(basename $check) ${D}${datadir}/rustupdate/examples/health.d/
    done

    if [ -e ${B}/fw_env.config ]; then
        install -m 0644 ${B}/fw_env.config ${D}${sysconfdir}/fw_env.config
    fi

    if [ "${RUSTUPDATE_BOOTLOADER}" = "systemd-boot" ] && ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        # systemd-bless-boot.service would mark the booted entry good at boot-complete.target,
        # before rustupdate's health checks decided; the client blesses the entry itself at
        # commit (docs/boot-contract.md). Masked, as "systemctl mask" does.
        install -d ${D}${sysconfdir}/systemd/system
        ln -sf /dev/null ${D}${sysconfdir}/systemd/system/systemd-bless-boot.service
    fi
}

PACKAGES =+ "${PN}-examples"
FILES:${PN}-examples += "${datadir}/rustupdate/examples"
# The boot partition (bootloader environment) is FAT; kernels with FAT as modules need these.
RRECOMMENDS:${PN} += "kernel-module-vfat kernel-module-nls-cp437 kernel-module-nls-iso8859-1"
# With a fleet server configured, the daemon comes along.
RRECOMMENDS:${PN} += "${@'rustupdate-daemon' if d.getVar('RUSTUPDATE_SERVER_URL') else ''}"
CONFFILES:${PN} = "${sysconfdir}/rustupdate/rustupdate.toml"
