"""selftest.py's tests of harness/bls.py, the host's mirror of the systemd-boot chain's contract:
entry names against systemd's own bootctl (a checked-in fixture, made by
fixtures/make-bootctl-list.sh), the boot order, the four contract values, the host's writes, and
that the names match the Rust code and docs/boot-contract.md; and the expectations and the soak
check that use it."""

from __future__ import annotations

import dataclasses
import json
import re
import unittest
from typing import Any

from .. import bls, contract, scenario, soak_contract
from ..bls import Entry, EntryName, Remove, Rename, Write
from .fixtures import REPO, parse, seen

FIXTURE = REPO / "ci" / "e2e" / "harness" / "selftests" / "fixtures" / "bootctl-list.jsonl"


def entries(**files: int) -> list[Entry]:
    """Entries from file stems: entries(a=2, b_3=3) is rustupdate-a.conf (2), rustupdate-b+3.conf (3)."""
    out = []
    for stem, gen in files.items():
        slot, _, counter = stem.partition("_")
        counter = counter.replace("_", "-")
        name = bls.parse_name(f"rustupdate-{slot}" + (f"+{counter}" if counter else "") + ".conf")
        assert name is not None
        out.append(Entry(name, gen))
    return out


def names(es: list[Entry]) -> list[str]:
    return sorted(e.name.file_name() for e in es)


def bootctl_cases() -> list[tuple[str, dict[str, int], list[dict[str, Any]]]]:
    cases: list[tuple[str, dict[str, int], list[dict[str, Any]]]] = []
    for line in FIXTURE.read_text().splitlines():
        doc = json.loads(line)
        if "case" in doc:
            cases.append((doc["case"], doc["files"], []))
        else:
            cases[-1][2].append(doc)
    return cases


class BootEntries(unittest.TestCase):
    def test_names_round_trip_and_malformed_names_are_errors(self) -> None:
        for file_name in ("rustupdate-a.conf", "rustupdate-b+3.conf", "rustupdate-b+2-1.conf",
                          "rustupdate-a+0-3.conf", "rustupdate-a+10-12.conf"):
            name = bls.parse_name(file_name)
            self.assertIsNotNone(name, file_name)
            assert name is not None
            self.assertEqual(name.file_name(), file_name)
        self.assertEqual(bls.parse_name("rustupdate-b+2-1.conf"), EntryName("b", 2, 1))
        self.assertTrue(EntryName("b", 0, 3).bad)
        self.assertFalse(EntryName("b").counted)
        for other in ("debian-6.1.conf", ".rustupdate-b+3.conf.tmp", "rustupdate-a.conf.tmp"):
            self.assertIsNone(bls.parse_name(other))
        for bad in ("rustupdate-c.conf", "rustupdate-a+.conf", "rustupdate-a+x.conf",
                    "rustupdate-a+1-.conf", "rustupdate-ab.conf", "rustupdate-a-1.conf"):
            with self.subTest(bad), self.assertRaises(bls.BlsError):
                bls.parse_name(bad)

    def test_names_and_order_match_bootctl(self) -> None:
        # bootctl (systemd 252) lists the entries in systemd-boot's order with their counters
        # and ids; it does not check that an entry's kernel exists (bls.booted does).
        cases = bootctl_cases()
        self.assertGreaterEqual(len(cases), 10)
        for case, files, listed in cases:
            with self.subTest(case):
                self.assertEqual(sorted(files), sorted(d["path"].rsplit("/", 1)[-1] for d in listed))
                for d in listed:
                    name = bls.parse_name(d["path"].rsplit("/", 1)[-1])
                    assert name is not None
                    self.assertEqual(d["id"], EntryName(name.slot).file_name())  # no counter
                    # bootctl leaves triesDone out for "+LEFT" (no done count in the name).
                    self.assertEqual((d.get("triesLeft"), d.get("triesDone", 0 if name.counted
                                                                    else None)),
                                     (name.left, name.done if name.counted else None))
                    self.assertEqual(int(d["version"]), files[name.file_name()])
                ours = bls.in_boot_order([Entry(n, files[f]) for f in files
                                          if (n := bls.parse_name(f)) is not None])
                self.assertEqual([e.name.file_name() for e in ours],
                                 [d["path"].rsplit("/", 1)[-1] for d in listed])

    def test_which_slot_boots_and_the_contract_values(self) -> None:
        trial = {contract.VAR_SLOT: "b", contract.VAR_UPGRADE_AVAILABLE: "1",
                 contract.VAR_BOOTCOUNT: "1", contract.VAR_BOOTLIMIT: "3"}
        self.assertEqual(bls.values(entries(a=2, b=1)), contract.committed("a"))
        self.assertEqual(bls.values(entries(a=2, b_2_1=3)), trial)
        self.assertEqual(bls.values(entries(a=2, b_3=3), bootlimit=5),
                         {**trial, contract.VAR_BOOTCOUNT: "0"})
        # No tries left: sorted last, the other slot boots, no trial.
        self.assertEqual(bls.values(entries(a=2, b_0_3=3)), contract.committed("a"))
        # A cut before the old name was removed: the new entry wins by its generation.
        self.assertEqual(bls.values(entries(a=2, b_3=3, b=1))[contract.VAR_BOOTCOUNT], "0")
        # An entry whose kernel file is missing is not a candidate.
        missing = [Entry(EntryName("b", 3), 3, loadable=False), *entries(a=2)]
        self.assertEqual(bls.values(missing), contract.committed("a"))
        with self.assertRaisesRegex(bls.BlsError, "nothing to boot"):
            bls.values([Entry(EntryName("a"), 2, loadable=False)])
        # The configured bootlimit without a counter.
        self.assertEqual(bls.values(entries(a=2, b=1), bootlimit=5)[contract.VAR_BOOTLIMIT], "5")

    def test_a_boot_counts_down_until_the_other_slot_boots(self) -> None:
        es = entries(a=2, b_3=3)
        booted = []
        for _ in range(4):
            first, es = bls.boot(es)
            assert first is not None
            booted.append(first.name.file_name())
        self.assertEqual(booted, ["rustupdate-b+2-1.conf", "rustupdate-b+1-2.conf",
                                  "rustupdate-b+0-3.conf", "rustupdate-a.conf"])
        self.assertEqual(names(es), ["rustupdate-a.conf", "rustupdate-b+0-3.conf"])

    def test_host_writes_arm_bless_and_reject(self) -> None:
        arm = {contract.VAR_SLOT: "b", contract.VAR_UPGRADE_AVAILABLE: "1",
               contract.VAR_BOOTCOUNT: "0"}
        factory = entries(a=2, b=1)
        ops = bls.host_writes(factory, arm)
        self.assertEqual(ops, [Write(EntryName("b", 3), 3, EntryName("b")), Remove(EntryName("b"))])
        armed = bls.apply(factory, ops)
        self.assertEqual(bls.values(armed), {**arm, contract.VAR_BOOTLIMIT: "3"})
        self.assertEqual(bls.host_writes(armed, arm), [])  # already so: nothing written
        # Arming again after the tries ran out: a new entry, the bad one removed.
        rearmed = bls.apply(entries(a=2, b_0_3=3), bls.host_writes(entries(a=2, b_0_3=3), arm))
        self.assertEqual(names(rearmed), ["rustupdate-a.conf", "rustupdate-b+3.conf"])
        self.assertEqual(max(e.generation for e in rearmed), 4)
        # Bless: the counted entry renamed without its counter.
        counted = entries(a=2, b_2_1=3)
        bless = {contract.VAR_UPGRADE_AVAILABLE: "0", contract.VAR_BOOTCOUNT: "0"}
        self.assertEqual(bls.host_writes(counted, bless),
                         [Rename(EntryName("b", 2, 1), EntryName("b"))])
        # Committing a while b's entry would still win: b is made bad after a's bless.
        ops = bls.host_writes(counted, {contract.VAR_SLOT: "a", **bless})
        self.assertEqual(ops, [Rename(EntryName("b", 2, 1), EntryName("b", 0, 1))])
        self.assertEqual(bls.values(bls.apply(counted, ops)), contract.committed("a"))
        for impossible in ({contract.VAR_BOOTCOUNT: "2"},
                           {**arm, contract.VAR_BOOTCOUNT: "3"},
                           {contract.VAR_BOOTLIMIT: "5"}):
            with self.subTest(impossible), self.assertRaises(bls.BlsError):
                bls.host_writes(factory, impossible)

    def test_entry_contents(self) -> None:
        text = bls.entry_text("b", 1, "root=PARTLABEL=rootfs_b rustupdate.slot=b quiet")
        self.assertEqual(bls.generation(text), 1)
        self.assertEqual(bls.loader_path(text), "/rustupdate/b/vmlinuz")
        self.assertEqual(bls.boot_files(text), ["/rustupdate/b/vmlinuz", "/rustupdate/b/initrd.img"])
        again = bls.with_generation(text, 7)
        self.assertEqual(bls.generation(again), 7)
        self.assertEqual(again.replace("version 7", "version 1"), text)
        for bad in ("title x\n", "version 1\nversion 2\n", "version v2\n"):
            with self.subTest(bad), self.assertRaises(bls.BlsError):
                bls.generation(bad)

    def test_names_match_the_rust_code_and_the_contract(self) -> None:
        rust = (REPO / "crates" / "bootenv" / "src" / "bls.rs").read_text()
        for const, value in (("ENTRY_PREFIX", bls.ENTRY_PREFIX), ("ENTRY_SUFFIX", bls.ENTRY_SUFFIX),
                             ("SORT_KEY", bls.SORT_KEY), ("ENTRIES_DIR", bls.ENTRIES_DIR)):
            self.assertIn(f'pub const {const}: &str = "{value}";', rust)
        client = (REPO / "client" / "src" / "sys" / "boot_entries.rs").read_text()
        self.assertIn(f'const SLOT_FILES_DIR: &str = "{bls.SLOT_FILES_DIR}";', client)
        doc = (REPO / "docs" / "boot-contract.md").read_text()
        section = doc[doc.index("## systemd-boot"):]
        for path in (bls.LOADER_CONF, f"{bls.ENTRIES_DIR}/{bls.ENTRY_PREFIX}a[+LEFT[-DONE]].conf",
                     f"{bls.SLOT_FILES_DIR}/a/", "EFI/BOOT/BOOTX64.EFI"):
            self.assertIn(f"`{path}`", section)
        for line in bls.LOADER_CONF_TEXT.splitlines():
            self.assertIn(f"`{line}`", section)
        example = section[section.index("```\ntitle"):].split("```")[1]
        self.assertEqual([k for k, _ in bls.entry_lines(example)],
                         [k for k, _ in bls.entry_lines(bls.entry_text("b", 7, "x"))])
        self.assertIn(f"`a` generation {bls.FACTORY_GENERATION['a']}, `b` "
                      f"{bls.FACTORY_GENERATION['b']}", section)

    def test_entry_expectations(self) -> None:
        sd = 'arches = ["x86_64-sdboot"]\n[[boot]]\n[boot.expect]\n'
        exp = parse(sd + 'entries = ["rustupdate-a.conf", "rustupdate-b+2-1.conf"]\n'
                    'boot_files = { b = "v2" }\n').boots[0].expect
        good = dataclasses.replace(seen(), entries=("rustupdate-b+2-1.conf", "rustupdate-a.conf"),
                                   esp_holds=lambda s, v: (s, v) == ("b", "v2"))
        self.assertEqual(scenario.check(exp, good), [])
        wrong = dataclasses.replace(good, entries=("rustupdate-a.conf", "rustupdate-b+1-2.conf"),
                                    esp_holds=lambda s, v: False)
        errors = scenario.check(exp, wrong)
        self.assertEqual(len(errors), 2, errors)
        self.assertTrue(re.search(r"entry files .*b\+1-2.*expected", errors[0]))
        self.assertIn("does not hold the v2 initrd", errors[1])
        for text in ('[[boot]]\n[boot.expect]\nentries = ["rustupdate-a.conf"]\n',  # not sdboot
                     sd + 'entries = ["rustupdate-c.conf"]\n',
                     sd + 'entries = ["grub.cfg"]\n',
                     sd + 'boot_files = { c = "v2" }\n'):
            with self.subTest(text), self.assertRaises(scenario.ScenarioError):
                parse(text)
        # A scenario without arches does not run on the systemd-boot chain.
        self.assertNotIn("x86_64-sdboot", parse("[[boot]]\n").arches)

    def test_soak_checks_the_kernel_files_of_the_slots_that_may_boot(self) -> None:
        holds = {"a": "v1", "b": "v2"}.get
        trial_b = {**contract.committed("b"), contract.VAR_UPGRADE_AVAILABLE: "1"}
        soak_contract.check_boot_files(trial_b, holds, lambda s, v: (s, v) in {("a", "v1"),
                                                                              ("b", "v2")})
        with self.assertRaisesRegex(soak_contract.Violation, "rustupdate/a/ on the ESP"):
            soak_contract.check_boot_files(trial_b, holds, lambda s, v: s == "b")
        # Outside a trial only the slot that boots is checked.
        soak_contract.check_boot_files(contract.committed("b"), holds, lambda s, v: s == "b")
