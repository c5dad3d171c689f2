# GRUB EFI for rustupdate: the ESP holds only the GRUB image, grub.cfg and grubenv and no module
# directory, so every module the rustupdate grub.cfg uses must be built into the image.
# Gated: the "rustupdate-enabled" override exists only with "rustupdate" in
# DISTRO_FEATURES (conf/distro/include/rustupdate.inc), so adding the layer alone changes nothing.
GRUB_BUILDIN:append:rustupdate-enabled = " echo gzio halt regexp reboot sleep terminal"
