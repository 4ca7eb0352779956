"""The layers hold: the core imports no plugin, libraries import no plugin, no plugin imports another, no import circles."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("router_core", "router_lib", "router_plugins")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def imports() -> dict[str, set[str]]:
    """Each of our modules → the modules of ours it imports at run time (not under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = module_name(path)
            here = name if path.name == "__init__.py" else name.rpartition(".")[0]
            tree = ast.parse(path.read_text())
            found: set[str] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    node.body = []  # typing-only imports make no circle at run time
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parent = here.split(".")
                        parent = parent[: len(parent) - node.level + 1]
                        base = ".".join([*parent, base] if base else parent)
                    found.add(base)
                    found.update(f"{base}.{alias.name}" for alias in node.names)
            graph[name] = {m for m in found if m.split(".")[0] in PACKAGES}
    return graph


def resolve(graph: dict[str, set[str]], target: str) -> str | None:
    while target and target not in graph:
        target = target.rpartition(".")[0]
    return target or None


def test_the_core_and_the_libraries_import_no_plugin():
    for module, targets in imports().items():
        if module.startswith(("router_core", "router_lib")):
            assert not [t for t in targets if t.startswith("router_plugins")], module


def test_no_plugin_imports_another():
    for module, targets in imports().items():
        if module.startswith("router_plugins."):
            own = module.split(".")[1]
            others = {t.split(".")[1] for t in targets if t.startswith("router_plugins.") and t.count(".") >= 1}
            assert others <= {own}, (module, others)


def test_no_import_circles():
    graph = imports()
    edges = {m: {r for t in targets if (r := resolve(graph, t)) and r != m} for m, targets in graph.items()}
    # A package's __init__ re-exporting its own modules is not a circle between modules.
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise AssertionError(" → ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)
