# rustupdate A/B boot with boot counting for U-Boot. Contract: docs/boot-contract.md.
# Compile: mkimage -A <arch> -O linux -T script -C none -d boot.cmd boot.scr
#
# Template: each placeholder (a NAME between double at-signs) is replaced at build time
# (meta-rustupdate's rustupdate-boot-uboot, ci/e2e/build.py) by:
#   UBOOT_DEV         interface and device of the boot disk as in "load <dev>:<part>" (virtio 0, mmc 0)
#   UBOOT_ENV_SIZE    size of each environment copy (libubootenv's redundant format), e.g. 0x4000
#   BOOTLIMIT         trial boots before falling back, used when the environment has no valid bootlimit (1-9)
#   KERNEL_IMAGETYPE  kernel file name in each slot's /boot: Image (booti), zImage (bootz), uImage (bootm)
#   CONSOLE           value of console= (e.g. ttyAMA0,115200); empty: no console= argument
#   KERNEL_ARGS       further kernel arguments (e.g. rootwait)
#   SLOT_A_LABEL, SLOT_B_LABEL  GPT partition names of the slots (root=PARTLABEL=...)
#
# Layout: this script (boot.scr) and the two environment copies uboot.env and uboot-redund.env
# live on partition 1 (FAT); slot a is partition 2, slot b partition 3 and the data partition
# partition 4 of the same disk. Each slot carries its own /boot/<KERNEL_IMAGETYPE> and,
# optionally, /boot/initrd.img. The device tree is the one the firmware passed (fdt_addr, e.g.
# Raspberry Pi) or U-Boot's own (fdtcontroladdr, e.g. QEMU).
#
# The environment is redundant (libubootenv's format, as fw_printenv/fw_setenv and the client
# read it with a two-line fw_env.config): each copy is crc32 | flags | data, and the valid copy
# with the newer flags byte is current. Every save writes the *other* copy with the next flags
# value, so a power cut or a bad write at any instant leaves the current copy intact. Only the
# rustupdate variables are imported and written (env export -c writes just the listed names).
# While upgrade_available=1 every boot increments bootcount and saves it *before* the kernel is
# loaded; when bootcount exceeds bootlimit the other slot becomes the slot to boot and the trial
# ends (upgrade_available=0, bootcount=0). A trial boot whose count cannot be saved is not run:
# the other slot boots instead. When neither copy is valid, the slot the client last committed
# (rustupdate/committed-slot.env on the data partition, written by the client) boots, without a
# trial, and the environment is written anew; without that record, slot a (the factory slot).
# The increment is a lookup chain: setexpr prints hex, the contract wants decimal.
# Needs: FAT with write, ext4, env import/export, setexpr, itest, cp, mw, test, run.

# Work areas below the kernel's load address (the kernel is loaded after the environment work;
# a save after a failed kernel load builds its buffers anew).
setenv ru_envsize @@UBOOT_ENV_SIZE@@
setexpr ru_a0 ${kernel_addr_r} + 0
setexpr ru_a1 ${kernel_addr_r} + 100000
setexpr ru_buf ${kernel_addr_r} + 200000
setexpr ru_out ${kernel_addr_r} + 300000
setexpr ru_fa0 ${ru_a0} + 4
setexpr ru_fa1 ${ru_a1} + 4
# A single-copy image (crc32 | data) of the same data is one byte shorter than a copy.
setexpr ru_isize ${ru_envsize} - 1
setexpr ru_dsize ${ru_envsize} - 5

# "run ru_load": loads the file ${ru_file} to ${ru_addr}; ru_loaded=1 when it has the size of a
# copy.
setenv ru_load '
setenv ru_loaded 0
if load @@UBOOT_DEV@@:1 ${ru_addr} ${ru_file}; then
    if itest ${filesize} == ${ru_envsize}; then
        setenv ru_loaded 1
    else
        echo "rustupdate: ${ru_file} has ${filesize} bytes, not ${ru_envsize}: not a copy"
    fi
fi
'

# "run ru_import": imports the loaded copy at ${ru_addr} if its CRC32 is valid (ru_valid=1). Its
# CRC and data are put together as a single-copy image at ${ru_buf}, which env import -c checks
# before it imports anything.
setenv ru_import '
setenv ru_valid 0
cp.b ${ru_addr} ${ru_buf} 4
setexpr ru_from ${ru_addr} + 5
setexpr ru_to ${ru_buf} + 4
cp.b ${ru_from} ${ru_to} ${ru_dsize}
if env import -c ${ru_buf} ${ru_isize} rustupdate_slot upgrade_available bootcount bootlimit; then
    setenv ru_valid 1
else
    echo "rustupdate: ${ru_file} is invalid (CRC)"
fi
'

setenv rustupdate_slot
setenv upgrade_available
setenv bootcount
setenv bootlimit
setenv ru_addr ${ru_a0}; setenv ru_file uboot.env; run ru_load; setenv ru_loaded0 ${ru_loaded}
setenv ru_addr ${ru_a1}; setenv ru_file uboot-redund.env; run ru_load; setenv ru_loaded1 ${ru_loaded}

# Which copy is newer if both are valid (U-Boot's and libubootenv's rule for incremental flags):
# the higher flags byte, except that 0x00 beats 0xff (the counter wrapped); equal flags: copy 0.
setenv ru_newer 0
if itest.b *${ru_fa0} == ff && itest.b *${ru_fa1} == 0; then
    setenv ru_newer 1
elif itest.b *${ru_fa0} == 0 && itest.b *${ru_fa1} == ff; then
    setenv ru_newer 0
elif itest.b *${ru_fa1} > *${ru_fa0}; then
    setenv ru_newer 1
fi

# "run ru_try": imports copy ${ru_n} if it loaded and is valid; then it is the copy in use
# (ru_active) and ru_flags its flags byte (the next save writes the other copy with flags + 1).
setenv ru_try '
if test ${ru_n} = 0; then
    setenv ru_addr ${ru_a0}; setenv ru_file uboot.env; setenv ru_loaded ${ru_loaded0}
else
    setenv ru_addr ${ru_a1}; setenv ru_file uboot-redund.env; setenv ru_loaded ${ru_loaded1}
fi
if test ${ru_loaded} = 1; then
    run ru_import
    if test ${ru_valid} = 1; then
        setenv ru_active ${ru_n}
        setexpr ru_from ${ru_addr} + 4
        setexpr.b ru_flags *${ru_from}
    fi
fi
'

# The older copy is imported first, then the newer one: a valid newer copy overrides every
# variable, an invalid one leaves the older copy's values.
setenv ru_active none
if test ${ru_newer} = 1; then
    setenv ru_n 0; run ru_try; setenv ru_n 1; run ru_try
else
    setenv ru_n 1; run ru_try; setenv ru_n 0; run ru_try
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

# "run rustupdate_save": writes the rustupdate variables to the copy not in use, with the next
# flags value; on success that copy is in use (ru_saved=1), otherwise nothing changed (ru_saved=0).
setenv rustupdate_save '
setenv ru_saved 0
setexpr ru_nflags ${ru_flags} + 1
setexpr ru_nflags ${ru_nflags} % 100
if test "${ru_active}" = 0; then
    setenv ru_file uboot-redund.env; setenv ru_next 1
else
    setenv ru_file uboot.env; setenv ru_next 0
fi
echo "rustupdate: saving rustupdate_slot=${rustupdate_slot} upgrade_available=${upgrade_available} bootcount=${bootcount} to ${ru_file}"
if env export -c -s ${ru_isize} ${ru_buf} rustupdate_slot upgrade_available bootcount bootlimit; then
    cp.b ${ru_buf} ${ru_out} 4
    setexpr ru_to ${ru_out} + 4
    mw.b ${ru_to} ${ru_nflags}
    setexpr ru_from ${ru_buf} + 4
    setexpr ru_to ${ru_out} + 5
    cp.b ${ru_from} ${ru_to} ${ru_dsize}
    if fatwrite @@UBOOT_DEV@@:1 ${ru_out} ${ru_file} ${ru_envsize}; then
        setenv ru_saved 1; setenv ru_active ${ru_next}; setenv ru_flags ${ru_nflags}
        echo "rustupdate: saved"
    fi
fi
if test ${ru_saved} = 0; then echo "rustupdate: cannot write ${ru_file}"; fi
'

# No valid copy: boot the slot the client last committed, as it recorded on the data partition
# (the environment's own copies were both destroyed, so this is the newest state that can be
# proven), without a trial, and write the environment anew.
if test "${ru_active}" = none; then
    echo "rustupdate: no valid copy of the environment"
    setenv rustupdate_slot a
    if load @@UBOOT_DEV@@:4 ${ru_buf} /rustupdate/committed-slot.env; then
        if env import -c ${ru_buf} ${filesize} rustupdate_slot; then
            if test "${rustupdate_slot}" != "b"; then setenv rustupdate_slot a; fi
            echo "rustupdate: the client last committed slot ${rustupdate_slot}"
        else
            setenv rustupdate_slot a
            echo "rustupdate: the committed-slot record is invalid: slot a"
        fi
    else
        echo "rustupdate: no committed-slot record: slot a"
    fi
    setenv upgrade_available 0
    setenv bootcount 0
    setenv ru_active 1
    setenv ru_flags 0
    run rustupdate_save
fi

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
        if test ${ru_saved} = 0; then
            echo "rustupdate: this trial boot cannot be counted: falling back"
            run rustupdate_fall_back
        fi
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
