"""The e2e harness's pieces, shared by build.py and runner.py (ci/e2e/README.md):

- contract: the boot contract's names (mirrors the Rust contract),
- layout: layout.json, what build.py made and the runner reads,
- scenario: scenario files as typed data and the one expectation check,
- guest: the fw_cfg items and console lines exchanged with guest/init,
- qemu: one QEMU boot,
- disk: the disk image and the bootloader environment from the host,
- fleet_server: the fleet server (rustupdate-server) of the fleet scenarios and its management API,
- buildcmd, debs, initramfs: build.py's command runner and log line, its Debian packages
  (private APT configuration, dpkg-deb) and the kernel's modules and the initramfs,
- runlog: the run's log lines (one writer at a time),
- records: what a run records per boot and scenario (summary.json) and the summary it prints,
- fleet_run: a fleet scenario's server, rollout and devices while it runs,
- boots: one boot of a scenario (QEMU, the infrastructure retry, checks, log lines),
- runs: every architecture's chosen scenarios, so that a run cannot pass by accident,
- soak_contract: the power-cut soak's plan and its check of the boot contract after a boot,
- selftests: selftest.py's fixtures and the test classes that live apart from it.

No piece runs QEMU, starts a server or touches a disk on import; selftest.py tests the pure parts.
"""
