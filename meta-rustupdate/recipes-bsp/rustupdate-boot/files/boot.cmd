# rustupdate A/B boot with boot counting for U-Boot. Contract: docs/boot-contract.md.
# Compile: mkimage -A <arch> -O linux -T script -C none -d boot.cmd boot.scr
#
# Template: each placeholder (a NAME between double at-signs) is replaced at build time
# (meta-rustupdate's rustupdate-boot-uboot, ci/e2e/build.py) by:
#   UBOOT_DEV         interface and device of the boot disk as in "load <dev>:<part>" (virtio 0, mmc 0)
#   UBOOT_ENV_SIZE    size of uboot.env (single copy, CRC32, mkenvimage format), e.g. 0x4000
#   BOOTLIMIT         trial boots before falling back, used when uboot.env has no valid bootlimit (1-9)
#   KERNEL_IMAGETYPE  kernel file name in each slot's /boot: Image (booti), zImage (bootz), uImage (bootm)
#   CONSOLE           value of console= (e.g. ttyAMA0,115200); empty: no console= argument
#   KERNEL_ARGS       further kernel arguments (e.g. rootwait)
#   SLOT_A_LABEL, SLOT_B_LABEL  GPT partition names of the slots (root=PARTLABEL=...)
#
# Layout: this script (boot.scr) and uboot.env live on partition 1 (FAT); slot a is partition 2
# and slot b partition 3 of the same disk. Each slot carries its own /boot/<KERNEL_IMAGETYPE>
# and, optionally, /boot/initrd.img. The device tree is the one the firmware passed (fdt_addr,
# e.g. Raspberry Pi) or U-Boot's own (fdtcontroladdr, e.g. QEMU).
#
# The environment file is imported with only the rustupdate variables and written back with only
# them (env export -c writes just the listed names). While upgrade_available=1 every boot
# increments bootcount and saves it *before* the kernel is loaded; when bootcount exceeds
# bootlimit the other slot becomes the slot to boot and the trial ends (upgrade_available=0,
# bootcount=0). The increment is a lookup chain: setexpr prints hex, the contract wants decimal.
# Needs: FAT with write, ext4, env import/export, test, run (no setexpr, no itest).

setenv ru_envaddr ${kernel_addr_r}
setenv ru_envsize @@UBOOT_ENV_SIZE@@

setenv rustupdate_slot
setenv upgrade_available
setenv bootcount
setenv bootlimit
if load @@UBOOT_DEV@@:1 ${ru_envaddr} uboot.env; then
    if env import -c ${ru_envaddr} ${ru_envsize} rustupdate_slot upgrade_available bootcount bootlimit; then
        true
    else
        echo "rustupdate: uboot.env is invalid (CRC), using defaults"
    fi
else
    echo "rustupdate: no uboot.env on @@UBOOT_DEV@@:1, using defaults"
fi

# Sanitise what was read: an unknown slot boots a; a bad bootlimit gets the default.
if test "${rustupdate_slot}" != "b"; then setenv rustupdate_slot a; fi
if test "${upgrade_available}" != "1"; then setenv upgrade_available 0; fi
if test -z "${bootcount}"; then setenv bootcount 0; fi
setenv ru_limit_ok 0
for n in 1 2 3 4 5 6 7 8 9; do
    if test "${bootlimit}" = "${n}"; then setenv ru_limit_ok 1; fi
done
if test "${ru_limit_ok}" != "1"; then setenv bootlimit @@BOOTLIMIT@@; fi

# "run rustupdate_save": write the rustupdate variables back to uboot.env.
setenv rustupdate_save 'env export -c -s ${ru_envsize} ${ru_envaddr} rustupdate_slot upgrade_available bootcount bootlimit && fatwrite @@UBOOT_DEV@@:1 ${ru_envaddr} uboot.env ${ru_envsize} || echo "rustupdate: cannot write uboot.env"'

# "run rustupdate_fall_back": switch to the other slot and end the trial (saved at once).
setenv rustupdate_fall_back 'if test "${rustupdate_slot}" = "b"; then setenv rustupdate_slot a; else setenv rustupdate_slot b; fi; setenv upgrade_available 0; setenv bootcount 0; run rustupdate_save'

# "run rustupdate_boot": load and start the kernel of ${rustupdate_slot}; returns only on failure.
setenv rustupdate_boot '
if test "${rustupdate_slot}" = "b"; then
    setenv ru_part 3; setenv ru_label @@SLOT_B_LABEL@@
else
    setenv ru_part 2; setenv ru_label @@SLOT_A_LABEL@@
fi
setenv ru_console "@@CONSOLE@@"
if test -n "${ru_console}"; then setenv ru_console "console=${ru_console}"; fi
setenv bootargs "root=PARTLABEL=${ru_label} rustupdate.slot=${rustupdate_slot} ${ru_console} @@KERNEL_ARGS@@"
echo "rustupdate: booting slot ${rustupdate_slot} from @@UBOOT_DEV@@:${ru_part} (upgrade_available=${upgrade_available} bootcount=${bootcount} bootlimit=${bootlimit})"
if load @@UBOOT_DEV@@:${ru_part} ${kernel_addr_r} /boot/@@KERNEL_IMAGETYPE@@; then
    setenv ru_initrd -
    if load @@UBOOT_DEV@@:${ru_part} ${ramdisk_addr_r} /boot/initrd.img; then
        setenv ru_initrd ${ramdisk_addr_r}:${filesize}
    fi
    setenv ru_fdt ${fdtcontroladdr}
    if test -n "${fdt_addr}"; then setenv ru_fdt ${fdt_addr}; fi
    if test "@@KERNEL_IMAGETYPE@@" = "zImage"; then
        bootz ${kernel_addr_r} ${ru_initrd} ${ru_fdt}
    elif test "@@KERNEL_IMAGETYPE@@" = "uImage"; then
        bootm ${kernel_addr_r} ${ru_initrd} ${ru_fdt}
    else
        booti ${kernel_addr_r} ${ru_initrd} ${ru_fdt}
    fi
fi
echo "rustupdate: cannot boot the kernel of slot ${rustupdate_slot}"
'

if test "${upgrade_available}" = "1"; then
    if test "${bootcount}" = "0"; then setenv bootcount 1
    elif test "${bootcount}" = "1"; then setenv bootcount 2
    elif test "${bootcount}" = "2"; then setenv bootcount 3
    elif test "${bootcount}" = "3"; then setenv bootcount 4
    elif test "${bootcount}" = "4"; then setenv bootcount 5
    elif test "${bootcount}" = "5"; then setenv bootcount 6
    elif test "${bootcount}" = "6"; then setenv bootcount 7
    elif test "${bootcount}" = "7"; then setenv bootcount 8
    elif test "${bootcount}" = "8"; then setenv bootcount 9
    else setenv bootcount 10
    fi
    if test ${bootcount} -gt ${bootlimit}; then
        echo "rustupdate: trial of slot ${rustupdate_slot} failed ${bootlimit} times: falling back"
        run rustupdate_fall_back
    else
        run rustupdate_save
    fi
fi

run rustupdate_boot

# The kernel of the selected slot could not be booted. On trial: fall back now. Otherwise there is
# no known-good alternative: wait and reset (a watchdog or an operator takes over).
if test "${upgrade_available}" = "1"; then
    echo "rustupdate: falling back"
    run rustupdate_fall_back
    run rustupdate_boot
fi
echo "rustupdate: no bootable slot, resetting in 10 seconds"
sleep 10
reset
