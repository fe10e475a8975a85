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
    "config.base": ("lm", "tasks", "methods", "curation", "stages", "pipeline", "cli", "config"),
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


# Modules that sit below their package's layer: the strict config base every section (an LM
# backend's config too) is built on.
OWN_LAYER = ("config.base",)


def _layer(module: str) -> str:
    for own in OWN_LAYER:
        if module == own or module.startswith(own + "."):
            return own
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


def _module_graph() -> dict[str, set[str]]:
    """Every s2distill module and the s2distill modules it imports (a name imported from a package
    counts as that package's `__init__`, or the submodule when it is one)."""
    modules = {".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
               for p in PACKAGE.rglob("*.py")}
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = {m for m in _imports(path) if m in modules and m != module}
    return graph


def test_no_import_cycle_between_modules():
    """No module reaches itself through imports, function-local ones included (a loop hidden in a
    function body still couples two modules both ways)."""
    graph = _module_graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_top_level_stays_small():
    """At most 30 entries at the top of the package: new modules go into the room for their job."""
    entries = [p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= 30, sorted(entries)
