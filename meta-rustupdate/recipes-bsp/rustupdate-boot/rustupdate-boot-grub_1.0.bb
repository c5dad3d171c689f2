SUMMARY = "rustupdate GRUB configuration (A/B boot counting) and initial grubenv"
DESCRIPTION = "grub.cfg that boots the slot named in grubenv, counts trial boots and falls back \
to the other slot after RUSTUPDATE_BOOTLIMIT failed trials (docs/boot-contract.md), and the \
initial 1024-byte environment block made with grub-editenv. Both are deployed for the EFI system \
partition; the package provides virtual-grub-bootconf for grub-efi."

require rustupdate-boot.inc
# EFIDIR, EFI_FILES_PATH (oe-core, found through BBPATH)
# nooelint: oelint.file.requirenotfound
require conf/image-uefi.conf

DEPENDS += "grub-native"

SRC_URI = "file://grub.cfg"

FILES:${PN} += "${EFI_FILES_PATH}/grub.cfg"
RPROVIDES:${PN} += "virtual-grub-bootconf"

RUSTUPDATE_BOOT_TEMPLATE = "grub.cfg"

do_compile () {
    rm -f ${B}/grubenv
    grub-editenv ${B}/grubenv create
    grub-editenv ${B}/grubenv set ${RUSTUPDATE_BOOT_ENV}
}

do_install () {
    install -d ${D}${EFI_FILES_PATH}
    install -m 0644 ${B}/grub.cfg ${D}${EFI_FILES_PATH}/grub.cfg
}

# Names in DEPLOY_DIR_IMAGE; rustupdate_image.bbclass (RUSTUPDATE_BOOT_FILES) puts them on the ESP
# as EFI/BOOT/grub.cfg and EFI/BOOT/grubenv.
do_deploy () {
    install -m 0644 ${B}/grub.cfg ${DEPLOYDIR}/rustupdate-grub.cfg
    install -m 0644 ${B}/grubenv ${DEPLOYDIR}/rustupdate-grubenv
}
addtask deploy after do_compile before do_build

