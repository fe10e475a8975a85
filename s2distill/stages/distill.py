"""Each curriculum step of a variant: its training set (after the teacher's compression, for a
compressed step), the student trained on it from the previous step's weights, and its weights'
prompt template. Evaluation of the trained student is in stages/evaluate.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from s2distill.allocator import give_back_memory
from s2distill.artifacts import read_json, write_json
from s2distill.distill.compress import compression_program, rewrite_counts, rewritten_rationales
from s2distill.distill.pairs import RESPONSE_FORMATS, evaluated_as, pairs_of_verdicts
from s2distill.distill.variants import Variant
from s2distill.stages.context import RunContext
from s2distill.stages.folder import FOLDER, ROWS, STREAMED_ROWS, Done
from s2distill.stages.outputs import Outputs
from s2distill.stages.soft import agreement, soft_train_spec
from s2distill.stages.specs import CompressSpec, SetSpec, StudentProgram, TrainSpec
from s2distill.student.prompt import PROMPT_FILE, prompt_spec, student_program
from s2distill.training.sft import frozen_weights_dtype

TRAIN_FINGERPRINT = "train_fingerprint.json"  # beside a training's checkpoints: which config they belong to
# The saved prompt file's keys that the train spec records otherwise (the model and the training
# mode, by their identity: without runtime fields) or that only locate the task's data and name its
# splits: the student learns the same from either (its training pairs' fingerprint records the inputs).
UNFINGERPRINTED_PROMPT_KEYS = ("task", "data_dir", "student_model", "train_mode")


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
    def train_name(self) -> str:
        """Its training stage's name (timings.json, the stage log)."""
        return f"train:{self.variant.name}/stage{self.index}"

    @property
    def soft_name(self) -> str:
        """A soft_labels step's teacher-pass stage's name (stages/soft.py)."""
        return f"soft:{self.base}"

    @property
    def label(self) -> str:
        """As the report names it: `2/3 compressed_reasoning`, or the format for a single step."""
        total = len(self.variant.stages)
        return f"{self.index}/{total} {self.fmt}" if total > 1 else self.fmt


@dataclass(frozen=True)
class Trained:
    """A trained step: its weights (a Done whose value is the folder) and how its student answers."""

    weights: Done
    program: StudentProgram
    pairs: int
    soft_targets: dict | None = None  # soft_labels: its teacher's distributions against the targets (stages/soft.py)


def student_program_for(program: StudentProgram, task):
    """How a distilled student is asked (`student.prompt.student_program`, which `predict` uses too)."""
    return student_program(task, program.method, multiline=program.multiline,
                           reasoning_max_tokens=program.reasoning_max_tokens, task_prefix=program.task_prefix)


def set_stage(ctx: RunContext, step: Step, inputs: Done, verdicts: Done, sampled: Outputs,
              rewrites: Done | None) -> Done:
    """The step's training pairs in TRL's prompt–completion format (conversational for a chat student):
    `distill/BASE.jsonl`, built input by input as the verdicts and the samples are read back
    (`sampled`: the variant's outputs, stages/outputs.py) and written as they come."""
    recipe = ctx.recipe
    method = recipe.student.method
    spec = SetSpec(format=step.fmt, shots=method.shots, question_suffix=method.question_suffix,
                   prompt_format=method.prompt_format, max_per_input=recipe.distill.max_per_input,
                   task=ctx.prompt_settings())
    rewritten = rewritten_rationales(rewrites.value) if rewrites else None

    def compute() -> Iterator[dict]:
        return pairs_of_verdicts(spec.format, ctx.task, inputs.value, sampled.kept(verdicts.value), shots=spec.shots,
                                 max_per_input=spec.max_per_input, rewritten=rewritten,
                                 question_suffix=spec.question_suffix, prompt_format=spec.prompt_format)

    return ctx.stage(f"distill:{step.base}", f"distill/{step.base}.jsonl", spec=spec, codec=STREAMED_ROWS,
                     compute=compute, inputs={"curation": verdicts, "inputs": inputs, "rewrites": rewrites,
                                              **sampled.samples_read()})


def compress_stage(ctx: RunContext, step: Step, inputs: Done, verdicts: Done, sampled: Outputs,
                   previous: Trained, earlier: Done | None) -> Done:
    """HaRD's compression: the previous step's student answers the kept inputs, then each kept
    rationale's own teacher (or the one `distill.refiner`) rewrites it after reading that answer
    (the reading and its quotes: s2distill/distill/compress.py); a second compression step
    rewrites the earlier rewrite (TwT Table 3), not the original again. Each refining teacher's
    model gets its own batch. The kept outputs are held (the refiners' programs read them all),
    the others are not."""
    recipe = ctx.recipe
    how = recipe.distill.compression
    fixed = how == "fixed_length"
    named = recipe.distill.refiner
    sources = step.variant.sources
    refiner = refiners = None
    if not fixed and named is not None:  # one teacher rewrites every rationale (a departure)
        refiner = recipe.teacher(named)
    elif not fixed and len(sources) == 1:  # one teacher, its own refiner: the spec earlier runs were made with
        refiner = _refiner_of(recipe, sources[0])
    elif not fixed:  # TwT: each teacher rewrites its own
        refiners = {source: _refiner_of(recipe, source) for source in sources}
    spec = CompressSpec(compression=how, ratio=recipe.distill.compression_ratio if fixed else None,
                        refiner=refiner, refiners=refiners,
                        rewrite_max_tokens=None if fixed else recipe.distill.rewrite_max_tokens,
                        student_method=recipe.student.method, max_per_input=recipe.distill.max_per_input,
                        reasoning_max_tokens=recipe.distill.reasoning_max_tokens, task=ctx.prompt_settings(),
                        student_model=recipe.student.model if how == "teacher_guided" else None)

    def compute():
        kept = {verdict.example_id: traces for verdict, traces in sampled.kept(verdicts.value) if verdict.kept}
        cap = spec.max_per_input
        kept = {i: ts[:cap] if cap else ts for i, ts in kept.items()}
        todo = [e for e in inputs.value if e.id in kept]
        outputs = None
        if how == "teacher_guided":
            student = ctx.models.get(spec.student_model, adapter=previous.weights.value)
            answered = ctx.run("previous stage's student on the kept inputs",
                               student_program_for(previous.program, ctx.task), todo, student, temperature=0.0)
            ctx.models.release(student)
            outputs = {t.example_id: t.last_output for t in answered}
        earlier_rationales = rewritten_rationales(earlier.value) if earlier else None
        done: dict[tuple[str, str, int], dict] = {}  # (input, teacher, sample) -> its rewrite
        if how == "fixed_length":  # no model: the cut is a function of the rationale alone
            program = compression_program(ctx.task, kept, None, prompt_format="fewshot",
                                          rationales=earlier_rationales, ratio=spec.ratio)
            refined = [program(example, None) for example in todo]
        else:
            refined = []
            for teacher, theirs in spec.refining():
                mine = {i: [t for t in ts if theirs is None or t.teacher in theirs] for i, ts in kept.items()}
                mine = {i: ts for i, ts in mine.items() if ts}
                whose = ("its own" if theirs == (teacher.name,) or set(sources) == {teacher.name}
                         else "every teacher's" if theirs is None else ", ".join(theirs) + "'s")
                program = compression_program(ctx.task, mine, outputs,
                                              prompt_format=getattr(teacher.method, "prompt_format", "fewshot"),
                                              max_tokens=spec.rewrite_max_tokens, rationales=earlier_rationales,
                                              refiner=teacher.name)
                refined += ctx.run(f"{teacher.name}: {how.replace('_', '-')} compression of {whose} rationales",
                                   program, [e for e in todo if e.id in mine], ctx.models.get(teacher.model),
                                   temperature=0.0)
        for trace in refined:  # none for a refiner call the server refused
            for r in trace.meta.get("rewrites", []):
                done[(trace.example_id, r["teacher"], r["sample"])] = r
        rows = [{"id": e.id, "student": (outputs or {}).get(e.id),
                 "rewrites": [done[k] for k in ((e.id, t.teacher, t.sample) for t in kept[e.id]) if k in done]}
                for e in todo]
        accepted = sum(r["accepted"] for row in rows for r in row["rewrites"])
        total = sum(len(row["rewrites"]) for row in rows)
        cut = sum(bool(r.get("truncated")) for row in rows for r in row["rewrites"])
        ctx.console.print(f"  {accepted} of {total} rewrites accepted (the others keep the full rationale)"
                          + (f"; {cut} rejected as truncated at max_tokens" if cut else ""))
        if not fixed:
            budget = f"distill.rewrite_max_tokens = {spec.rewrite_max_tokens}"
            for name, c in rewrite_counts(rows).items():
                rejected = [f"{c['truncated']} cut at their budget ({budget})" if c["truncated"] else "",
                            f"{c['not_shorter']} not shorter" if c["not_shorter"] else "",
                            f"{c['other']} otherwise rejected" if c["other"] else ""]
                ctx.console.print(f"    {name} rewrote {c['rewrites']}: {c['accepted']} accepted"
                                  + "".join(f", {r}" for r in rejected if r))
        return rows

    return ctx.stage(f"compress:{step.base}", f"distill/{step.base}.rewrites.jsonl", spec=spec, codec=ROWS,
                     compute=compute, inputs={"curation": verdicts, "inputs": inputs, **sampled.samples_read(),
                                              "previous weights": previous.weights if how == "teacher_guided" else None,
                                              "earlier rewrites": earlier})


def _refiner_of(recipe, source: str):
    """The teacher that rewrites `source`'s rationales by default: itself (a source that is no
    teacher, which no compressed variant has today, falls back to the first teacher)."""
    return next((t for t in recipe.teachers if t.name == source), recipe.teachers[0])


def train_stage(ctx: RunContext, step: Step, pairs: Done, previous: Trained | None) -> Trained:
    """The student fine-tuned on the step's pairs, from the previous step's weights:
    `student/VARIANT/stageK/weights`, with the prompt template `predict` and `export` read. A
    soft_labels step's pairs carry the teacher's distributions (stages/soft.py) and are learned
    through them."""
    recipe = ctx.recipe
    model = ctx.trainable_student()
    artifact = f"student/{step.variant.name}/stage{step.index}/weights"
    multiline, task_prefix = evaluated_as(pairs.value)
    if step.fmt in RESPONSE_FORMATS:  # whole responses: asked by its own method, which reads them whole
        multiline = False
    program = StudentProgram(method=recipe.student.method, multiline=multiline, task_prefix=task_prefix,
                             reasoning_max_tokens=recipe.distill.reasoning_max_tokens if multiline else None)
    saved_prompt = prompt_spec(recipe, ctx.task, multiline=multiline, task_prefix=task_prefix)
    unread = UNFINGERPRINTED_PROMPT_KEYS + (() if multiline else ("reasoning_max_tokens",))
    spec = TrainSpec(train=recipe.train, model=model, format=step.fmt,
                     prompt={k: v for k, v in saved_prompt.items() if k not in unread},
                     frozen_weights=frozen_weights_dtype(recipe.train),
                     soft=soft_train_spec(ctx) if step.variant.soft else None)
    inputs = {"set": pairs, "previous weights": previous.weights if previous else None}

    def compute() -> Path:
        from s2distill.stages.folder import fingerprint, made_from
        from s2distill.training.sft import train_student

        weights = ctx.folder.path(artifact)
        out_dir = weights.parent
        _drop_stale_checkpoints(out_dir, fingerprint(made_from(f"train:{step.base}", spec, inputs)))
        start = previous.weights.value if previous else None
        mode = spec.train.mode
        train_set = list(pairs.value)  # training holds its set; the stages before it do not
        ctx.models.release_local()  # the teacher's weights beside the student's doubled the memory
        soft_loss = spec.soft.model_dump() if spec.soft else None
        ctx.console.print(f"  fine-tuning ({mode}) on {len(train_set)} {spec.format} pairs"
                          + (" from the previous stage" if start else "")
                          + (" with the teacher's distributions as soft labels" if soft_loss else ""))
        if mode == "full":
            train_student(train_set, start or spec.model.weights_dir(), out_dir, spec.train, soft_loss=soft_loss)
        else:
            train_student(train_set, spec.model.weights_dir(), out_dir, spec.train, init_adapter=start,
                          soft_loss=soft_loss)
        # The trainer's objects hold each other (callbacks, accelerator, model) and go only at the
        # collector's next pass: the student's evaluation, loading the weights again, met them still
        # there (the AVX-512 machine's peak: docs/benchmarks.md). The trim then hands back the heap
        # training left free (0.3 GiB in float32: s2distill/allocator.py).
        give_back_memory()
        write_json(weights / PROMPT_FILE, saved_prompt)
        return weights

    weights = ctx.stage(step.train_name, artifact, spec=spec, inputs=inputs,
                        codec=FOLDER, compute=compute)
    return Trained(weights, program, len(pairs.value), agreement(pairs.value) if step.variant.soft else None)


def _drop_stale_checkpoints(out_dir: Path, fingerprint: str) -> None:
    """An interrupted training resumes from its checkpoints only if they belong to this config."""
    marker = out_dir / TRAIN_FINGERPRINT
    if marker.exists() and read_json(marker).get("fingerprint") != fingerprint:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    write_json(marker, {"fingerprint": fingerprint})
