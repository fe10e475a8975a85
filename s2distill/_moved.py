"""Modules that moved when the package was regrouped into rooms (cli/, config/, training/, ...):
the old import paths keep working, with a `DeprecationWarning` naming the new one, so a user's
script, notebook or `module:function` program written against an earlier version still runs.

Five old modules share their name with the package that replaced them (`s2distill.config`,
`s2distill.cli`, `s2distill.report`, `s2distill.distill`, `s2distill.student`); each of those
packages forwards the old module's names itself (`forward_names` below). Every other old name is
an alias that this finder resolves to the new module object (Inspect AI keeps its relocated
modules working the same way).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module -> its new home
MOVED = {
    "s2distill.cli_cache": "s2distill.cli.cache",
    "s2distill.cli_student": "s2distill.cli.student",
    "s2distill.configbase": "s2distill.config.base",
    "s2distill.generation_config": "s2distill.config.generation",
    "s2distill.train": "s2distill.training.sft",
    "s2distill.train_guard": "s2distill.training.guard",
    "s2distill.train_launch": "s2distill.training.launch",
    "s2distill.train_log": "s2distill.training.log",
    "s2distill.train_worker": "s2distill.training.worker",
    "s2distill.answer_tokens": "s2distill.training.answer_tokens",
    "s2distill.compress": "s2distill.distill.compress",
    "s2distill.variants": "s2distill.distill.variants",
    "s2distill.report_html": "s2distill.report.html",
    "s2distill.plot": "s2distill.report.plot",
    "s2distill.provenance": "s2distill.report.provenance",
    "s2distill.browser": "s2distill.report.browser",
    "s2distill.predict": "s2distill.student.predict",
    "s2distill.export": "s2distill.student.export",
    "s2distill.gguf_export": "s2distill.student.gguf",
    "s2distill.evaluate": "s2distill.scoring.score",
    "s2distill.agreement": "s2distill.scoring.agreement",
    "s2distill.voting": "s2distill.scoring.voting",
    "s2distill.mt_bench": "s2distill.scoring.mt_bench",
    "s2distill.embed": "s2distill.curation.embed",
    "s2distill.runfolder": "s2distill.artifacts",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there", DeprecationWarning, stacklevel=3)


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        """The new module is already executed; the old name is only another key for it."""


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds an old module name and hands back the new module under it."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        _warn(fullname, new)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())


def forward_names(package: str, old_home: str):
    """A module `__getattr__` for a package that took the name of an old module: the old module's
    names, read from where they live now."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        module = importlib.import_module(old_home)
        try:
            value = getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        _warn(f"{package}.{name}", f"{old_home}.{name}")
        return value

    return __getattr__
