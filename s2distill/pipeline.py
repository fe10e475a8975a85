"""`s2distill run`: the stages of a System 2 distillation, each writing its artifact to the run folder.

    inputs -> samples (each teacher, N per input) -> curation -> distill set -> train -> evaluate
                                          (one set, train and evaluation per curriculum stage)
           -> the same for each baseline -> System 1 / System 2 evaluation -> report

A finished stage is skipped on a rerun; an interrupted one starts again but its LM calls come
from the completion cache, so no completion is generated twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from s2distill.agreement import judge_program, outcome_without_judge, win_tie_loss, with_references
from s2distill.compress import compression_program, rewritten_rationales
from s2distill.config import ModelConfig, Recipe, RecipeError, StudentConfig, TeacherConfig, runs_model_code
from s2distill.curation import (
    composition_program,
    dual_criteria,
    no_filter,
    output_key,
    perturbation_consistency,
    self_consistency,
    usc_filter,
)
from s2distill.distill import answers_on_several_lines, distill_pairs, kept_traces
from s2distill.evaluate import majority_traces, score_traces
from s2distill.hardware import resolve_dtype
from s2distill.lm import LM, CachedLM, build_lm
from s2distill.methods import build_program, run_program
from s2distill.plot import plot_score_vs_tokens
from s2distill.progress import ProgressBar
from s2distill.provenance import evaluation_cost, provenance, teacher_spend
from s2distill.report import curation_summary, machine_info, render_markdown
from s2distill.report_html import write_html_report
from s2distill.runfolder import read_json, read_jsonl, sealed, write_json, write_jsonl
from s2distill.runlock import lock_folder
from s2distill.sandbox import describe_guard, require_guard
from s2distill.student import PROMPT_FILE, prompt_spec, student_program
from s2distill.tasks import Task, build_task
from s2distill.types import Example, Trace, Verdict
from s2distill.variants import SYSTEM1_SOURCE, Variant, plan_variants

SYSTEMS = ("system1", "system2", "distilled")


class Pipeline:
    """One run of a recipe into one folder."""

    def __init__(self, recipe: Recipe, out: str | Path, *, console: Console | None = None, progress: bool = True):
        self.recipe = recipe
        self.out = Path(out)
        self.console = console or Console(stderr=True)
        self.show_progress = progress
        data_root = Path(recipe.data_dir).expanduser() if recipe.data_dir else None
        self.task: Task = build_task(recipe.task, data_root=data_root)
        self.task.sandbox = recipe.sandbox.policy()  # how the model's code may run (PAL, MBPP)
        # The test splits: the recipe's own, then each `evaluate.transfer` split (label, task).
        self.test_sets: list[tuple[str, Task]] = [("", self.task)] + [
            (label, build_task(config, data_root=data_root)) for label, config in recipe.transfer_tasks()
        ]
        for _, task in self.test_sets:
            task.sandbox = self.task.sandbox
        self.variants = plan_variants(recipe)
        perturbable = type(self.task).perturb is not Task.perturb and getattr(self.task, "perturbable", True)
        if any(v.filter == "perturbation" for v in self.variants) and not perturbable:
            raise RecipeError(f"curation.filter perturbation: task {self.task.name} has no answer-preserving "
                              "perturbation; use self_consistency, usc or none")
        self.cache_path = Path(recipe.cache) if recipe.cache else self.out / "cache.sqlite"
        self._lms: dict[str, CachedLM] = {}
        self._samples_memo: dict[tuple[str, bool], list[Trace]] = {}
        self._released_stats: list = []  # LM statistics of students freed after their evaluation
        self.timings: dict[str, float] = {}

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every stage not yet done; return the report (also written as report.json/.md)."""
        started = time.perf_counter()
        if runs_model_code(self.recipe, self.task.name):
            require_guard(self.task.sandbox)  # before any work: model-written code needs a guard
        lock = lock_folder(self.out)  # one run at a time in a folder
        try:
            self._claim_folder()
            self.timings = read_json(self.out / "timings.json") if sealed(self.out / "timings.json") else {}
            examples = self._stage("inputs", "inputs/train.jsonl", self._inputs, _load_examples)
            summaries, rows = [], []
            if "system1" in self.recipe.evaluate.systems:
                student = self.recipe.student
                rows += self._evaluate_system("system1", student)
                rows += self._majority_rows("system1", "system1", student, lambda: self._lm(student.model))
                for method in self.recipe.evaluate.system1_prompts:  # baselines the distilled student must beat
                    rows += self._evaluate_system("system1", StudentConfig(model=student.model, method=method),
                                                  name=f"system1-{method.name}-{method.shots}shot")
            if "system2" in self.recipe.evaluate.systems:
                for teacher in self.recipe.teachers:
                    rows += self._evaluate_system("system2", teacher)
                    rows += self._majority_rows("system2", f"system2-{teacher.name}", teacher, lambda t=teacher: self._lm(t.model),
                                                extra={"teacher": teacher.name})
            for variant in self.variants:
                verdicts = self._curation(variant, examples)
                summaries.append(curation_summary(variant, verdicts, self._variant_traces(variant, examples), self.recipe))
                rows += self._distill(variant, examples, verdicts)
            return self._report(rows, summaries, invocation_seconds=time.perf_counter() - started)
        finally:
            for lm in self._lms.values():
                lm.close()
            lock.release()

    def _claim_folder(self) -> None:
        """Refuse to mix two different recipes' artifacts in one folder."""
        self.out.mkdir(parents=True, exist_ok=True)
        saved = self.out / "recipe.yaml"
        current = yaml.safe_dump(self.recipe.model_dump(mode="json"), sort_keys=True)
        if hasattr(self.task, "fingerprint"):  # the user's data files: a changed file is another run
            current += f"# data: {self.task.fingerprint()}\n"
        if saved.exists() and saved.read_text() != current:
            raise RecipeError(
                f"{self.out} holds a run of a different recipe or data (see {saved}); pick another --out, "
                "or delete the folder to start over"
            )
        if not saved.exists() and any((self.out / d).exists() for d in ("inputs", "samples", "curation", "distill", "eval")):
            raise RecipeError(f"{self.out} holds artifacts but no recipe.yaml, so what they were computed from is "
                              "unknown; pick another --out, or delete the folder to start over")
        saved.write_text(current)

    def _stage(self, name: str, artifact: str, compute: Callable[[], Any], load: Callable[[Path], Any] | None = None) -> Any:
        """Load the stage's artifact (a path relative to the run folder) if it exists; otherwise
        compute it (it writes the artifact) and time it."""
        path = self.out / artifact
        if sealed(path):
            return load(path) if load else None
        if path.exists():  # truncated, emptied or edited since it was written: never used
            self.console.print(f"[yellow]{artifact} does not match its seal (truncated or edited); redoing {name}[/yellow]")
        self.console.print(f"[bold]▶ {name}[/bold]")
        start = time.perf_counter()
        result = compute()
        self.timings[name] = round(time.perf_counter() - start, 1)
        write_json(self.out / "timings.json", self.timings)
        return result

    # -- inputs and samples ----------------------------------------------------------------------
    def _inputs(self) -> list[Example]:
        examples = self.task.unlabeled("train")  # no labels: generation and curation never see one
        write_jsonl(self.out / "inputs" / "train.jsonl", ({"id": e.id, "inputs": e.inputs} for e in examples))
        return examples

    def _source(self, name: str) -> TeacherConfig:
        """A teacher by name; `system1` is the student's own System 1, sampled like the first teacher."""
        if name != SYSTEM1_SOURCE:
            return self.recipe.teacher(name)
        first, student = self.recipe.teachers[0], self.recipe.student
        return TeacherConfig(name=SYSTEM1_SOURCE, model=student.model, method=student.method, samples=first.samples,
                             temperature=first.temperature, top_p=first.top_p, seed=first.seed)

    def _samples(self, name: str, examples: list[Example], *, perturbed: bool = False) -> list[Trace]:
        """N sampled runs of a source's program per input (on the perturbed inputs if asked)."""
        key = (name, perturbed)
        if key not in self._samples_memo:
            artifact = f"samples/{name}{'.perturbed' if perturbed else ''}.jsonl"
            label = f"samples:{name}{':perturbed' if perturbed else ''}"
            self._samples_memo[key] = self._stage(label, artifact, lambda: self._sample(name, examples, perturbed, artifact),
                                                  _load_traces)
        return self._samples_memo[key]

    def _sample(self, name: str, examples: list[Example], perturbed: bool, artifact: str) -> list[Trace]:
        source = self._source(name)
        inputs = [self.task.perturb(e) for e in examples] if perturbed else examples
        label = f"{name} ({source.method.name}{', perturbed inputs' if perturbed else ''}) × {source.samples} samples"
        with self._progress(label, len(inputs) * source.samples) as advance:
            traces = run_program(
                self._program(source.method), inputs, self._lm(source.model), samples=source.samples,
                temperature=source.temperature, top_p=source.top_p, seed=source.seed,
                workers=self.recipe.workers, max_failures=self.recipe.max_failures, on_trace=lambda _: advance(),
            )
        for trace in traces:
            trace.meta["teacher"] = name
        write_jsonl(self.out / artifact, (t.to_dict() for t in traces))
        return traces

    def _variant_traces(self, variant: Variant, examples: list[Example], *, perturbed: bool = False) -> list[Trace]:
        traces = [t for name in variant.sources for t in self._samples(name, examples, perturbed=perturbed)]
        return [t for t in traces if t.sample == 0] if variant.first_sample_only else traces

    # -- curation --------------------------------------------------------------------------------
    def _curation(self, variant: Variant, examples: list[Example]) -> list[Verdict]:
        artifact = "curation/verdicts.jsonl" if variant.name == "distilled" else f"curation/{variant.name}.jsonl"
        traces = self._variant_traces(variant, examples)  # outside the stage: sampling is a stage of its own
        perturbed = self._variant_traces(variant, examples, perturbed=True) if variant.filter == "perturbation" else []
        return self._stage(f"curation:{variant.name}", artifact,
                           lambda: self._curate(variant, examples, traces, perturbed, artifact),
                           lambda p: [Verdict(**row) for row in read_jsonl(p)])

    def _curate(self, variant: Variant, examples: list[Example], traces: list[Trace], perturbed: list[Trace],
                artifact: str) -> list[Verdict]:
        cfg, normalize = self.recipe.curation, self.task.normalize
        grouped = _by_input(examples, traces)
        if variant.filter == "self_consistency":
            verdicts = self_consistency(grouped, min_fraction=cfg.min_fraction, normalize=normalize, vote=cfg.vote)
        elif variant.filter == "perturbation":
            verdicts = perturbation_consistency(grouped, _by_input(examples, perturbed), map_back=self.task.map_back,
                                                normalize=normalize, min_fraction=cfg.min_fraction, vote=cfg.vote)
        elif variant.filter == "usc":
            verdicts = usc_filter(grouped, self._usc_compositions(grouped, examples), normalize=normalize)
        elif variant.filter == "dual_criteria":
            from s2distill.embed import load_embedder

            verdicts = dual_criteria(grouped, embed=load_embedder(cfg.embedder), threshold=cfg.threshold)
        else:
            verdicts = no_filter(grouped)
        write_jsonl(self.out / artifact, (v.__dict__ for v in verdicts))
        self.console.print(f"  {variant.name}: {variant.filter} kept {sum(v.kept for v in verdicts)} of {len(verdicts)} inputs")
        return verdicts

    def _usc_compositions(self, grouped: dict[str, list[Trace]], examples: list[Example]) -> dict[str, Trace]:
        """Universal self-consistency: the judge teacher's model composes each input's final answer
        from its outputs (Figure 12 of Yu et al. 2024)."""
        judge = self.recipe.teacher(self.recipe.curation.judge)
        program = composition_program(self.task, grouped, prompt_format=judge.method.prompt_format,
                                      max_chars=self.recipe.curation.usc_max_chars)
        with self._progress(f"USC composition ({judge.name})", len(examples)) as advance:
            traces = run_program(program, examples, self._lm(judge.model), temperature=0.0, workers=self.recipe.workers,
                                 max_failures=self.recipe.max_failures,
                                 on_trace=lambda _: advance())
        return {t.example_id: t for t in traces}

    # -- distillation, training and evaluation of each stage -------------------------------------
    def _distill(self, variant: Variant, examples: list[Example], verdicts: list[Verdict]) -> list[dict]:
        """Every stage of one variant: its set, its training (from the previous stage's weights), its score."""
        traces = {output_key(t): t for t in self._variant_traces(variant, examples)}
        rows, previous, previous_multiline, rewritten = [], None, False, None
        for k, fmt in enumerate(variant.stages, 1):
            base = f"{variant.name}/stage{k}-{fmt}"
            if fmt == "compressed_reasoning":  # a second compression (TwT Table 3) rewrites the previous rewrite
                rewrites = self._stage(f"compress:{base}", f"distill/{base}.rewrites.jsonl",
                                       lambda: self._compress(base, examples, verdicts, traces, previous, previous_multiline,
                                                              rewritten),
                                       read_jsonl)
                rewritten = rewritten_rationales(rewrites)
            pairs = self._stage(f"distill:{base}", f"distill/{base}.jsonl",
                                lambda: self._distill_set(base, fmt, examples, verdicts, traces, rewritten), read_jsonl)
            stage = f"{k}/{len(variant.stages)} {fmt}" if len(variant.stages) > 1 else fmt
            if not pairs:  # reported, not fatal: the other variants and the samples are worth keeping
                self.console.print(f"  [yellow]{variant.name}: no training pairs (curation kept no input); not trained[/yellow]")
                rows.append(self._untrained_row(variant.name, stage))
                break
            weights_artifact = f"student/{variant.name}/stage{k}/weights"  # relative to the run folder, like every artifact
            weights = self.out / weights_artifact
            self._stage(f"train:{base}", weights_artifact,
                        lambda: (self._train(pairs, weights.parent, fmt, previous), self._save_prompt(weights, pairs)))
            multiline = answers_on_several_lines(pairs)
            artifact = f"{variant.name}-stage{k}"
            rows += self._evaluate_student(variant.name, stage, weights, multiline, artifact=artifact, train_pairs=len(pairs))
            rows += self._majority_rows(variant.name, artifact, self.recipe.student,
                                        lambda w=weights: self._lm(self.recipe.student.model, adapter=w),
                                        program=self._student_program(multiline), release=True,
                                        extra={"stage": stage, "model": _describe(self.recipe.student.model, weights)})
            previous, previous_multiline = weights, multiline
        return rows

    def _distill_set(self, base: str, fmt: str, examples, verdicts, traces, rewritten) -> list[dict]:
        pairs = distill_pairs(fmt, self.task, examples, verdicts, traces, shots=self.recipe.student.method.shots,
                              max_per_input=self.recipe.distill.max_per_input, rewritten=rewritten)
        write_jsonl(self.out / "distill" / f"{base}.jsonl", pairs)
        return pairs

    def _compress(self, base: str, examples, verdicts, traces, previous: Path, previous_multiline: bool,
                  earlier: dict | None = None) -> list[dict]:
        """HaRD stage 2: the student of the previous stage answers the kept inputs, then the refiner
        teacher rewrites each kept rationale after reading that answer; the rationale rewritten is
        an earlier compression stage's result when there is one (`earlier`), else the original."""
        kept = kept_traces(verdicts, traces)
        cap = self.recipe.distill.max_per_input
        kept = {i: ts[:cap] if cap else ts for i, ts in kept.items()}
        inputs = [e for e in examples if e.id in kept]
        student = self._lm(self.recipe.student.model, adapter=previous)
        with self._progress("previous stage's student on the kept inputs", len(inputs)) as advance:
            answered = run_program(self._student_program(previous_multiline), inputs, student, temperature=0.0,
                                   workers=self.recipe.workers, max_failures=self.recipe.max_failures, on_trace=lambda _: advance())
        self._release(student)
        outputs = {t.example_id: t.calls[-1].output if t.calls else "" for t in answered}
        refiner = self.recipe.teacher(self.recipe.distill.refiner)
        program = compression_program(self.task, kept, outputs, prompt_format=refiner.method.prompt_format,
                                      rationales=earlier)
        with self._progress(f"{refiner.name} rewrites its rationales", len(inputs)) as advance:
            refined = run_program(program, inputs, self._lm(refiner.model), temperature=0.0, workers=self.recipe.workers,
                                  max_failures=self.recipe.max_failures,
                                  on_trace=lambda _: advance())
        rows = [{"id": t.example_id, "student": outputs[t.example_id], "rewrites": t.meta["rewrites"]} for t in refined]
        write_jsonl(self.out / "distill" / f"{base}.rewrites.jsonl", rows)
        accepted = sum(r["accepted"] for row in rows for r in row["rewrites"])
        total = sum(len(row["rewrites"]) for row in rows)
        self.console.print(f"  {accepted} of {total} rewrites accepted (the others keep the full rationale)")
        return rows

    def _train(self, pairs: list[dict], out_dir: Path, fmt: str, previous: Path | None) -> None:
        from s2distill.train import train_student

        student = self.recipe.student.model
        if not student.trainable:
            raise RecipeError(f"student.model: the {student.backend} backend cannot be fine-tuned; use embedded, hf or tiny")
        mode = self.recipe.train.mode
        self.console.print(f"  fine-tuning ({mode}) on {len(pairs)} {fmt} pairs" + (" from the previous stage" if previous else ""))
        if mode == "full":
            train_student(pairs, previous or student.weights_dir(), out_dir, self.recipe.train)
        else:
            train_student(pairs, student.weights_dir(), out_dir, self.recipe.train, init_adapter=previous)

    def _save_prompt(self, weights: Path, pairs: list[dict]) -> None:
        """The prompt template beside the weights (`predict` and `export` rebuild the prompt from it)."""
        write_json(weights / PROMPT_FILE, prompt_spec(self.recipe, self.task, multiline=answers_on_several_lines(pairs)))

    def _student_program(self, multiline: bool, task: Task | None = None):
        """How a distilled student is asked (`student.student_program`, which `predict` uses too)."""
        return student_program(task or self.task, self.recipe.student.method, multiline=multiline,
                               reasoning_max_tokens=self.recipe.distill.reasoning_max_tokens)

    def _evaluate_student(self, system: str, stage: str, weights: Path, multiline: bool, *, artifact: str,
                          train_pairs: int) -> list[dict]:
        """A trained student on every test split (each split's evaluation a stage of its own)."""
        student = self.recipe.student
        extra = {"stage": stage, "model": _describe(student.model, weights), "train_pairs": train_pairs,
                 "shots": student.method.shots}
        rows, lm = [], None
        for label, task in self.test_sets:
            name = artifact + (f"@{label}" if label else "")

            def evaluate(task=task, label=label, name=name):
                nonlocal lm
                lm = lm or self._lm(student.model, adapter=weights)
                return self._evaluate(system, self._student_program(multiline, task), lm, student.method.name,
                                      artifact=name, extra={**extra, **({"test": label} if label else {})}, task=task)

            rows.append(self._stage(f"eval:{name}", f"eval/{name}.json", evaluate, read_json))
        if lm is not None:
            self._release(lm)
        return rows

    def _untrained_row(self, system: str, stage: str) -> dict:
        student = self.recipe.student
        return {"system": system, "stage": stage, "method": student.method.name, "task": self.task.name,
                "metric": self.task.metric, "score": None, "n": 0, "tokens_per_example": None, "unparseable": 0,
                "model": _describe(student.model), "train_pairs": 0, "note": "not trained: curation kept no input",
                "shots": student.method.shots}

    def _evaluate_system(self, system: str, side, *, name: str | None = None) -> list[dict]:
        """System 1 (a student prompt, untrained) or one teacher's System 2 on every test split:
        greedy, or for System 2 the majority of `evaluate.system2_samples` samples (maj@k)."""
        name = name or ("system1" if system == "system1" else f"system2-{side.name}")
        k = self.recipe.evaluate.system2_samples if system == "system2" else 1
        extra = {"teacher": side.name if system == "system2" else None, "model": _describe(side.model),
                 "shots": side.method.shots}
        if k > 1:
            extra["majority_of"] = k
        rows = []
        for label, task in self.test_sets:
            artifact = name + (f"@{label}" if label else "")
            rows.append(self._stage(f"eval:{artifact}", f"eval/{artifact}.json", lambda task=task, label=label, artifact=artifact: self._evaluate(
                system, self._program(side.method, task), self._lm(side.model), side.method.name, artifact=artifact,
                extra={**extra, **({"test": label} if label else {})}, sampling=side if k > 1 else None, samples=k, task=task,
            ), read_json))
        return rows

    def _majority_rows(self, system: str, artifact: str, side, lm: Callable[[], LM], *, program=None,
                       extra: dict | None = None, release: bool = False) -> list[dict]:
        """maj@k rows for `evaluate.majority_at` (Yu et al. 2024, Table 3): `side`'s program (or
        `program`) sampled k times per test input at the sampling settings of `side` when it is a
        teacher, else of the first teacher. Samples are cached by index, so maj@10 reuses maj@5's."""
        sampling = side if isinstance(side, TeacherConfig) else self._source(SYSTEM1_SOURCE)
        program = program or self._program(side.method)
        rows, held = [], []

        def model() -> LM:
            held.append(lm())
            return held[-1]

        for k in self.recipe.evaluate.majority_at:
            name = f"{artifact}-maj{k}"
            extra_k = {"model": _describe(side.model), **(extra or {}), "majority_of": k}
            rows.append(self._stage(f"eval:{name}", f"eval/{name}.json", lambda k=k, name=name, extra_k=extra_k: self._evaluate(
                system, program, model(), side.method.name, artifact=name, extra=extra_k, sampling=sampling, samples=k,
            ), read_json))
        if release and held:
            self._release(held[-1])
        return rows

    def _evaluate(self, system: str, program, lm: LM, method: str, *, artifact: str, extra: dict,
                  sampling: TeacherConfig | None = None, samples: int = 1, task: Task | None = None) -> dict:
        """Score a program on a labelled test split (`task`'s, default the recipe's; greedy, or maj@k
        with `sampling`'s settings); write eval/ARTIFACT.jsonl (per example) and .json."""
        task = task or self.task
        labeled = self._test_set(task)  # the one place labels are read
        examples = [item.example for item in labeled]
        settings = {"temperature": 0.0}
        if sampling is not None:
            settings = {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed, "samples": samples}
        with self._progress(f"evaluate {artifact} ({method})", len(examples) * samples) as advance:
            start = time.perf_counter()
            traces = run_program(program, examples, lm, workers=self.recipe.workers, on_trace=lambda _: advance(),
                                 max_failures=self.recipe.max_failures, **settings)
            seconds = time.perf_counter() - start
        if sampling is not None:
            traces = majority_traces(traces, task.normalize)
        score, records = score_traces(task, labeled, traces, system=system, method=method)
        if self._judged(task):
            score, records = self._judge(task, score, records, labeled, artifact)
        write_jsonl(self.out / "eval" / f"{artifact}.jsonl", records)
        row = {**score.row(), **evaluation_cost(records, seconds), **extra}
        write_json(self.out / "eval" / f"{artifact}.json", row)
        self.console.print(f"  {artifact}: {100 * score.score:.1f}% {score.metric}, {score.tokens_per_example:.1f} tokens/example")
        return row

    # -- a task without labels: agreement with System 2 -----------------------------------------
    def _test_set(self, task: Task) -> list:
        """A test split with its labels, or, for data without labels, with System 2's answers as
        the references (the first teacher, greedy; see s2distill/agreement.py)."""
        labeled = task.labeled("test")
        if getattr(task, "has_labels", True):
            return labeled
        label = next((label for label, split in self.test_sets if split is task), "")
        name = "reference" + (f"@{label}" if label else "")
        references = self._stage(name, f"eval/{name}.jsonl", lambda: self._references(task, labeled, name), read_jsonl)
        return with_references(labeled, {r["id"]: r["answer"] for r in references})

    def _references(self, task: Task, labeled: list, name: str) -> list[dict]:
        teacher = self.recipe.teachers[0]
        examples = [item.example for item in labeled]
        with self._progress(f"references: System 2 ({teacher.name}) on the test inputs", len(examples)) as advance:
            traces = run_program(self._program(teacher.method, task), examples, self._lm(teacher.model), temperature=0.0,
                                 workers=self.recipe.workers, on_trace=lambda _: advance())
        rows = [{"id": t.example_id, "teacher": teacher.name, "answer": t.answer} for t in traces]
        write_jsonl(self.out / "eval" / f"{name}.jsonl", rows)
        return rows

    @staticmethod
    def _judged(task: Task) -> bool:
        return not getattr(task, "has_labels", True) and getattr(task, "answer_kind", "") == "free_text"

    def _judge(self, task: Task, score, records: list[dict], labeled: list, artifact: str):
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
            judge = self.recipe.teacher(self.recipe.evaluate.judge)
            answers = {r["id"]: r["answer"] for r in records}
            program = judge_program(task, answers, targets, prompt_format=judge.method.prompt_format)
            examples = [item.example for item in labeled if item.example.id in set(pending)]
            with self._progress(f"judge {artifact} against System 2 ({judge.name})", len(examples)) as advance:
                traces = run_program(program, examples, self._lm(judge.model), temperature=0.0,
                                     workers=self.recipe.workers, on_trace=lambda _: advance())
            outcomes.update({t.example_id: t.answer for t in traces})
        value, shares = win_tie_loss(records, outcomes)
        return dataclasses.replace(score, score=value, metrics={**score.metrics, **shares}), records

    # -- the report ------------------------------------------------------------------------------
    def _report(self, rows: list[dict], summaries: list[dict], *, invocation_seconds: float) -> dict[str, Any]:
        stats = [lm.stats for lm in self._lms.values()] + self._released_stats
        teachers = ", ".join(f"{t.name}: {t.method.name} on {_describe(t.model)}" for t in self.recipe.teachers)
        report = {
            "name": self.recipe.name,
            "task": self.task.name,
            "teachers": teachers,
            "student": _describe(self.recipe.student.model),
            "rows": rows,
            "curation": summaries,
            "lm": {"calls": sum(s.generated for s in stats), "cached": sum(s.cached for s in stats), "faults": self._faults()},
            "timings": self.timings,
            "invocation_seconds": round(invocation_seconds, 1),
            "machine": machine_info(),
            "sandbox": describe_guard(self.task.sandbox) if runs_model_code(self.recipe, self.task.name) else None,
        }
        report["cost"] = teacher_spend(self.out, self.recipe.teachers)
        report["provenance"] = provenance(self.out, self.recipe)
        if hasattr(self.task, "notes"):
            report["notes"] = self.task.notes()  # e.g. skipped rows, or a score that is agreement, not accuracy
        report["plot"] = bool(plot_score_vs_tokens(rows, self.out / "report.png", title=f"{self.recipe.name}: {self.task.name}"))
        write_json(self.out / "report.json", report)
        (self.out / "report.md").write_text(render_markdown(report))
        write_html_report(self.out, report, task=self.task)
        return report

    # -- helpers ---------------------------------------------------------------------------------
    def _faults(self) -> dict[str, int]:
        """Transient server faults retried in this invocation (timeouts, 429, 5xx, malformed)."""
        total: Counter[str] = Counter()
        for lm in self._lms.values():
            total.update(getattr(lm.inner, "faults", {}))
        return dict(total)

    def _program(self, method, task: Task | None = None):
        return build_program(task or self.task, method.name, method.factory_options())

    def _lm(self, config: ModelConfig, *, adapter: Path | None = None) -> CachedLM:
        """One cached LM per distinct model (teacher and student share it when they are the same)."""
        key = config.model_dump_json() + f"|{adapter}"
        if key not in self._lms:
            self._lms[key] = CachedLM(build_lm(config, adapter=adapter), self.cache_path)
        return self._lms[key]

    def _release(self, lm: CachedLM) -> None:
        """Free a trained student's weights once evaluated (a curriculum loads one per stage)."""
        for key, held in list(self._lms.items()):
            if held is lm:
                self._released_stats.append(lm.stats)
                del self._lms[key]
                lm.close()

    def _progress(self, label: str, total: int) -> ProgressBar:
        return ProgressBar(label, total, self.console, enabled=self.show_progress)


def _by_input(examples: Sequence[Example], traces: Sequence[Trace]) -> dict[str, list[Trace]]:
    """Traces grouped by input, in the inputs' order (every input present, even with no trace)."""
    grouped: dict[str, list[Trace]] = {e.id: [] for e in examples}
    for trace in traces:
        grouped[trace.example_id].append(trace)
    return grouped


def _describe(config: ModelConfig, adapter: Path | None = None) -> str:
    return config.describe(adapter)


def _load_examples(path: Path) -> list[Example]:
    return [Example(row["id"], row["inputs"]) for row in read_jsonl(path)]


def _load_traces(path: Path) -> list[Trace]:
    return [Trace.from_dict(row) for row in read_jsonl(path)]
