"""The distilled cascade (`evaluate.cascade`): System 1 where the student is sure, System 2 where it is not.

The seed paper leaves open "in exactly which circumstances to apply distillation, and when not to"
(Yu et al. 2024, end of Section 4.5); a deployed student answers that per input. Not a method of
either paper: an addition. Two parts:

1. **The threshold**, a stage of its own (`cascade/NAME.json`, fingerprinted by `CascadeSpec` and
   the student's weights): the trained student (greedy, with its answers' log-probabilities) and
   one teacher's System 2 (greedy) answer the task's *validation* inputs, which are neither
   training nor test inputs; the cascade's curve over every threshold is computed there, and the
   recipe's rule (`keep` a share of System 2's score at the fewest tokens, or the best score within
   a `token_budget`) picks the threshold. Labels are read here as in evaluation; a task without
   them scores the student against System 2's answers.
2. **The rows**, from evaluations the run already made: the student's (each record carries its
   confidence: `EvalSpec.logprobs`) and the same teacher's System 2 on every test split, combined
   at the chosen threshold and at every other (the curve the report draws). No model runs here.

The arithmetic is in s2distill/scoring/cascade.py; `s2distill predict --cascade` deploys it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2distill.artifacts import read_jsonl
from s2distill.report.row import Row
from s2distill.scoring.agreement import with_references
from s2distill.scoring.cascade import ROUTE_ALL, auroc, cascade_curve, cascade_point, choose_threshold, threshold_text
from s2distill.scoring.score import score_traces
from s2distill.stages.context import RunContext
from s2distill.stages.distill import Step, Trained, student_program_for
from s2distill.stages.evaluate import split_identity
from s2distill.stages.folder import JSON, Done
from s2distill.stages.specs import CascadeSpec


def cascade_stage(ctx: RunContext, step: Step, trained: Trained) -> Done:
    """The threshold of the cascade of `step`'s student, chosen on the validation split (see the module docstring)."""
    recipe = ctx.recipe
    config = recipe.evaluate.cascade
    teacher = recipe.teacher(config.teacher) if config.teacher else recipe.teachers[0]
    spec = CascadeSpec(student=trained.program, model=recipe.student.model, teacher=teacher,
                       validation_task=split_identity(ctx.task), validation_size=config.validation_size,
                       rule=config.rule())
    name = f"{step.variant.name}-stage{step.index}"

    def compute() -> dict[str, Any]:
        task = ctx.task
        labeled = task.validation(spec.validation_size)  # labels: read as evaluation reads the test split's
        examples = [item.example for item in labeled]
        fallback = ctx.run(f"cascade {name}: System 2 ({spec.teacher.name}) on {len(examples)} validation inputs",
                           ctx.program(spec.teacher.method, task), examples, ctx.models.get(spec.teacher.model),
                           temperature=0.0)
        # The teacher's weights go before the student's come (a later stage loads them again in a
        # second or two): the two side by side were the quickstart's peak, 3.9 GB against 2.9.
        ctx.models.release_local()
        student = ctx.models.get(spec.model, adapter=trained.weights.value)
        own = ctx.run(f"cascade {name}: the student on the validation inputs",
                      student_program_for(spec.student, task), examples, student, temperature=0.0, logprobs=True)
        ctx.models.release(student)
        if not task.has_labels:  # agreement with System 2 stands in for correctness, as in evaluation
            labeled = with_references(labeled, {t.example_id: t.answer for t in fallback})
        _, own_records = score_traces(task, labeled, own, system="distilled", method=spec.student.method.name)
        _, fallback_records = score_traces(task, labeled, fallback, system="system2", method=spec.teacher.method.name)
        curve = cascade_curve(own_records, fallback_records)
        system2_score = _mean_correct(fallback_records)
        chosen = choose_threshold(curve, system2_score, **spec.rule)
        ctx.console.print(f"  cascade {name}: threshold {threshold_text(chosen.threshold)} on {len(examples)} "
                          f"validation inputs: {100 * chosen.score:.1f}% at {chosen.tokens_per_example:.1f} tokens, "
                          f"{100 * chosen.routed:.0f}% to System 2 (System 2 alone {100 * system2_score:.1f}%)")
        return {"threshold": chosen.to_dict()["threshold"], "rule": spec.rule, "teacher": spec.teacher.name,
                "validation": {"n": len(examples), "scored_against": "labels" if task.has_labels else "system2",
                               "system2_score": system2_score, "student_score": _mean_correct(own_records),
                               "auroc": auroc(own_records), "chosen": chosen.to_dict(),
                               "curve": [p.to_dict() for p in curve]}}

    return ctx.stage(f"cascade:{name}", f"cascade/{name}.json", spec=spec, codec=JSON, compute=compute,
                     inputs={"weights": trained.weights})


def cascade_rows(ctx: RunContext, step: Step, trained: Trained) -> tuple[list[Row], dict[str, Any]]:
    """The cascade's report rows (one per test split, at the chosen threshold) and its report
    section (the threshold, the validation curve, and each test split's curve)."""
    calibration = cascade_stage(ctx, step, trained).value
    threshold = ROUTE_ALL if calibration["threshold"] is None else calibration["threshold"]
    name = f"{step.variant.name}-stage{step.index}"
    rows, tests = [], []
    for label, task in ctx.test_sets:
        suffix = f"@{label}" if label else ""
        own = _records(ctx.folder.root, f"{name}{suffix}")
        fallback = _records(ctx.folder.root, f"system2-{calibration['teacher']}{suffix}")
        if own is None or fallback is None or not any("confidence" in r for r in own):
            continue  # an evaluation this run did not make (e.g. `evaluate.systems` without system2)
        point = cascade_point(own, fallback, threshold)
        tests.append({"test": label or None, "chosen": point.to_dict(), "auroc": auroc(own),
                      "student": {"score": _mean_correct(own), "tokens_per_example": _mean_tokens(own)},
                      "system2": {"score": _mean_correct(fallback), "tokens_per_example": _mean_tokens(fallback)},
                      "curve": [p.to_dict() for p in cascade_curve(own, fallback)]})
        rows.append(Row(system="cascade", method=f"{trained.program.method.name} → System 2", task=task.name,
                        metric=task.metric, score=point.score, n=len(own), tokens_per_example=point.tokens_per_example,
                        teacher=calibration["teacher"], stage=step.label, test=label or None,
                        model=ctx.recipe.student.model.describe(trained.weights.value),
                        note=f"threshold {threshold_text(threshold)}: {100 * point.routed:.0f}% routed to System 2",
                        extra={"threshold": calibration["threshold"], "routed": point.routed}))
    return rows, {**calibration, "name": name, "stage": step.label, "tests": tests}


def _records(root: Path, eval_name: str) -> list[dict] | None:
    path = root / "eval" / f"{eval_name}.jsonl"
    return read_jsonl(path) if path.exists() else None


def _mean_correct(records: list[dict]) -> float:
    return sum(float(r["correct"]) for r in records) / len(records) if records else 0.0


def _mean_tokens(records: list[dict]) -> float:
    return sum(r["completion_tokens"] for r in records) / len(records) if records else 0.0

