"""`s2distill run`: a System 2 distillation as a straight line of stages over one run folder.

    inputs -> samples (each source, N per input) -> curation -> per curriculum step:
              [compression ->] training set -> training -> evaluation      (for each variant)
           -> System 1 and System 2 evaluations -> [the cascade's threshold, on validation inputs ->]
              curation audit (against the train labels) -> report

Each stage is a function of explicit inputs (s2distill/stages/) that writes one fingerprinted
artifact (s2distill/stages/folder.py): a rerun keeps what is current and redoes only the stages
whose fingerprint changed, saying which and why. Model calls go through one completion cache
shared across run folders, so even a redone stage replays the samples it already paid for.

A batched teacher (lm/batch.py) answers on a later pass: a pass that leaves requests waiting
ends in `BatchPending`, its requests are submitted, and the run either waits for them and goes
through its stages again (what is done is kept) or stops with `BatchSubmitted`, for a rerun.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from s2distill.allocator import tune_allocator
from s2distill.artifacts import atomic_write_bytes
from s2distill.config.recipe import Recipe, RecipeError, runs_model_code
from s2distill.config.generation import wrap_for_executor
from s2distill.curation.hand_labels import read_hand_labels
from s2distill.lm.batch import BatchPending, BatchSubmitted, describe_rounds, wait_for_rounds
from s2distill.lm.cache import import_cache
from s2distill.models import LMFactory, Models, build_from_config
from s2distill.paths import completion_cache
from s2distill.report.row import Row
from s2distill.report.summary import curation_summary
from s2distill.runlock import lock_folder
from s2distill.sandbox import require_guard
from s2distill.stages.audit import audit_stages
from s2distill.stages.cascade import cascade_rows
from s2distill.stages.context import RunContext
from s2distill.stages.controls import control_set_stage
from s2distill.stages.curate import curate_stage, variant_traces
from s2distill.stages.distill import Step, Trained, compress_stage, set_stage, train_stage
from s2distill.stages.soft import soft_stage
from s2distill.stages.evaluate import student_rows, system_rows, untrained_row
from s2distill.stages.folder import RunFolder
from s2distill.stages.report import write_report
from s2distill.stages.sampling import inputs_stage, samples_stage
from s2distill.distill.variants import Variant, plan_variants, sampled_once


def default_cache(recipe: Recipe) -> Path:
    """The recipe's `cache:`, else `S2DISTILL_CACHE`, else the user cache shared by every run on this machine."""
    return Path(recipe.cache).expanduser() if recipe.cache else completion_cache()


class Pipeline:
    """One run of a recipe into one folder: `Pipeline(recipe, out).run()`.

    `redo` names stages to redo even when current (`train`, or one: `train:distilled/stage1`);
    `lm_factory` builds each model's LM from its config (tests pass one that injects faults)."""

    def __init__(self, recipe: Recipe, out: str | Path, *, console: Console | None = None, progress: bool = True,
                 redo: Sequence[str] = (), lm_factory: LMFactory | None = None):
        tune_allocator()  # the Python API's runs too (s2distill/allocator.py); once per process
        self.recipe = recipe
        self.out = Path(out)
        self.console = console or Console(stderr=True)
        self.show_progress = progress
        self.redo = tuple(redo)
        self.variants = plan_variants(recipe)
        self.ctx = RunContext.open(recipe, RunFolder(self.out, self.console, redo=self.redo),
                                   Models(default_cache(recipe), factory=lm_factory or executor_factory(recipe),
                                          batch_dir=self.out / "batches", say=self._say),
                                   console=self.console, show_progress=progress)
        self.final_student: tuple[Step, Trained] | None = None  # the distilled variant's last step, once trained
        self._check(self.ctx)  # what can be refused is refused before the folder is touched

    def _say(self, text: str) -> None:
        """A line from a model's machinery (a batch submitted), printed as it is: no markup."""
        self.console.print(text, markup=False, highlight=False)

    def run(self) -> dict[str, Any]:
        """Run every stage not current; return the report (also written as report.json/.md/.html)."""
        started = time.perf_counter()
        with self._folder_held():
            self.ctx.folder.load_timings()
            _import_legacy_cache(self.out, self.ctx.models.cache_path, self.console)
            with self.ctx.models:
                _record_recipe(self.out, self.recipe)
                while True:
                    try:
                        return self._stages(started)
                    except BatchPending as pending:  # a batched teacher's requests: submitted, then waited for
                        self._batch_round(pending)
                        self.ctx.folder.new_pass()

    def curate_only(self) -> list[dict]:
        """The first stages alone (the inputs, every source's samples, every curation): the pilot of
        `run --estimate` (s2distill/estimate.py). Returns the curation summaries."""
        ctx = self.ctx
        with self._folder_held(), ctx.models:
            inputs = inputs_stage(ctx)
            samples, pending = self._sample(inputs)
            if pending:
                raise BatchPending.of_all(pending)
            curations = {v.curated.name: v.curated for v in self.variants}.values()
            return [curation_summary(variant, curate_stage(ctx, variant, inputs, samples).value,
                                     variant_traces(variant, samples).tallies()) for variant in curations]

    @contextmanager
    def _folder_held(self) -> Iterator[None]:
        """The run folder locked for this invocation (one run at a time in a folder), after the
        sandbox's guard is checked where the model's code will run (before any work)."""
        if runs_model_code(self.recipe, self.ctx.task):
            require_guard(self.ctx.task.sandbox)
        lock = lock_folder(self.out)
        try:
            yield
        finally:
            lock.release()

    def _sample(self, inputs) -> tuple[dict, list[BatchPending]]:
        """Every source's samples stage (one sampling serves every variant), and the `BatchPending`
        of those whose batched teacher has answers to wait for: the others still run, so their first
        requests go in the same batch round."""
        logprobs = any(v.needs_logprobs for v in self.variants)
        samples, pending = {}, []
        for name, perturbed in _sources(self.variants):
            try:
                samples[(name, perturbed)] = samples_stage(self.ctx, name, inputs, perturbed=perturbed,
                                                           logprobs=logprobs, once=sampled_once(self.variants, name))
            except BatchPending as exc:
                pending.append(exc)
        return samples, pending

    def _stages(self, started: float) -> dict[str, Any]:
        """One pass over every stage; raises `BatchPending` when a batched model has answers to wait for."""
        recipe, ctx = self.recipe, self.ctx
        inputs = inputs_stage(ctx)
        samples, pending = self._sample(inputs)
        if pending:
            try:  # the System 1 and 2 evaluations need no samples: their first requests join the round
                system_rows(ctx)
            except BatchPending as exc:
                pending.append(exc)
            raise BatchPending.of_all(pending)
        rows, summaries, curated = [], [], {}
        for variant in self.variants:
            if variant.curated.name not in curated:  # a control trains on another variant's curation
                verdicts = curated[variant.curated.name] = curate_stage(ctx, variant.curated, inputs, samples)
                summaries.append(curation_summary(variant.curated, verdicts.value,
                                                  variant_traces(variant.curated, samples).tallies()))
            rows += self._distil(ctx, variant, inputs, samples, curated[variant.curated.name])
        rows = system_rows(ctx) + rows
        cascades = []  # the deployable student's cascade, from the evaluations just made
        if recipe.evaluate.cascade is not None and self.final_student is not None:
            combined, section = cascade_rows(ctx, *self.final_student)
            rows, cascades = rows + combined, [section]
        # the curation audit: the train labels, read after every curation
        curations = {v.curated.name: v.curated for v in self.variants}.values()  # a control reuses one
        audit = audit_stages(ctx, [(v, curated[v.name]) for v in curations], inputs, samples)
        for name in ctx.folder.unmatched_redo():
            self.console.print(f"[yellow]--redo {name}: this run has no such stage[/yellow]")
        report = write_report(ctx, rows, summaries, audit=audit, cascades=cascades,
                              invocation_seconds=time.perf_counter() - started)
        for line in report["truncation"]:  # truncation is never silent: the run's last words
            self.console.print(f"[yellow]warning[/yellow]: {escape(line)}")
        return report

    @staticmethod
    def count_inputs(recipe: Recipe) -> dict[str, int]:
        """How many training, test (every split) and validation inputs the recipe's run will have."""
        from s2distill.tasks import build_task

        task = build_task(recipe.task, data_root=recipe.data_root)
        tests = [task] + [build_task(config, data_root=recipe.data_root) for _, config in recipe.transfer_tasks()]
        cascade = recipe.evaluate.cascade
        return {"train": len(task.unlabeled("train")), "test": sum(len(t.labeled("test")) for t in tests),
                "validation": cascade.validation_size if cascade is not None else 0}

    def _batch_round(self, pending: BatchPending) -> None:
        """Submit what the pass left pending; wait for the rounds in flight as the models' `batch.wait`
        allows, or stop with `BatchSubmitted` (the rerun collects)."""
        batched = self.ctx.models.batched()
        submitted = [r for lm in batched for r in lm.submit()]
        waiting = [lm for lm in batched if lm.in_flight()]
        if not waiting:  # cannot happen: a deferred request is pending or in flight
            raise RuntimeError(f"{pending}, but no batch is pending or in flight")
        wait = min(lm.settings.wait for lm in waiting)
        self.console.print(f"  {pending}: {describe_rounds(waiting, submitted)}", markup=False, highlight=False)
        if wait <= 0 or not wait_for_rounds(waiting, wait=wait, poll=min(lm.settings.poll for lm in waiting),
                                            console=self.console, progress=self.show_progress):
            raise BatchSubmitted(f"submitted; rerun to collect: {describe_rounds(waiting, submitted)}. Run the same "
                                 "command again to collect the answers and go on (finished stages are kept)")
        for lm in batched:
            lm.new_pass()

    def _check(self, ctx: RunContext) -> None:
        """A recipe this task cannot run."""
        if any(v.needs_perturbed for v in self.variants) and not ctx.task.perturbable:
            raise RecipeError(f"curation.filter perturbation: task {ctx.task.name} has no answer-preserving "
                              "perturbation; use self_consistency, usc or none")
        if ctx.recipe.generation.executor != "local" and any(
                getattr(t.model, "batch", None) is not None for t in ctx.recipe.teachers):
            raise RecipeError("teacher.model.batch sends the teacher's requests as batches from this process: "
                              "it does not run on generation.executor ray; drop one of them")
        if ctx.recipe.curation.audit_labels is not None:  # a bad hand-labels file, before any work
            read_hand_labels(ctx.recipe.curation.audit_labels, ctx.task.unlabeled("train"), ctx.task.score)
        cascade = ctx.recipe.evaluate.cascade
        if cascade is not None and not ctx.task.has_validation:
            raise RecipeError(f"evaluate.cascade: task {ctx.task.name} has no validation split to choose the threshold "
                              "on (last_letters and coin_flip have one); drop evaluate.cascade")
        if cascade is not None and not {"system2", "distilled"} <= set(ctx.recipe.evaluate.systems):
            raise RecipeError("evaluate.cascade combines the distilled student's and System 2's evaluations: "
                              "evaluate.systems must hold both")
        if any(v.targets == "gold" for v in self.variants) and not ctx.task.has_labels:
            raise RecipeError(f"baselines: gold trains on the train labels, and task {ctx.task.name} has none "
                              "(a custom task names its label field with `label:`); drop gold from baselines")

    def _distil(self, ctx: RunContext, variant: Variant, inputs, samples, verdicts) -> list[Row]:
        """Every curriculum step of one variant: its set, its training (from the previous step's
        weights), its evaluation. A step with no pairs ends the variant with an untrained row. The
        variant's outputs are read back from the samples input by input, as each stage needs them."""
        traces = variant_traces(variant, samples)
        rows, previous, rewrites = [], None, None
        for index, fmt in enumerate(variant.stages, 1):
            step = Step(variant, index, fmt)
            if fmt == "compressed_reasoning":
                rewrites = compress_stage(ctx, step, inputs, verdicts, traces, previous, rewrites)
            if variant.targets == "outputs":
                pairs = set_stage(ctx, step, inputs, verdicts, traces, rewrites)
            else:  # gold labels or random targets (distill/controls.py)
                pairs = control_set_stage(ctx, step, inputs, verdicts, traces)
            if variant.soft and pairs.value:  # the teacher's distributions over the pairs' targets
                pairs = soft_stage(ctx, step, inputs, verdicts, traces, pairs)
            if not pairs.value:  # reported, not fatal: the other variants and the samples are worth keeping
                ctx.console.print(f"  [yellow]{variant.name}: no training pairs (curation kept no input); "
                                  "not trained[/yellow]")
                rows.append(untrained_row(ctx, step))
                break
            previous = train_stage(ctx, step, pairs, previous)
            rows += student_rows(ctx, step, previous)
            if variant.name == "distilled" and index == len(variant.stages):
                self.final_student = (step, previous)
        return rows


def executor_factory(recipe: Recipe) -> LMFactory:
    """Models built where `generation.executor` says: here, or as a pool of Ray actors each holding one."""
    if recipe.generation.executor == "local":
        return build_from_config
    return lambda config, *, adapter=None: wrap_for_executor(recipe.generation, config, adapter=adapter)


def _sources(variants: Sequence[Variant]) -> list[tuple[str, bool]]:
    """Every (source, perturbed) whose samples some variant curates, in first-use order."""
    needed: dict[tuple[str, bool], None] = {}
    for variant in variants:
        for name in variant.sources:
            needed[(name, False)] = None
            if variant.needs_perturbed:
                needed[(name, True)] = None
    return list(needed)


def _import_legacy_cache(out: Path, cache: Path, console: Console) -> None:
    """A run folder from before caches were shared kept its own `cache.sqlite`: its completions
    join the shared cache once (the file is then renamed), so redone stages replay them."""
    legacy = out / "cache.sqlite"
    if legacy.is_file() and legacy.resolve() != cache.resolve():
        added = import_cache(legacy, cache)
        legacy.rename(legacy.with_name("cache.sqlite.imported"))
        console.print(f"  {added} completions of {legacy} joined the shared cache {cache}")


def _record_recipe(out: Path, recipe: Recipe) -> None:
    """The recipe of the latest invocation, for people (each artifact's seal says what it was made from)."""
    atomic_write_bytes(out / "recipe.yaml", yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=True).encode())
