SUMMARY = "rustupdate device client: atomic A/B updates with signed artifacts"
SUMMARY:${PN}-daemon = "rustupdate fleet daemon: polls a hawkBit DDI server (rustupdate-daemon.service)"
DESCRIPTION = "The rustupdate client installs signed .rua artifacts into the inactive root \
filesystem slot, lets the bootloader try the new slot, runs health checks after the reboot and \
commits or rolls back. Its systemd units decide each trial boot (rustupdate-commit.service) and \
roll back trials that are not decided in time (rustupdate-guard.timer)."

require rustupdate.inc

inherit systemd

# The fleet daemon is its own package: devices updated by hand or by another agent do not run it.
# rustupdate-conf recommends it when RUSTUPDATE_SERVER_URL is set.
PACKAGES =+ "${PN}-daemon"

SYSTEMD_PACKAGES = "${PN} ${PN}-daemon"
SYSTEMD_SERVICE:${PN} = "rustupdate-commit.service rustupdate-guard.timer"
SYSTEMD_SERVICE:${PN}-daemon = "rustupdate-daemon.service"
SYSTEMD_AUTO_ENABLE = "enable"

do_install:append () {
    install -d ${D}${systemd_system_unitdir}
    for unit in rustupdate-commit.service rustupdate-guard.service rustupdate-guard.timer rustupdate-daemon.service; do
        install -m 0644 ${S}/client/systemd/$unit ${D}${systemd_system_unitdir}/$unit
    done
    sed -i -e 's:/usr/bin/:${bindir}/:g' ${D}${systemd_system_unitdir}/rustupdate-*.service
}

FILES:${PN} += "${systemd_system_unitdir}/rustupdate-guard.service"
FILES:${PN}-daemon += "${systemd_system_unitdir}/rustupdate-daemon.service"
RDEPENDS:${PN}-daemon = "${PN}"

# The device configuration (/etc/rustupdate: device type, slots, bootloader, trusted keys). That
# recipe exists only with "rustupdate" in DISTRO_FEATURES; without it the client still builds
# (e.g. in "bitbake world" with the layer added but not enabled, as yocto-check-layer does).
RRECOMMENDS:${PN} += "${@bb.utils.contains('DISTRO_FEATURES', 'rustupdate', 'rustupdate-conf', '', d)}"
