"""The runner cannot pass by accident, and the infrastructure retry of a boot whose kernel
panicked before the guest's init ran."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import tempfile
import unittest
from collections.abc import Callable
from pathlib import Path

from .. import boots, disk, guest, qemu, records, runs, scenario
from ..layout import Partition
from ..scenario import Boot
from .fixtures import CONSOLE, LAYOUT, PANIC_IOAPIC, parse


def named(name: str, arches: tuple[str, ...] = scenario.DEFAULT_ARCHES) -> scenario.Scenario:
    return dataclasses.replace(parse('[[boot]]\n[boot.expect]\nslot = "a"\n'), name=name,
                               arches=arches)


def passed(arch: str, sc: scenario.Scenario) -> records.ScenarioRecord:
    return records.ScenarioRecord(arch, sc.name, True, 1, 1, 0.1, None, [])


class Runner(unittest.TestCase):
    """The runner cannot pass by accident (issue 19): a worker that raises fails the run with its
    traceback, and so does a chosen scenario without exactly one record. Fake scenario runners
    stand in for QEMU."""

    CHOSEN = (named("one"), named("two"), named("arm-only", ("arm64",)))

    def run_all(self, work: runs.ArchWork, jobs: int = 2,
                chosen: list[scenario.Scenario] | None = None) -> tuple[runs.RunOutcome, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            outcome = runs.run_all(scenario.DEFAULT_ARCHES,
                                     list(self.CHOSEN) if chosen is None else chosen, jobs, work)
        return outcome, out.getvalue()

    @staticmethod
    def real_loop(run_one_of: Callable[[str], runs.RunOne]) -> runs.ArchWork:
        """runs.run_arch, the loop of a real run, with a fake scenario runner per arch."""
        return functools.partial(runs.run_arch, prepare=lambda arch, mine: run_one_of(arch))

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
        def run_one_of(arch: str) -> runs.RunOne:
            def run_one(sc: scenario.Scenario) -> records.ScenarioRecord:
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
        def run_one_of(arch: str) -> runs.RunOne:
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
                        record: Callable[[records.ScenarioRecord], None]) -> None:
            for sc in mine:
                if (arch, sc.name) != ("arm64", "two"):
                    record(passed(arch, sc))

        outcome, _ = self.run_all(forgets_one)
        self.assertFalse(outcome.ok)
        self.assertEqual(outcome.problems, ["no record of arm64 two"])

    def test_duplicate_and_unchosen_records_fail_the_run(self) -> None:
        def records_twice(arch: str, mine: list[scenario.Scenario],
                          record: Callable[[records.ScenarioRecord], None]) -> None:
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
            records.print_summary([passed("x86_64", named("one"))], ["no record of arm64 one"], 1.0)
        lines = out.getvalue().splitlines()
        self.assertIn("RUN FAILED: no record of arm64 one", lines)
        self.assertEqual(lines[-1], "e2e: 1 passed, 1 failed")

    def test_no_scenario_is_no_pass(self) -> None:
        outcome, _ = self.run_all(self.real_loop(lambda arch: lambda sc: passed(arch, sc)),
                                  chosen=[])
        self.assertEqual(outcome.problems, [])
        self.assertFalse(outcome.ok)


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
        """boots.boot_once on a small fake disk, with a fake QEMU that writes the boot area
        (as a bootloader saving the count would) and prints the next console."""
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "pristine.img").write_bytes(bytes(4 * 4096))
            lay = dataclasses.replace(LAYOUT, disk=str(d / "pristine.img"),
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
            qemu.run = fake_run  # boots.boot_once calls qemu.run
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    res = boots.boot_once(lay, disk_, Boot(action="idle"), d / "boot-01.log",
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
        self.assertEqual(boots.infra_errors(res), [])
        self.assertEqual(guest.booted(res.console), ("b", "v2"))

    def test_a_retry_that_panics_again_is_a_failure(self) -> None:
        res, areas, _ = self.boot([PANIC_IOAPIC, PANIC_IOAPIC])
        self.assertEqual(len(areas), 2)  # once, not more
        self.assertEqual(len(boots.infra_errors(res)), 1)
        self.assertIn("on both tries", boots.infra_errors(res)[0])

    def test_no_retry_without_an_early_panic(self) -> None:
        for console in (CONSOLE, "E2E: booted slot=b version=v3\n"
                                 "Kernel panic - not syncing: Attempted to kill init!"):
            res, areas, printed = self.boot([console])
            self.assertEqual(len(areas), 1)
            self.assertIsNone(res.infra_retry)
            self.assertNotIn("infrastructure", printed)
