"""Use a distilled student: `s2distill predict RUN_DIR` and `s2distill.load_student(RUN_DIR)`.

The student of the last training stage of the run's recipe (recipe.yaml says how many; weights
that no longer match their seal are refused) answers new inputs through exactly the prompt it was
trained on: the program is rebuilt from the prompt template saved beside its weights
(`student.prompt.PROMPT_FILE`), by the same function the pipeline evaluates it with. Inputs are batched
(the programs' calls meet in one batch, as in a run), greedy, and each result says what the
student generated and how many tokens it cost.

An input is either the question's text as a string (it replaces the task's question in the
prompt, exemplars and all unchanged), or a row of the task's input fields (a dict, as the run's
`inputs/train.jsonl` or the user's own file has them), checked as training rows are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2distill.student.prompt import PROMPT_FILE, TEXT_KEY, RecordingLM, program_from_spec, prompt_spec, task_from_spec
from s2distill.tasks.user_files import parse_jsonl
from s2distill.types import Example


class StudentError(ValueError):
    """A run folder without a usable student, or an input the student's task cannot read."""


def student_weights(run_dir: str | Path, variant: str = "distilled") -> Path:
    """The weights of the last training stage of `variant` in the run's recipe (see `locate_student`)."""
    return locate_student(run_dir, variant)[0]


def locate_student(run_dir: str | Path, variant: str = "distilled") -> tuple[Path, str]:
    """(the weights of `variant`'s last training stage, a sentence saying which stage that is).

    The last stage is the run's recipe's (its recipe.yaml: `distill.stages`, or the baseline's own),
    never merely the highest `stageK` folder: one left by an earlier recipe with more stages is not
    this run's student. The weights must match their seal (`artifacts.sealed`): weights truncated
    or edited since training, or a training that stopped before sealing them, are refused."""
    run_dir = Path(run_dir)
    root = run_dir / "student" / variant
    last = _last_stage(run_dir, variant)
    if last is None:  # no recipe.yaml: the highest stage there is
        stages = [p for p in root.glob("stage*/weights") if re.fullmatch(r"stage\d+", p.parent.name)]
        if not stages:
            raise StudentError(f"{run_dir} has no trained student ({root}/stageK/weights): run its recipe first, "
                               "or name another --variant")
        weights = max(stages, key=lambda p: int(p.parent.name.removeprefix("stage")))
        where = f"{weights.parent.name} of {variant}, the highest stage found ({run_dir} has no recipe.yaml)"
    else:
        weights = root / f"stage{last}" / "weights"
        if not weights.is_dir():
            raise StudentError(f"{run_dir} has no trained student for the last stage of {variant} in its recipe "
                               f"({weights}): run its recipe first (`s2distill run`), or name another --variant")
        where = f"stage{last} of {variant}, the last of the run's recipe's {last} training stage{'s' if last > 1 else ''}"
    check_weights(weights)
    return weights, where


def _last_stage(run_dir: Path, variant: str) -> int | None:
    """The number of `variant`'s last training stage in the run's recipe.yaml; None without one.
    Read as plain YAML (no validation: predicting needs neither the recipe's data nor its code)."""
    import yaml

    from s2distill.distill.variants import variant_stages

    recipe_file = run_dir / "recipe.yaml"
    if not recipe_file.is_file():
        return None
    try:
        recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StudentError(f"{recipe_file} cannot be read ({exc}); run the recipe again to rewrite it") from None
    if not isinstance(recipe, dict):
        raise StudentError(f"{recipe_file} is not a recipe; run the recipe again to rewrite it")
    systems = (recipe.get("evaluate") or {}).get("systems") or ["distilled"]
    variants = (["distilled"] if "distilled" in systems else []) + list(recipe.get("baselines") or [])
    if variant not in variants:
        raise StudentError(f"variant {variant!r} is not trained by the run's recipe ({recipe_file} trains "
                           f"{', '.join(variants) or 'no student'}): name one of those with --variant")
    stages = (recipe.get("distill") or {}).get("stages") or ["answer_only"]
    return len(variant_stages(variant, stages))


def check_weights(weights: Path) -> None:
    """Refuse weights that do not match their seal, saying how to get good ones."""
    from s2distill.artifacts import seal_of, sealed

    if seal_of(weights) is None:
        raise StudentError(f"the student's weights in {weights} are unfinished: they have no seal (their training "
                           "stopped before the end); `s2distill run` on the run's recipe will retrain them")
    if not sealed(weights):
        raise StudentError(f"the student's weights in {weights} are damaged: they no longer match their seal "
                           "(truncated or edited after training); `s2distill run` on the run's recipe will "
                           "retrain them")


def load_spec(run_dir: str | Path, weights: Path, variant: str = "distilled") -> dict[str, Any]:
    """The prompt template saved beside `weights`; for a run trained before templates were saved,
    the same template derived from the run's recipe.yaml and its training pairs."""
    saved = weights / PROMPT_FILE
    if saved.exists():
        return json.loads(saved.read_text())
    import yaml

    from s2distill.config.recipe import validate_recipe
    from s2distill.distill.pairs import evaluated_as
    from s2distill.artifacts import read_jsonl
    from s2distill.tasks import build_task

    recipe_file = Path(run_dir) / "recipe.yaml"
    if not recipe_file.exists():
        raise StudentError(f"{weights} has no {PROMPT_FILE} and {run_dir} no recipe.yaml to rebuild it from")
    recipe = validate_recipe(yaml.safe_load(recipe_file.read_text()), source=str(recipe_file))
    task = build_task(recipe.task, data_root=recipe.data_root)
    pairs = [p for f in sorted((Path(run_dir) / "distill" / variant).glob(f"{weights.parent.name}-*.jsonl"))
             if not f.name.endswith(".rewrites.jsonl") for p in read_jsonl(f)]
    multiline, task_prefix = evaluated_as(pairs)
    return prompt_spec(recipe, task, multiline=multiline, task_prefix=task_prefix)


@dataclass
class Student:
    """A distilled student ready to answer: `predict(inputs)`; `prompt(input)` shows what it sees."""

    weights: Path
    spec: dict[str, Any]
    run_dir: Path | None = None
    where: str = ""  # which training stage these weights are, and why that one (`locate_student`)

    def __post_init__(self):
        self.task = task_from_spec(self.spec)
        self.program = program_from_spec(self.spec, self.task)
        self._lm = None

    @property
    def lm_config(self):
        """The student's base model, as the recipe gave it."""
        from s2distill.lm import model_config

        return model_config(self.spec["student_model"], saved=True)

    @property
    def lm(self):
        """The student model (loaded on first use): base model plus adapter, or the full fine-tuned model."""
        if self._lm is None:
            from s2distill.lm import build_lm

            self._lm = build_lm(self.lm_config, adapter=self.weights)
        return self._lm

    def example(self, item: Any, index: int = 0, *, where: str | None = None) -> Example:
        """An input (the question's text, or a row of the task's fields) as the Example the program takes."""
        where = where or f"input {index + 1}"
        if isinstance(item, str):
            if not item.strip():
                raise StudentError(f"{where}: the question is empty")
            return Example(f"input-{index}", {TEXT_KEY: item})
        if not isinstance(item, dict):
            raise StudentError(f"{where}: an input is a question (a string) or an object of the task's fields, "
                               f"got {type(item).__name__}")
        row = item["inputs"] if isinstance(item.get("inputs"), dict) else item  # a run's inputs/*.jsonl row
        try:
            return self.task.example_from_row(row, example_id=f"input-{index}", where=where)
        except ValueError as exc:  # a DataError naming `where` and the field
            raise StudentError(str(exc)) from None

    def prompt(self, item: Any) -> str | list[dict]:
        """The exact prompt the student gets for `item` (the first call its program makes): the raw
        prompt, or a chat student's messages as {"role", "content"} dicts (as its training pairs hold them;
        the model's chat template renders them)."""
        recorder = RecordingLM()
        self.program(self.example(item), recorder)
        request = recorder.requests[0]
        if request.prompt is not None:
            return request.prompt
        return [{"role": role, "content": content} for role, content in request.messages]

    def predict(self, inputs: Any, *, workers: int = 16, on_result: Callable[[Any], None] | None = None,
                source: str | None = None) -> Any:
        """Answer one input (a string or a dict: returns one result) or a list of them (returns a
        list, in order). A result is {"input", "answer", "tokens", "output", "confidence"}: the
        parsed answer (None when unparseable), completion tokens, the raw generated text, and the
        probability the student gives its whole output (None where the backend has no
        log-probabilities; the distilled cascade routes on it: student/cascade.py)."""
        from s2distill.methods import run_program
        from s2distill.scoring.cascade import confidence_of

        single = isinstance(inputs, str | dict)
        items = [inputs] if single else list(inputs)
        examples = [self.example(item, i, where=f"{source}: row {i + 1}" if source else None) for i, item in enumerate(items)]
        traces = run_program(self.program, examples, self.lm, temperature=0.0, workers=workers, on_trace=on_result,
                             logprobs=True)
        results = [{"input": item, "answer": trace.answer, "tokens": trace.usage.completion_tokens,
                    "output": trace.last_output if trace.calls else None, "confidence": confidence_of(trace)}
                   for item, trace in zip(items, traces, strict=True)]
        return results[0] if single else results

    def close(self) -> None:
        if self._lm is not None and hasattr(self._lm, "close"):
            self._lm.close()


def load_student(run_dir: str | Path, *, variant: str = "distilled") -> Student:
    """The student of the last training stage of the run's recipe, with its saved prompt (see the
    module docstring); its `where` says which stage."""
    weights, where = locate_student(run_dir, variant)
    return Student(weights, load_spec(run_dir, weights, variant), Path(run_dir), where)


def read_inputs(path: Path) -> list[Any]:
    """The rows of a JSONL input file (objects, or strings holding the question's text)."""
    rows = parse_jsonl(path, StudentError)
    if not rows:
        raise StudentError(f"{path} holds no inputs")
    return rows


def predict_to_jsonl(student: Student, items: Sequence[Any], out, *, workers: int = 16,
                     progress: Callable[[], None] | None = None, source: str | None = None) -> list[dict]:
    """Answer `items` and write one JSON line per input to the open file `out`."""
    results = student.predict(list(items), workers=workers, on_result=(lambda _: progress()) if progress else None,
                              source=source)
    for result in results:
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    return results
