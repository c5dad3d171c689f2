"""The harness's copies of names that live elsewhere (the Rust code, guest/init, the systemd
guests' agent, docs/server.md) still match them."""

from __future__ import annotations

import re
import tomllib
import unittest
from pathlib import Path

from .. import contract, fleet_server, guest, scenario
from .fixtures import HERE, REPO


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
        self.assertIn(f"fwcfg token > {fleet_server.GUEST_TOKEN_FILE})", init)
        labels = re.findall(r'^ {8}([a-z"|*]+)\)$', init, re.M)  # run_action's case labels
        self.assertEqual({w for label in labels for w in label.split("|")} - {'""', "*"},
                         set(scenario.BUSYBOX_ACTIONS))

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
        for auth in fleet_server.AUTH_MODES:
            keys = tomllib.loads(fleet_server.server_section("http://h", "d", auth, 2))["server"]
            self.assertLessEqual({k.replace("-", "_") for k in keys}, fields)
