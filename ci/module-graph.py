#!/usr/bin/env python3
"""The module graph of every Rust crate in the tree: which module uses which, and any cycle.

A module "uses" another when its code (outside `#[cfg(test)]`) names a path into it:
`use crate::a::b`, `crate::a::f()`, `super::x`, `self::y`, a sibling of the crate root by name,
or a child module by its bare name (`child::item`, re-exports included). A cycle is a set of
modules that reach each other that way; a parent that only declares a child (`mod child;`) does
not use it. The test module of a file is left out: it belongs to the file it tests.

    ci/module-graph.py            the cycles, one line each; exit 1 when there is one
    ci/module-graph.py --sizes    also each module's lines of code before its test module
    ci/module-graph.py --edges    also every edge, "crate: a -> b"
    ci/module-graph.py --max-lines 500
                                  also fail on any tracked .rs file (tests and benches too) with
                                  more lines of code than that before its test module
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"target", "build", ".git", "node_modules"}
PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\}", re.S)
MOD_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", re.M)
ROOT_USE_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([A-Za-z_][A-Za-z0-9_]*)::", re.M)

Module = tuple[str, ...]


def code_before_tests(text: str) -> str:
    """The file up to its `#[cfg(test)]` module, without comments."""
    cut = text.find("\n#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return re.sub(r"//[^\n]*", "", text)


def lines_of_code(text: str) -> int:
    return sum(1 for line in code_before_tests(text).splitlines() if line.strip())


def crate_roots(tree: Path) -> list[Path]:
    roots = []
    for manifest in sorted(tree.rglob("Cargo.toml")):
        if SKIP & set(manifest.relative_to(tree).parts):
            continue
        for root in ("src/lib.rs", "src/main.rs"):
            if (manifest.parent / root).is_file():
                roots.append(manifest.parent / root)
    return roots


def collect(file: Path, module: Module, modules: dict[Module, Path]) -> None:
    """Every module file reachable from `file` through `mod x;` declarations."""
    modules[module] = file
    text = code_before_tests(file.read_text())
    is_dir_owner = file.name in ("lib.rs", "main.rs", "mod.rs")
    base = file.parent if is_dir_owner else file.parent / file.stem
    for name in MOD_RE.findall(text):
        for candidate in (base / f"{name}.rs", base / name / "mod.rs"):
            if candidate.is_file():
                collect(candidate, (*module, name), modules)
                break


def resolve(path: Module, modules: dict[Module, Path]) -> Module | None:
    """The longest module that `path` (from the crate root) lies in."""
    for end in range(len(path), 0, -1):
        if path[:end] in modules:
            return path[:end]
    return None


def edges_of(module: Module, text: str, modules: dict[Module, Path]) -> set[Module]:
    paths: list[Module] = []

    def absolute(anchor: str, rest: list[str]) -> Module:
        if anchor == "crate":
            return tuple(rest)
        if anchor == "self":
            return (*module, *rest)
        return (*module[:-1], *rest)  # super

    for anchor, group_prefix, items in USE_GROUP_RE.findall(text):
        prefix = [p for p in group_prefix.split("::") if p]
        for item in items.split(","):
            head = item.strip().split("::")[0].split(" ")[0].strip("{} \n")
            if head and head not in ("self", "*"):
                paths.append(absolute(anchor, [*prefix, head]))
    for anchor, rest in PATH_RE.findall(text):
        paths.append(absolute(anchor, [p for p in rest.split("::") if p]))
    if len(module) == 0:
        for name in ROOT_USE_RE.findall(text):
            paths.append((name,))
    # A child module named by its bare name (`child::item`, `use child::…`) from its parent.
    for child in {m[-1] for m in modules if len(m) == len(module) + 1 and m[:-1] == module}:
        if re.search(rf"(?<![:\w]){child}::", text):
            paths.append((*module, child))
    found = set()
    for path in paths:
        target = resolve(path, modules)
        # A module's own items, and its ancestors reached only as namespaces, are not edges.
        if target is None or target == module or (module[: len(target)] == target and path == target):
            continue
        found.add(target)
    return found


def cycles(graph: dict[Module, set[Module]]) -> list[list[Module]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[Module, int] = {}
    low: dict[Module, int] = {}
    stack: list[Module] = []
    on_stack: set[Module] = set()
    found: list[list[Module]] = []

    def visit(node: Module) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def name(module: Module) -> str:
    return "::".join(module) or "(root)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", action="store_true")
    parser.add_argument("--edges", action="store_true")
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree (default: this checkout)")
    parser.add_argument("--max-lines", type=int, default=0, help="fail on a .rs file larger than this")
    args = parser.parse_args()
    root_dir: Path = args.root.resolve()
    too_large = 0
    if args.max_lines:
        for file in sorted(root_dir.rglob("*.rs")):
            if SKIP & set(file.relative_to(root_dir).parts):
                continue
            size = lines_of_code(file.read_text())
            if size > args.max_lines:
                too_large += 1
                where = file.relative_to(root_dir)
                print(f"too large: {where} has {size} lines of code (at most {args.max_lines})")
    sys.setrecursionlimit(10000)
    total_cycles = 0
    for root in crate_roots(root_dir):
        crate = str(root.parent.parent.relative_to(root_dir)) + ("" if root.name == "lib.rs" else " (bin)")
        modules: dict[Module, Path] = {}
        collect(root, (), modules)
        graph = {m: edges_of(m, code_before_tests(f.read_text()), modules) for m, f in modules.items()}
        if args.sizes:
            for _module, file in sorted(modules.items()):
                print(f"{lines_of_code(file.read_text()):5} {file.relative_to(root_dir)}")
        if args.edges:
            for module in sorted(graph):
                for target in sorted(graph[module]):
                    print(f"{crate}: {name(module)} -> {name(target)}")
        for component in cycles(graph):
            total_cycles += 1
            print(f"cycle in {crate}: " + ", ".join(name(m) for m in component))
    print(f"{total_cycles} import cycle(s)")
    return 1 if total_cycles or too_large else 0


if __name__ == "__main__":
    sys.exit(main())
