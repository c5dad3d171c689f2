#!/usr/bin/env python3
"""In-process tests of the harness's pure parts (no QEMU, no disk images; about a second):
every scenario file loads, the expectation check, the layout codec, the fleet server's pure
parts, and that the harness's copies of the boot contract, of the guest protocol and of the
server's state names still match the Rust code, guest/init and docs/server.md.

    ci/e2e/selftest.py [-v]        (run.sh runs it before building anything)
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import tempfile
import tomllib
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from harness import contract, disk, fleet, guest, httpd, scenario
from harness.layout import Artifact, Firmware, Image, Layout, LayoutError, Partition
from harness.scenario import Boot, Expect, FaultPoint, FleetExpect, Observed, ScenarioError
import systemd_rootfs

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


def seen(console=CONSOLE, end="poweroff", env=ENV, holds=lambda s, v: (s, v) == ("b", "v2"),
         server=None):
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
    def test_every_scenario_file_loads(self):
        for d in (REPO / "ci" / "scenarios",):
            files = sorted(d.glob("*.toml"))
            self.assertTrue(files, d)
            for path in files:
                with self.subTest(path.name):
                    self.assertTrue(scenario.load(path).boots)

    def test_repeat_and_defaults(self):
        sc = parse('[[boot]]\nrepeat = 2\n[boot.expect]\nslot = "a"\n')
        self.assertEqual(len(sc.boots), 2)
        self.assertEqual(sc.boots[0], Boot(expect=Expect(slot="a")))
        self.assertEqual(sc.arches, scenario.ARCHES)

    def test_mistakes_are_errors(self):
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

    def test_fault_points(self):
        points = ["state:after-rename", "image:write", "image:write", "state:after-rename"]
        self.assertEqual(FaultPoint("state:after-rename", 2).resolve(points), 4)
        self.assertEqual(FaultPoint("image:write", -1).resolve(points), 3)
        with self.assertRaises(ScenarioError):
            FaultPoint("env:after-rename").resolve(points)

    def test_a_fault_cuts_the_power_and_expects_the_clients_message(self):
        boot = Boot(client_env="RUST_LOG=debug", expect=Expect(markers=("x",))).with_fault(4, "env:x")
        self.assertEqual(boot.end, "cut")
        self.assertEqual(boot.client_env, "RUST_LOG=debug RUSTUPDATE_FAULT_AFTER=4")
        self.assertEqual(boot.expect.markers,
                         ("x", "simulated power cut at fault point 4 (env:x)"))

    def test_http_placeholder(self):
        boot = Boot(action="install @HTTP@/v2.rua", expect=Expect(markers=("@HTTP@/v2.rua rc=0",)))
        boot = boot.with_http(guest.http_url(8000))
        self.assertEqual(boot.action, "install http://10.0.2.2:8000/v2.rua")
        self.assertEqual(boot.expect.markers, ("http://10.0.2.2:8000/v2.rua rc=0",))

    def test_http_placeholder_in_absent_lines(self):
        boot = Boot(expect=Expect(absent=("downloading patch @HTTP@/p",))).with_http("http://h:1")
        self.assertEqual(boot.expect.absent, ("downloading patch http://h:1/p",))

    def test_delta_keys(self):
        sc = parse('[[boot]]\nnet = true\nhost_modify = "a"\n'
                   'http_throttle = { "v2.rudelta" = 64 }\n[boot.expect]\n'
                   'http_max = { "v2.rua" = 65536, "v2.rudelta" = 0 }\nhttp_min = { "v2.rudelta" = 96 }\n')
        boot = sc.boots[0]
        self.assertEqual((boot.host_modify, boot.http_throttle), ("a", {"v2.rudelta": 64}))
        self.assertEqual(boot.expect.http_max, {"v2.rua": 65536, "v2.rudelta": 0})
        self.assertTrue(sc.needs_http)


class FleetScenarios(unittest.TestCase):
    def test_a_fleet_scenario(self):
        sc = parse(FLEET + 'auth = "gateway"\n[[boot]]\naction = "commit; daemon"\n'
                   'until = { action = "failed" }\n[boot.expect]\n'
                   'server = { action = "failed", reason = "fell back" }\n')
        self.assertEqual(sc.fleet, scenario.Fleet(artifact="v3.rua", auth="gateway"))
        self.assertTrue(sc.boots[0].net, "every boot of a fleet device has the network")
        self.assertTrue(sc.boots[0].runs_daemon)
        self.assertFalse(sc.needs_http, "the fleet server serves the artifacts")
        self.assertEqual(sc.boots[0].until, {"action": "failed"})

    def test_several_devices(self):
        sc = parse(FLEET + 'devices = 3\nphases = "33,100"\n[fleet.expect]\nrollout = "paused"\n'
                   'actions = { failed = 1, "null" = 2 }\n[[boot]]\naction = "commit; daemon"\n'
                   'until = { rollout = "paused" }\n')
        self.assertEqual(sc.fleet.devices, 3)
        self.assertEqual(sc.fleet.expect, FleetExpect(rollout="paused",
                                                      actions={"failed": "1", "null": "2"}))

    def test_server_expectations(self):
        got = fleet.observe(DEVICE, ROLLOUT, 7)
        self.assertEqual(got, {"action": "failed", "reason": "v3 fell back to slot a after 3 boots",
                               "feedbacks": "2", "rollout": "paused",
                               "pause_reason": ROLLOUT["pause_reason"]})
        self.assertEqual(fleet.observe(DEVICE, None, 8)["action"], "null")
        ok = Expect(server={"action": "failed", "reason": "fell back", "rollout": "paused",
                            "pause_reason": "1 of 1 devices failed"})
        self.assertEqual(scenario.check(ok, seen(server=got)), [])
        bad = Expect(server={"action": "succeeded", "reason": "health"})
        self.assertEqual(len(scenario.check(bad, seen(server=got))), 2)
        self.assertEqual(scenario.check(bad, seen()), ["no fleet server to ask"])
        self.assertTrue(scenario.server_matches({"rollout": "paused"}, got))
        self.assertFalse(scenario.server_matches({"action": "succeeded"}, got))

    def test_fleet_end_state(self):
        doc = {"rollout": "paused", "pause_reason": ROLLOUT["pause_reason"],
               "devices": {"d1": {"action": "failed", "reason": "v3 fell back"},
                           "d2": {"action": "null", "reason": "null"},
                           "d3": {"action": "null", "reason": "null"}}}
        good = FleetExpect(rollout="paused", pause_reason="1 of 1",
                           actions={"failed": "1", "null": "2"}, reason="fell back")
        self.assertEqual(scenario.check_fleet(good, doc), [])
        bad = FleetExpect(rollout="finished", actions={"succeeded": "3"}, reason="health")
        self.assertEqual(len(scenario.check_fleet(bad, doc)), 3)

    def test_server_section(self):
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
    def test_a_boot_as_expected(self):
        expect = Expect(slot="b", version="v2", end="poweroff", markers=(guest.COMMITTED,),
                        absent=("E2E: hook on-rollback",), env=contract.committed("b"),
                        status={"committed.version": "v2", "pending": "null",
                                "bootloader.upgrade-available": "false", "last-result": "null"},
                        slot_image={"b": "v2"})
        self.assertEqual(scenario.check(expect, seen()), [])

    def test_every_kind_of_failure_is_reported(self):
        expect = Expect(slot="a", version="v1", end="reboot", markers=("missing",),
                        absent=("E2E: hook before-commit",), env={contract.VAR_BOOTCOUNT: "1"},
                        status={"committed.slot": "a"}, slot_image={"a": "v2"})
        self.assertEqual(len(scenario.check(expect, seen())), 8)

    def test_no_status_json(self):
        errors = scenario.check(Expect(status={"pending": "null"}), seen(console="E2E: booted"))
        self.assertEqual(errors, ["no status JSON on the console"])

    def test_bytes_the_http_server_sent(self):
        expect = Expect(http_max={"v2.rua": 65536, "v2.rudelta": 0}, http_min={"p": 96})
        ok = Observed(CONSOLE, "poweroff", ENV, lambda s, v: True, http_served={"v2.rua": 16384})
        self.assertEqual(scenario.check(dataclasses.replace(expect, http_min={}), ok), [])
        self.assertEqual(scenario.check(expect, ok),
                         ["HTTP server sent 0 bytes of p, expected at least 96"])
        full = Observed(CONSOLE, "poweroff", ENV, lambda s, v: True,
                        http_served={"v2.rua": 16 << 20, "v2.rudelta": 2583, "p": 96})
        self.assertEqual(len(scenario.check(expect, full)), 2)
        self.assertEqual(scenario.check(expect, seen()), ["no HTTP server to ask"])

    def test_the_last_boot_line_counts(self):
        console = "E2E: booted slot=b version=v3\nKernel panic\nE2E: booted slot=a version=v1"
        self.assertEqual(guest.booted(console), ("a", "v1"))
        self.assertIsNone(guest.end(console))


class DeltaHelpers(unittest.TestCase):
    """The filler a scenario modifies in a slot (harness/disk.py) and the artifacts' HTTP server
    (harness/httpd.py): its Range parsing, and one real exchange over loopback."""

    def test_filler_is_fixed_and_has_no_repeated_blocks(self):
        data = disk.filler_bytes()
        self.assertEqual(len(data), disk.FILLER_SIZE)
        self.assertEqual(data, disk.filler_bytes(), "the same in every build and version")
        blocks = {data[i:i + disk.FS_BLOCK] for i in range(0, len(data), disk.FS_BLOCK)}
        self.assertEqual(len(blocks), disk.FILLER_SIZE // disk.FS_BLOCK)
        self.assertNotIn(bytes(disk.FS_BLOCK), blocks)

    def test_find_block_only_at_aligned_offsets(self):
        block = disk.filler_bytes(disk.FS_BLOCK)
        data = bytes(100) + block + bytes(2 * disk.FS_BLOCK - 100) + block + bytes(10)
        self.assertEqual(disk.find_block(data, block), 3 * disk.FS_BLOCK)
        self.assertIsNone(disk.find_block(data[:3 * disk.FS_BLOCK], block))

    def test_range_headers(self):
        self.assertIsNone(httpd.parse_range(None, 100))
        self.assertEqual(httpd.parse_range("bytes=0-15", 100), (0, 15))
        self.assertEqual(httpd.parse_range("bytes=90-", 100), (90, 99))
        self.assertEqual(httpd.parse_range("bytes=90-200", 100), (90, 99))
        for bad in ("bytes=100-", "bytes=5-4", "bytes=-10", "bytes=0-1,5-6", "items=0-1"):
            with self.subTest(bad), self.assertRaises(httpd.RangeError):
                httpd.parse_range(bad, 100)

    def test_the_server_answers_ranges_and_counts_per_period(self):
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

    def test_round_trip(self):
        back = Layout.from_json(self.LAYOUT.to_json())
        self.assertEqual(back, self.LAYOUT)
        self.assertEqual(back.boot_partition.number, 1)
        self.assertEqual(back.slot_partition("a").offset, 17 << 20)

    def test_unknown_or_missing_keys(self):
        doc = json.loads(self.LAYOUT.to_json())
        for broken in (dict(doc, extra=1), {k: v for k, v in doc.items() if k != "disk"}):
            with self.assertRaises(LayoutError):
                Layout.from_json(json.dumps(broken))


class SystemdRootfs(unittest.TestCase):
    """The pure parts of systemd_rootfs.py (the systemd guests' root file systems)."""

    def test_closure_from_the_simulation(self):
        text = ("Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64])\n"
                "Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64])\n"
                "Inst libcap2 (1:2.66-4+deb12u3+b1 Debian:12.15/oldstable [arm64])\n")
        found = systemd_rootfs.parse_simulation(text)
        self.assertEqual(found, {"libc6": "2.36-9+deb12u14", "libcap2": "1:2.66-4+deb12u3+b1"})
        self.assertEqual(systemd_rootfs.deb_name("libcap2", found["libcap2"]),
                         "libcap2_1%3a2.66-4+deb12u3+b1_")

    def test_sysusers(self):
        passwd, group = systemd_rootfs.sysusers([
            "g adm 4 -\nu root 0 - /root /bin/bash\nu _apt 42:65534 - /nonexistent\n",
            'g systemd-journal - -\nu systemd-network - "systemd Network Management"\n'])
        self.assertIn("root:x:0:0::/root:/bin/bash\n", passwd)
        self.assertIn("_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n", passwd)
        self.assertIn("systemd-network:x:998:998:systemd Network Management:/:", passwd)
        self.assertIn("systemd-journal:x:999:\n", group)
        self.assertIn("adm:x:4:\n", group)

    def test_enable_follows_the_install_section(self):
        unit = (REPO / "client" / "systemd" / "rustupdate-commit.service").read_text()
        self.assertEqual(systemd_rootfs.wanted_by(unit),
                         ["multi-user.target", "boot-complete.target"])


class Mirrors(unittest.TestCase):
    """The harness's copies of names that live elsewhere."""

    def test_contract_matches_the_rust_contract(self):
        # The variable names live in crates/core's boot module (older trees: the client's
        # adapter); every definition found must match.
        rust_vars = {}
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

    def test_environment_copies_match_the_rust_code_and_the_boot_scripts(self):
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

    def test_guest_protocol_matches_guest_init(self):
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

    def test_systemd_guests_speak_the_same_protocol(self):
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

    def test_server_state_names_match_the_rollout_crate(self):
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

    def test_server_section_keys_are_the_clients(self):
        # client/src/config.rs: `pub struct Server` with kebab-case field names.
        text = (REPO / "client" / "src" / "config.rs").read_text()
        start = text.index("pub struct Server {")
        fields = set(re.findall(r"pub (\w+):", text[start:text.index("\n}", start)]))
        for auth in fleet.AUTH_MODES:
            keys = tomllib.loads(fleet.server_section("http://h", "d", auth, 2))["server"]
            self.assertLessEqual({k.replace("-", "_") for k in keys}, fields)


class Soak(unittest.TestCase):
    """soak.py's pure parts: the plan from the seed, the contract's pick, its outcome names."""

    def test_the_plan_is_a_function_of_the_seed(self):
        import soak
        cuts = soak.plan(7, 30)
        self.assertEqual(cuts, soak.plan(7, 30))
        self.assertEqual(cuts[:5], soak.plan(7, 5))  # --cuts M repeats the first M of a run
        self.assertNotEqual(cuts, soak.plan(8, 30))
        self.assertEqual({c.phase for c in cuts}, set(soak.PHASES))
        self.assertTrue(all(0 <= c.fraction < 1 for c in cuts))

    def test_bootloader_pick_follows_the_contract(self):
        import soak
        self.assertEqual(soak.bootloader_pick(contract.committed("a")), "a")
        trial = {**contract.committed("b"), contract.VAR_UPGRADE_AVAILABLE: "1"}
        limit = contract.DEFAULT_BOOTLIMIT
        self.assertEqual(soak.bootloader_pick({**trial, contract.VAR_BOOTCOUNT: str(limit - 1)}), "b")
        self.assertEqual(soak.bootloader_pick({**trial, contract.VAR_BOOTCOUNT: str(limit)}), "a")

    def test_check_boot_holds_the_contract(self):
        import soak
        from harness.qemu import BootResult

        def env(slot, trial, count):
            return {**contract.committed(slot), contract.VAR_UPGRADE_AVAILABLE: str(trial),
                    contract.VAR_BOOTCOUNT: str(count)}

        def run(before, after, lines, end="poweroff", action="commit", installing=None):
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

    def test_converged_results_are_outcome_names(self):
        import soak
        text = (REPO / "crates" / "core" / "src" / "state.rs").read_text()
        block = text[text.index("pub enum OutcomeKind"):]
        names = re.findall(r'OutcomeKind::\w+ => "([a-z-]+)"', block)
        self.assertLessEqual(set(soak.CONVERGED_RESULTS), set(names))


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]])
