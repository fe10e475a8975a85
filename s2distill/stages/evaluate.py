"""The evaluation stages: System 1, each teacher's System 2 and every trained student, on each
test split, greedy or maj@k. Evaluation is the one place labels are read; a task without labels
is scored against System 2's answers (s2distill/scoring/agreement.py), judged where answers are free text.

Each evaluation is a stage of its own (`eval/NAME.json`, per example `eval/NAME.jsonl`), its
fingerprint the program, the model and weights, the test split and the sampling it used.
"""

from __future__ import annotations

import dataclasses
import time

from s2distill.scoring.agreement import judge_program, outcome_without_judge, win_tie_loss, with_references
from s2distill.config.recipe import StudentConfig, TeacherConfig
from s2distill.config.base import identity
from s2distill.scoring.score import majority_traces, score_traces
from s2distill.report.provenance import evaluation_cost
from s2distill.report.row import Row
from s2distill.artifacts import write_jsonl
from s2distill.stages.context import RunContext
from s2distill.stages.distill import Step, Trained, student_program_for
from s2distill.stages.folder import JSON, ROWS, Done
from s2distill.stages.specs import EvalSpec, ReferenceSpec, Sampling
from s2distill.tasks import Task
from s2distill.distill.variants import SYSTEM1_SOURCE


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluation: what it computes (`spec`, fingerprinted), the artifact's name (eval/NAME.json),
    the report row's labels (`extra`: added when the row is read, never stored as a result), and a
    trained student's weights."""

    spec: EvalSpec
    name: str
    extra: dict
    weights: Done | None = None

    def with_samples(self, name: str, sampling: Sampling, k: int) -> Evaluation:
        """The same system answering by the majority of k samples at `sampling`'s settings."""
        return Evaluation(self.spec.model_copy(update={"sampling": sampling, "samples": k, "logprobs": False}), name,
                          {**self.extra, "majority_of": k}, self.weights)


def evaluate_stage(ctx: RunContext, ev: Evaluation, label: str, task: Task, lm_holder: list) -> Row:
    """One evaluation on one test split (label "" is the recipe's own); returns the report row."""
    name = ev.name + (f"@{label}" if label else "")
    references = _references_stage(ctx, label, task)
    spec = ev.spec.model_copy(update={"test_task": split_identity(task),
                                      "judge": ctx.recipe.teacher(ctx.recipe.evaluate.judge) if _judged(task) else None})

    def compute() -> dict:
        labeled = task.labeled("test")  # the one place labels are read
        if references is not None:
            labeled = with_references(labeled, {r["id"]: r["answer"] for r in references.value})
        examples = [item.example for item in labeled]
        settings: dict = {"temperature": 0.0}
        if spec.sampling is not None:
            settings = {"temperature": spec.sampling.temperature, "top_p": spec.sampling.top_p,
                        "seed": spec.sampling.seed, "samples": spec.samples}
        if spec.logprobs:
            settings["logprobs"] = True  # each record's confidence (scoring.cascade.confidence_of)
        if not lm_holder:
            lm_holder.append(ctx.models.get(spec.model, adapter=ev.weights.value if ev.weights else None))
        program = (student_program_for(spec.student, task) if spec.student is not None
                   else ctx.program(spec.method, task))
        start = time.perf_counter()
        traces = ctx.run(f"evaluate {name} ({spec.method.name})", program, examples, lm_holder[0], **settings)
        seconds = time.perf_counter() - start
        # answers cut at their budget: every sample's, before a majority merges them
        truncated, answers = sum(t.truncated for t in traces), len(traces)
        if spec.sampling is not None:
            traces = majority_traces(traces, task.normalize)
        score, records = score_traces(task, labeled, traces, system=spec.system, method=spec.method.name)
        if spec.judge is not None:
            score, records = _judge(ctx, spec.judge, task, score, records, labeled, name)
        write_jsonl(ctx.folder.path(f"eval/{name}.jsonl"), records)
        ctx.console.print(f"  {name}: {100 * score.score:.1f}% {score.metric}, "
                          f"{score.tokens_per_example:.1f} tokens/example"
                          + (f", {truncated} of {answers} answers truncated at max_tokens" if truncated else ""))
        return {**score.row(), **evaluation_cost(records, seconds), "truncated": truncated}

    result = ctx.stage(f"eval:{name}", f"eval/{name}.json", spec=spec, codec=JSON, compute=compute,
                       inputs={"weights": ev.weights, "references": references}).value
    return Row.from_dict({**result, **ev.extra, **({"test": label} if label else {}), "eval_name": name})


def split_identity(task: Task) -> dict:
    """The task settings a test split depends on (how many training inputs there are is not one),
    and for a user's data files their content."""
    settings = {k: v for k, v in identity(task.config).items() if k != "train_size"}
    data = task.fingerprint()
    if data is not None:
        settings["data"] = data
    return settings


def run_evaluation(ctx: RunContext, ev: Evaluation, *, release: bool = False) -> list[Row]:
    """An evaluation on every test split; the model is loaded only if some split is not done yet,
    and released afterwards when asked (trained students)."""
    held: list = []
    rows = [evaluate_stage(ctx, ev, label, task, held) for label, task in ctx.test_sets]
    if release and held:
        ctx.models.release(held[0])
    return rows


# -- which evaluations a run has ------------------------------------------------------------------
def system_rows(ctx: RunContext) -> list[Row]:
    """System 1 (the untrained student, with its own prompt and each `system1_prompts` prompt)
    and each teacher's System 2, with their maj@k rows."""
    recipe, rows = ctx.recipe, []
    student = recipe.student
    if "system1" in recipe.evaluate.systems:
        rows += run_evaluation(ctx, _plain("system1", "system1", student))
        rows += _majority(ctx, _plain("system1", "system1", student), ctx.source(SYSTEM1_SOURCE))
        for method in recipe.evaluate.system1_prompts:  # baselines the distilled student must beat
            side = StudentConfig(model=student.model, method=method)
            rows += run_evaluation(ctx, _plain("system1", f"system1-{method.name}-{method.shots}shot", side))
    if "system2" in recipe.evaluate.systems:
        k = recipe.evaluate.system2_samples
        for teacher in recipe.teachers:
            ev = _plain("system2", f"system2-{teacher.name}", teacher, extra={"teacher": teacher.name})
            rows += run_evaluation(ctx, ev.with_samples(ev.name, Sampling.of(teacher), k) if k > 1 else ev)
            rows += _majority(ctx, ev, teacher)
    return rows


def student_rows(ctx: RunContext, step: Step, trained: Trained) -> list[Row]:
    """A trained step's student on every test split, then its maj@k rows; its weights are then freed."""
    student = ctx.recipe.student
    model = student.model.describe(trained.weights.value)
    spec = EvalSpec(system=step.variant.name, method=trained.program.method, model=student.model,
                    test_task={}, student=trained.program, logprobs=ctx.recipe.evaluate.cascade is not None)
    control = {"control": step.variant.label} if step.variant.label else {}  # a control's role, for the report
    ev = Evaluation(spec, f"{step.variant.name}-stage{step.index}",
                    {"stage": step.label, "model": model, "train_pairs": trained.pairs, "shots": student.method.shots,
                     **control, **training_cost(ctx, step, trained)}, weights=trained.weights)
    rows = run_evaluation(ctx, ev, release=True)
    return rows + _majority(ctx, dataclasses.replace(ev, extra={"stage": step.label, "model": model, **control}),
                            ctx.source(SYSTEM1_SOURCE))


def training_cost(ctx: RunContext, step: Step, trained: Trained) -> dict:
    """What the step's training took, as its row records it: `train_seconds` (the training's last
    compute time, and a soft_labels step's teacher pass) and, for soft_labels, how its teacher's
    distributions stand to the hard targets (`soft_targets`: stages/soft.py)."""
    timings = ctx.folder.timings
    train = timings.get(step.train_name)
    if not step.variant.soft:
        return {"train_seconds": train}
    teacher = timings.get(step.soft_name)
    seconds = None if train is None or teacher is None else train + teacher
    return {"train_seconds": seconds, "soft_targets": {**(trained.soft_targets or {}), "teacher_seconds": teacher}}


def untrained_row(ctx: RunContext, step: Step) -> Row:
    student = ctx.recipe.student
    return Row(system=step.variant.name, stage=step.label, method=student.method.name, task=ctx.task.name,
               metric=ctx.task.metric, score=None, n=0, tokens_per_example=None, unparseable=0,
               model=student.model.describe(), train_pairs=0, note="not trained: curation kept no input",
               shots=student.method.shots, control=step.variant.label)


def _plain(system: str, name: str, side, *, extra: dict | None = None) -> Evaluation:
    """A greedy evaluation of a side's (a teacher's or the student's) own program."""
    spec = EvalSpec(system=system, method=side.method, model=side.model, test_task={})
    return Evaluation(spec, name, {"teacher": None, "model": side.model.describe(), "shots": side.method.shots,
                                   **(extra or {})})


def _majority(ctx: RunContext, ev: Evaluation, sampling: TeacherConfig) -> list[Row]:
    """maj@k rows for `evaluate.majority_at` (Yu et al. 2024, Table 3), on the recipe's test split:
    k samples at `sampling`'s settings (a teacher's own, else the first teacher's). Samples are
    cached by index, so maj@10 reuses maj@5's."""
    held: list = []
    rows = [evaluate_stage(ctx, ev.with_samples(f"{ev.name}-maj{k}", Sampling.of(sampling), k), "", ctx.task, held)
            for k in ctx.recipe.evaluate.majority_at]
    if held and ev.weights is not None:
        ctx.models.release(held[0])
    return rows


# -- a task without labels: agreement with System 2 -----------------------------------------------
def _references_stage(ctx: RunContext, label: str, task: Task) -> Done | None:
    """For data without labels, System 2's answers (the first teacher, greedy) on the test inputs
    stand in as the references (see s2distill/scoring/agreement.py); None for labelled data."""
    if task.has_labels:
        return None
    spec = ReferenceSpec(teacher=ctx.recipe.teachers[0], test_task=split_identity(task))
    name = "reference" + (f"@{label}" if label else "")

    def compute() -> list[dict]:
        teacher = spec.teacher
        examples = [item.example for item in task.labeled("test")]
        traces = ctx.run(f"references: System 2 ({teacher.name}) on the test inputs", ctx.program(teacher.method, task),
                         examples, ctx.models.get(teacher.model), temperature=0.0)
        return [{"id": t.example_id, "teacher": teacher.name, "answer": t.answer} for t in traces]

    return ctx.stage(name, f"eval/{name}.jsonl", spec=spec, inputs={}, codec=ROWS, compute=compute)


def _judged(task: Task) -> bool:
    return not task.has_labels and task.answer_kind == "free_text"


def _judge(ctx: RunContext, judge: TeacherConfig, task: Task, score, records: list[dict], labeled: list, name: str):
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
        answers = {r["id"]: r["answer"] for r in records}
        program = judge_program(task, answers, targets, prompt_format=judge.method.prompt_format)
        examples = [item.example for item in labeled if item.example.id in set(pending)]
        traces = ctx.run(f"judge {name} against System 2 ({judge.name})", program, examples,
                         ctx.models.get(judge.model), temperature=0.0)
        outcomes.update({t.example_id: t.answer for t in traces})
    value, shares = win_tie_loss(records, outcomes)
    return dataclasses.replace(score, score=value, metrics={**score.metrics, **shares}), records
