"""The package's layers point one way (DESIGN principle 12): read from the source, every import
(top-level or inside a function) of one s2distill module by another."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "s2distill"

# A module of the left layer may not import any of the right: types <- lm <- tasks <- methods,
# curation (side by side) <- the stages <- cli.
FORBIDDEN = {
    "types": ("lm", "tasks", "methods", "curation", "stages", "pipeline", "cli"),
    "errors": ("lm", "tasks", "methods", "curation", "stages", "pipeline", "cli", "config"),
    "lm": ("tasks", "methods", "curation", "stages", "pipeline", "cli", "config"),
    "tasks": ("methods", "curation", "stages", "pipeline", "cli"),
    "curation": ("methods", "stages", "pipeline", "cli"),
    "methods": ("curation", "stages", "pipeline", "cli"),
    "stages": ("pipeline", "cli"),
}


def _imports(path: Path) -> set[str]:
    """The s2distill modules `path` imports, as dotted names below the package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("s2distill"):
            found.add(node.module.removeprefix("s2distill").lstrip("."))
            found.update(f"{node.module.removeprefix('s2distill').lstrip('.')}.{a.name}".lstrip(".") for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("s2distill.") for a in node.names if a.name.startswith("s2distill."))
    return found


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_layers_point_one_way():
    broken = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for imported in _imports(path):
            if _layer(imported) in FORBIDDEN.get(_layer(module), ()):
                broken.append(f"{module} imports {imported}")
    assert not broken, "\n".join(sorted(broken))


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = _layer(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        graph.setdefault(module, set()).update(_layer(m) for m in _imports(path) if _layer(m) != module and m)
    packages = {"lm", "tasks", "methods", "curation", "stages"}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and n in packages and reaches(n, goal, seen | {n}))
                   for n in graph.get(start, ()))

    cycles = [p for p in sorted(packages) if reaches(p, p, {p})]
    assert not cycles, {p: sorted(graph[p] & packages) for p in cycles}
