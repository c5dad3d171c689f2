#!/usr/bin/env python3
"""In-process tests of the harness's pure parts (no QEMU, no disk images; about a second):
every scenario file loads, the expectation check, the layout codec, the fleet server's pure
parts, and that the harness's copies of the boot contract, of the guest protocol and of the
server's state names still match the Rust code, guest/init and docs/server.md.

    ci/e2e/selftest.py [-v]        (run.sh runs it before building anything)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import re
import sys
import tempfile
import tomllib
import unittest
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import runner
import systemd_rootfs
from harness import contract, disk, fleet, guest, httpd, qemu, scenario
from harness.layout import Artifact, Firmware, Image, Layout, LayoutError, Partition
from harness.scenario import Boot, Expect, FaultPoint, FleetExpect, Observed, ScenarioError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

CONSOLE = """\
U-Boot 2023.01
E2E: booted slot=b version=v2 uptime=1.20
E2E: action commit
E2E: hook before-commit version=v2 target=b
E2E: result commit rc=0
E2E: status-begin
[INFO rustupdate] interleaved log line
{"booted-slot": "b", "pending": null, "committed": {"version": "v2", "slot": "b"},
 "bootloader": {"upgrade-available": false}}
E2E: status-end rc=0
E2E: end poweroff"""
ENV = contract.committed("b")


def parse(text: str) -> scenario.Scenario:
    return scenario.parse(tomllib.loads(text), "t", Path("t.toml"))


def seen(console: str = CONSOLE, end: str = "poweroff", env: dict[str, str] = ENV,
         holds: Callable[[str, str], bool] = lambda s, v: (s, v) == ("b", "v2"),
         server: dict[str, str] | None = None) -> Observed:
    return Observed(console, end, env, holds, server)


FLEET = '[fleet]\nartifact = "v3.rua"\n'
# GET /api/v1/devices/{id} and GET /api/v1/rollouts/{id} (tools/server/src/api.rs), abridged.
DEVICE = {"device": {"controller_id": "e2e-arm64", "last_seen": 5},
          "actions": [{"id": 1, "rollout_id": 7, "device_id": 1, "state": "failed",
                       "reason": "v3 fell back to slot a after 3 boots", "rollout_name": "r",
                       "artifact_version": "v3",
                       "feedback": [{"execution": "proceeding"}, {"execution": "closed"}]}]}
ROLLOUT = {"id": 7, "state": "paused",
           "pause_reason": "phase 1 of 1: 1 of 1 devices failed (error threshold 1)"}


class Scenarios(unittest.TestCase):
    def test_every_scenario_file_loads(self) -> None:
        for d in (REPO / "ci" / "scenarios",):
            files = sorted(d.glob("*.toml"))
            self.assertTrue(files, d)
            for path in files:
                with self.subTest(path.name):
                    self.assertTrue(scenario.load(path).boots)

    def test_repeat_and_defaults(self) -> None:
        sc = parse('[[boot]]\nrepeat = 2\n[boot.expect]\nslot = "a"\n')
        self.assertEqual(len(sc.boots), 2)
        self.assertEqual(sc.boots[0], Boot(expect=Expect(slot="a")))
        self.assertEqual(sc.arches, scenario.ARCHES)

    def test_mistakes_are_errors(self) -> None:
        for text in ['[[boot]]\nactoin = "idle"\n',
                     '[[boot]]\n[boot.expect]\nenv = { rustupdate_slto = "a" }\n',
                     '[[boot]]\n[boot.expect]\nslot = "c"\n',
                     '[[boot]]\n[boot.expect]\nend = "halt"\n',
                     '[[boot]]\nhost_env = { bootcount = "0", other = "1" }\n',
                     '[[boot]]\nclient_env = "RUSTUPDATE_FAULT_AFTER=3"\n',
                     '[[boot]]\nfault = "image:write#0"\n',
                     '[[boot]]\nfault = 0\n',
                     '[[boot]]\nfault = true\n',
                     '[[boot]]\nkill_on = "("\n',
                     '[[boot]]\nnet = "yes"\n',
                     'arches = ["riscv64"]\n[[boot]]\n',
                     # the systemd guests: their own actions, unit-fail only there
                     'disk = "alpine"\n[[boot]]\n',
                     'disk = "systemd"\n[[boot]]\naction = "commit"\n',
                     '[[boot]]\nhealth = "unit-fail"\n',
                     'description = "no boots"\n',
                     # fleet scenarios
                     '[[boot]]\naction = "commit; daemon"\n',
                     '[[boot]]\n[boot.expect]\nserver = { action = "failed" }\n',
                     FLEET + '[[boot]]\nuntil = { action = "failed" }\n',
                     FLEET + '[[boot]]\naction = "daemon; status"\n',
                     FLEET + '[[boot]]\naction = "daemon"\nuntil = { action = "done" }\n',
                     FLEET + '[[boot]]\naction = "daemon"\nuntil = { device = "x" }\n',
                     FLEET + '[[boot]]\n[boot.expect]\nserver = { rollout = "stopped" }\n',
                     FLEET + 'phases = "1;100"\n[[boot]]\n',
                     FLEET + 'artifcat = "v2.rua"\n[[boot]]\n',
                     '[fleet]\nartifact = "../v2"\n[[boot]]\n',
                     FLEET + 'devices = 2\n[[boot]]\naction = "daemon"\n',
                     FLEET + 'devices = 2\n[[boot]]\naction = "daemon"\nuntil = { rollout = "paused" }\n'
                     '[[boot]]\n',
                     FLEET + '[fleet.expect]\nrollout = "paused"\n[[boot]]\n',
                     FLEET + 'devices = 2\n[fleet.expect]\nactions = { failed = "one" }\n'
                     '[[boot]]\naction = "daemon"\nuntil = { rollout = "paused" }\n',
                     # the HTTP server's keys: a boot with the network, file names, counts
                     '[[boot]]\nhttp_throttle = { "v2.rudelta" = 64 }\n',
                     '[[boot]]\nnet = true\nhttp_throttle = { "v2.rudelta" = 0 }\n',
                     '[[boot]]\nnet = true\nhttp_throttle = { "../v2.rua" = 64 }\n',
                     '[[boot]]\nnet = true\n[boot.expect]\nhttp_max = { "v2.rua" = -1 }\n',
                     '[[boot]]\nnet = true\n[boot.expect]\nhttp_min = { "v2.rua" = "all" }\n',
                     '[[boot]]\n[boot.expect]\nhttp_max = { "v2.rua" = 1 }\n',
                     FLEET + '[[boot]]\n[boot.expect]\nhttp_min = { "v3.rua" = 1 }\n',
                     '[[boot]]\nhost_modify = "c"\n']:
            with self.subTest(text), self.assertRaises(ScenarioError):
                parse(text)

    def test_fault_points(self) -> None:
        points = ["state:after-rename", "image:write", "image:write", "state:after-rename"]
        self.assertEqual(FaultPoint("state:after-rename", 2).resolve(points), 4)
        self.assertEqual(FaultPoint("image:write", -1).resolve(points), 3)
        with self.assertRaises(ScenarioError):
            FaultPoint("env:after-rename").resolve(points)

    def test_a_fault_cuts_the_power_and_expects_the_clients_message(self) -> None:
        boot = Boot(client_env="RUST_LOG=debug", expect=Expect(markers=("x",))).with_fault(4, "env:x")
        self.assertEqual(boot.end, "cut")
        self.assertEqual(boot.client_env, "RUST_LOG=debug RUSTUPDATE_FAULT_AFTER=4")
        self.assertEqual(boot.expect.markers,
                         ("x", "simulated power cut at fault point 4 (env:x)"))

    def test_http_placeholder(self) -> None:
        boot = Boot(action="install @HTTP@/v2.rua", expect=Expect(markers=("@HTTP@/v2.rua rc=0",)))
        boot = boot.with_http(guest.http_url(8000))
        self.assertEqual(boot.action, "install http://10.0.2.2:8000/v2.rua")
        self.assertEqual(boot.expect.markers, ("http://10.0.2.2:8000/v2.rua rc=0",))

    def test_http_placeholder_in_absent_lines(self) -> None:
        boot = Boot(expect=Expect(absent=("downloading patch @HTTP@/p",))).with_http("http://h:1")
        self.assertEqual(boot.expect.absent, ("downloading patch http://h:1/p",))

    def test_delta_keys(self) -> None:
        sc = parse('[[boot]]\nnet = true\nhost_modify = "a"\n'
                   'http_throttle = { "v2.rudelta" = 64 }\n[boot.expect]\n'
                   'http_max = { "v2.rua" = 65536, "v2.rudelta" = 0 }\nhttp_min = { "v2.rudelta" = 96 }\n')
        boot = sc.boots[0]
        self.assertEqual((boot.host_modify, boot.http_throttle), ("a", {"v2.rudelta": 64}))
        self.assertEqual(boot.expect.http_max, {"v2.rua": 65536, "v2.rudelta": 0})
        self.assertTrue(sc.needs_http)


class FleetScenarios(unittest.TestCase):
    def test_a_fleet_scenario(self) -> None:
        sc = parse(FLEET + 'auth = "gateway"\n[[boot]]\naction = "commit; daemon"\n'
                   'until = { action = "failed" }\n[boot.expect]\n'
                   'server = { action = "failed", reason = "fell back" }\n')
        self.assertEqual(sc.fleet, scenario.Fleet(artifact="v3.rua", auth="gateway"))
        self.assertTrue(sc.boots[0].net, "every boot of a fleet device has the network")
        self.assertTrue(sc.boots[0].runs_daemon)
        self.assertFalse(sc.needs_http, "the fleet server serves the artifacts")
        self.assertEqual(sc.boots[0].until, {"action": "failed"})

    def test_several_devices(self) -> None:
        sc = parse(FLEET + 'devices = 3\nphases = "33,100"\n[fleet.expect]\nrollout = "paused"\n'
                   'actions = { failed = 1, "null" = 2 }\n[[boot]]\naction = "commit; daemon"\n'
                   'until = { rollout = "paused" }\n')
        assert sc.fleet is not None
        self.assertEqual(sc.fleet.devices, 3)
        self.assertEqual(sc.fleet.expect, FleetExpect(rollout="paused",
                                                      actions={"failed": "1", "null": "2"}))

    def test_server_expectations(self) -> None:
        got = fleet.observe(DEVICE, ROLLOUT, 7)
        self.assertEqual(got, {"action": "failed", "reason": "v3 fell back to slot a after 3 boots",
                               "feedbacks": "2", "rollout": "paused",
                               "pause_reason": ROLLOUT["pause_reason"], "download": "none",
                               "delta_fallback": "null"})
        self.assertEqual(fleet.observe(DEVICE, None, 8)["action"], "null")
        ok = Expect(server={"action": "failed", "reason": "fell back", "rollout": "paused",
                            "pause_reason": "1 of 1 devices failed"})
        self.assertEqual(scenario.check(ok, seen(server=got)), [])
        bad = Expect(server={"action": "succeeded", "reason": "health"})
        self.assertEqual(len(scenario.check(bad, seen(server=got))), 2)
        self.assertEqual(scenario.check(bad, seen()), ["no fleet server to ask"])
        self.assertTrue(scenario.server_matches({"rollout": "paused"}, got))
        self.assertFalse(scenario.server_matches({"action": "succeeded"}, got))

    def test_what_was_downloaded(self) -> None:
        kind = fleet.download_kind
        self.assertEqual(kind(None), "none")
        self.assertEqual(kind({"delta_bytes": 2500, "full_bytes": 4096}), "delta")
        self.assertEqual(kind({"delta_bytes": 2500, "full_bytes": 16 << 20}), "delta+full")
        self.assertEqual(kind({"delta_bytes": 0, "full_bytes": 16 << 20}), "full")
        self.assertEqual(kind({"delta_bytes": 0, "full_bytes": 0}), "none")
        sc = parse(FLEET.replace('artifact = "v3.rua"', 'base = "v1.rua"\nartifact = "v2.rua"')
                   + '[[boot]]\naction = "commit; daemon"\n[boot.expect]\n'
                   'server = { download = "delta", delta_fallback = "patch" }\n')
        self.assertEqual(sc.fleet, scenario.Fleet(artifact="v2.rua", base="v1.rua"))
        want = sc.boots[0].expect.server
        self.assertEqual(scenario.check_server(want, {"download": "delta",
                                                      "delta_fallback": "patch x: no"}), [])
        self.assertEqual(len(scenario.check_server(want, {"download": "full",
                                                          "delta_fallback": "null"})), 2)

    def test_fleet_end_state(self) -> None:
        doc = {"rollout": "paused", "pause_reason": ROLLOUT["pause_reason"],
               "devices": {"d1": {"action": "failed", "reason": "v3 fell back"},
                           "d2": {"action": "null", "reason": "null"},
                           "d3": {"action": "null", "reason": "null"}}}
        good = FleetExpect(rollout="paused", pause_reason="1 of 1",
                           actions={"failed": "1", "null": "2"}, reason="fell back")
        self.assertEqual(scenario.check_fleet(good, doc), [])
        bad = FleetExpect(rollout="finished", actions={"succeeded": "3"}, reason="health")
        self.assertEqual(len(scenario.check_fleet(bad, doc)), 3)

    def test_server_section(self) -> None:
        text = fleet.server_section("http://10.0.2.2:4000", "e2e-arm64", "target", 2)
        doc = tomllib.loads(text)["server"]
        self.assertEqual(doc, {"url": "http://10.0.2.2:4000", "tenant": "DEFAULT",
                               "controller-id": "e2e-arm64", "token-file": fleet.GUEST_TOKEN_FILE,
                               "allow-insecure-http": True, "poll-interval-secs": 2,
                               "reboot": "immediate"})
        gw = tomllib.loads(fleet.server_section("http://h", "d", "gateway", 5))["server"]
        self.assertIn("gateway-token-file", gw)
        self.assertNotIn("token-file", gw)
        with self.assertRaises(fleet.FleetError):
            fleet.server_section("http://h", "d", "mtls", 5)


class Check(unittest.TestCase):
    def test_a_boot_as_expected(self) -> None:
        expect = Expect(slot="b", version="v2", end="poweroff", markers=(guest.COMMITTED,),
                        absent=("E2E: hook on-rollback",), env=contract.committed("b"),
                        status={"committed.version": "v2", "pending": "null",
                                "bootloader.upgrade-available": "false", "last-result": "null"},
                        slot_image={"b": "v2"})
        self.assertEqual(scenario.check(expect, seen()), [])

    def test_every_kind_of_failure_is_reported(self) -> None:
        expect = Expect(slot="a", version="v1", end="reboot", markers=("missing",),
                        absent=("E2E: hook before-commit",), env={contract.VAR_BOOTCOUNT: "1"},
                        status={"committed.slot": "a"}, slot_image={"a": "v2"})
        self.assertEqual(len(scenario.check(expect, seen())), 8)

    def test_no_status_json(self) -> None:
        errors = scenario.check(Expect(status={"pending": "null"}), seen(console="E2E: booted"))
        self.assertEqual(errors, ["no status JSON on the console"])

    def test_bytes_the_http_server_sent(self) -> None:
        expect = Expect(http_max={"v2.rua": 65536, "v2.rudelta": 0}, http_min={"p": 96})
        ok = Observed(CONSOLE, "poweroff", ENV, lambda s, v: True, http_served={"v2.rua": 16384})
        self.assertEqual(scenario.check(dataclasses.replace(expect, http_min={}), ok), [])
        self.assertEqual(scenario.check(expect, ok),
                         ["HTTP server sent 0 bytes of p, expected at least 96"])
        full = Observed(CONSOLE, "poweroff", ENV, lambda s, v: True,
                        http_served={"v2.rua": 16 << 20, "v2.rudelta": 2583, "p": 96})
        self.assertEqual(len(scenario.check(expect, full)), 2)
        self.assertEqual(scenario.check(expect, seen()), ["no HTTP server to ask"])

    def test_the_last_boot_line_counts(self) -> None:
        console = "E2E: booted slot=b version=v3\nKernel panic\nE2E: booted slot=a version=v1"
        self.assertEqual(guest.booted(console), ("a", "v1"))
        self.assertIsNone(guest.end(console))


class DeltaHelpers(unittest.TestCase):
    """The filler a scenario modifies in a slot (harness/disk.py) and the artifacts' HTTP server
    (harness/httpd.py): its Range parsing, and one real exchange over loopback."""

    def test_filler_is_fixed_and_has_no_repeated_blocks(self) -> None:
        data = disk.filler_bytes()
        self.assertEqual(len(data), disk.FILLER_SIZE)
        self.assertEqual(data, disk.filler_bytes(), "the same in every build and version")
        blocks = {data[i:i + disk.FS_BLOCK] for i in range(0, len(data), disk.FS_BLOCK)}
        self.assertEqual(len(blocks), disk.FILLER_SIZE // disk.FS_BLOCK)
        self.assertNotIn(bytes(disk.FS_BLOCK), blocks)

    def test_find_block_only_at_aligned_offsets(self) -> None:
        block = disk.filler_bytes(disk.FS_BLOCK)
        data = bytes(100) + block + bytes(2 * disk.FS_BLOCK - 100) + block + bytes(10)
        self.assertEqual(disk.find_block(data, block), 3 * disk.FS_BLOCK)
        self.assertIsNone(disk.find_block(data[:3 * disk.FS_BLOCK], block))

    def test_range_headers(self) -> None:
        self.assertIsNone(httpd.parse_range(None, 100))
        self.assertEqual(httpd.parse_range("bytes=0-15", 100), (0, 15))
        self.assertEqual(httpd.parse_range("bytes=90-", 100), (90, 99))
        self.assertEqual(httpd.parse_range("bytes=90-200", 100), (90, 99))
        for bad in ("bytes=100-", "bytes=5-4", "bytes=-10", "bytes=0-1,5-6", "items=0-1"):
            with self.subTest(bad), self.assertRaises(httpd.RangeError):
                httpd.parse_range(bad, 100)

    def test_the_server_answers_ranges_and_counts_per_period(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "a.bin").write_bytes(bytes(range(256)) * 40)  # 10240 bytes
            srv = httpd.ArtifactServer(Path(tmp))
            url = f"http://127.0.0.1:{srv.port}/"

            def get(name: str, rng: str | None = None) -> tuple[int, bytes]:
                req = urllib.request.Request(url + name, headers={"Range": rng} if rng else {})
                try:
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        return resp.status, resp.read()
                except urllib.error.HTTPError as err:
                    return err.code, b""
            try:
                self.assertEqual(get("a.bin", "bytes=256-511"), (206, bytes(range(256))))
                self.assertEqual(get("a.bin", "bytes=99999-")[0], 416)
                self.assertEqual(get("nothing")[0], 404)
                self.assertEqual(get("")[0], 404, "no listings")
                self.assertEqual(srv.take_served(), {"a.bin": 256})
                srv.throttle({"a.bin": 40960})  # 10240 bytes take 0.25 s
                status, body = get("a.bin")
                self.assertEqual((status, len(body)), (200, 10240))
                self.assertEqual(srv.take_served(), {"a.bin": 10240})
                self.assertEqual(srv.take_served(), {})
            finally:
                srv.stop()


class LayoutCodec(unittest.TestCase):
    LAYOUT = Layout(
        arch="arm64", bootloader="uboot", device_type="e2e-arm64", kernel="6.1.0-1-arm64",
        kernel_package="linux-image-6.1.0-1-arm64", disk="/d/disk.img",
        partitions={"boot": Partition(1, 1 << 20, 16 << 20), "rootfs_a": Partition(2, 17 << 20, 96 << 20)},
        env_path=contract.UBOOT_ENV_PATH, uboot_env_size=contract.UBOOT_ENV_SIZE,
        firmware=Firmware(bios="/u-boot.bin"),
        images={"v2": Image("/d/rootfs-v2.ext4", 64 << 20, "ab" * 32)},
        artifacts={"v2.rua": Artifact("v2", "installs")}, client="/c", built="2024-01-01 00:00:00")

    def test_round_trip(self) -> None:
        back = Layout.from_json(self.LAYOUT.to_json())
        self.assertEqual(back, self.LAYOUT)
        self.assertEqual(back.boot_partition.number, 1)
        self.assertEqual(back.slot_partition("a").offset, 17 << 20)

    def test_unknown_or_missing_keys(self) -> None:
        doc = json.loads(self.LAYOUT.to_json())
        for broken in (dict(doc, extra=1), {k: v for k, v in doc.items() if k != "disk"}):
            with self.assertRaises(LayoutError):
                Layout.from_json(json.dumps(broken))


class SystemdRootfs(unittest.TestCase):
    """The pure parts of systemd_rootfs.py (the systemd guests' root file systems)."""

    def test_closure_from_the_simulation(self) -> None:
        text = ("Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64])\n"
                "Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64])\n"
                "Inst libcap2 (1:2.66-4+deb12u3+b1 Debian:12.15/oldstable [arm64])\n")
        found = systemd_rootfs.parse_simulation(text)
        self.assertEqual(found, {"libc6": "2.36-9+deb12u14", "libcap2": "1:2.66-4+deb12u3+b1"})
        self.assertEqual(systemd_rootfs.deb_name("libcap2", found["libcap2"]),
                         "libcap2_1%3a2.66-4+deb12u3+b1_")

    def test_sysusers(self) -> None:
        passwd, group = systemd_rootfs.sysusers([
            "g adm 4 -\nu root 0 - /root /bin/bash\nu _apt 42:65534 - /nonexistent\n",
            'g systemd-journal - -\nu systemd-network - "systemd Network Management"\n'])
        self.assertIn("root:x:0:0::/root:/bin/bash\n", passwd)
        self.assertIn("_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n", passwd)
        self.assertIn("systemd-network:x:998:998:systemd Network Management:/:", passwd)
        self.assertIn("systemd-journal:x:999:\n", group)
        self.assertIn("adm:x:4:\n", group)

    def test_enable_follows_the_install_section(self) -> None:
        unit = (REPO / "client" / "systemd" / "rustupdate-commit.service").read_text()
        self.assertEqual(systemd_rootfs.wanted_by(unit),
                         ["multi-user.target", "boot-complete.target"])


class Mirrors(unittest.TestCase):
    """The harness's copies of names that live elsewhere."""

    def test_contract_matches_the_rust_contract(self) -> None:
        # The variable names live in crates/core's boot module (older trees: the client's
        # adapter); every definition found must match.
        rust_vars: dict[str, str] = {}
        for path in ("crates/core/src/boot.rs", "client/src/sys/boot_env.rs"):
            text = (REPO / path).read_text() if (REPO / path).exists() else ""
            rust_vars.update(re.findall(r'pub const (VAR_\w+): &str = "(\w+)";', text))
        self.assertEqual(rust_vars, {name: getattr(contract, name) for name in rust_vars})
        self.assertEqual(sorted(rust_vars.values()), sorted(contract.VARS))
        core = (REPO / "crates" / "core" / "src" / "boot.rs").read_text()
        self.assertIn(f"DEFAULT_BOOTLIMIT: u32 = {contract.DEFAULT_BOOTLIMIT};", core)
        slot = (REPO / "crates" / "core" / "src" / "slot.rs").read_text()
        self.assertIn(f'strip_prefix("{contract.CMDLINE_SLOT}")', slot)
        doc = (REPO / "docs" / "boot-contract.md").read_text()
        for name in contract.VARS + (contract.GRUBENV_PATH, contract.UBOOT_ENV_PATH,
                                     contract.GRUBENV_REDUND_PATH, contract.UBOOT_ENV_REDUND_PATH,
                                     contract.VAR_SEQ, contract.VAR_SEQ_END,
                                     contract.COMMITTED_SLOT_RECORD,
                                     contract.slot_label("b"), contract.DATA_LABEL,
                                     *contract.BOOT_LABEL.values()):
            self.assertIn(f"`{name}`", doc)
        self.assertIn(f"({contract.UBOOT_ENV_SIZE:#x} bytes", doc)
        self.assertIn(f"default `{contract.DEFAULT_BOOTLIMIT}`", doc)

    def test_environment_copies_match_the_rust_code_and_the_boot_scripts(self) -> None:
        grub = (REPO / "crates" / "bootenv" / "src" / "grub.rs").read_text()
        self.assertIn(f'pub const VAR_SEQ: &str = "{contract.VAR_SEQ}";', grub)
        self.assertIn(f'pub const VAR_SEQ_END: &str = "{contract.VAR_SEQ_END}";', grub)
        self.assertIn(f"pub const SEQ_CYCLE: u8 = {len(contract.SEQ_VALUES)};", grub)
        adapter = (REPO / "client" / "src" / "sys" / "boot_env.rs").read_text()
        record = Path(contract.COMMITTED_SLOT_RECORD).name
        self.assertIn(f'pub const COMMITTED_SLOT_RECORD: &str = "{record}";', adapter)
        files = REPO / "meta-rustupdate" / "recipes-bsp" / "rustupdate-boot" / "files"
        grub_cfg, boot_cmd = (files / "grub.cfg").read_text(), (files / "boot.cmd").read_text()
        for name in contract.ENV_COPIES["grub"]:
            self.assertIn(f"${{prefix}}/{Path(name).name}", grub_cfg)
        for name in contract.ENV_COPIES["uboot"]:
            self.assertIn(f"setenv ru_file {name}", boot_cmd)
        self.assertIn(f"gpt4)/{contract.COMMITTED_SLOT_RECORD}", grub_cfg)
        self.assertIn(f":4 ${{ru_buf}} /{contract.COMMITTED_SLOT_RECORD}", boot_cmd)

    def test_guest_protocol_matches_guest_init(self) -> None:
        init = (HERE / "guest" / "init").read_text()
        health = (HERE / "guest" / "health-e2e").read_text()
        self.assertIn(guest.FW_CFG_PREFIX, init)
        for item in guest.FW_CFG_ITEMS:
            self.assertTrue(f"fwcfg {item}" in init or f"{guest.FW_CFG_PREFIX}{item}/" in health, item)
        for line in ("E2E: booted slot=", "E2E: result $cmd rc=", "E2E: status-begin",
                     "E2E: status-end", "E2E: end $end"):
            self.assertIn(line, init)
        self.assertEqual(guest.fw_cfg({"action": "install a,b", "health": ""}),
                         ["-fw_cfg", "name=opt/rustupdate/action,string=install a,,b"])
        # The daemon action and its stop line (rendered by build.py), the server token's file.
        self.assertIn(f"        {guest.DAEMON_ACTION})", init)
        self.assertIn("*@@STOP_LINE@@*) break", init)
        self.assertIn(f'echo "{guest.DAEMON_STARTED}"', init)
        self.assertIn(f"fwcfg token > {fleet.GUEST_TOKEN_FILE})", init)

    def test_systemd_guests_speak_the_same_protocol(self) -> None:
        # guest/systemd/: the booted line, the agent's lines (the commit is the shipped unit's;
        # the agent reports it with the line the busybox guests print), its actions, unit-fail.
        sd = HERE / "guest" / "systemd"
        self.assertIn("E2E: booted slot=$slot version=", (sd / "e2e-booted.sh").read_text())
        agent = (sd / "e2e-agent.sh").read_text()
        for line in ("E2E: result commit rc=$rc", "E2E: status-begin", "E2E: status-end",
                     "E2E: end $end", guest.FW_CFG_PREFIX):
            self.assertIn(line, agent)
        labels = re.findall(r'^ {8}([a-z"|*]+)\)$', agent, re.M)  # run_action's case labels
        self.assertEqual({w for label in labels for w in label.split("|")} - {'""', "*"},
                         set(scenario.SYSTEMD_ACTIONS))
        self.assertIn('= "unit-fail"', (sd / "e2e-unit-fail.sh").read_text())
        self.assertIn("unit-fail", scenario.HEALTH_MODES)

    def test_server_state_names_match_the_rollout_crate(self) -> None:
        # crates/rollout names its states in `Variant => "name"` lists; the harness's lists
        # (plus "null": no action) must be exactly those.
        for path, ours in (("crates/rollout/src/action.rs", scenario.ACTION_STATES),
                           ("crates/rollout/src/rollout.rs", scenario.ROLLOUT_STATES)):
            text = (REPO / path).read_text()
            block = text[text.index("pub enum"):text.index("}", text.index("pub enum"))]
            names = re.findall(r'=> "([a-z-]+)"', block)
            self.assertEqual(sorted(names), sorted(s for s in ours if s != "null"), path)
        doc = (REPO / "docs" / "server.md").read_text()
        self.assertIn("`poll-interval`", doc)
        self.assertIn("/api/v1/devices/{id}", doc)

    def test_server_section_keys_are_the_clients(self) -> None:
        # client/src/config.rs: `pub struct Server` with kebab-case field names.
        text = (REPO / "client" / "src" / "config.rs").read_text()
        start = text.index("pub struct Server {")
        fields = set(re.findall(r"pub (\w+):", text[start:text.index("\n}", start)]))
        for auth in fleet.AUTH_MODES:
            keys = tomllib.loads(fleet.server_section("http://h", "d", auth, 2))["server"]
            self.assertLessEqual({k.replace("-", "_") for k in keys}, fields)


def named(name: str, arches: tuple[str, ...] = scenario.ARCHES) -> scenario.Scenario:
    return dataclasses.replace(parse('[[boot]]\n[boot.expect]\nslot = "a"\n'), name=name,
                               arches=arches)


def passed(arch: str, sc: scenario.Scenario) -> runner.ScenarioRecord:
    return runner.ScenarioRecord(arch, sc.name, True, 1, 1, 0.1, None, [])


class Runner(unittest.TestCase):
    """The runner cannot pass by accident (issue 19): a worker that raises fails the run with its
    traceback, and so does a chosen scenario without exactly one record. Fake scenario runners
    stand in for QEMU."""

    CHOSEN = (named("one"), named("two"), named("arm-only", ("arm64",)))

    def run_all(self, work: runner.ArchWork, jobs: int = 2,
                chosen: list[scenario.Scenario] | None = None) -> tuple[runner.RunOutcome, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            outcome = runner.run_all(scenario.ARCHES,
                                     list(self.CHOSEN) if chosen is None else chosen, jobs, work)
        return outcome, out.getvalue()

    @staticmethod
    def real_loop(run_one_of: Callable[[str], runner.RunOne]) -> runner.ArchWork:
        """runner.run_arch, the loop of a real run, with a fake scenario runner per arch."""
        return functools.partial(runner.run_arch, prepare=lambda arch, mine: run_one_of(arch))

    def test_every_chosen_scenario_passes(self) -> None:
        for jobs in (1, 2):
            outcome, _ = self.run_all(self.real_loop(lambda arch: lambda sc: passed(arch, sc)),
                                      jobs)
            self.assertEqual(outcome.problems, [])
            self.assertTrue(outcome.ok)
            self.assertEqual([(r.arch, r.scenario) for r in outcome.records],
                             [("x86_64", "one"), ("x86_64", "two"), ("arm64", "one"),
                              ("arm64", "two"), ("arm64", "arm-only")])

    def test_a_scenario_that_raises_fails_the_run(self) -> None:
        def run_one_of(arch: str) -> runner.RunOne:
            def run_one(sc: scenario.Scenario) -> runner.ScenarioRecord:
                if (arch, sc.name) == ("x86_64", "one"):
                    raise AttributeError("'NoneType' object has no attribute 'booted'")
                return passed(arch, sc)
            return run_one

        for jobs in (1, 2):
            outcome, printed = self.run_all(self.real_loop(run_one_of), jobs)
            self.assertFalse(outcome.ok)
            failed = [r for r in outcome.records if not r.ok]
            self.assertEqual([(r.arch, r.scenario) for r in failed], [("x86_64", "one")])
            self.assertIn("unexpected AttributeError", failed[0].failures[0])
            self.assertIn("Traceback (most recent call last)", printed)
            # The architecture's other scenarios still ran.
            self.assertEqual(len(outcome.records), 5)

    def test_a_worker_that_dies_fails_the_run_and_names_the_missing_records(self) -> None:
        def run_one_of(arch: str) -> runner.RunOne:
            if arch == "arm64":
                raise KeyError("guest_disks")  # in the preparation: no record at all
            return lambda sc: passed(arch, sc)

        for jobs in (1, 2):
            outcome, printed = self.run_all(self.real_loop(run_one_of), jobs)
            self.assertFalse(outcome.ok)
            self.assertTrue(all(r.ok for r in outcome.records))  # what ran passed ...
            self.assertEqual(outcome.problems, [  # ... and the run fails all the same
                "arm64: the worker died of KeyError: 'guest_disks'",
                "no record of arm64 one", "no record of arm64 two", "no record of arm64 arm-only"])
            self.assertIn("Traceback (most recent call last)", printed)
            self.assertIn("KeyError: 'guest_disks'", printed)

    def test_a_chosen_scenario_without_a_record_fails_the_run(self) -> None:
        def forgets_one(arch: str, mine: list[scenario.Scenario],
                        record: Callable[[runner.ScenarioRecord], None]) -> None:
            for sc in mine:
                if (arch, sc.name) != ("arm64", "two"):
                    record(passed(arch, sc))

        outcome, _ = self.run_all(forgets_one)
        self.assertFalse(outcome.ok)
        self.assertEqual(outcome.problems, ["no record of arm64 two"])

    def test_duplicate_and_unchosen_records_fail_the_run(self) -> None:
        def records_twice(arch: str, mine: list[scenario.Scenario],
                          record: Callable[[runner.ScenarioRecord], None]) -> None:
            for sc in mine:
                record(passed(arch, sc))
            record(passed(arch, mine[0]))
            if arch == "x86_64":
                record(passed(arch, named("stray")))

        outcome, _ = self.run_all(records_twice)
        self.assertFalse(outcome.ok)
        self.assertEqual(outcome.problems, [
            "1 more record(s) of x86_64 one than chosen",
            "a record of x86_64 stray, which was not chosen",
            "1 more record(s) of arm64 one than chosen"])

    def test_the_closing_line_counts_problems_as_failures(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            runner.print_summary([passed("x86_64", named("one"))], ["no record of arm64 one"], 1.0)
        lines = out.getvalue().splitlines()
        self.assertIn("RUN FAILED: no record of arm64 one", lines)
        self.assertEqual(lines[-1], "e2e: 1 passed, 1 failed")

    def test_no_scenario_is_no_pass(self) -> None:
        outcome, _ = self.run_all(self.real_loop(lambda arch: lambda sc: passed(arch, sc)),
                                  chosen=[])
        self.assertEqual(outcome.problems, [])
        self.assertFalse(outcome.ok)


PANIC_IOAPIC = ("[    1.05] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with "
                "apic=debug and send a report.  Then try booting with the 'noapic' option.")


class InfraRetry(unittest.TestCase):
    """A kernel panic before the guest's init ran is an infrastructure failure: retried once from
    the same boot area, reported, and a failure when the retry panics too."""

    def test_panic_before_init(self) -> None:
        self.assertEqual(guest.panic_before_init(
            "rustupdate: booting slot a from (hd0,gpt2) (upgrade_available=0 bootcount=0 "
            f"bootlimit=3)\n{PANIC_IOAPIC}\n"), PANIC_IOAPIC)
        for console in (
                "",  # no panic
                "E2E: booted slot=b version=v3\nE2E: broken image: init exits\n"  # v3, on purpose
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000",
                "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
                f"E2E: initramfs: no root\n{PANIC_IOAPIC}"):  # user space ran first
            with self.subTest(console):
                self.assertIsNone(guest.panic_before_init(console))

    def test_loader_slot_is_the_last_slot_loaded(self) -> None:
        self.assertEqual(guest.loader_slot(
            "rustupdate: booting slot b from (hd0,gpt3) (upgrade_available=1 ...)\n"
            "rustupdate: cannot load the kernel of slot b\nrustupdate: falling back\n"
            "rustupdate: booting slot a from (hd0,gpt2) (upgrade_available=0 ...)\n"), "a")
        self.assertIsNone(guest.loader_slot("U-Boot 2023.01\n"))

    def boot(self, consoles: list[str]) -> tuple[qemu.BootResult, list[bytes], str]:
        """runner.boot_once on a small fake disk, with a fake QEMU that writes the boot area
        (as a bootloader saving the count would) and prints the next console."""
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "pristine.img").write_bytes(bytes(4 * 4096))
            lay = dataclasses.replace(LayoutCodec.LAYOUT, disk=str(d / "pristine.img"),
                                      partitions={"boot": Partition(1, 4096, 4096)})
            disk_ = disk.Disk(lay, d).fresh()
            seen_areas: list[bytes] = []

            def fake_run(cmd: list[str], logfile: Path, *args: object,
                         **kwargs: object) -> qemu.BootResult:
                seen_areas.append(disk_.boot_state().boot_area[:8])
                with open(disk_.path, "r+b") as f:
                    f.seek(4096)
                    f.write(b"count+1!")
                console = consoles.pop(0)
                logfile.write_text(console)
                return qemu.BootResult(lines=[(0.0, line) for line in console.splitlines()],
                                       end="reset", rc=0)

            original = qemu.run
            qemu.run = fake_run  # runner.boot_once calls qemu.run
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    res = runner.boot_once(lay, disk_, Boot(action="idle"), d / "boot-01.log",
                                           "tcg")
            finally:
                qemu.run = original
            logs = sorted(p.name for p in d.glob("boot-01*"))
            self.assertEqual(logs[0], "boot-01.infra-retry.log" if len(seen_areas) > 1
                             else "boot-01.log")
            return res, seen_areas, out.getvalue()

    def test_a_panic_before_init_is_retried_once_from_the_same_boot_area(self) -> None:
        res, areas, printed = self.boot([PANIC_IOAPIC, CONSOLE])
        self.assertEqual(areas, [bytes(8), bytes(8)])  # the retry started from the same bytes
        self.assertEqual(res.infra_retry, PANIC_IOAPIC)
        self.assertIn("infrastructure retry of boot-01.log", printed)
        self.assertEqual(runner.infra_errors(res), [])
        self.assertEqual(guest.booted(res.console), ("b", "v2"))

    def test_a_retry_that_panics_again_is_a_failure(self) -> None:
        res, areas, _ = self.boot([PANIC_IOAPIC, PANIC_IOAPIC])
        self.assertEqual(len(areas), 2)  # once, not more
        self.assertEqual(len(runner.infra_errors(res)), 1)
        self.assertIn("on both tries", runner.infra_errors(res)[0])

    def test_no_retry_without_an_early_panic(self) -> None:
        for console in (CONSOLE, "E2E: booted slot=b version=v3\n"
                                 "Kernel panic - not syncing: Attempted to kill init!"):
            res, areas, printed = self.boot([console])
            self.assertEqual(len(areas), 1)
            self.assertIsNone(res.infra_retry)
            self.assertNotIn("infrastructure", printed)


class Soak(unittest.TestCase):
    """soak.py's pure parts: the plan from the seed, the contract's pick, its outcome names."""

    def test_the_plan_is_a_function_of_the_seed(self) -> None:
        import soak
        cuts = soak.plan(7, 30)
        self.assertEqual(cuts, soak.plan(7, 30))
        self.assertEqual(cuts[:5], soak.plan(7, 5))  # --cuts M repeats the first M of a run
        self.assertNotEqual(cuts, soak.plan(8, 30))
        self.assertEqual({c.phase for c in cuts}, set(soak.PHASES))
        self.assertTrue(all(0 <= c.fraction < 1 for c in cuts))

    def test_bootloader_pick_follows_the_contract(self) -> None:
        import soak
        self.assertEqual(soak.bootloader_pick(contract.committed("a")), "a")
        trial = {**contract.committed("b"), contract.VAR_UPGRADE_AVAILABLE: "1"}
        limit = contract.DEFAULT_BOOTLIMIT
        self.assertEqual(soak.bootloader_pick({**trial, contract.VAR_BOOTCOUNT: str(limit - 1)}), "b")
        self.assertEqual(soak.bootloader_pick({**trial, contract.VAR_BOOTCOUNT: str(limit)}), "a")

    def test_check_boot_holds_the_contract(self) -> None:
        import soak
        from harness.qemu import BootResult

        def env(slot: str, trial: int, count: int) -> dict[str, str]:
            return {**contract.committed(slot), contract.VAR_UPGRADE_AVAILABLE: str(trial),
                    contract.VAR_BOOTCOUNT: str(count)}

        def run(before: dict[str, str], after: dict[str, str], lines: list[str],
                end: str = "poweroff", action: str = "commit",
                installing: str | None = None) -> bool:
            res = BootResult(lines=[(0.1 * i, line) for i, line in enumerate(lines)], end=end,
                             rc=0)
            holds = {"a": "v1", "b": "v2"}.get  # b holds v2, a v1
            return soak.check_boot(before, after, res, guest.booted(res.console), action,
                                   installing, holds)

        trial_b = "E2E: booted slot=b version=v2"
        # A trial boot that commits; one that is killed after the count was saved.
        self.assertFalse(run(env("b", 1, 0), env("b", 0, 0), [trial_b, "E2E: action commit"]))
        self.assertFalse(run(env("b", 1, 0), env("b", 1, 1), [], end="killed"))
        # Past bootlimit the bootloader falls back to a: allowed, and reported.
        self.assertTrue(run(env("b", 1, 3), env("a", 0, 0),
                            ["E2E: booted slot=a version=v1", "E2E: action commit"]))
        for before, after, lines, end, why in (
                (env("b", 1, 2), env("b", 1, 1), [], "killed", "bootcount went from 2 to 1"),
                (env("b", 1, 0), env("b", 1, 0), [trial_b], "killed", "bootcount stayed 0"),
                (env("a", 0, 0), env("a", 0, 0), [trial_b], "poweroff", "the contract picks a"),
                (env("a", 0, 0), env("a", 0, 0), ["Kernel panic - not syncing"], "reset",
                 "panicked"),
                (env("a", 0, 0), env("a", 0, 0), [], "reset", "never reached the guest's init"),
                (env("b", 1, 1), env("b", 0, 0), [trial_b], "poweroff", "without a commit")):
            with self.assertRaisesRegex(soak.Violation, why):
                run(before, after, lines, end)
        # Armed for a slot that does not hold the complete new image.
        with self.assertRaisesRegex(soak.Violation, "slot b holds v2"):
            run(env("a", 0, 0), env("b", 1, 0), ["E2E: booted slot=a version=v1",
                                                 "E2E: action install /data/artifacts/v1.rua"],
                action="install /data/artifacts/v1.rua", installing="v1")

    def test_check_boot_judges_the_loaded_slot_by_its_content(self) -> None:
        import soak
        from harness.qemu import BootResult

        committed_a = contract.committed("a")
        loads_a = "rustupdate: booting slot a from (hd0,gpt2) (upgrade_available=0 ...)"

        def run(lines: list[str], holds: Callable[[str], str | None],
                infra_retry: str | None = None, end: str = "reset") -> bool:
            res = BootResult(lines=[(0.1 * i, line) for i, line in enumerate(lines)], end=end,
                             rc=0, infra_retry=infra_retry)
            return soak.check_boot(committed_a, committed_a, res, guest.booted(res.console),
                                   "commit", None, holds)

        good = {"a": "v1", "b": "v2"}.get
        # The loaded slot's image does not hash to a good one: whatever the boot did.
        with self.assertRaisesRegex(soak.Violation, "slot a, which holds no complete good image"):
            run([loads_a, "E2E: booted slot=a version=v1"], {"b": "v2"}.get, end="poweroff")
        # A panic before init on the retry too: an infrastructure failure, naming the content.
        with self.assertRaisesRegex(soak.InfraFailure, "on the infrastructure retry too.*"
                                    "slot a holds the complete v1 image"):
            run([loads_a, PANIC_IOAPIC], good, infra_retry=PANIC_IOAPIC)
        # A retry that booted is judged as any boot (and passes here).
        self.assertFalse(run([loads_a, "E2E: booted slot=a version=v1", "E2E: end poweroff"],
                             good, infra_retry=PANIC_IOAPIC, end="poweroff"))
        # A panic after the init ran, on a good image, is the updater's problem.
        with self.assertRaisesRegex(soak.Violation, "after the guest's init ran; slot a holds"):
            run([loads_a, "E2E: booted slot=a version=v1",
                 "Kernel panic - not syncing: Attempted to kill init!"], good)

    def test_converged_results_are_outcome_names(self) -> None:
        import soak
        text = (REPO / "crates" / "core" / "src" / "state.rs").read_text()
        block = text[text.index("pub enum OutcomeKind"):]
        names = re.findall(r'OutcomeKind::\w+ => "([a-z-]+)"', block)
        self.assertLessEqual(set(soak.CONVERGED_RESULTS), set(names))


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]])
