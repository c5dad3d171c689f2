SUMMARY = "rustupdate systemd-boot configuration (A/B boot counting by entry file names)"
DESCRIPTION = "loader.conf and the two initial Boot Loader Specification entries \
rustupdate-a.conf (generation 2) and rustupdate-b.conf (generation 1) for the EFI system \
partition: systemd-boot's own boot counting selects the slot, the client renames and rewrites \
the entries (docs/boot-contract.md). All are deployed for the ESP; the package only provides \
virtual-systemd-bootconf for images that install systemd-boot (the real files live on the ESP)."

require rustupdate-boot.inc

SRC_URI = "file://loader.conf"

# Nothing goes into the root filesystem: a copy of the entries in /boot would go stale as soon as
# the client renames them on the ESP. The empty package satisfies systemd-boot's RDEPENDS.
ALLOW_EMPTY:${PN} = "1"
RPROVIDES:${PN} += "virtual-systemd-bootconf"

# The factory generations (docs/boot-contract.md): slot a boots first, b is the other slot.
RUSTUPDATE_SDBOOT_GENERATIONS = "a=2 b=1"

def rustupdate_sdboot_entry(d, slot, generation):
    """One Boot Loader Specification entry of slot a or b (docs/boot-contract.md)."""
    label = d.getVar('RUSTUPDATE_SLOT_%s_LABEL' % slot.upper())
    options = ['root=PARTLABEL=%s' % label, 'rustupdate.slot=%s' % slot]
    if d.getVar('RUSTUPDATE_CONSOLE'):
        options.append('console=%s' % d.getVar('RUSTUPDATE_CONSOLE'))
    options += (d.getVar('RUSTUPDATE_KERNEL_ARGS') or '').split()
    # The file names are the basenames of the slot's /boot files that the client copies to the
    # ESP when it arms a trial: /boot/<KERNEL_IMAGETYPE>, /boot/initrd.img (rustupdate_image).
    lines = ['title rustupdate slot %s' % slot,
             'sort-key rustupdate',
             'version %s' % generation,
             'linux /rustupdate/%s/%s' % (slot, d.getVar('KERNEL_IMAGETYPE'))]
    if d.getVar('RUSTUPDATE_INITRD'):
        lines.append('initrd /rustupdate/%s/initrd.img' % slot)
    lines.append('options %s' % ' '.join(options))
    return '\n'.join(lines) + '\n'

do_compile[vardeps] += "RUSTUPDATE_INITRD RUSTUPDATE_SDBOOT_GENERATIONS"
python do_compile () {
    import shutil
    b = d.getVar('B')
    shutil.copyfile(os.path.join(d.getVar('UNPACKDIR'), 'loader.conf'), os.path.join(b, 'loader.conf'))
    for entry in d.getVar('RUSTUPDATE_SDBOOT_GENERATIONS').split():
        slot, generation = entry.split('=')
        with open(os.path.join(b, 'rustupdate-%s.conf' % slot), 'w') as f:
            f.write(rustupdate_sdboot_entry(d, slot, generation))
}

# Names in DEPLOY_DIR_IMAGE; rustupdate_image.bbclass (RUSTUPDATE_BOOT_FILES) puts them on the ESP
# as loader/loader.conf, loader/entries/rustupdate-a.conf and loader/entries/rustupdate-b.conf.
do_deploy () {
    install -m 0644 ${B}/loader.conf ${DEPLOYDIR}/rustupdate-loader.conf
    install -m 0644 ${B}/rustupdate-a.conf ${DEPLOYDIR}/rustupdate-entry-a.conf
    install -m 0644 ${B}/rustupdate-b.conf ${DEPLOYDIR}/rustupdate-entry-b.conf
}
addtask deploy after do_compile before do_build
