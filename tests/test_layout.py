"""The house rules a reader relies on, checked on the source (ast, no import): no module
in gate/ over 400 lines, no class over 200, and no import cycle among gate's modules.
The layers themselves are checked by `lint-imports` (.importlinter)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parent.parent / "gate"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200


def _module_name(path: Path) -> str:
    parts = path.relative_to(GATE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {_module_name(p): p for p in sorted(GATE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in SOURCES.items()}


def _package(name: str) -> str:
    return name if SOURCES[name].name == "__init__.py" else name.rpartition(".")[0]


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package(importer).split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str) -> set[str]:
    """The gate modules `name` imports anywhere in its body (function-level and
    TYPE_CHECKING imports included: they are part of the design, and import-linter
    counts them too). `from pkg import sub` names the submodule when there is one."""
    found: set[str] = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in SOURCES else target)
    return {m for m in found if m in SOURCES and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_module_is_small(name: str) -> None:
    lines = len(SOURCES[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{SOURCES[name]} has {lines} lines"


def test_no_class_over_200_lines() -> None:
    big = [f"{SOURCES[name]}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
           for name, tree in TREES.items() for node in ast.walk(tree)
           if isinstance(node, ast.ClassDef) and node.end_lineno is not None
           and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert not big, "classes over 200 lines: " + ", ".join(big)


def test_no_import_cycle_among_gate_modules() -> None:
    # gate/__init__.py is the public API: it imports the packages it re-exports, and
    # nothing in gate imports it back (`from gate import contract` names the module)
    graph = {name: imports_of(name) for name in SOURCES}
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_resolved_to_modules() -> None:
    # the facade imports its modules; a checker that missed `from x import y`
    # or relative imports would find no cycle anywhere
    assert "gate.github.api" in imports_of("gate.github")
    assert "gate.contract" in imports_of("gate.report.markdown")
    assert "gate.github" in imports_of("gate.delivery.destinations")
