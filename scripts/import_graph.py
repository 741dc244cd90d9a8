"""Measure gate/'s import graph: modules, levels, cycles, and imports that point up.

    python scripts/import_graph.py [PACKAGE_DIR]

Reads imports as text (ast), module-level and inside functions alike. A level is the
length of the longest chain of imports below a module (a leaf is level 1); a cycle
is a strongly connected set of modules; an import points up when it goes from a lower
layer of `.importlinter`'s layers contract to a higher one (none without that file).
"""
from __future__ import annotations

import ast
import configparser
import sys
from pathlib import Path


def modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                head = base[:len(base) - node.level + 1] if node.level else []
                module = ".".join(head + ([node.module] if node.module else []))
                targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                root = name.split(".")[0]
                if target and target != name and target != root:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def levels(graph: dict[str, set[str]]) -> int:
    memo: dict[str, int] = {}

    def level(node: str, path: frozenset[str]) -> int:
        if node in memo:
            return memo[node]
        below = [level(n, path | {node}) for n in graph[node] if n not in path]
        memo[node] = 1 + max(below, default=0)
        return memo[node]

    return max((level(n, frozenset()) for n in graph), default=0)


def layer_of(config: Path, package: str) -> dict[str, int]:
    """Layer rank by top-level subpackage (0 = top), from the first layers contract."""
    if not config.exists():
        return {}
    parser = configparser.ConfigParser()
    parser.read(config)
    for section in parser.sections():
        if parser[section].get("type") == "layers":
            ranks = {}
            rows = [r.strip() for r in parser[section]["layers"].splitlines() if r.strip()]
            for rank, row in enumerate(rows):
                for name in row.split("|"):
                    ranks[f"{package}.{name.strip()}"] = rank
            return ranks
    return {}


def rank(module: str, ranks: dict[str, int]) -> int | None:
    while module:
        if module in ranks:
            return ranks[module]
        module = module.rpartition(".")[0]
    return None


def main(argv: list[str]) -> int:
    package = Path(argv[0] if argv else "gate").resolve()
    mods = modules(package)
    graph = edges(mods)
    ranks = layer_of(package.parent / ".importlinter", package.name)
    upward = [(a, b) for a, targets in graph.items() for b in targets
              if rank(a, ranks) is not None and rank(b, ranks) is not None
              and rank(b, ranks) < rank(a, ranks)]   # type: ignore[operator]
    found = cycles(graph)
    print(f"modules: {len(mods)} in {len({m.rsplit('.', 1)[0] for m in mods})} packages")
    print(f"imports: {sum(len(t) for t in graph.values())}")
    print(f"levels: {levels(graph)}")
    print(f"cycles: {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    print(f"imports pointing up: {len(upward)}" + "".join(f"\n  {a} -> {b}" for a, b in upward))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
