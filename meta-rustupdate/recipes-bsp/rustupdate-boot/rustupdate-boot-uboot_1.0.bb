SUMMARY = "rustupdate U-Boot boot script (A/B boot counting) and environment copies"
DESCRIPTION = "boot.scr, built with mkimage from the canonical boot.cmd, boots the slot named \
in the redundant environment (uboot.env and uboot-redund.env on the boot partition), counts \
trial boots and falls back to the other slot after RUSTUPDATE_BOOTLIMIT failed trials \
(docs/boot-contract.md); the initial copies are made with mkenvimage -r. All are deployed for \
the boot partition."

require rustupdate-boot.inc

DEPENDS += "u-boot-tools-native"

SRC_URI = "file://boot.cmd"

# UBOOT_ARCH for mkimage -A.
inherit kernel-arch nopackages

RUSTUPDATE_BOOT_TEMPLATE = "boot.cmd"

do_compile () {
    uboot-mkimage -A ${UBOOT_ARCH} -O linux -T script -C none -n "rustupdate boot script" \
        -d ${B}/boot.cmd ${B}/boot.scr
    rm -f ${B}/uboot.env.txt
    for kv in ${RUSTUPDATE_BOOT_ENV}; do
        echo "$kv" >> ${B}/uboot.env.txt
    done
    # Two copies in libubootenv's redundant format (flags 1 both: uboot.env is in use).
    uboot-mkenvimage -r -s ${RUSTUPDATE_UBOOT_ENV_SIZE} -o ${B}/uboot.env ${B}/uboot.env.txt
    uboot-mkenvimage -r -s ${RUSTUPDATE_UBOOT_ENV_SIZE} -o ${B}/uboot-redund.env ${B}/uboot.env.txt
}

# Names in DEPLOY_DIR_IMAGE (prefixed, so they never collide with a board layer's boot.scr);
# rustupdate_image.bbclass (RUSTUPDATE_BOOT_FILES) puts them on the boot partition as boot.scr,
# uboot.env and uboot-redund.env.
do_deploy () {
    install -m 0644 ${B}/boot.cmd ${DEPLOYDIR}/rustupdate-boot.cmd
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/rustupdate-boot.scr
    install -m 0644 ${B}/uboot.env ${DEPLOYDIR}/rustupdate-uboot.env
    install -m 0644 ${B}/uboot-redund.env ${DEPLOYDIR}/rustupdate-uboot-redund.env
}
addtask deploy after do_compile before do_build
