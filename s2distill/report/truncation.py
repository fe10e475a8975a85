"""Truncation is never silent: a run where too many outputs were cut at their budget says so, in one
line per source or evaluation, at the end of the run on the console and in report.md.

A source (a teacher, or the student's own System 1 samples) is named when more than `SHARE` of the
samples its variants curate were cut (the curation summary's `truncated`, of the variant that
curates most of its samples); an evaluation when more than `SHARE` of its answers were (a row's
`truncated`, of its n answers, or n × k samples for maj@k); a variant's USC curation when more than
`SHARE` of its inputs' compositions were (`compositions_truncated`). Each line names the setting to
raise and the value it had, e.g.

    12% of pal's samples were cut at their budget (teacher.method.max_tokens = 160): raise it
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from s2distill.distill.pairs import REASONING_FORMATS
from s2distill.distill.variants import SYSTEM1_SOURCE
from s2distill.methods.registry import REGISTRY, method_parameters
from s2distill.report.row import Row, rows_of

SHARE = 0.05  # a share of truncated outputs above this is reported


def budget_settings(path: str, method, task=None) -> str:
    """The token budgets of the method at recipe path `path` (`teacher.method`), with the values in
    effect: `max_tokens` (the method's own default when unset), or each of a multi-call method's
    budgets (BSM's branch, solve and merge; S2A's answer)."""
    names = [name for name in type(method).model_fields if name.endswith("_tokens")]
    if not names:  # a user's program sets its own budgets
        return f"{path}: the program's own budgets"
    return ", ".join(f"{path}.{name} = {_in_effect(method, name, task)}" for name in names)


def _in_effect(method, name: str, task) -> Any:
    """A budget's value as the program runs with it: the config's, else the factory's default."""
    value = getattr(method, name)
    if value is not None:
        return value
    if method.name == "direct" and task is not None:  # direct's default depends on the task
        return 256 if task.multiline_answers else 16
    default = method_parameters(method.name)[name].default if method.name in REGISTRY else None
    return default if isinstance(default, int) else "the method's default"


def _source_budget(recipe, name: str, task) -> str:
    """The budget settings of a source's method (a teacher's, or the student's for System 1's samples)."""
    if name == SYSTEM1_SOURCE:
        return budget_settings("student.method", recipe.student.method, task)
    for index, teacher in enumerate(recipe.teachers):
        if teacher.name == name:
            path = "teacher.method" if len(recipe.teachers) == 1 else f"teachers.{index}.method"
            return budget_settings(path, teacher.method, task)
    return f"teacher {name}'s max_tokens"  # not in this recipe (a report of an earlier one)


def _row_budget(recipe, row: Row, task) -> str:
    """The setting that bounds an evaluation row's answers."""
    if row.teacher:
        return _source_budget(recipe, row.teacher, task)
    if row.system == "system1":
        for i, method in enumerate(recipe.evaluate.system1_prompts):  # their evaluations' names (stages/evaluate.py)
            if (row.eval_name or "").startswith(f"system1-{method.name}-{method.shots}shot"):
                return budget_settings(f"evaluate.system1_prompts.{i}", method, task)
        return budget_settings("student.method", recipe.student.method, task)
    if (row.stage or "").split(" ")[-1] in REASONING_FORMATS:  # a student taught to reason answers within this
        return f"distill.reasoning_max_tokens = {recipe.distill.reasoning_max_tokens}"
    return budget_settings("student.method", recipe.student.method, task)


def truncation_lines(recipe, summaries: Iterable[Mapping[str, Any]], rows: Iterable[Row | Mapping[str, Any]],
                     task=None) -> list[str]:
    """One line per source whose samples, and per evaluation whose answers, were cut at their budget
    more than `SHARE` of the time (see the module docstring)."""
    lines, summaries = [], list(summaries)
    sources: dict[str, tuple[int, int]] = {}  # per source: (truncated, outputs) of the variant curating most
    for summary in summaries:
        for name, counts in summary["per_teacher"].items():
            if counts["outputs"] > sources.get(name, (0, 0))[1]:
                sources[name] = (counts.get("truncated", 0), counts["outputs"])
    for name, (cut, total) in sources.items():
        if cut > SHARE * total:
            lines.append(f"{100 * cut / total:.0f}% of {name}'s samples were cut at their budget "
                         f"({_source_budget(recipe, name, task)}): raise it")
    for summary in summaries:  # USC: the judge's compositions, one per input it composed for
        cut, inputs = summary.get("compositions_truncated", 0), summary["inputs"]
        if cut > SHARE * inputs:
            lines.append(f"{100 * cut / inputs:.0f}% of {summary['variant']}'s USC compositions were cut at their "
                         f"budget (curation.usc_max_tokens = {summary.get('usc_max_tokens', 128)}): raise it")
    for row in rows_of(rows):
        answers = row.n * (row.majority_of or 1)
        if row.truncated and row.truncated > SHARE * answers:
            who = f"{row.system} {row.detail}".strip()
            lines.append(f"{100 * row.truncated / answers:.0f}% of {who}'s answers were cut at their budget "
                         f"({_row_budget(recipe, row, task)}): raise it")
    return lines


def budget_lines(recipe, task=None) -> list[str]:
    """Every token budget the run's calls were made within, as `setting = value` (a method's unset
    budget at the default it runs with): the report states them, so that a run's budgets (a paper
    profile's, say) are read beside its truncated counts, not inferred."""
    lines = []
    for index, teacher in enumerate(recipe.teachers):
        path = "teacher.method" if len(recipe.teachers) == 1 else f"teachers.{index}.method"
        lines.append(budget_settings(path, teacher.method, task))
    lines.append(budget_settings("student.method", recipe.student.method, task))
    stages = set(recipe.distill.stages)
    if stages & set(REASONING_FORMATS):
        lines.append(f"distill.reasoning_max_tokens = {recipe.distill.reasoning_max_tokens}")
    if "compressed_reasoning" in stages and recipe.distill.compression != "fixed_length":
        lines.append(f"distill.rewrite_max_tokens = {recipe.distill.rewrite_max_tokens}")
    lines += [f"curation.usc_max_tokens = {f.usc_max_tokens}" for f in recipe.curation.filter if f.name == "usc"]
    return lines
