# Raspberry Pi settings of the rustupdate boot script (only with meta-raspberrypi): the SD card is
# U-Boot's mmc 0. Gated like every bbappend of the layer (the recipe itself needs "rustupdate" in
# DISTRO_FEATURES).
RUSTUPDATE_UBOOT_DEV:rpi:rustupdate-enabled = "mmc 0"
