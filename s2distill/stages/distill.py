"""Each curriculum step of a variant: its training set (after the teacher's compression, for a
compressed step), the student trained on it from the previous step's weights, and its weights'
prompt template. Evaluation of the trained student is in stages/evaluate.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from s2distill.compress import compression_program, rewritten_rationales
from s2distill.configbase import identity
from s2distill.distill import evaluated_as, pairs_of_verdicts
from s2distill.runfolder import read_json, write_json
from s2distill.stages.context import RunContext, sampling_identity
from s2distill.stages.folder import FOLDER, ROWS, STREAMED_ROWS, Done
from s2distill.stages.outputs import Outputs
from s2distill.student import PROMPT_FILE, prompt_spec, student_program
from s2distill.variants import Variant

TRAIN_FINGERPRINT = "train_fingerprint.json"  # beside a training's checkpoints: which config they belong to


@dataclass(frozen=True)
class Step:
    """One curriculum step of a variant: its place and its format."""

    variant: Variant
    index: int  # 1-based
    fmt: str

    @property
    def base(self) -> str:
        return f"{self.variant.name}/stage{self.index}-{self.fmt}"

    @property
    def label(self) -> str:
        """As the report names it: `2/3 compressed_reasoning`, or the format for a single step."""
        total = len(self.variant.stages)
        return f"{self.index}/{total} {self.fmt}" if total > 1 else self.fmt


@dataclass(frozen=True)
class Trained:
    """A trained step: its weights (a Done whose value is the folder) and how its student answers."""

    weights: Done
    multiline: bool
    pairs: int
    task_prefix: str = ""  # Distilling Step-by-Step's "[label] " (distill.evaluated_as)


def student_program_for(ctx: RunContext, trained: Trained, task=None):
    """How a distilled student is asked (`student.student_program`, which `predict` uses too)."""
    return student_program(task or ctx.task, ctx.recipe.student.method, multiline=trained.multiline,
                           reasoning_max_tokens=ctx.recipe.distill.reasoning_max_tokens, task_prefix=trained.task_prefix)


def set_stage(ctx: RunContext, step: Step, inputs: Done, verdicts: Done, sampled: Outputs,
              rewrites: Done | None) -> Done:
    """The step's training pairs in TRL's prompt–completion format (conversational for a chat student):
    `distill/BASE.jsonl`, built input by input as the verdicts and the samples are read back
    (`sampled`: the variant's outputs, stages/outputs.py) and written as they come."""
    recipe = ctx.recipe
    rewritten = rewritten_rationales(rewrites.value) if rewrites else None

    def compute() -> Iterator[dict]:
        method = recipe.student.method
        return pairs_of_verdicts(step.fmt, ctx.task, inputs.value, sampled.kept(verdicts.value), shots=method.shots,
                                 max_per_input=recipe.distill.max_per_input, rewritten=rewritten,
                                 question_suffix=method.question_suffix, prompt_format=method.prompt_format)

    return ctx.folder.stage(
        f"distill:{step.base}", f"distill/{step.base}.jsonl", codec=STREAMED_ROWS, compute=compute,
        made_from={"format": step.fmt, "student_method": identity(recipe.student.method),
                   "max_per_input": recipe.distill.max_per_input, "task": ctx.prompt_settings(),
                   "inputs": {"curation": verdicts.fingerprint, "inputs": inputs.fingerprint,
                              **({"rewrites": rewrites.fingerprint} if rewrites else {})}},
    )


def compress_stage(ctx: RunContext, step: Step, inputs: Done, verdicts: Done, sampled: Outputs,
                   previous: Trained, earlier: Done | None) -> Done:
    """HaRD's compression: the previous step's student answers the kept inputs, then the refiner
    teacher rewrites each kept rationale after reading that answer; a second compression step
    rewrites the earlier rewrite (TwT Table 3), not the original again. The kept outputs are held
    (the refiner's program reads them all), the others are not."""
    recipe = ctx.recipe
    refiner = recipe.teacher(recipe.distill.refiner)

    how = recipe.distill.compression

    def compute():
        kept = {verdict.example_id: traces for verdict, traces in sampled.kept(verdicts.value) if verdict.kept}
        cap = recipe.distill.max_per_input
        kept = {i: ts[:cap] if cap else ts for i, ts in kept.items()}
        todo = [e for e in inputs.value if e.id in kept]
        outputs = None
        if how == "teacher_guided":
            student = ctx.models.get(recipe.student.model, adapter=previous.weights.value)
            answered = ctx.run("previous stage's student on the kept inputs",
                               student_program_for(ctx, previous), todo, student, temperature=0.0)
            ctx.models.release(student)
            outputs = {t.example_id: t.last_output for t in answered}
        program = compression_program(ctx.task, kept, outputs, prompt_format=refiner.method.prompt_format,
                                      rationales=rewritten_rationales(earlier.value) if earlier else None,
                                      ratio=recipe.distill.compression_ratio if how == "fixed_length" else None)
        if how == "fixed_length":  # no model: the cut is a function of the rationale alone
            refined = [program(example, None) for example in todo]
        else:
            refined = ctx.run(f"{refiner.name}: {how.replace('_', '-')} compression of the rationales", program, todo,
                              ctx.models.get(refiner.model), temperature=0.0)
        rows = [{"id": t.example_id, "student": (outputs or {}).get(t.example_id), "rewrites": t.meta["rewrites"]}
                for t in refined]
        accepted = sum(r["accepted"] for row in rows for r in row["rewrites"])
        total = sum(len(row["rewrites"]) for row in rows)
        ctx.console.print(f"  {accepted} of {total} rewrites accepted (the others keep the full rationale)")
        return rows

    return ctx.folder.stage(
        f"compress:{step.base}", f"distill/{step.base}.rewrites.jsonl", codec=ROWS, compute=compute,
        made_from={"compression": how, **({"ratio": recipe.distill.compression_ratio} if how == "fixed_length"
                                             else {"refiner": sampling_identity(refiner)}),
                   "student_method": identity(recipe.student.method),
                   "max_per_input": recipe.distill.max_per_input,
                   "reasoning_max_tokens": recipe.distill.reasoning_max_tokens,
                   "inputs": {"curation": verdicts.fingerprint,
                              **({"previous weights": previous.weights.fingerprint} if how == "teacher_guided" else {}),
                              **({"earlier rewrites": earlier.fingerprint} if earlier else {})}},
    )


def train_stage(ctx: RunContext, step: Step, pairs: Done, previous: Trained | None) -> Trained:
    """The student fine-tuned on the step's pairs, from the previous step's weights:
    `student/VARIANT/stageK/weights`, with the prompt template `predict` and `export` read."""
    recipe = ctx.recipe
    model = ctx.trainable_student()
    artifact = f"student/{step.variant.name}/stage{step.index}/weights"
    multiline, task_prefix = evaluated_as(pairs.value)
    made_from = {"train": identity(recipe.train), "model": identity(model), "format": step.fmt,
                 "inputs": {"set": pairs.fingerprint, **({"previous weights": previous.weights.fingerprint}
                                                         if previous else {})}}

    def compute() -> Path:
        from s2distill.stages.folder import fingerprint
        from s2distill.train import train_student

        weights = ctx.folder.path(artifact)
        out_dir = weights.parent
        _drop_stale_checkpoints(out_dir, fingerprint(made_from))
        start = previous.weights.value if previous else None
        mode = recipe.train.mode
        train_set = list(pairs.value)  # training holds its set; the stages before it do not
        ctx.console.print(f"  fine-tuning ({mode}) on {len(train_set)} {step.fmt} pairs"
                          + (" from the previous stage" if start else ""))
        if mode == "full":
            train_student(train_set, start or model.weights_dir(), out_dir, recipe.train)
        else:
            train_student(train_set, model.weights_dir(), out_dir, recipe.train, init_adapter=start)
        write_json(weights / PROMPT_FILE, prompt_spec(recipe, ctx.task, multiline=multiline, task_prefix=task_prefix))
        return weights

    weights = ctx.folder.stage(f"train:{step.variant.name}/stage{step.index}", artifact, codec=FOLDER,
                               compute=compute, made_from=made_from)
    return Trained(weights, multiline, len(pairs.value), task_prefix)


def _drop_stale_checkpoints(out_dir: Path, fingerprint: str) -> None:
    """An interrupted training resumes from its checkpoints only if they belong to this config."""
    marker = out_dir / TRAIN_FINGERPRINT
    if marker.exists() and read_json(marker).get("fingerprint") != fingerprint:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    write_json(marker, {"fingerprint": fingerprint})
