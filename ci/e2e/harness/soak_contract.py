"""The boot contract as the power-cut soak (soak.py) checks it after every boot, and the soak's
plan: pure, no QEMU and no disk (`holds` is passed in). What is checked is listed in soak.py's
docstring."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import contract, guest, qemu

PHASES = ("install", "boot", "commit")
GOOD_VERSIONS = ("v1", "v2")  # the soak installs these (build.py makes v1.rua and v2.rua)
# The outcomes (crates/core/src/state.rs, OutcomeKind) a cycle may end with: committed (the
# new image), failed (an interrupted install, the old one), fell-back and rolled-back (a trial
# given up). Rejected and canceled cannot come from a cut.
CONVERGED_RESULTS = ("committed", "rolled-back", "fell-back", "failed")
ACTION_INSTALL = "E2E: action install"
ACTION_COMMIT = "E2E: action commit"
FELL_BACK = ": falling back"  # the boot scripts' lines when they give up on a trial
ROLLED_BACK = "rolling back to slot"  # the client (crates/core/src/updater/trial.rs)


class Violation(Exception):
    """An invariant does not hold: the soak stops here."""


class InfraFailure(Violation):
    """The guest's kernel panicked before its init ran, on the infrastructure retry too: not the
    updater's fault as far as the soak can tell, but the run cannot go on and fails."""


@dataclass(frozen=True)
class Cut:
    cycle: int
    phase: str  # one of PHASES
    fraction: float  # of the phase's window


def plan(seed: int, cuts: int) -> list[Cut]:
    """The cuts of a run: a function of the seed only (not of what the device does)."""
    rng = random.Random(seed)
    return [Cut(n, rng.choice(PHASES), round(rng.random(), 4)) for n in range(1, cuts + 1)]


def parse_windows(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        phase, _, value = item.partition("=")
        if phase not in PHASES or not re.fullmatch(r"\d+(\.\d+)?", value):
            raise SystemExit(f"soak: --window {item!r}: expected PHASE=SECONDS, PHASE one of "
                             f"{PHASES}")
        out[phase] = float(value)
    return out


def other(slot: str) -> str:
    return contract.SLOTS[1 - contract.SLOTS.index(slot)]


def bootloader_pick(env: dict[str, str]) -> str:
    """The slot the boot scripts boot with this environment (docs/boot-contract.md): the slot of
    the environment, or the other one when this boot's count exceeds bootlimit in a trial."""
    slot = env[contract.VAR_SLOT]
    if env[contract.VAR_UPGRADE_AVAILABLE] == "1" and \
            int(env[contract.VAR_BOOTCOUNT]) + 1 > int(env[contract.VAR_BOOTLIMIT]):
        return other(slot)
    return slot


def slot_version(text: str) -> tuple[str, str]:
    """ "<slot>/<version>" as recorded in BootSeen and CycleSeen."""
    slot, _, version = text.partition("/")
    return slot, version


def env_text(env: dict[str, str]) -> str:
    return (f"{env.get(contract.VAR_SLOT)}/ua={env.get(contract.VAR_UPGRADE_AVAILABLE)}"
            f"/bc={env.get(contract.VAR_BOOTCOUNT)}")


def check_env_values(env: dict[str, str], when: str) -> None:
    """The contract's variables are there, with values the contract allows."""
    bad = [k for k in contract.VARS if k not in env]
    if bad:
        raise Violation(f"environment after {when} lacks {bad}: {env}")
    if env[contract.VAR_SLOT] not in contract.SLOTS \
            or env[contract.VAR_UPGRADE_AVAILABLE] not in ("0", "1") \
            or not env[contract.VAR_BOOTCOUNT].isdigit() \
            or env[contract.VAR_BOOTLIMIT] != str(contract.DEFAULT_BOOTLIMIT):
        raise Violation(f"environment after {when} has values outside the contract: {env}")


def check_boot_files(env: dict[str, str], holds: Callable[[str], str | None],
                     esp_holds: Callable[[str, str], bool]) -> None:
    """systemd-boot: the slot the entries boot next, and on trial the fallback slot, have their
    own release's kernel files on the ESP (`esp_holds(slot, version)`: rustupdate/<slot>/ holds
    that version's initrd; every release has its own). The client copies them before it writes
    the trial's entry, so no cut may leave an entry that boots another release's files."""
    slot = env[contract.VAR_SLOT]
    for s in (slot, other(slot)) if env[contract.VAR_UPGRADE_AVAILABLE] == "1" else (slot,):
        version = holds(s)
        if version is not None and not esp_holds(s, version):
            raise Violation(f"slot {s} holds {version}, but rustupdate/{s}/ on the ESP does not "
                            f"hold {version}'s initrd")


def check_boot(before: dict[str, str], after: dict[str, str], res: qemu.BootResult,
               booted: tuple[str, str] | None, action: str, installing: str | None,
               holds: Callable[[str], str | None]) -> bool:
    """The contract after one boot (see the module's docstring): `before`/`after` the
    environment around it, `booted` (slot, version) from its console, `installing` the version
    its install action writes, `holds(slot)` the good version whose complete image a slot holds
    (None: none). Raises Violation; returns whether the bootloader gave up on a trial."""
    killed = res.end == "killed"
    gave_up = False
    if res.end in ("timeout", "stopped"):
        raise Violation(f"the boot did not end ({res.end})")
    if res.rc not in (0, None) and not killed:
        raise Violation(f"qemu exited with {res.rc}")
    # Judge the slot the bootloader loaded by its content (the sha256 of its image), not by how
    # the boot went: the environment said which slot it boots, and that slot must hold a
    # complete good image whatever the kernel did next.
    loaded = guest.loader_slot(res.console)
    if loaded is not None and holds(loaded) is None:
        raise Violation(f"the bootloader loaded the kernel of slot {loaded}, which holds no "
                        "complete good image (its sha256 matches neither v1 nor v2)")
    content = (f"slot {loaded} holds the complete {holds(loaded)} image" if loaded
               else "the bootloader printed no slot")
    early = guest.panic_before_init(res.console)
    if early is not None:
        # harness.boots.boot_once has already put the boot area back and tried once more.
        raise InfraFailure(f"the guest's kernel panicked before its init ran, on "
                           f"the infrastructure retry too ({res.infra_retry!r}, then "
                           f"{early!r}); {content}")
    if "Kernel panic" in res.console:
        raise Violation(f"a kernel panicked after the guest's init ran; {content}")
    if booted is None and not killed:
        raise Violation(f"the boot never reached the guest's init (`E2E: booted`); {content}")
    b_trial = before[contract.VAR_UPGRADE_AVAILABLE] == "1"
    if booted is not None:
        slot, version = booted
        want = bootloader_pick(before)
        # A trial the bootloader gives up on at once (the kernel cannot be loaded, the count
        # cannot be saved) boots the other slot: allowed, and that slot is checked below.
        fell_back = (b_trial and FELL_BACK in res.console
                     and slot == other(before[contract.VAR_SLOT]))
        if slot != want and not fell_back:
            raise Violation(f"booted slot {slot}, the contract picks {want} with "
                            f"{env_text(before)}")
        gave_up = fell_back or (b_trial and slot != before[contract.VAR_SLOT])
        if version not in GOOD_VERSIONS or holds(slot) != version:
            raise Violation(f"booted {slot}/{version} but slot {slot} holds "
                            f"{holds(slot) or 'no complete good image'}")
    check_env_values(after, "the boot")
    a_trial = after[contract.VAR_UPGRADE_AVAILABLE] == "1"
    b_bc, a_bc = int(before[contract.VAR_BOOTCOUNT]), int(after[contract.VAR_BOOTCOUNT])
    b_slot, a_slot = before[contract.VAR_SLOT], after[contract.VAR_SLOT]
    if holds(a_slot) is None:
        raise Violation(f"the environment boots slot {a_slot} next, which holds no complete "
                        "good image")
    if a_trial and holds(other(a_slot)) is None:
        raise Violation(f"on trial of slot {a_slot}, the fallback slot {other(a_slot)} holds "
                        "no complete good image")
    if b_trial and a_trial:
        if a_slot != b_slot:
            raise Violation("the trial's slot changed while on trial")
        if a_bc not in (b_bc, b_bc + 1):
            raise Violation(f"bootcount went from {b_bc} to {a_bc} in one boot of a trial")
        if booted is not None and a_bc != b_bc + 1:
            raise Violation(f"a trial boot reached the init but bootcount stayed {a_bc}")
    elif b_trial:
        if a_bc != 0:
            raise Violation(f"the trial ended with bootcount {a_bc}, not 0")
        if a_slot == b_slot and ACTION_COMMIT not in res.console:
            raise Violation("the trial ended on its slot without a commit")
        if a_slot != b_slot and bootloader_pick(before) == b_slot \
                and FELL_BACK not in res.console and ROLLED_BACK not in res.console:
            raise Violation(f"the trial of {b_slot} ended on {a_slot} without a fallback or "
                            "a rollback")
    elif a_trial:
        if booted is None or ACTION_INSTALL not in res.console:
            raise Violation("a trial was armed without an install in this boot")
        if a_slot != other(booted[0]) or a_bc != 0 or holds(a_slot) != installing:
            raise Violation(f"armed {env_text(after)} after installing {installing} from "
                            f"{booted[0]}: slot {a_slot} holds {holds(a_slot)}")
    elif a_slot != b_slot or a_bc != 0:
        raise Violation("the environment changed outside a trial")
    if booted is not None and guest.result_marker(f"install {action.split()[-1]}", 0) in \
            res.console and not (a_trial and a_slot == other(booted[0])):
        raise Violation("the install succeeded but the environment is not armed for its slot")
    return gave_up
