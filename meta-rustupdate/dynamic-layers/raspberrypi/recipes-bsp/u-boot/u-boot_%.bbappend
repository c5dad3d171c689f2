# Raspberry Pi U-Boot for rustupdate (only with meta-raspberrypi, only for rpi machines).
# Gated: the "rustupdate-enabled" override exists only with "rustupdate" in
# DISTRO_FEATURES (conf/distro/include/rustupdate.inc), so adding the layer alone changes nothing.
#
# rpi_arm64_config keeps U-Boot's own environment in uboot.env on the boot partition
# (ENV_IS_IN_FAT). The rustupdate boot script owns that file and keeps only the boot-contract
# variables in it (docs/boot-contract.md), so U-Boot must not load it as its whole environment:
# U-Boot keeps its built-in default environment instead.
FILESEXTRAPATHS:prepend:rustupdate-enabled := "${THISDIR}/files:"

SRC_URI:append:rpi:rustupdate-enabled = " file://rustupdate-rpi-env.cfg"

# meta-raspberrypi installs /etc/fw_env.config for U-Boot's environment; rustupdate-conf installs
# the one for the rustupdate environment file.
do_install:append:rpi:rustupdate-enabled () {
    rm -f ${D}${sysconfdir}/fw_env.config
}
