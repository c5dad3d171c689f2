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
from collections.abc import Callable
from pathlib import Path

import build
import runner
import systemd_rootfs
from harness import contract, disk, fleet_server, guest, httpd, scenario, soak_contract
from harness.layout import Layout, LayoutError
from harness.scenario import Boot, Expect, FaultPoint, FleetExpect, Observed, ScenarioError

# The test classes kept in harness/selftests/ (BootEntries, Mirrors, InfraRetry, Runner), run with
# this file's own (unittest finds them here), and the shared fixtures.
from harness.selftests.bls import BootEntries as BootEntries
from harness.selftests.fixtures import (
    CONSOLE,
    DEVICE,
    ENV,
    FLEET,
    LAYOUT,
    PANIC_IOAPIC,
    REPO,
    ROLLOUT,
    parse,
    seen,
)
from harness.selftests.mirrors import Mirrors as Mirrors
from harness.selftests.runs import InfraRetry as InfraRetry, Runner as Runner


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
        self.assertEqual(sc.arches, scenario.DEFAULT_ARCHES)

    def test_ci_on_some_arches(self) -> None:
        self.assertEqual(parse('[[boot]]\n').ci_arches, scenario.DEFAULT_ARCHES)
        self.assertEqual(parse('ci = false\n[[boot]]\n').ci_arches, ())
        sc = parse('ci = ["arm64"]\n[[boot]]\n')
        self.assertEqual((sc.arches, sc.ci_arches), (scenario.DEFAULT_ARCHES, ("arm64",)))
        chosen = runner.choose([], {"s": sc})
        self.assertEqual([c.arches for c in chosen], [("arm64",)])
        self.assertEqual(runner.choose(["s"], {"s": sc})[0].arches, scenario.DEFAULT_ARCHES)

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
                     '[[boot]]\naction = "commit; instal v2.rua"\n',  # the guest's actions only
                     'arches = ["riscv64"]\n[[boot]]\n',
                     'ci = ["x86_64-sdboot"]\n[[boot]]\n',
                     'ci = "arm64"\n[[boot]]\n',
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
        got = fleet_server.observe(DEVICE, ROLLOUT, 7)
        self.assertEqual(got, {"action": "failed", "reason": "v3 fell back to slot a after 3 boots",
                               "feedbacks": "2", "rollout": "paused",
                               "pause_reason": ROLLOUT["pause_reason"], "download": "none",
                               "delta_fallback": "null"})
        self.assertEqual(fleet_server.observe(DEVICE, None, 8)["action"], "null")
        ok = Expect(server={"action": "failed", "reason": "fell back", "rollout": "paused",
                            "pause_reason": "1 of 1 devices failed"})
        self.assertEqual(scenario.check(ok, seen(server=got)), [])
        bad = Expect(server={"action": "succeeded", "reason": "health"})
        self.assertEqual(len(scenario.check(bad, seen(server=got))), 2)
        self.assertEqual(scenario.check(bad, seen()), ["no fleet server to ask"])
        self.assertTrue(scenario.server_matches({"rollout": "paused"}, got))
        self.assertFalse(scenario.server_matches({"action": "succeeded"}, got))

    def test_what_was_downloaded(self) -> None:
        kind = fleet_server.download_kind
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
        text = fleet_server.server_section("http://10.0.2.2:4000", "e2e-arm64", "target", 2)
        doc = tomllib.loads(text)["server"]
        self.assertEqual(doc, {"url": "http://10.0.2.2:4000", "tenant": "DEFAULT",
                               "controller-id": "e2e-arm64", "token-file": fleet_server.GUEST_TOKEN_FILE,
                               "allow-insecure-http": True, "poll-interval-secs": 2,
                               "reboot": "immediate"})
        gw = tomllib.loads(fleet_server.server_section("http://h", "d", "gateway", 5))["server"]
        self.assertIn("gateway-token-file", gw)
        self.assertNotIn("token-file", gw)
        with self.assertRaises(fleet_server.FleetError):
            fleet_server.server_section("http://h", "d", "mtls", 5)


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

    def test_status_substrings(self) -> None:
        expect = Expect(status_has={"committed.version": "2", "pending": "x"})
        self.assertEqual(scenario.check(expect, seen()),
                         ["status pending='null', expected it to contain 'x'"])
        self.assertEqual(scenario.check(expect, seen(console="E2E: booted")),
                         ["no status JSON on the console"])
        sc = parse('[[boot]]\n[boot.expect]\nstatus_has = { "last-result.detail" = "revoked" }\n')
        self.assertEqual(sc.boots[0].expect.status_has, {"last-result.detail": "revoked"})

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


class DeviceKeys(unittest.TestCase):
    """build.py's [keys] tables are the layer's (rustupdate-conf's rustupdate_keys_section)."""

    def test_fixed_keys_and_trust_document(self) -> None:
        fixed = tomllib.loads(build.keys_section(build.ARCHES["x86_64"]))
        self.assertEqual(fixed, {"trusted-dir": "/etc/rustupdate/keys", "threshold": 1})
        trust = tomllib.loads(build.keys_section(build.ARCHES["arm64"]))
        self.assertEqual(trust, {"trust-document": build.TRUST_DOCUMENT,
                                 "root-dir": build.ROOT_KEYS_DIR, "root-threshold": 1,
                                 "decryption-key": f"{build.DATA_MOUNT}/{build.DECRYPTION_KEY}"})
        self.assertEqual({a: c.keys for a, c in build.ARCHES.items()},
                         {"x86_64": build.KEYS_FIXED, "arm64": build.KEYS_TRUST,
                          "x86_64-sdboot": build.KEYS_FIXED})

    def test_the_layer_writes_the_same_paths(self) -> None:
        bb = (REPO / "meta-rustupdate" / "recipes-core" / "rustupdate"
              / "rustupdate-conf_1.0.bb").read_text()
        for key, path in (("trust-document", build.TRUST_DOCUMENT),
                          ("root-dir", build.ROOT_KEYS_DIR)):
            self.assertIn(f'{key} = "%s/{path.removeprefix("/etc/")}"', bb)
        self.assertIn("decryption-key = ", bb)


class LayoutCodec(unittest.TestCase):
    LAYOUT = LAYOUT

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


class Soak(unittest.TestCase):
    """soak.py's pure parts: the plan from the seed, the contract's pick, its outcome names."""

    def test_the_plan_is_a_function_of_the_seed(self) -> None:
        cuts = soak_contract.plan(7, 30)
        self.assertEqual(cuts, soak_contract.plan(7, 30))
        self.assertEqual(cuts[:5], soak_contract.plan(7, 5))  # --cuts M repeats the first M of a run
        self.assertNotEqual(cuts, soak_contract.plan(8, 30))
        self.assertEqual({c.phase for c in cuts}, set(soak_contract.PHASES))
        self.assertTrue(all(0 <= c.fraction < 1 for c in cuts))

    def test_bootloader_pick_follows_the_contract(self) -> None:
        self.assertEqual(soak_contract.bootloader_pick(contract.committed("a")), "a")
        trial = {**contract.committed("b"), contract.VAR_UPGRADE_AVAILABLE: "1"}
        limit = contract.DEFAULT_BOOTLIMIT
        pick = soak_contract.bootloader_pick
        self.assertEqual(pick({**trial, contract.VAR_BOOTCOUNT: str(limit - 1)}), "b")
        self.assertEqual(pick({**trial, contract.VAR_BOOTCOUNT: str(limit)}), "a")

    def test_check_boot_holds_the_contract(self) -> None:
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
            return soak_contract.check_boot(before, after, res, guest.booted(res.console), action,
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
            with self.assertRaisesRegex(soak_contract.Violation, why):
                run(before, after, lines, end)
        # Armed for a slot that does not hold the complete new image.
        with self.assertRaisesRegex(soak_contract.Violation, "slot b holds v2"):
            run(env("a", 0, 0), env("b", 1, 0), ["E2E: booted slot=a version=v1",
                                                 "E2E: action install /data/artifacts/v1.rua"],
                action="install /data/artifacts/v1.rua", installing="v1")

    def test_check_boot_judges_the_loaded_slot_by_its_content(self) -> None:
        from harness.qemu import BootResult

        committed_a = contract.committed("a")
        loads_a = "rustupdate: booting slot a from (hd0,gpt2) (upgrade_available=0 ...)"

        def run(lines: list[str], holds: Callable[[str], str | None],
                infra_retry: str | None = None, end: str = "reset") -> bool:
            res = BootResult(lines=[(0.1 * i, line) for i, line in enumerate(lines)], end=end,
                             rc=0, infra_retry=infra_retry)
            return soak_contract.check_boot(committed_a, committed_a, res, guest.booted(res.console),
                                   "commit", None, holds)

        good = {"a": "v1", "b": "v2"}.get
        # The loaded slot's image does not hash to a good one: whatever the boot did.
        with self.assertRaisesRegex(soak_contract.Violation, "slot a, which holds no complete good image"):
            run([loads_a, "E2E: booted slot=a version=v1"], {"b": "v2"}.get, end="poweroff")
        # A panic before init on the retry too: an infrastructure failure, naming the content.
        with self.assertRaisesRegex(soak_contract.InfraFailure, "on the infrastructure retry too.*"
                                    "slot a holds the complete v1 image"):
            run([loads_a, PANIC_IOAPIC], good, infra_retry=PANIC_IOAPIC)
        # A retry that booted is judged as any boot (and passes here).
        self.assertFalse(run([loads_a, "E2E: booted slot=a version=v1", "E2E: end poweroff"],
                             good, infra_retry=PANIC_IOAPIC, end="poweroff"))
        # A panic after the init ran, on a good image, is the updater's problem.
        with self.assertRaisesRegex(soak_contract.Violation, "after the guest's init ran; slot a holds"):
            run([loads_a, "E2E: booted slot=a version=v1",
                 "Kernel panic - not syncing: Attempted to kill init!"], good)

    def test_converged_results_are_outcome_names(self) -> None:
        text = (REPO / "crates" / "core" / "src" / "state.rs").read_text()
        block = text[text.index("pub enum OutcomeKind"):]
        names = re.findall(r'OutcomeKind::\w+ => "([a-z-]+)"', block)
        self.assertLessEqual(set(soak_contract.CONVERGED_RESULTS), set(names))


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]])
