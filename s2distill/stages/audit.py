"""The curation audit's stages (issue 26): how right the answers curation kept are, per variant,
with the threshold curve, computed after every curation, training and evaluation of the run.

Labels are read here, by evaluation and by the `gold` control's set stage (which runs after the
distilled variant's curation, possibly before a later baseline's), and never reach a curation: curation's fingerprint holds no label, so editing a label redoes an audit and nothing else
(tests/test_curation_audit.py proves the verdicts byte-identical with the labels changed). The
labels are the task's train labels, or, when `curation.audit_labels` names a file, that
hand-labelled sample instead (the user asked for it by name; its figures are on its inputs alone);
a task without train labels and no such file has no audit, and the report says how to get one.

Two kinds of stage, both of kind `audit`:

- `audit:system1-train` (`audit/system1-train.jsonl`): the untrained student's own System 1
  program, greedy, on the labelled training inputs, so that the audit can say which kept answers
  *rescue* an input System 1 gets wrong. One per run, shared by every variant.
- `audit:VARIANT` (`audit/VARIANT.json`): the audit of one curation (s2distill/curation/audit.py)
  and its threshold curves (s2distill/curation/threshold_curve.py), from its verdicts, the samples
  they chose among, System 1's answers and the labels. Every curation a run makes is audited: the
  recipe's (`distilled`) and each baseline's with a curation of its own. The controls gold and
  random_targets train on `distilled`'s kept inputs with other targets: they have no audit of
  their own (gold's targets are the labels; random_targets' are wrong by design).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence

from s2distill.curation.audit import Judge, audit_verdicts
from s2distill.curation.filters import FilterInputs
from s2distill.curation.hand_labels import AuditLabels, read_hand_labels
from s2distill.curation.threshold_curve import Chunk, decision, no_curve_reason, threshold_curves
from s2distill.distill.variants import Variant
from s2distill.stages.context import RunContext
from s2distill.stages.curate import CHUNK
from s2distill.stages.folder import JSON, ROWS, Done
from s2distill.stages.outputs import Outputs, SampleSet
from s2distill.stages.specs import AuditSpec, AuditSystem1Spec
from s2distill.tasks import Task
from s2distill.types import Example

NO_LABELS = ("No curation audit: the training inputs have no labels. Label a random sample of them by hand "
             "(rows of the run's inputs/train.jsonl, each with a \"label\") and name the file in "
             "curation.audit_labels for the audit's figures on it, with confidence intervals.")


def audit_labels(ctx: RunContext) -> AuditLabels | None:
    """The labels the audit scores against: a hand-labelled file when the recipe names one, else the
    task's train labels, else None (no audit)."""
    path = ctx.recipe.curation.audit_labels
    if path is not None:
        return read_hand_labels(path, ctx.task.unlabeled("train"), ctx.task.score)
    if not ctx.task.has_labels:
        return None
    return AuditLabels({item.example.id: item.target for item in ctx.task.labeled("train")}, "task")


def audit_stages(ctx: RunContext, curations: Sequence[tuple[Variant, Done]], inputs: Done,
                 samples: SampleSet) -> dict | None:
    """Every curation's audit: report.json's `curation_audit` (None when the run curates nothing)."""
    if not curations:
        return None
    labels = audit_labels(ctx)
    if labels is None:
        return {"labels": None, "note": NO_LABELS, "variants": []}
    system1 = system1_train_stage(ctx, inputs, labels)
    audits = [audit_stage(ctx, variant, inputs, samples, verdicts, system1, labels).value
              for variant, verdicts in curations]
    return {"labels": labels.describe(), "system1": "the untrained student's own System 1 prompt, greedy",
            "variants": audits}


def system1_train_stage(ctx: RunContext, inputs: Done, labels: AuditLabels) -> Done:
    """`audit/system1-train.jsonl`: System 1's greedy answer on each labelled training input."""
    student = ctx.recipe.student
    wanted = [e.id for e in inputs.value if e.id in labels.targets]
    spec = AuditSystem1Spec(method=student.method, model=student.model, task=ctx.prompt_settings(),
                            asked=hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16])

    def compute() -> list[dict]:
        asked = set(wanted)
        examples = [e for e in inputs.value if e.id in asked]
        traces = ctx.run("audit: System 1 (greedy) on the labelled training inputs", ctx.program(spec.method),
                         examples, ctx.models.get(spec.model), temperature=0.0)
        return [{"id": t.example_id, "answer": t.answer, "truncated": t.truncated} for t in traces]

    return ctx.stage("audit:system1-train", "audit/system1-train.jsonl", spec=spec, inputs={"inputs": inputs},
                     codec=ROWS, compute=compute)


def audit_stage(ctx: RunContext, variant: Variant, inputs: Done, samples: SampleSet, verdicts: Done,
                system1: Done, labels: AuditLabels) -> Done:
    """`audit/VARIANT.json`: one curation's audit and threshold curves."""
    spec = AuditSpec(filters=list(variant.filters), first_sample_only=variant.first_sample_only,
                     task=ctx.prompt_settings(), labels=labels.digest, label_source=labels.source)
    used = [(name, False) for name in variant.sources] + [(name, True) for name in variant.sources
                                                           if variant.needs_perturbed]

    def compute() -> dict:
        task = ctx.task
        examples = {e.id: e for e in inputs.value}
        judge = Judge(labels.targets, task.score)
        answers = {row["id"]: row["answer"] for row in system1.value}
        result = audit_verdicts(verdicts.value, judge, answers,
                                question=lambda example_id: _question(task, examples[example_id]))
        reason = no_curve_reason(spec.filters)
        curves = []
        if reason is None:
            curated = {v.example_id: decision(v) for v in verdicts.value}
            curves = threshold_curves(spec.filters, lambda: _chunks(variant, samples, list(examples)),
                                      lambda other: _filter_inputs(task, other), judge, curated)
        ctx.console.print(f"  audit {variant.name}: " + _headline(result))
        return {"variant": variant.name, "filter": variant.filter, **result, "curves": curves, "no_curve": reason}

    return ctx.stage(f"audit:{variant.name}", f"audit/{variant.name}.json", spec=spec, codec=JSON, compute=compute,
                     inputs={"verdicts": verdicts, "system1": system1, "inputs": inputs,
                             **{f"samples:{n}{'.perturbed' if p else ''}": samples[(n, p)] for n, p in used}})


def _chunks(variant: Variant, samples: SampleSet, ids: list[str]) -> Iterator[Chunk]:
    """The variant's outputs a chunk of inputs at a time, as curation read them (with the perturbed
    inputs' outputs beside them for the perturbation filter)."""
    perturbed = Outputs(variant, samples, perturbed=True).chunks(ids, CHUNK) if variant.needs_perturbed else None
    for grouped in Outputs(variant, samples).chunks(ids, CHUNK):
        yield grouped, (next(perturbed) if perturbed is not None else None)
    if perturbed is not None:
        next(perturbed, None)


def _filter_inputs(task: Task, perturbed) -> FilterInputs:
    """What the filters read as curation gave it to them; one chunk's embedder remembers each batch
    of rationales it embedded, so a curve's many points embed each batch once (and the same batch
    as curation, so the diverse pair it picks at the recipe's threshold is curation's)."""
    from s2distill.curation.embed import load_embedder

    remembered: dict = {}

    def embedder(name: str):
        def embed(texts):
            key = (name, tuple(texts))
            if key not in remembered:
                remembered[key] = load_embedder(name)(list(texts))
            return remembered[key]
        return embed

    return FilterInputs(normalize=task.normalize, map_back=task.map_back, perturbed=lambda: perturbed,
                        compose=None, embed=embedder)


def _question(task: Task, example: Example) -> str:
    try:
        return task.question(example)
    except Exception:  # a task whose question cannot be built from the row: its raw inputs
        return json.dumps(example.inputs, ensure_ascii=False)


def _headline(result: dict) -> str:
    if not result["kept_labelled"]:
        return f"kept {result['kept']} of {result['inputs']} inputs, none of them labelled"
    return (f"{100 * result['precision']:.1f}% of {result['kept_labelled']} kept labelled inputs right, "
            f"{result['rescued']} rescued, {result['poisoned']} poisoned")
