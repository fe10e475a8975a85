"""`s2distill run`: the stages of a System 2 distillation, each writing its artifact to the run folder.

    inputs  -> system2 (N samples per input) -> curation -> distill set -> train -> evaluate -> report

A finished stage is skipped on a rerun; an interrupted one starts again but its LM calls come
from the completion cache, so no completion is generated twice.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from s2distill.config import ModelConfig, Recipe, RecipeError
from s2distill.curation import self_consistency
from s2distill.distill import answer_only_pairs
from s2distill.evaluate import score_traces
from s2distill.lm import LM, CachedLM, build_lm, model_dir
from s2distill.methods import build_program, run_program
from s2distill.report import machine_info, render_markdown
from s2distill.runfolder import read_json, read_jsonl, write_json, write_jsonl
from s2distill.tasks import Task, build_task
from s2distill.types import Example, Trace

SYSTEMS = ("system1", "system2", "distilled")


class Pipeline:
    """One run of a recipe into one folder."""

    def __init__(self, recipe: Recipe, out: str | Path, *, console: Console | None = None, progress: bool = True):
        self.recipe = recipe
        self.out = Path(out)
        self.console = console or Console(stderr=True)
        self.show_progress = progress
        self.task: Task = build_task(recipe.task, data_root=Path(recipe.data_dir).expanduser() if recipe.data_dir else None)
        self.cache_path = Path(recipe.cache) if recipe.cache else self.out / "cache.sqlite"
        self._lms: dict[str, CachedLM] = {}
        self.timings: dict[str, float] = {}

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every stage not yet done; return the report (also written as report.json/.md)."""
        started = time.perf_counter()
        self._claim_folder()
        self.timings = read_json(self.out / "timings.json") if (self.out / "timings.json").exists() else {}
        try:
            examples = self._stage("inputs", self._inputs)
            traces = self._stage("system2", lambda: self._system2(examples))
            verdicts = self._stage("curation", lambda: self._curate(traces))
            pairs = self._stage("distill", lambda: self._distill(examples, verdicts))
            if "distilled" in self.recipe.evaluate.systems:
                self._stage("train", lambda: self._train(pairs))
            for system in self.recipe.evaluate.systems:
                self._stage(f"eval_{system}", lambda s=system: self._evaluate(s))
            return self._report(verdicts, invocation_seconds=time.perf_counter() - started)
        finally:
            for lm in self._lms.values():
                lm.close()

    def _claim_folder(self) -> None:
        """Refuse to mix two different recipes' artifacts in one folder."""
        self.out.mkdir(parents=True, exist_ok=True)
        saved = self.out / "recipe.yaml"
        current = yaml.safe_dump(self.recipe.model_dump(mode="json"), sort_keys=True)
        if saved.exists() and saved.read_text() != current:
            raise RecipeError(
                f"{self.out} holds a run of a different recipe (see {saved}); pick another --out, "
                "or delete the folder to start over"
            )
        saved.write_text(current)

    def _stage(self, name: str, compute: Callable[[], Any]) -> Any:
        """Load the stage's artifact if it exists; otherwise compute it and time it."""
        loader = _LOADERS.get(name)
        artifact = self.out / _ARTIFACTS[name]
        if artifact.exists():
            return loader(artifact) if loader else None
        self.console.print(f"[bold]▶ {name}[/bold]")
        start = time.perf_counter()
        result = compute()
        self.timings[name] = round(time.perf_counter() - start, 1)
        write_json(self.out / "timings.json", self.timings)
        return result

    # -- stages ----------------------------------------------------------------------------------
    def _inputs(self) -> list[Example]:
        examples = self.task.unlabeled("train")  # no labels: generation and curation never see one
        write_jsonl(self.out / _ARTIFACTS["inputs"], ({"id": e.id, "inputs": e.inputs} for e in examples))
        return examples

    def _system2(self, examples: list[Example]) -> list[Trace]:
        teacher = self.recipe.teacher
        program = self._program(teacher.method)
        with self._progress(f"System 2 ({teacher.method.name}) × {teacher.samples} samples", len(examples) * teacher.samples) as advance:
            traces = run_program(
                program, examples, self._lm(teacher.model), samples=teacher.samples,
                temperature=teacher.temperature, top_p=teacher.top_p, seed=teacher.seed,
                workers=self.recipe.workers, on_trace=lambda _: advance(),
            )
        write_jsonl(self.out / _ARTIFACTS["system2"], (t.to_dict() for t in traces))
        return traces

    def _curate(self, traces: list[Trace]) -> list[dict]:
        grouped: dict[str, list[Trace]] = defaultdict(list)
        for trace in traces:
            grouped[trace.example_id].append(trace)
        verdicts = self_consistency(grouped, min_fraction=self.recipe.curation.min_fraction, normalize=self.task.normalize)
        rows = [v.__dict__ for v in verdicts]
        write_jsonl(self.out / _ARTIFACTS["curation"], rows)
        kept = sum(v.kept for v in verdicts)
        self.console.print(f"  curation kept {kept} of {len(verdicts)} inputs")
        return rows

    def _distill(self, examples: list[Example], verdicts: list[dict]) -> list[dict]:
        from s2distill.types import Verdict

        pairs = answer_only_pairs(
            self.task, examples, [Verdict(**v) for v in verdicts], shots=self.recipe.student.method.shots
        )
        write_jsonl(self.out / _ARTIFACTS["distill"], pairs)
        return pairs

    def _train(self, pairs: list[dict]) -> None:
        from s2distill.train import train_student

        student = self.recipe.student.model
        if student.backend in ("fake", "openai"):
            raise RecipeError(f"student.model: the {student.backend} backend cannot be fine-tuned; use embedded, hf or tiny")
        self.console.print(f"  fine-tuning ({self.recipe.train.mode}) on {len(pairs)} answer-only pairs")
        train_student(pairs, model_dir(student), self.out / "student", self.recipe.train)

    def _evaluate(self, system: str) -> None:
        recipe = self.recipe
        labeled = self.task.labeled("test")  # the one place labels are read
        if system == "system2":
            side, adapter = recipe.teacher, None
        else:
            side, adapter = recipe.student, (self.out / "student" / "weights" if system == "distilled" else None)
        lm = self._lm(side.model, adapter=adapter)
        program = self._program(side.method)
        examples = [item.example for item in labeled]
        with self._progress(f"evaluate {system} ({side.method.name})", len(examples)) as advance:
            traces = run_program(program, examples, lm, temperature=0.0, workers=recipe.workers, on_trace=lambda _: advance())
        score, records = score_traces(self.task, labeled, traces, system=system, method=side.method.name)
        write_jsonl(self.out / "eval" / f"{system}.jsonl", records)
        write_json(self.out / _ARTIFACTS[f"eval_{system}"], {**score.row(), "model": _describe(side.model, adapter)})
        self.console.print(f"  {system}: {100 * score.score:.1f}% exact match, {score.tokens_per_example:.1f} tokens/example")

    def _report(self, verdicts: list[dict], *, invocation_seconds: float) -> dict[str, Any]:
        rows = [read_json(self.out / _ARTIFACTS[f"eval_{s}"]) for s in SYSTEMS if s in self.recipe.evaluate.systems]
        stats = [lm.stats for lm in self._lms.values()]
        report = {
            "name": self.recipe.name,
            "task": self.task.name,
            "teacher": f"{self.recipe.teacher.method.name} on {_describe(self.recipe.teacher.model)}",
            "student": _describe(self.recipe.student.model),
            "rows": rows,
            "curation": {
                "inputs": len(verdicts), "kept": sum(v["kept"] for v in verdicts),
                "filter": self.recipe.curation.filter, "min_fraction": self.recipe.curation.min_fraction,
                "samples": self.recipe.teacher.samples,
            },
            "lm": {"calls": sum(s.generated for s in stats), "cached": sum(s.cached for s in stats), "faults": self._faults()},
            "timings": self.timings,
            "invocation_seconds": round(invocation_seconds, 1),
            "machine": machine_info(),
        }
        write_json(self.out / "report.json", report)
        (self.out / "report.md").write_text(render_markdown(report))
        return report

    # -- helpers ---------------------------------------------------------------------------------
    def _faults(self) -> dict[str, int]:
        """Transient server faults retried in this invocation (timeouts, 429, 5xx, malformed)."""
        total: Counter[str] = Counter()
        for lm in self._lms.values():
            total.update(getattr(lm.inner, "faults", {}))
        return dict(total)

    def _program(self, method):
        return build_program(self.task, method.name, method.factory_options())

    def _lm(self, config: ModelConfig, *, adapter: Path | None = None) -> LM:
        """One cached LM per distinct model (teacher and student share it when they are the same)."""
        key = config.model_dump_json() + f"|{adapter}"
        if key not in self._lms:
            self._lms[key] = CachedLM(build_lm(config, adapter=adapter), self.cache_path)
        return self._lms[key]

    def _progress(self, label: str, total: int):
        return _ProgressBar(label, total, self.console, enabled=self.show_progress)


class _ProgressBar:
    """A rich progress bar for one stage; `advance()` counts a finished program run."""

    def __init__(self, label: str, total: int, console: Console, *, enabled: bool):
        self.progress = Progress(
            TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, disable=not enabled,
        )
        self.task_id = self.progress.add_task(label, total=total)

    def __enter__(self):
        self.progress.start()
        return lambda: self.progress.advance(self.task_id)

    def __exit__(self, *exc):
        self.progress.stop()


def _describe(config: ModelConfig, adapter: Path | None = None) -> str:
    name = {"embedded": "gemma3-270m (embedded)", "tiny": "tiny test model", "fake": "fake LM"}.get(config.backend) or str(config.path)
    return name + (" + distilled weights" if adapter else "")


def _load_examples(path: Path) -> list[Example]:
    return [Example(row["id"], row["inputs"]) for row in read_jsonl(path)]


_ARTIFACTS = {
    "inputs": "inputs/train.jsonl",
    "system2": "system2/train.jsonl",
    "curation": "curation/verdicts.jsonl",
    "distill": "distill/train.jsonl",
    "train": "student/weights",
    **{f"eval_{s}": f"eval/{s}.json" for s in SYSTEMS},
}
_LOADERS: dict[str, Callable[[Path], Any]] = {
    "inputs": _load_examples,
    "system2": lambda p: [Trace.from_dict(row) for row in read_jsonl(p)],
    "curation": read_jsonl,
    "distill": read_jsonl,
}
