SUMMARY = "rustupdate GRUB configuration (A/B boot counting) and environment copies"
DESCRIPTION = "grub.cfg that boots the slot named in the environment, counts trial boots and \
falls back to the other slot after RUSTUPDATE_BOOTLIMIT failed trials (docs/boot-contract.md), \
and the two initial 1024-byte environment blocks grubenv and grubenv-redund made with \
grub-editenv. All are deployed for the EFI system partition; the package provides \
virtual-grub-bootconf for grub-efi."

require rustupdate-boot.inc
# EFIDIR, EFI_FILES_PATH (oe-core, found through BBPATH)
# nooelint: oelint.file.requirenotfound
require conf/image-uefi.conf

DEPENDS += "grub-native"

SRC_URI = "file://grub.cfg"

FILES:${PN} += "${EFI_FILES_PATH}/grub.cfg"
RPROVIDES:${PN} += "virtual-grub-bootconf"

RUSTUPDATE_BOOT_TEMPLATE = "grub.cfg"

# Two copies (docs/boot-contract.md): each framed by its sequence number, first and last
# variable; equal numbers, so grubenv is the copy in use.
do_compile () {
    for copy in grubenv grubenv-redund; do
        rm -f ${B}/$copy
        grub-editenv ${B}/$copy create
        grub-editenv ${B}/$copy set rustupdate_seq=0 ${RUSTUPDATE_BOOT_ENV} rustupdate_seq_end=0
    done
}

do_install () {
    install -d ${D}${EFI_FILES_PATH}
    install -m 0644 ${B}/grub.cfg ${D}${EFI_FILES_PATH}/grub.cfg
}

# Names in DEPLOY_DIR_IMAGE; rustupdate_image.bbclass (RUSTUPDATE_BOOT_FILES) puts them on the ESP
# as EFI/BOOT/grub.cfg, EFI/BOOT/grubenv and EFI/BOOT/grubenv-redund.
do_deploy () {
    install -m 0644 ${B}/grub.cfg ${DEPLOYDIR}/rustupdate-grub.cfg
    install -m 0644 ${B}/grubenv ${DEPLOYDIR}/rustupdate-grubenv
    install -m 0644 ${B}/grubenv-redund ${DEPLOYDIR}/rustupdate-grubenv-redund
}
addtask deploy after do_compile before do_build

