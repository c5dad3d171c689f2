# rustupdate_global.bbclass: inherited by layer.conf (INHERIT), so it must not change any task
# signature of a build that has not enabled the layer.
#
# 1. Defaults (??=) and [doc] of every RUSTUPDATE_* variable, in one place. A local.conf, distro
#    or machine configuration overrides any of them with a plain "=". README.md lists them too.
#    Defining variables that no oe-core task references changes no signature.
# 2. The opt-in: with "rustupdate" in DISTRO_FEATURES, conf/distro/include/rustupdate.inc is
#    added to the configuration (image type, boot configuration providers).
# 3. A sanity check: a warning when the layer is present but not enabled, and a fatal error on
#    values that would produce a device that cannot update (when enabled).

# --- what is being updated ---------------------------------------------------------------------

RUSTUPDATE_DEVICE_TYPE ??= "${MACHINE}"
RUSTUPDATE_DEVICE_TYPE[doc] = "Device type written to /etc/rustupdate/rustupdate.toml (device-type). An artifact must list it to be installed. Default: MACHINE."

RUSTUPDATE_ARTIFACT_DEVICE_TYPES ??= "${RUSTUPDATE_DEVICE_TYPE}"
RUSTUPDATE_ARTIFACT_DEVICE_TYPES[doc] = "Space-separated device types the .rua artifact is compatible with (one --device-type each). Default: RUSTUPDATE_DEVICE_TYPE."

RUSTUPDATE_ARTIFACT_NAME ??= "${IMAGE_BASENAME}"
RUSTUPDATE_ARTIFACT_NAME[doc] = "Artifact name in the .rua manifest. Default: IMAGE_BASENAME."

RUSTUPDATE_ARTIFACT_VERSION ??= "${DISTRO_VERSION}${IMAGE_VERSION_SUFFIX}"
RUSTUPDATE_ARTIFACT_VERSION[doc] = "Artifact version in the .rua manifest, shown by 'rustupdate status'. Default: DISTRO_VERSION plus IMAGE_VERSION_SUFFIX (the build date); the date does not enter task signatures."

RUSTUPDATE_SECURITY_VERSION ??= ""
RUSTUPDATE_SECURITY_VERSION[doc] = "Optional anti-downgrade counter (integer). Devices refuse artifacts whose security version is below the one they committed. Empty: none."

RUSTUPDATE_IMAGE_FSTYPE ??= "ext4"
RUSTUPDATE_IMAGE_FSTYPE[doc] = "Image type packed into the .rua artifact (the root filesystem written to the inactive slot). Must be a raw filesystem image type."

RUSTUPDATE_COMPRESSION ??= "zstd"
RUSTUPDATE_COMPRESSION[doc] = "Compression of the artifact: zstd, gzip (format version 1 only) or none."

RUSTUPDATE_FORMAT_VERSION ??= "2"
RUSTUPDATE_FORMAT_VERSION[doc] = "Artifact format version: 2 (one zstd frame per segment, the size of one zstd stream) or 1 (for clients older than format version 2)."

RUSTUPDATE_COMPRESSION_LEVEL ??= ""
RUSTUPDATE_COMPRESSION_LEVEL[doc] = "Compression level (zstd 1-22, gzip 0-9). Empty: the tool's default (zstd 3, gzip 6)."

# --- signing (image side) and trust (device side) ---------------------------------------------

RUSTUPDATE_SIGNING_KEY ??= ""
RUSTUPDATE_SIGNING_KEY[doc] = "Space-separated ed25519 private keys (PKCS#8 PEM) that sign the .rua artifact at build time. Their contents are task checksums. Empty: use RUSTUPDATE_SIGNING_CMD or RUSTUPDATE_SIGN_LATER."

RUSTUPDATE_SIGNING_CMD ??= ""
RUSTUPDATE_SIGNING_CMD[doc] = "External signer (HSM, signing service): a shell command that reads the bytes to sign on stdin and prints the raw 64-byte ed25519 signature on stdout. Needs RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY. Do not put secrets in it: it is part of the task signature."

RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY ??= ""
RUSTUPDATE_SIGNING_CMD_PUBLIC_KEY[doc] = "Public key (SPKI PEM) of the key used by RUSTUPDATE_SIGNING_CMD; names and checks the signature."

RUSTUPDATE_SIGN_LATER ??= "0"
RUSTUPDATE_SIGN_LATER[doc] = "1: build the .rua unsigned on purpose, to be signed offline with 'rustupdate-artifact sign' (devices refuse it until then). 0: a missing key is a fatal error."

RUSTUPDATE_PUBLIC_KEYS ??= ""
RUSTUPDATE_PUBLIC_KEYS[doc] = "Space-separated ed25519 public keys (SPKI PEM) installed into /etc/rustupdate/keys/ and trusted by the device. Required by rustupdate-conf."

RUSTUPDATE_KEY_THRESHOLD ??= "1"
RUSTUPDATE_KEY_THRESHOLD[doc] = "How many distinct trusted keys must have signed an artifact ([keys] threshold)."

RUSTUPDATE_TRUST_DOCUMENT ??= ""
RUSTUPDATE_TRUST_DOCUMENT[doc] = "A trust document signed by the root keys (docs/trust.md, made with 'rustupdate-artifact trust'). Set: the device trusts the release keys it names (rotated and revoked by newer documents) instead of RUSTUPDATE_PUBLIC_KEYS; installed as /etc/rustupdate/trust.json."

RUSTUPDATE_TRUST_ROOT_KEYS ??= ""
RUSTUPDATE_TRUST_ROOT_KEYS[doc] = "With RUSTUPDATE_TRUST_DOCUMENT: the root public keys (SPKI PEM) that signed it, installed into /etc/rustupdate/root-keys/. Private keys are refused: the root keys stay offline."

RUSTUPDATE_TRUST_ROOT_THRESHOLD ??= "1"
RUSTUPDATE_TRUST_ROOT_THRESHOLD[doc] = "With RUSTUPDATE_TRUST_DOCUMENT: how many of RUSTUPDATE_TRUST_ROOT_KEYS must have signed it ([keys] root-threshold)."

RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT ??= ""
RUSTUPDATE_ARTIFACT_TRUST_DOCUMENT[doc] = "A newer trust document the .rua carries (build --trust-document): devices put it in force when the release commits, e.g. to revoke a leaked release key. Empty: none."

RUSTUPDATE_ENCRYPT_TO ??= ""
RUSTUPDATE_ENCRYPT_TO[doc] = "Space-separated X25519 recipient public keys (SPKI PEM; rustupdate-artifact keygen --recipient, or openssl genpkey -algorithm x25519): the .rua is encrypted to them (build --encrypt-to, docs/encryption.md). Private keys are refused. Empty: a clear artifact."

RUSTUPDATE_DECRYPTION_KEY ??= ""
RUSTUPDATE_DECRYPTION_KEY[doc] = "Where the device finds its X25519 secret key for encrypted artifacts ([keys] decryption-key), e.g. /data/rustupdate/device-x25519.pem on the data partition, provisioned per device. A path only: no key file enters the image. Empty: the device installs clear artifacts only."

RUSTUPDATE_LAYERDIR ??= "${@os.path.dirname(os.path.dirname(bb.utils.which(d.getVar('BBPATH'), 'classes-global/rustupdate_global.bbclass')))}"
RUSTUPDATE_LAYERDIR[doc] = "The meta-rustupdate directory (found through BBPATH). The layer lives in the rustupdate source repository, so its parent directory is a checkout of the client's sources (kas uses it for EXTERNALSRC)."

RUSTUPDATE_DEV_SIGNING_KEY ??= "${RUSTUPDATE_LAYERDIR}/files/dev-keys/rustupdate-dev-INSECURE.key.pem"
RUSTUPDATE_DEV_SIGNING_KEY[doc] = "The layer's INSECURE development private key (public in the repository). For CI and trials only (set RUSTUPDATE_SIGNING_KEY to it). Using it warns."

RUSTUPDATE_DEV_PUBLIC_KEY ??= "${RUSTUPDATE_LAYERDIR}/files/dev-keys/rustupdate-dev-INSECURE.pub.pem"
RUSTUPDATE_DEV_PUBLIC_KEY[doc] = "Public half of RUSTUPDATE_DEV_SIGNING_KEY. Devices that trust it accept updates from anyone (set RUSTUPDATE_PUBLIC_KEYS to it for CI and trials only). Using it warns."

# --- bootloader, partitions, disk image --------------------------------------------------------

RUSTUPDATE_BOOTLOADER ??= "${@bb.utils.contains('MACHINE_FEATURES', 'efi', 'grub', 'uboot', d)}"
RUSTUPDATE_BOOTLOADER[doc] = "Boot counting backend: grub (EFI, grub.cfg), uboot (boot script) or systemd-boot (EFI, boot counting by entry file names; set EFI_PROVIDER = systemd-boot too). Default: grub when MACHINE_FEATURES has efi, else uboot."

RUSTUPDATE_BOOTLIMIT ??= "3"
RUSTUPDATE_BOOTLIMIT[doc] = "Trial boots allowed before the bootloader falls back to the previous slot (1-9), written to the initial environment and the client configuration."

RUSTUPDATE_SLOT_A_LABEL ??= "rootfs_a"
RUSTUPDATE_SLOT_A_LABEL[doc] = "GPT partition name of slot A (see docs/boot-contract.md; the boot scripts use the same names)."

RUSTUPDATE_SLOT_B_LABEL ??= "rootfs_b"
RUSTUPDATE_SLOT_B_LABEL[doc] = "GPT partition name of slot B."

RUSTUPDATE_BOOT_LABEL ??= "${@'boot' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'uboot' else 'esp'}"
RUSTUPDATE_BOOT_LABEL[doc] = "GPT partition name and FAT label of the boot partition: esp (grub, systemd-boot) or boot (uboot)."

RUSTUPDATE_DATA_LABEL ??= "data"
RUSTUPDATE_DATA_LABEL[doc] = "GPT partition name and ext4 label of the persistent data partition."

RUSTUPDATE_BOOT_MOUNTPOINT ??= "${@'/boot/firmware' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'uboot' else '/boot/efi'}"
RUSTUPDATE_BOOT_MOUNTPOINT[doc] = "Where the boot partition is mounted on the device (it holds the bootloader environment or, for systemd-boot, the entries and kernels the client writes): /boot/efi (grub, systemd-boot) or /boot/firmware (uboot)."

RUSTUPDATE_DATA_MOUNTPOINT ??= "/data"
RUSTUPDATE_DATA_MOUNTPOINT[doc] = "Where the data partition is mounted; the client keeps its state in <mountpoint>/rustupdate."

RUSTUPDATE_BOOT_SIZE ??= "${@'256' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'systemd-boot' else '64'}"
RUSTUPDATE_BOOT_SIZE[doc] = "Size of the boot partition in MiB: 64, or 256 for systemd-boot (the ESP holds both slots' kernels and initramfs, and a third copy while the client replaces one)."

RUSTUPDATE_ROOTFS_SIZE ??= "1024"
RUSTUPDATE_ROOTFS_SIZE[doc] = "Size of each root filesystem slot in MiB. The filesystem image must fit (checked when the artifact is built)."

RUSTUPDATE_DATA_SIZE ??= "256"
RUSTUPDATE_DATA_SIZE[doc] = "Initial size of the data partition in MiB."

RUSTUPDATE_PART_ALIGN ??= "4096"
RUSTUPDATE_PART_ALIGN[doc] = "Partition alignment in KiB (4096: 4 MiB, good for SD cards and eMMC)."

RUSTUPDATE_WKS_FILE ??= "${@'rustupdate-ab-uboot.wks.in' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'uboot' else 'rustupdate-ab-efi.wks.in'}"
RUSTUPDATE_WKS_FILE[doc] = "wic kickstart used by images that inherit rustupdate_image (files/wic/ of any layer)."

RUSTUPDATE_CONSOLE ??= "${@rustupdate_console(d)}"
RUSTUPDATE_CONSOLE[doc] = "Kernel console given by the boot scripts (the value of console=, e.g. ttyS0,115200). Default: the first SERIAL_CONSOLES entry. Empty: no console= argument."

RUSTUPDATE_KERNEL_ARGS ??= "rootwait"
RUSTUPDATE_KERNEL_ARGS[doc] = "Extra kernel command line arguments added by the boot scripts (root= and rustupdate.slot= are always set)."

RUSTUPDATE_INITRD ??= "${@rustupdate_initrd(d)}"
RUSTUPDATE_INITRD[doc] = "systemd-boot only: initramfs file in DEPLOY_DIR_IMAGE that each slot loads (installed as /boot/initrd.img in the root filesystem and as rustupdate/<slot>/initrd.img on the ESP; the entries get an initrd line). Default: INITRAMFS_IMAGE deployed as <INITRAMFS_IMAGE>-<MACHINE>.<first INITRAMFS_FSTYPES> unless INITRAMFS_IMAGE_BUNDLE is 1; empty: no initrd."

RUSTUPDATE_UBOOT_ENV_SIZE ??= "0x4000"
RUSTUPDATE_UBOOT_ENV_SIZE[doc] = "Size of each copy of the redundant U-Boot environment, uboot.env and uboot-redund.env (mkenvimage -s, fw_env.config, boot script)."

RUSTUPDATE_UBOOT_DEV ??= "virtio 0"
RUSTUPDATE_UBOOT_DEV[doc] = "U-Boot interface and device number of the boot disk, as in 'load <dev>:<part>' (virtio 0, mmc 0, ...)."

# --- the client configuration ------------------------------------------------------------------

RUSTUPDATE_HEALTH_CHECKS ??= "10-data-writable"
RUSTUPDATE_HEALTH_CHECKS[doc] = "Example health checks from rustupdate-conf installed into /etc/rustupdate/health.d (all examples are also in the -examples package)."

RUSTUPDATE_HEALTH_TIMEOUT ??= "60"
RUSTUPDATE_HEALTH_TIMEOUT[doc] = "Seconds each health check may run ([health] timeout-secs)."

RUSTUPDATE_TRIAL_TIMEOUT ??= "900"
RUSTUPDATE_TRIAL_TIMEOUT[doc] = "Seconds of uptime after which the rollback guard rolls back an undecided trial ([health] trial-timeout-secs)."

RUSTUPDATE_SERVER_URL ??= ""
RUSTUPDATE_SERVER_URL[doc] = "Fleet server (hawkBit DDI, e.g. rustupdate-server) the daemon polls, https://host:port. Empty: no [server] section and no daemon."

RUSTUPDATE_SERVER_TOKEN_FILE ??= "${RUSTUPDATE_DATA_MOUNTPOINT}/rustupdate/target-token"
RUSTUPDATE_SERVER_TOKEN_FILE[doc] = "Where each device's target token is provisioned (mode 0600, per device, so not in the image) ([server] token-file)."

RUSTUPDATE_SERVER_REBOOT ??= "immediate"
RUSTUPDATE_SERVER_REBOOT[doc] = "When the daemon reboots into an installed update: immediate or manual ([server] reboot)."

RUSTUPDATE_SKIP_FEATURE_CHECK ??= "0"
RUSTUPDATE_SKIP_FEATURE_CHECK[doc] = "1: no warning when the layer is present but 'rustupdate' is not in DISTRO_FEATURES."

def rustupdate_console(d):
    """console= value from the first SERIAL_CONSOLES entry ("115200;ttyS0" -> "ttyS0,115200")."""
    for entry in (d.getVar('SERIAL_CONSOLES') or '').split():
        speed, _, tty = entry.partition(';')
        if tty:
            return '%s,%s' % (tty, speed)
    return ''

def rustupdate_initrd(d):
    """The deployed initramfs of INITRAMFS_IMAGE when it is a file of its own (not bundled into the kernel), or ''."""
    image = d.getVar('INITRAMFS_IMAGE')
    if not image or d.getVar('INITRAMFS_IMAGE_BUNDLE') == '1':
        return ''
    fstype = (d.getVar('INITRAMFS_FSTYPES') or 'cpio.gz').split()[0]
    return '%s-%s.%s' % (image, d.getVar('MACHINE'), fstype)

def rustupdate_key_problems(d):
    """Private keys where public ones belong (the keys installed into the image, the artifact's
    recipients): the private parts never enter an image or a build's output. Files that do not exist
    are left to the tasks that read them."""
    problems = []
    if (d.getVar('RUSTUPDATE_ENCRYPT_TO') or '').split() and d.getVar('RUSTUPDATE_FORMAT_VERSION') != '2':
        problems.append('RUSTUPDATE_ENCRYPT_TO needs RUSTUPDATE_FORMAT_VERSION = "2"')
    why = {
        'RUSTUPDATE_PUBLIC_KEYS': 'it must never be installed on a device. Use its public half: openssl pkey -in KEY -pubout',
        'RUSTUPDATE_TRUST_ROOT_KEYS': 'root keys stay offline. Use its public half: openssl pkey -in KEY -pubout',
        'RUSTUPDATE_ENCRYPT_TO': 'give the public half (openssl pkey -in KEY -pubout)',
    }
    for var, reason in why.items():
        for key in (d.getVar(var) or '').split():
            if os.path.isfile(key):
                with open(key, errors='replace') as f:
                    if 'PRIVATE KEY' in f.read():
                        problems.append('%s: %s is a PRIVATE key; %s' % (var, key, reason))
    return problems
# Key paths stay out of task signatures; the tasks that read the files checksum their contents.
rustupdate_key_problems[vardepsexclude] = "RUSTUPDATE_PUBLIC_KEYS RUSTUPDATE_TRUST_ROOT_KEYS RUSTUPDATE_ENCRYPT_TO"

# --- opt-in ---------------------------------------------------------------------------------------

require ${@bb.utils.contains('DISTRO_FEATURES', 'rustupdate', 'conf/distro/include/rustupdate.inc', '', d)}

# --- sanity ---------------------------------------------------------------------------------------

addhandler rustupdate_sanity
rustupdate_sanity[eventmask] = "bb.event.SanityCheck"
python rustupdate_sanity() {
    d = e.data
    if not bb.utils.contains('DISTRO_FEATURES', 'rustupdate', True, False, d):
        if d.getVar('RUSTUPDATE_SKIP_FEATURE_CHECK') != '1':
            bb.warn('meta-rustupdate is in BBLAYERS but "rustupdate" is not in DISTRO_FEATURES: the layer '
                    'does nothing. Add DISTRO_FEATURES:append = " rustupdate" (see meta-rustupdate/README.md), '
                    'or set RUSTUPDATE_SKIP_FEATURE_CHECK = "1" to silence this.')
        return

    problems = []
    bootloader = d.getVar('RUSTUPDATE_BOOTLOADER')
    if bootloader not in ('grub', 'uboot', 'systemd-boot'):
        problems.append('RUSTUPDATE_BOOTLOADER is "%s"; use grub, uboot or systemd-boot' % bootloader)
    if (bootloader == 'systemd-boot' and bb.utils.contains('MACHINE_FEATURES', 'efi', True, False, d)
            and d.getVar('EFI_PROVIDER') != 'systemd-boot'):
        # packagegroup-core-boot would install grub-efi (and rustupdate-boot-grub's grub.cfg) into /boot.
        bb.warn('RUSTUPDATE_BOOTLOADER is systemd-boot but EFI_PROVIDER is "%s": set EFI_PROVIDER = "systemd-boot"'
                % (d.getVar('EFI_PROVIDER') or ''))
    bootlimit = d.getVar('RUSTUPDATE_BOOTLIMIT')
    if not (bootlimit.isdigit() and 1 <= int(bootlimit) <= 9):
        problems.append('RUSTUPDATE_BOOTLIMIT is "%s"; use 1-9 (boot scripts count in one decimal digit)' % bootlimit)
    for var in ('RUSTUPDATE_KEY_THRESHOLD', 'RUSTUPDATE_TRUST_ROOT_THRESHOLD'):
        threshold = d.getVar(var)
        if not (threshold.isdigit() and int(threshold) >= 1):
            problems.append('%s is "%s"; use 1 or more' % (var, threshold))
    if d.getVar('RUSTUPDATE_TRUST_DOCUMENT') and not (d.getVar('RUSTUPDATE_TRUST_ROOT_KEYS') or '').split():
        problems.append('RUSTUPDATE_TRUST_DOCUMENT needs RUSTUPDATE_TRUST_ROOT_KEYS (the root public keys that signed it)')
    for var in ('RUSTUPDATE_BOOT_SIZE', 'RUSTUPDATE_ROOTFS_SIZE', 'RUSTUPDATE_DATA_SIZE', 'RUSTUPDATE_PART_ALIGN',
                'RUSTUPDATE_HEALTH_TIMEOUT', 'RUSTUPDATE_TRIAL_TIMEOUT'):
        value = d.getVar(var)
        if not value.isdigit():
            problems.append('%s is "%s"; use a whole number' % (var, value))
    server = d.getVar('RUSTUPDATE_SERVER_URL')
    if server and not server.startswith('https://'):
        problems.append('RUSTUPDATE_SERVER_URL is "%s"; use https:// (plain http only by editing the config)' % server)
    if d.getVar('RUSTUPDATE_SERVER_REBOOT') not in ('immediate', 'manual'):
        problems.append('RUSTUPDATE_SERVER_REBOOT is "%s"; use immediate or manual' % d.getVar('RUSTUPDATE_SERVER_REBOOT'))
    if d.getVar('RUSTUPDATE_SLOT_A_LABEL') == d.getVar('RUSTUPDATE_SLOT_B_LABEL'):
        problems.append('RUSTUPDATE_SLOT_A_LABEL and RUSTUPDATE_SLOT_B_LABEL are equal')
    problems.extend(rustupdate_key_problems(d))
    if problems:
        bb.fatal('meta-rustupdate configuration:\n  ' + '\n  '.join(problems))

    # Loud on every build, not only when a task using the keys runs (sstate would hide that).
    import filecmp
    dev_keys = [k for k in (d.getVar('RUSTUPDATE_DEV_SIGNING_KEY'), d.getVar('RUSTUPDATE_DEV_PUBLIC_KEY'))
                if k and os.path.exists(k)]
    for var in ('RUSTUPDATE_SIGNING_KEY', 'RUSTUPDATE_PUBLIC_KEYS'):
        for key in (d.getVar(var) or '').split():
            if os.path.exists(key) and any(filecmp.cmp(key, dev, shallow=False) for dev in dev_keys):
                bb.warn('%s uses the INSECURE development key of meta-rustupdate (%s). Its private half is '
                        'published with the layer: anyone can sign updates for these devices. For CI and '
                        'trials only; see meta-rustupdate/README.md, "Keys".' % (var, key))
}
