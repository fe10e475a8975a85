"""The evaluation stages: System 1, each teacher's System 2 and every trained student, on each
test split, greedy or maj@k. Evaluation is the one place labels are read; a task without labels
is scored against System 2's answers (s2distill/agreement.py), judged where answers are free text.

Each evaluation is a stage of its own (`eval/NAME.json`, per example `eval/NAME.jsonl`), its
fingerprint the program, the model and weights, the test split and the sampling it used.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from s2distill.agreement import judge_program, outcome_without_judge, win_tie_loss, with_references
from s2distill.config import StudentConfig, TeacherConfig
from s2distill.configbase import identity
from s2distill.evaluate import majority_traces, score_traces
from s2distill.provenance import evaluation_cost
from s2distill.runfolder import write_jsonl
from s2distill.stages.context import RunContext, sampling_identity
from s2distill.stages.distill import Step, Trained, student_program_for
from s2distill.stages.folder import JSON, ROWS, Done
from s2distill.tasks import Task
from s2distill.variants import SYSTEM1_SOURCE


@dataclasses.dataclass
class Evaluation:
    """What one evaluation runs: a program on a model (maybe with trained weights), greedy or maj@k."""

    system: str
    name: str  # the artifact's name: eval/NAME.json
    method: str
    model: Any  # a model config
    program: Any  # (task) -> program
    extra: dict
    weights: Done | None = None
    sampling: TeacherConfig | None = None  # maj@k at these settings; None: greedy
    samples: int = 1


def evaluate_stage(ctx: RunContext, ev: Evaluation, label: str, task: Task, lm_holder: list) -> dict:
    """One evaluation on one test split (label "" is the recipe's own); returns the report row."""
    name = ev.name + (f"@{label}" if label else "")
    references = _references_stage(ctx, label, task)

    def compute() -> dict:
        labeled = task.labeled("test")  # the one place labels are read
        if references is not None:
            labeled = with_references(labeled, {r["id"]: r["answer"] for r in references.value})
        examples = [item.example for item in labeled]
        settings: dict = {"temperature": 0.0}
        if ev.sampling is not None:
            settings = {"temperature": ev.sampling.temperature, "top_p": ev.sampling.top_p, "seed": ev.sampling.seed,
                        "samples": ev.samples}
        if not lm_holder:
            lm_holder.append(ctx.models.get(ev.model, adapter=ev.weights.value if ev.weights else None))
        start = time.perf_counter()
        traces = ctx.run(f"evaluate {name} ({ev.method})", ev.program(task), examples, lm_holder[0], **settings)
        seconds = time.perf_counter() - start
        if ev.sampling is not None:
            traces = majority_traces(traces, task.normalize)
        score, records = score_traces(task, labeled, traces, system=ev.system, method=ev.method)
        if _judged(task):
            score, records = _judge(ctx, task, score, records, labeled, name)
        write_jsonl(ctx.folder.path(f"eval/{name}.jsonl"), records)
        ctx.console.print(f"  {name}: {100 * score.score:.1f}% {score.metric}, "
                          f"{score.tokens_per_example:.1f} tokens/example")
        return {**score.row(), **evaluation_cost(records, seconds), **ev.extra, **({"test": label} if label else {})}

    made_from = {"system": ev.system, "method_name": ev.method, "model": identity(ev.model),
                 "test_task": _test_identity(task), "samples": ev.samples,
                 "sampling": sampling_identity(ev.sampling) if ev.sampling else None,
                 "extra": ev.extra, "program": _program_identity(ctx, ev),
                 "inputs": {**({"weights": ev.weights.fingerprint} if ev.weights else {}),
                            **({"references": references.fingerprint} if references else {})}}
    if _judged(task):
        made_from["judge"] = sampling_identity(ctx.recipe.teacher(ctx.recipe.evaluate.judge))
    return ctx.folder.stage(f"eval:{name}", f"eval/{name}.json", codec=JSON, compute=compute, made_from=made_from).value


def _test_identity(task: Task) -> dict:
    """The task settings a test split depends on (how many training inputs there are is not one),
    and for a user's data files their content."""
    settings = {k: v for k, v in identity(task.config).items() if k != "train_size"}
    if hasattr(task, "fingerprint"):
        settings["data"] = task.fingerprint()
    return settings


def _program_identity(ctx: RunContext, ev: Evaluation) -> dict:
    """The settings the program is built from (a method, the student's reasoning budget)."""
    return {"student": identity(ctx.recipe.student.method), "reasoning_max_tokens": ctx.recipe.distill.reasoning_max_tokens} \
        if ev.weights is not None else {}


def run_evaluation(ctx: RunContext, ev: Evaluation, *, release: bool = False) -> list[dict]:
    """An evaluation on every test split; the model is loaded only if some split is not done yet,
    and released afterwards when asked (trained students)."""
    held: list = []
    rows = [evaluate_stage(ctx, ev, label, task, held) for label, task in ctx.test_sets]
    if release and held:
        ctx.models.release(held[0])
    return rows


# -- which evaluations a run has ------------------------------------------------------------------
def system_rows(ctx: RunContext) -> list[dict]:
    """System 1 (the untrained student, with its own prompt and each `system1_prompts` prompt)
    and each teacher's System 2, with their maj@k rows."""
    recipe, rows = ctx.recipe, []
    student = recipe.student
    if "system1" in recipe.evaluate.systems:
        rows += run_evaluation(ctx, _plain(ctx, "system1", "system1", student))
        rows += _majority(ctx, _plain(ctx, "system1", "system1", student), ctx.source(SYSTEM1_SOURCE))
        for method in recipe.evaluate.system1_prompts:  # baselines the distilled student must beat
            side = StudentConfig(model=student.model, method=method)
            rows += run_evaluation(ctx, _plain(ctx, "system1", f"system1-{method.name}-{method.shots}shot", side))
    if "system2" in recipe.evaluate.systems:
        k = recipe.evaluate.system2_samples
        for teacher in recipe.teachers:
            ev = _plain(ctx, "system2", f"system2-{teacher.name}", teacher, extra={"teacher": teacher.name})
            if k > 1:
                ev = dataclasses.replace(ev, sampling=teacher, samples=k, extra={**ev.extra, "majority_of": k})
            rows += run_evaluation(ctx, ev)
            rows += _majority(ctx, _plain(ctx, "system2", f"system2-{teacher.name}", teacher,
                                          extra={"teacher": teacher.name}), teacher)
    return rows


def student_rows(ctx: RunContext, step: Step, trained: Trained) -> list[dict]:
    """A trained step's student on every test split, then its maj@k rows; its weights are then freed."""
    student = ctx.recipe.student
    extra = {"stage": step.label, "model": student.model.describe(trained.weights.value), "train_pairs": trained.pairs,
             "shots": student.method.shots}
    ev = Evaluation(step.variant.name, f"{step.variant.name}-stage{step.index}", student.method.name, student.model,
                    lambda task: student_program_for(ctx, trained, task), extra, weights=trained.weights)
    rows = run_evaluation(ctx, ev, release=True)
    return rows + _majority(ctx, dataclasses.replace(ev, extra={"stage": step.label, "model": extra["model"]}),
                            ctx.source(SYSTEM1_SOURCE))


def untrained_row(ctx: RunContext, step: Step) -> dict:
    student = ctx.recipe.student
    return {"system": step.variant.name, "stage": step.label, "method": student.method.name, "task": ctx.task.name,
            "metric": ctx.task.metric, "score": None, "n": 0, "tokens_per_example": None, "unparseable": 0,
            "model": student.model.describe(), "train_pairs": 0, "note": "not trained: curation kept no input",
            "shots": student.method.shots}


def _plain(ctx: RunContext, system: str, name: str, side, *, extra: dict | None = None) -> Evaluation:
    """A greedy evaluation of a side's (a teacher's or the student's) own program."""
    return Evaluation(system, name, side.method.name, side.model, lambda task: ctx.program(side.method, task),
                      {"teacher": None, "model": side.model.describe(), "shots": side.method.shots, **(extra or {})})


def _majority(ctx: RunContext, ev: Evaluation, sampling: TeacherConfig) -> list[dict]:
    """maj@k rows for `evaluate.majority_at` (Yu et al. 2024, Table 3), on the recipe's test split:
    k samples at `sampling`'s settings (a teacher's own, else the first teacher's). Samples are
    cached by index, so maj@10 reuses maj@5's."""
    held: list = []
    rows = []
    for k in ctx.recipe.evaluate.majority_at:
        ev_k = dataclasses.replace(ev, name=f"{ev.name}-maj{k}", sampling=sampling, samples=k,
                                   extra={**ev.extra, "majority_of": k})
        rows.append(evaluate_stage(ctx, ev_k, "", ctx.task, held))
    if held and ev.weights is not None:
        ctx.models.release(held[0])
    return rows


# -- a task without labels: agreement with System 2 -----------------------------------------------
def _references_stage(ctx: RunContext, label: str, task: Task) -> Done | None:
    """For data without labels, System 2's answers (the first teacher, greedy) on the test inputs
    stand in as the references (see s2distill/agreement.py); None for labelled data."""
    if getattr(task, "has_labels", True):
        return None
    teacher = ctx.recipe.teachers[0]
    name = "reference" + (f"@{label}" if label else "")

    def compute() -> list[dict]:
        examples = [item.example for item in task.labeled("test")]
        traces = ctx.run(f"references: System 2 ({teacher.name}) on the test inputs", ctx.program(teacher.method, task),
                         examples, ctx.models.get(teacher.model), temperature=0.0)
        return [{"id": t.example_id, "teacher": teacher.name, "answer": t.answer} for t in traces]

    return ctx.folder.stage(name, f"eval/{name}.jsonl", codec=ROWS, compute=compute,
                            made_from={"teacher": sampling_identity(teacher), "test_task": _test_identity(task)})


def _judged(task: Task) -> bool:
    return not getattr(task, "has_labels", True) and getattr(task, "answer_kind", "") == "free_text"


def _judge(ctx: RunContext, task: Task, score, records: list[dict], labeled: list, name: str):
    """Free text without labels: each answer against System 2's, judged in both orders."""
    targets = {item.example.id: item.target for item in labeled}
    outcomes, pending = {}, []
    for record in records:
        outcome = outcome_without_judge(record["answer"], targets[record["id"]], task.normalize)
        if outcome is None:
            pending.append(record["id"])
        else:
            outcomes[record["id"]] = outcome
    if pending:
        judge = ctx.recipe.teacher(ctx.recipe.evaluate.judge)
        answers = {r["id"]: r["answer"] for r in records}
        program = judge_program(task, answers, targets, prompt_format=judge.method.prompt_format)
        examples = [item.example for item in labeled if item.example.id in set(pending)]
        traces = ctx.run(f"judge {name} against System 2 ({judge.name})", program, examples,
                         ctx.models.get(judge.model), temperature=0.0)
        outcomes.update({t.example_id: t.answer for t in traces})
    value, shares = win_tie_loss(records, outcomes)
    return dataclasses.replace(score, score=value, metrics={**score.metrics, **shares}), records
