"""The distilled cascade, deployed: `s2distill predict RUN_DIR --cascade` and `s2distill.load_cascade`.

The student answers every input (greedy, with the probability of its answer); where that answer
did not parse or its probability is under the run's threshold (chosen on validation inputs by
the recipe's rule: stages/cascade.py), the run's System 2 answers instead: the teacher's program
and model as the recipe gave them, model-written code behind the recipe's sandbox.

What the cascade needs besides the student is one small JSON file, `cascade.json`
(`cascade_settings`): the threshold, the rule and its validation figures, and System 2's
teacher, method, model and sandbox settings. `s2distill export` writes it beside the merged
student, so `load_cascade(EXPORTED_FOLDER)` rebuilds the same cascade elsewhere (the teacher's
model must be reachable there: a local path, or a server named in its settings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from s2distill.scoring.cascade import ROUTE_ALL, routes
from s2distill.student.predict import Student, StudentError, load_spec, locate_student
from s2distill.student.prompt import PROMPT_FILE, TextQuestion

CASCADE_FILE = "cascade.json"


def cascade_settings(run_dir: str | Path, variant: str = "distilled") -> dict[str, Any]:
    """What a run's cascade is made of (the contents of `cascade.json`): read from its
    `cascade/VARIANT-stageN.json` (sealed) for the student `predict` uses, and its recipe.yaml."""
    from s2distill.artifacts import seal_of, sealed

    run_dir = Path(run_dir)
    weights, _ = locate_student(run_dir, variant)
    stage = weights.parent.name  # stageN
    path = run_dir / "cascade" / f"{variant}-{stage}.json"
    if not path.is_file():
        raise StudentError(f"{run_dir} has no cascade for {variant}'s {stage} ({path}): add evaluate.cascade to its "
                           "recipe (e.g. `evaluate.cascade={keep: 0.95}` on the command line) and run it again")
    if not sealed(path):
        raise StudentError(f"{path} does not match its seal (cut short or edited): `s2distill run` redoes it")
    chosen_for = ((seal_of(path) or {}).get("made_from") or {}).get("inputs", {}).get("weights")
    weights_digest = (seal_of(weights) or {}).get("sha256")
    if chosen_for and weights_digest and chosen_for != f"content:{weights_digest[:16]}":
        raise StudentError(f"{path}: its threshold was chosen for other weights than the student's now (retrained "
                           "since): `s2distill run` on the run's recipe chooses it again")
    calibration = json.loads(path.read_text())
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
    teachers = {t["name"]: t for t in recipe.get("teachers", [])}
    teacher = teachers.get(calibration["teacher"])
    if teacher is None:
        raise StudentError(f"{run_dir}/recipe.yaml has no teacher {calibration['teacher']!r}, the cascade's System 2: "
                           "the recipe changed since; run it again")
    validation = {k: v for k, v in calibration["validation"].items() if k != "curve"}
    return {"threshold": calibration["threshold"], "rule": calibration["rule"],
            "confidence": "the probability the student gives its whole greedy output",
            "system2": {"teacher": teacher["name"], "method": teacher["method"], "model": teacher["model"],
                        "sandbox": recipe.get("sandbox") or {}},
            "validation": validation, "made_from": f"{path.relative_to(run_dir)} of {run_dir.resolve()}"}


@dataclass
class Cascade:
    """A student and the System 2 it hands its unsure inputs to: `predict(inputs)`."""

    student: Student
    settings: dict[str, Any]
    _system2: tuple[Any, Any] | None = field(default=None, init=False)  # (program, LM), built on first use

    @property
    def threshold(self) -> float | None:
        """The least confidence the student's answer is kept at; None: System 2 answers everything."""
        return self.settings["threshold"]

    def routes(self, result: dict[str, Any]) -> bool:
        """Whether System 2 answers this input instead of the student, exactly as the run's report counted it."""
        return routes(result, ROUTE_ALL if self.threshold is None else self.threshold)

    def system2(self):
        """System 2's program (the teacher's method on the student's task) and model, built on first use."""
        if self._system2 is None:
            from s2distill.config.recipe import SandboxConfig
            from s2distill.lm import build_lm, model_config
            from s2distill.methods import method_config

            system2 = self.settings["system2"]
            task = TextQuestion(self.student.task)  # a question given as text is asked as text
            self.student.task.sandbox = SandboxConfig(**system2.get("sandbox", {})).policy()
            program = method_config(system2["method"], saved=True).build(task)
            self._system2 = (program, build_lm(model_config(system2["model"], saved=True)))
        return self._system2

    def predict(self, inputs: Any, *, workers: int = 16, on_result: Callable[[Any], None] | None = None,
                source: str | None = None) -> Any:
        """Answer one input or a list, as `Student.predict`, each result with `answered_by` ("student"
        or "system2") and, where System 2 answered, `student_answer`; `tokens` counts both."""
        from s2distill.methods import run_program

        single = isinstance(inputs, str | dict)
        items = [inputs] if single else list(inputs)
        results = self.student.predict(items, workers=workers, source=source)
        routed = [i for i, result in enumerate(results) if self.routes(result)]
        if routed:
            program, lm = self.system2()
            examples = [self.student.example(items[i], i) for i in routed]
            for i, trace in zip(routed, run_program(program, examples, lm, temperature=0.0, workers=workers),
                                strict=True):
                result = results[i]
                results[i] = {**result, "answer": trace.answer, "student_answer": result["answer"],
                              "tokens": result["tokens"] + trace.usage.completion_tokens,
                              "output": trace.last_output if trace.calls else None}
        by_system2 = set(routed)
        for i, result in enumerate(results):
            result["answered_by"] = "system2" if i in by_system2 else "student"
            if on_result is not None:
                on_result(result)
        return results[0] if single else results

    def close(self) -> None:
        self.student.close()
        if self._system2 is not None and hasattr(self._system2[1], "close"):
            self._system2[1].close()


def load_cascade(folder: str | Path, *, variant: str = "distilled") -> Cascade:
    """The cascade of a run folder (its last training stage's student), or of a folder `s2distill
    export` wrote (the merged student with its `cascade.json`)."""
    folder = Path(folder)
    if (folder / CASCADE_FILE).is_file() and (folder / PROMPT_FILE).is_file():  # an exported student
        spec = json.loads((folder / PROMPT_FILE).read_text())
        return Cascade(Student(folder, spec, None, "the exported student"), json.loads((folder / CASCADE_FILE).read_text()))
    weights, where = locate_student(folder, variant)
    return Cascade(Student(weights, load_spec(folder, weights, variant), folder, where), cascade_settings(folder, variant))


def summarize(results: Sequence[dict[str, Any]]) -> str:
    """One line: how many inputs each system answered, and the tokens per input."""
    n = len(results)
    routed = sum(r.get("answered_by") == "system2" for r in results)
    tokens = sum(r["tokens"] for r in results) / n if n else 0.0
    return f"{n - routed} answered by the student, {routed} by System 2 ({100 * routed / n if n else 0:.0f}%); " \
           f"{tokens:.1f} generated tokens per input"
