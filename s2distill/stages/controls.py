"""The set stage of the controls `gold` and `random_targets`: the inputs the recipe's curation kept,
with targets that are not their kept outputs (s2distill/distill/controls.py builds them).

The variant's training and evaluation are every variant's (stages/distill.py, stages/evaluate.py).
`gold` is the one stage of a run that reads the train labels: here, after curation, when its spec is
built (the labels' digest is part of its fingerprint) and its pairs are made. Nothing it reads flows
back into sampling or curation, which run on unlabeled inputs alone.
"""

from __future__ import annotations

from s2distill.distill.controls import GOLD, gold_pairs, labels_digest, random_target_pairs
from s2distill.stages.context import RunContext
from s2distill.stages.distill import Step
from s2distill.stages.folder import STREAMED_ROWS, Done
from s2distill.stages.outputs import Outputs
from s2distill.stages.specs import ControlSetSpec


def control_set_stage(ctx: RunContext, step: Step, inputs: Done, verdicts: Done, sampled: Outputs) -> Done:
    """`distill/VARIANT/stage1-answer_only.jsonl` of a control, from the kept-by variant's `verdicts`
    (and, for random_targets, the kept outputs `sampled` whose distilled targets it permutes). One
    pair per kept input, whatever `distill.max_per_input` (not in its spec: not read)."""
    recipe, variant = ctx.recipe, step.variant
    method = recipe.student.method
    gold = variant.targets == GOLD
    labeled = ctx.task.labeled("train") if gold else []  # the labels: gold's, and nobody else's
    labels = {item.example.id: item.target for item in labeled}
    spec = ControlSetSpec(format=step.fmt, shots=method.shots, question_suffix=method.question_suffix,
                          prompt_format=method.prompt_format, max_per_input=None, task=ctx.prompt_settings(),
                          targets=variant.targets, labels=labels_digest(labeled) if gold else None,
                          seed=None if gold else recipe.train.seed)

    def compute():
        settings = {"shots": spec.shots, "question_suffix": spec.question_suffix, "prompt_format": spec.prompt_format}
        if gold:
            return gold_pairs(ctx.task, inputs.value, verdicts.value, labels, **settings)
        return iter(random_target_pairs(ctx.task, inputs.value, sampled.kept(verdicts.value), seed=spec.seed,
                                        fmt=spec.format, **settings))

    read = {"curation": verdicts, "inputs": inputs, **({} if gold else sampled.samples_read())}
    return ctx.stage(f"distill:{step.base}", f"distill/{step.base}.jsonl", spec=spec, codec=STREAMED_ROWS,
                     compute=compute, inputs=read)
