"""The e2e harness's pieces, shared by build.py and runner.py (ci/e2e/README.md):

- contract: the boot contract's names (mirrors the Rust contract),
- layout: layout.json, what build.py made and the runner reads,
- scenario: scenario files as typed data and the one expectation check,
- guest: the fw_cfg items and console lines exchanged with guest/init,
- qemu: one QEMU boot,
- disk: the disk image and the bootloader environment from the host,
- fleet: the fleet server (rustupdate-server) of the fleet scenarios and its management API.

No piece runs QEMU, starts a server or touches a disk on import; selftest.py tests the pure parts.
"""
