# U-Boot for rustupdate: the commands the boot script (rustupdate-boot-uboot, boot.cmd) needs to
# count trial boots in uboot.env on the FAT boot partition and to load the kernel from an ext4
# slot. Gated: the "rustupdate-enabled" override exists only with "rustupdate" in
# DISTRO_FEATURES (conf/distro/include/rustupdate.inc), so adding the layer alone changes nothing.
FILESEXTRAPATHS:prepend:rustupdate-enabled := "${THISDIR}/files:"

SRC_URI:append:rustupdate-enabled = " file://rustupdate.cfg"
