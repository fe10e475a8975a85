"""The Python API, for notebooks: `s2distill.run(...)`, `s2distill.load_student(...)` and `s2distill.load_cascade(...)`.

    import s2distill
    report = s2distill.run("recipes/smoke.yaml", out="runs/smoke")       # or a dict, or a Recipe
    report.row("distilled").score, report.rows, print(report.markdown)
    student = s2distill.load_student("runs/smoke")
    student.predict(["Ada Lovelace"])                                     # [{"answer", "tokens", ...}]
    cascade = s2distill.load_cascade("runs/quickstart")  # the student, and System 2 where it is unsure
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2distill.report.row import Row, rows_of
from s2distill.student.cascade import Cascade, load_cascade
from s2distill.student.predict import Student, load_student


@dataclass(frozen=True)
class Report:
    """A finished run's report (the content of report.json) and where it is."""

    data: dict[str, Any]
    out: Path

    @property
    def rows(self) -> list[Row]:
        """One row per system: System 1, each teacher's System 2, each distilled stage and baseline
        (`report.row.Row`; `data["rows"]` holds them as report.json does, as dicts)."""
        return rows_of(self.data["rows"])

    @property
    def curation(self) -> list[dict]:
        return self.data["curation"]

    @property
    def audit(self) -> dict | None:
        """The curation audit (report.json's `curation_audit`): per curation, the precision of its kept
        answers, coverage, rescued, poisoned, per teacher, and its threshold curves; None in a report
        written before it existed."""
        return self.data.get("curation_audit")

    @property
    def markdown(self) -> str:
        from s2distill.report.summary import render_markdown

        return render_markdown(self.data)

    def row(self, system: str, stage: int | None = None) -> Row:
        """The row of `system` ("system1", "system2", "distilled", a baseline); the last stage's by default."""
        every = self.rows
        rows = [r for r in every if r.system == system]
        if not rows:
            raise KeyError(f"no row for system {system!r}; systems: {', '.join(dict.fromkeys(r.system for r in every))}")
        return rows[-1] if stage is None else rows[stage - 1]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def _repr_markdown_(self) -> str:  # notebooks show the report as its table
        return self.markdown


def run(recipe: str | Path | Mapping[str, Any] | Any, *, out: str | Path | None = None,
        overrides: Sequence[str] = (), progress: bool = False, redo: Sequence[str] = ()) -> Report:
    """Run every stage of a recipe (a YAML path, a dict, or a `config.Recipe`) into `out` (default
    runs/NAME); return its report. Stages of an earlier run in `out` whose inputs did not change are
    reused; `redo` names stages to redo anyway (as `s2distill run --redo`)."""
    from s2distill.config.recipe import Recipe, apply_override, apply_profile, apply_size, load_recipe, validate_recipe
    from s2distill.pipeline import Pipeline

    if isinstance(recipe, Recipe):
        if overrides:
            raise ValueError("overrides apply to a recipe file or dict, not to a Recipe object")
        config = recipe
    elif isinstance(recipe, Mapping):
        data = copy.deepcopy(dict(recipe))
        for override in overrides:
            apply_override(data, override)
        apply_profile(data, list(overrides))  # profile=paper, then size=small, as load_recipe does
        apply_size(data, list(overrides))
        config = validate_recipe(data, source="recipe dict")
    else:
        config = load_recipe(recipe, list(overrides))
    folder = Path(out) if out is not None else Path("runs") / config.name
    return Report(Pipeline(config, folder, progress=progress, redo=redo).run(), folder)


__all__ = ["Report", "Row", "Student", "load_student", "run"]
