"""The last stage, redone on every invocation (it is cheap): report.json, report.md, report.html
and the score-vs-tokens plot, from the rows of every evaluation and the curation summaries."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from s2distill.config.recipe import runs_model_code
from s2distill.report.cascade import plot_cascade_curves
from s2distill.report.plot import plot_score_vs_tokens, plot_threshold_curves
from s2distill.report.row import Row
from s2distill.report.cost import teacher_spend
from s2distill.report.provenance import provenance
from s2distill.report.summary import machine_info, render_markdown
from s2distill.report.truncation import budget_lines, truncation_lines
from s2distill.report.html import write_html_report
from s2distill.artifacts import atomic_write_bytes, write_json
from s2distill.sandbox import describe_guard
from s2distill.stages.context import RunContext
from s2distill.stages.folder import stage_kinds


def write_report(ctx: RunContext, rows: list[Row], summaries: list[dict], *, invocation_seconds: float,
                 audit: dict | None = None, cascades: list[dict] | None = None) -> dict[str, Any]:
    """report.json (the rows as dicts: `Row.to_dict`), report.md, report.html and the plots; returns
    what report.json holds. `audit`: the curation audit (stages/audit.py), with its curve plot;
    `cascades`: the distilled cascade's sections (stages/cascade.py), with theirs."""
    recipe, out = ctx.recipe, ctx.folder.root
    teachers = ", ".join(f"{t.name}: {t.method.name} on {t.model.describe()}" for t in recipe.teachers)
    report = {
        "name": recipe.name,
        "task": ctx.task.name,
        "teachers": teachers,
        "student": recipe.student.model.describe(),
        "rows": [row.to_dict() for row in rows],
        "curation": summaries,
        "curation_audit": audit,
        "cascade": cascades or [],
        "lm": {**ctx.models.calls(), "faults": ctx.models.faults(),
               **({"replicas": replicas} if (replicas := ctx.models.replicas()) else {})},
        "timings": ctx.folder.timings,
        "stages": {"this_invocation": stage_kinds(ctx.folder.log),
                   "ran": [asdict(r) for r in ctx.folder.log if r.status != "kept"]},
        "invocation_seconds": round(invocation_seconds, 1),
        "machine": machine_info(),
        "sandbox": describe_guard(ctx.task.sandbox) if runs_model_code(recipe, ctx.task) else None,
    }
    report["cost"] = teacher_spend(out, recipe.teachers, summaries)
    report["provenance"] = provenance(out, recipe)
    report["notes"] = ctx.task.notes()  # e.g. skipped rows, or a score that is agreement, not accuracy
    # a source or an evaluation with too many outputs cut at their budget, naming the setting to raise
    report["truncation"] = truncation_lines(recipe, summaries, rows, ctx.task)
    report["budgets"] = budget_lines(recipe, ctx.task)  # what every call was allowed, beside what was cut
    report["plot"] = bool(plot_score_vs_tokens(rows, out / "report.png", title=f"{recipe.name}: {ctx.task.name}"))
    report["audit_plot"] = bool(plot_threshold_curves(audit, out / "threshold_curve.png"))
    report["cascade_plot"] = bool(plot_cascade_curves(cascades, out / "cascade_curve.png"))
    write_json(out / "report.json", report)
    atomic_write_bytes(out / "report.md", render_markdown(report).encode())  # whole or not at all: never cut short
    write_html_report(out, report, task=ctx.task)
    return report
