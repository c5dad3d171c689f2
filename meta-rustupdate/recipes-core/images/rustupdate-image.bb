SUMMARY = "A small updatable A/B image with rustupdate"
DESCRIPTION = "core-image-minimal plus the rustupdate client, built as a partitioned A/B disk \
image (wic) and a signed update artifact (.rua). The reference image of meta-rustupdate's kas \
files and CI; products inherit rustupdate_image in their own image recipe instead."
HOMEPAGE = "https://github.com/rustupdate/rustupdate"
LICENSE = "MIT"

IMAGE_INSTALL = "packagegroup-core-boot ${CORE_IMAGE_EXTRA_INSTALL} ${RUSTUPDATE_ENV_TOOLS}"
# The reference tools for the bootloader environment, handy on test devices: grub-editenv or
# fw_printenv/fw_setenv (libubootenv, reading /etc/fw_env.config from rustupdate-conf). systemd-boot
# keeps no environment: its entries are plain files on the ESP (ls /boot/efi/loader/entries).
RUSTUPDATE_ENV_TOOLS = "${@{'grub': 'grub-editenv', 'uboot': 'libubootenv-bin'}.get(d.getVar('RUSTUPDATE_BOOTLOADER'), '')}"
IMAGE_LINGUAS = ""

inherit core-image rustupdate_image
