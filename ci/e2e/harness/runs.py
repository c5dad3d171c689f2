"""Runs the chosen scenarios of every architecture so that a run cannot pass by accident: a
scenario that raises fails with its traceback, a worker that dies fails the run, and every chosen
scenario needs exactly one record. The scenario runner itself is passed in (tests pass fakes)."""

from __future__ import annotations

import threading
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .records import ScenarioRecord
from .runlog import log
from .scenario import Scenario

# The runner of one scenario on one architecture (run_scenario with that architecture's layout,
# accelerator and fault points); tests pass a fake one.
RunOne = Callable[[Scenario], ScenarioRecord]
# What runs one architecture's chosen scenarios, handing each record to the callback.
ArchWork = Callable[[str, list[Scenario], Callable[[ScenarioRecord], None]], None]


def run_guarded(arch: str, sc: Scenario, run_one: RunOne) -> ScenarioRecord:
    """run_one(sc); an exception that escapes it (a harness bug) becomes the scenario's failed
    record, with the traceback printed, and the architecture's other scenarios still run."""
    try:
        return run_one(sc)
    except Exception as err:  # noqa: BLE001 - the record says FAIL, the traceback is printed
        log(f"--- {arch} {sc.name}: FAIL: unexpected exception in the runner:\n"
            f"{traceback.format_exc()}")
        return ScenarioRecord(arch, sc.name, False, 0, len(sc.boots), 0.0, None,
                              [f"runner: unexpected {type(err).__name__}: {err} "
                               "(traceback in the log)"])


def run_arch(arch: str, mine: list[Scenario], record: Callable[[ScenarioRecord], None],
             prepare: Callable[[str, list[Scenario]], RunOne]) -> None:
    """The ArchWork of a real run: prepare the architecture, then each scenario, guarded."""
    run_one = prepare(arch, mine)
    for sc in mine:
        record(run_guarded(arch, sc, run_one))


@dataclass
class RunOutcome:
    records: list[ScenarioRecord]  # in the order of the architectures, then as recorded
    problems: list[str]  # worker crashes, missing and duplicate records: each fails the run

    @property
    def ok(self) -> bool:
        return bool(self.records) and not self.problems and all(r.ok for r in self.records)


def run_all(arches: tuple[str, ...], chosen: list[Scenario], jobs: int,
            work: ArchWork) -> RunOutcome:
    """work(arch, its chosen scenarios, record) for every architecture (in parallel threads when
    jobs > 1), so that the run cannot pass by accident: an exception escaping a worker is a
    problem (its traceback printed), and so is every chosen scenario of an architecture without
    exactly one record (named)."""
    per: dict[str, list[ScenarioRecord]] = {a: [] for a in arches}
    lock = threading.Lock()

    def one_arch(arch: str) -> None:
        def record(rec: ScenarioRecord) -> None:
            with lock:
                per[arch].append(rec)
        work(arch, [sc for sc in chosen if arch in sc.arches], record)

    crashes = for_each_arch(arches, jobs, one_arch)
    records = [r for a in arches for r in per[a]]
    expected = [(a, sc.name) for a in arches for sc in chosen if a in sc.arches]
    return RunOutcome(records, crashes + record_problems(expected, records))


def record_problems(expected: list[tuple[str, str]], records: list[ScenarioRecord]) -> list[str]:
    """Every (arch, scenario) expected has exactly one record (as often as it was chosen), and
    nothing else has one."""
    want = Counter(expected)
    got = Counter((r.arch, r.scenario) for r in records)
    problems = [f"no record of {a} {name}" + (f" ({n - got[a, name]} of {n} missing)" if n > 1
                                              else "")
                for (a, name), n in want.items() if got[a, name] < n]
    problems += [f"{got[key] - want[key]} more record(s) of {key[0]} {key[1]} than chosen"
                 if key in want else f"a record of {key[0]} {key[1]}, which was not chosen"
                 for key in got if got[key] > want[key]]
    return problems


def for_each_arch(arches: tuple[str, ...], jobs: int, work: Callable[[str], None]) -> list[str]:
    """work(arch) for every architecture: in parallel threads (one TCG guest per core) when
    jobs > 1, else one after the other. An exception escaping work(arch) does not end the
    others; its traceback is printed at once, and the returned list (empty: none escaped) says
    which architecture's worker died of what: the caller fails the run with it."""
    crashes: list[str] = []
    lock = threading.Lock()

    def guarded(arch: str) -> None:
        try:
            work(arch)
        except BaseException as err:
            log(f"!!! {arch}: the worker died of an unexpected exception (the run fails):\n"
                f"{traceback.format_exc()}")
            with lock:
                crashes.append(f"{arch}: the worker died of {type(err).__name__}: {err}")
            if not isinstance(err, Exception) and threading.current_thread() is \
                    threading.main_thread():
                raise  # SIGTERM/SIGINT (qemu.stop_on_signals) end a sequential run at once

    if jobs > 1 and len(arches) > 1:
        # At most `jobs` architectures at once (one TCG guest per core), taken in the order
        # given: the next starts when one finishes (the long pole, x86_64, comes first).
        queue = list(arches)

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    arch = queue.pop(0)
                guarded(arch)

        threads = [threading.Thread(target=worker, name=f"e2e-worker-{n}")
                   for n in range(min(jobs, len(arches)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for a in arches:
            guarded(a)
    return crashes
