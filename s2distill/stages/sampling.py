"""The first stages: the unlabeled training inputs, and each source's N sampled System 2 runs."""

from __future__ import annotations

import hashlib
import json

from s2distill.stages.context import RunContext
from s2distill.stages.folder import EXAMPLES, TRACES, Done
from s2distill.stages.specs import InputsSpec, SampleSpec


def inputs_stage(ctx: RunContext) -> Done:
    """The training inputs, without labels (generation and curation never see one). Their
    fingerprint is their content: a recipe change that leaves them as they are redoes nothing."""
    examples = ctx.task.unlabeled("train")
    content = hashlib.sha256("".join(json.dumps({"id": e.id, "inputs": e.inputs}, sort_keys=True) + "\n"
                                     for e in examples).encode()).hexdigest()
    return ctx.stage("inputs", "inputs/train.jsonl", spec=InputsSpec(content=content), inputs={},
                     compute=lambda: examples, codec=EXAMPLES)


def samples_stage(ctx: RunContext, name: str, inputs: Done, *, perturbed: bool = False,
                  logprobs: bool = False, once: bool = False) -> Done:
    """N sampled runs of a source's program per input (on the answer-preserving perturbation of
    each input when `perturbed`): `samples/NAME[.perturbed].jsonl`, in (input, sample) order, read
    back by later stages input by input (a `Rows`, never a list). `logprobs`: every call records
    its completion's log-probability (a filter reads it: TwT Table 5). `once`: one sample per input
    (only the first is read: `variants.sampled_once`); sample 0 is the same either way."""
    source = ctx.source(name)
    if once:
        source = source.model_copy(update={"samples": 1})
    spec = SampleSpec(source=source, task=ctx.prompt_settings(), perturbed=perturbed, logprobs=logprobs)

    def compute():
        source = spec.source
        examples = [ctx.task.perturb(e) for e in inputs.value] if spec.perturbed else inputs.value
        label = f"{name} ({source.method.name}{', perturbed inputs' if spec.perturbed else ''}) × {source.samples} samples"
        for trace in ctx.stream(label, ctx.program(source.method), examples, ctx.models.get(source.model),
                                samples=source.samples, temperature=source.temperature, top_p=source.top_p,
                                seed=source.seed, logprobs=spec.logprobs):
            trace.teacher = source.name
            yield trace  # written as it comes, in (input, sample) order: none are held (stages/outputs.py)

    suffix = ".perturbed" if perturbed else ""
    return ctx.stage(f"samples:{name}{suffix}", f"samples/{name}{suffix}.jsonl", spec=spec, inputs={"inputs": inputs},
                     codec=TRACES, compute=compute)
