# rustupdate_image.bbclass: turn an image recipe into an updatable A/B image.
#
# Usage, in an image recipe (or IMAGE_CLASSES:append:pn-<image> = " rustupdate_image"):
#     inherit core-image rustupdate_image
# Needs "rustupdate" in DISTRO_FEATURES (the recipe is skipped otherwise).
#
# It adds:
# - the client and its configuration (rustupdate, rustupdate-conf) and the kernel image, because
#   each slot boots its own /boot/<KERNEL_IMAGETYPE> (docs/boot-contract.md);
# - /etc/fstab entries for the boot partition (RUSTUPDATE_BOOT_MOUNTPOINT, it holds the bootloader
#   environment) and the data partition (RUSTUPDATE_DATA_MOUNTPOINT), found by GPT partition name.
#   They are written into the root filesystem itself, so the .rua payload has them too (wic's
#   own fstab editing would only change the disk image);
# - IMAGE_FSTYPES "wic rua": the partitioned A/B disk image (RUSTUPDATE_WKS_FILE from
#   files/wic/) and the signed artifact (image_types_rustupdate.bbclass); both slots of the disk
#   image are byte copies of the same root filesystem image that the artifact carries;
# - the boot partition contents: the bootloader files deployed by rustupdate-boot-grub,
#   rustupdate-boot-uboot or rustupdate-boot-systemd-boot (RUSTUPDATE_BOOT_FILES, wic's
#   bootimg_partition); for systemd-boot also each slot's kernel (and initramfs) under
#   rustupdate/a/ and rustupdate/b/, UEFI firmware cannot read ext4;
# - systemd-boot: the initramfs (RUSTUPDATE_INITRD, if any) as /boot/initrd.img, and a check that
#   /boot holds the files the entries name (the client copies them from there to the ESP);
# - IMAGE_ROOTFS_MAXSIZE (unless set): the slot size, so an oversized root filesystem fails early.
# Sizes, labels and mount points: see README.md ("Variables").

inherit features_check image_types_rustupdate
REQUIRED_DISTRO_FEATURES = "rustupdate"

# EFI_BOOT_IMAGE (oe-core, found through BBPATH)
# nooelint: oelint.file.requirenotfound
require conf/image-uefi.conf

RUSTUPDATE_IMAGE_INSTALL ??= "rustupdate rustupdate-conf kernel-image"
RUSTUPDATE_IMAGE_INSTALL[doc] = "Packages rustupdate_image adds to IMAGE_INSTALL: the client, its configuration and the kernel image (each slot boots its own /boot/<KERNEL_IMAGETYPE>)."
IMAGE_INSTALL:append = " ${RUSTUPDATE_IMAGE_INSTALL}"

IMAGE_FSTYPES:append = " ${RUSTUPDATE_IMAGE_FSTYPE} wic rua"
WKS_FILE = "${RUSTUPDATE_WKS_FILE}"
# The wks copies the root filesystem image into both slots (rawcopy), so build it first.
# "wic" is an image type (IMAGE_TYPEDEP:<type>), not an override.
# nooelint: oelint.vars.specific,oelint.vars.overrideappend
IMAGE_TYPEDEP:wic += "${RUSTUPDATE_IMAGE_FSTYPE}"

IMAGE_ROOTFS_MAXSIZE ?= "${@int(d.getVar('RUSTUPDATE_ROOTFS_SIZE')) * 1024}"

# oe-core's default also builds every bootloader wic could install (grub-efi, systemd-boot,
# syslinux); the rustupdate layouts take the boot files from RUSTUPDATE_BOOT_RECIPE only.
WKS_FILE_DEPENDS = "${WKS_FILE_DEPENDS_DEFAULT}"

RUSTUPDATE_BOOT_RECIPE = "rustupdate-boot-${RUSTUPDATE_BOOTLOADER}"
# The other files of the boot partition: the bootloader and, for systemd-boot, the kernel.
do_image_wic[depends] += "${RUSTUPDATE_BOOT_RECIPE}:do_deploy \
    ${@'grub-efi:do_deploy' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'grub' else ''} \
    ${@'systemd-boot:do_deploy virtual/kernel:do_deploy' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'systemd-boot' else ''}"
# The initramfs is installed into the root filesystem, so it is built first. The [depends] flags
# use plain d.getVar: with a call of this class's functions or a nested ${...} in them, bitbake
# 2.18 failed to parse the image (ValueError in handleVirtRecipeProviders).
do_rootfs[depends] += "${@d.getVar('INITRAMFS_IMAGE') + ':do_image_complete' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'systemd-boot' and d.getVar('RUSTUPDATE_INITRD') else ''}"

def rustupdate_sdboot_initrd(d):
    """The initramfs in DEPLOY_DIR_IMAGE of the systemd-boot entries, or ''."""
    return d.getVar('RUSTUPDATE_INITRD') if d.getVar('RUSTUPDATE_BOOTLOADER') == 'systemd-boot' else ''

def rustupdate_boot_files(d):
    """Files of the boot partition, as IMAGE_BOOT_FILES entries (deployed name;name on the partition)."""
    if d.getVar('RUSTUPDATE_BOOTLOADER') == 'grub':
        efi = d.getVar('EFI_BOOT_IMAGE')
        return ('grub-efi-%s;EFI/BOOT/%s rustupdate-grub.cfg;EFI/BOOT/grub.cfg '
                'rustupdate-grubenv;EFI/BOOT/grubenv '
                'rustupdate-grubenv-redund;EFI/BOOT/grubenv-redund' % (efi, efi))
    if d.getVar('RUSTUPDATE_BOOTLOADER') == 'systemd-boot':
        # At the removable-media path (no NVRAM boot entry needed); the kernel (and initramfs) of
        # both slots, as the factory image has the same root filesystem in both.
        arch = d.getVar('EFI_ARCH')
        files = ['systemd-boot%s.efi;EFI/BOOT/BOOT%s.EFI' % (arch, arch.upper()),
                 'rustupdate-loader.conf;loader/loader.conf']
        for slot in ('a', 'b'):
            files.append('rustupdate-entry-%s.conf;loader/entries/rustupdate-%s.conf' % (slot, slot))
            files.append('%s;rustupdate/%s/%s' % (d.getVar('KERNEL_IMAGETYPE'), slot, d.getVar('KERNEL_IMAGETYPE')))
            if rustupdate_sdboot_initrd(d):
                files.append('%s;rustupdate/%s/initrd.img' % (rustupdate_sdboot_initrd(d), slot))
        return ' '.join(files)
    # U-Boot boards keep their firmware files (IMAGE_BOOT_FILES of the machine); our boot script
    # replaces any boot.scr the board layer lists.
    board = [f for f in (d.getVar('IMAGE_BOOT_FILES') or '').split()
             if f.split(';')[-1] not in ('boot.scr', 'uboot.env', 'uboot-redund.env')]
    return ' '.join(board + ['rustupdate-boot.scr;boot.scr', 'rustupdate-uboot.env;uboot.env',
                             'rustupdate-uboot-redund.env;uboot-redund.env'])

RUSTUPDATE_BOOT_FILES ??= "${@rustupdate_boot_files(d)}"
RUSTUPDATE_BOOT_FILES[doc] = "Files copied from DEPLOY_DIR_IMAGE to the boot partition (IMAGE_BOOT_FILES syntax). Default: the GRUB EFI binary, grub.cfg and the two environment copies grubenv and grubenv-redund; or the board's IMAGE_BOOT_FILES plus boot.scr and the two environment copies uboot.env and uboot-redund.env; or the systemd-boot EFI binary, loader.conf, the entries rustupdate-a.conf and rustupdate-b.conf and each slot's kernel (and initramfs) under rustupdate/a/ and rustupdate/b/."

# wic's bootimg_partition prefers IMAGE_BOOT_FILES_label-<label>, so the board's own
# IMAGE_BOOT_FILES stays untouched for its other wks files.
IMAGE_BOOT_FILES_label-${RUSTUPDATE_BOOT_LABEL} = "${RUSTUPDATE_BOOT_FILES}"
WICVARS:append = " IMAGE_BOOT_FILES_label-${RUSTUPDATE_BOOT_LABEL}"

ROOTFS_POSTPROCESS_COMMAND += "rustupdate_rootfs_mounts"
rustupdate_rootfs_mounts () {
    install -d ${IMAGE_ROOTFS}${RUSTUPDATE_BOOT_MOUNTPOINT} ${IMAGE_ROOTFS}${RUSTUPDATE_DATA_MOUNTPOINT}
    {
        echo "# rustupdate partitions (rustupdate_image.bbclass), by GPT partition name"
        printf 'PARTLABEL=%s\t%s\tvfat\tdefaults\t0\t0\n' ${RUSTUPDATE_BOOT_LABEL} ${RUSTUPDATE_BOOT_MOUNTPOINT}
        printf 'PARTLABEL=%s\t%s\text4\tdefaults\t0\t2\n' ${RUSTUPDATE_DATA_LABEL} ${RUSTUPDATE_DATA_MOUNTPOINT}
    } >> ${IMAGE_ROOTFS}${sysconfdir}/fstab
}

ROOTFS_POSTPROCESS_COMMAND += "${@'rustupdate_rootfs_sdboot' if d.getVar('RUSTUPDATE_BOOTLOADER') == 'systemd-boot' else ''}"
# The systemd-boot entries name /rustupdate/<slot>/<KERNEL_IMAGETYPE> and initrd.img; arming a
# trial, the client copies the files of the same basenames from the new slot's /boot.
rustupdate_rootfs_sdboot () {
    initrd="${@rustupdate_sdboot_initrd(d)}"
    if [ -n "$initrd" ]; then
        install -D -m 0644 ${DEPLOY_DIR_IMAGE}/$initrd ${IMAGE_ROOTFS}/boot/initrd.img
    fi
    for f in ${KERNEL_IMAGETYPE} ${@'initrd.img' if rustupdate_sdboot_initrd(d) else ''}; do
        [ -e ${IMAGE_ROOTFS}/boot/$f ] || bbfatal "systemd-boot: /boot/$f is missing in the root filesystem (the client copies it to the ESP when it arms a trial; KERNEL_IMAGETYPE_SYMLINK = 1 and kernel-image in RUSTUPDATE_IMAGE_INSTALL provide the kernel)"
    done
}
