"""What a task provides: examples (labels kept apart), its question text, few-shot exemplars,
answer parsing and scoring. One file per task implements it (DESIGN principle 6).

`Task` declares the whole protocol generic code reads, each feature with its default, so stages,
scoring, reports and `predict` read `task.has_labels`, `task.perturbable`, `task.notes()` ...
directly, never through `getattr(task, ..., default)`: a task overrides what differs.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from s2distill.errors import DataError
from s2distill.sandbox import SandboxPolicy
from s2distill.types import Example, Labeled

# What an answer is, as a custom task's `answer:` names it (tasks/custom.py): a short phrase compared
# after normalisation, a number, an option's letter, a whole response, or what the user's parser reads.
AnswerKind = Literal["exact", "number", "choice", "free_text", "parser"]

MAX_EXAMPLES = 100_000  # examples per split at most: bounded at load, not by running out of memory


def normalize_number(answer: str) -> str:
    """'$1,234.00' -> '1234'; '0.50' -> '0.5'; text without a number stays as it is (lowercased)."""
    text = answer.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text.lower()
    return str(int(value)) if value == int(value) else f"{value:g}"


# What an input field holds, as `Task.input_fields` declares it.
InputKind = Literal["text", "list of text"]


def _article(kind: str) -> str:
    return "a list of strings" if kind == "list of text" else "a string"


def _check_input_kind(value, kind: str, where: str) -> None:
    """A `DataError` naming `where` unless `value` is what `kind` says."""
    shown = repr(value) if len(repr(value)) <= 50 else repr(value)[:47] + "..."
    if kind == "text":
        if not isinstance(value, str):
            raise DataError(f"{where} must be a string, got {type(value).__name__} {shown}")
        return
    if not isinstance(value, list):
        example = f" (e.g. {json.dumps(value.split())})" if isinstance(value, str) else ""
        raise DataError(f"{where} must be a list of strings{example}, got {type(value).__name__} {shown}")
    if not value:
        raise DataError(f"{where} must be a non-empty list of strings, got []")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise DataError(f"{where} must be a list of non-empty strings; item {i + 1} is {type(item).__name__} "
                            f"{item!r}")


@dataclass(frozen=True)
class Shot:
    """A worked exemplar for few-shot prompts: the question, a rationale, a program, the answer."""

    question: str
    rationale: str
    program: str
    answer: str
    rephrased: str = ""  # the question rephrased and expanded (few-shot Rephrase and Respond)


# Figure 5's step 1 of 2-step Rephrase and Respond (Yu et al. 2024, coin flip), verbatim; it names
# no task, so it is every task's rephrase prompt unless the task has its own (methods/rar.py).
RAR_REPHRASE = (
    "{question}\n\nBased on the information provided in the original query, could you please rephrase it and expand "
    "it to help you do better answering. Please ensure that your response solely includes the reformulated question, "
    "excluding any introductory phrases or explanatory remarks, while preserving all the details from the original "
    "query."
)


@dataclass(frozen=True)
class RaRTemplates:
    """A task's prompts for 2-step Rephrase and Respond (methods/rar.py): `rephrase` (step 1; its
    `{question}`, and `{n}` the input's word count) and `respond` (step 2; `{rephrased}`, the first
    call's output). `answer_line`: whether the answering call ends with the added answer-format line
    (False where the prompt itself makes the reply's answer readable, coin flip's Yes or No)."""

    rephrase: str = RAR_REPHRASE
    respond: str = "{rephrased}"
    answer_line: bool = True


class Task:
    """Base of the tasks: subclasses set `name` and implement `labeled`, `question` and `shots`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    shots: ClassVar[tuple[Shot, ...]] = ()
    sandbox: SandboxPolicy = SandboxPolicy()  # how model-written code may run; the pipeline sets the recipe's
    config_class: ClassVar[type]  # the task's recipe section (a pydantic model named by `name`)

    def __init__(self, config=None, *, data_root: Path | None = None):
        """`config`: the recipe's task section (default: its defaults); `data_root`: the data folder
        (default: found by `paths.data_dir`)."""
        self.config = config if config is not None else self.config_class()
        self.data_root = data_root

    def labeled(self, split: str) -> list[Labeled]:
        """The examples of a split ("train" or "test") with their targets. Evaluation only."""
        raise NotImplementedError

    has_validation: ClassVar[bool] = False  # `validation` draws held-out inputs (the cascade's threshold needs them)

    def validation(self, size: int) -> list[Labeled]:
        """`size` labelled inputs of the test split's kind that are neither training nor test inputs,
        for choosing a setting (the cascade's threshold: stages/cascade.py) without looking at the
        test split. Tasks that can draw them set `has_validation` (see `draw_validation`)."""
        raise NotImplementedError(f"task {self.name} has no validation split")

    def draw_validation(self, size: int, seed: int, draw: Callable[[random.Random], tuple[dict, str]],
                        key: Callable[[dict], Any]) -> list[Labeled]:
        """A generated task's validation split: `draw(rng)` gives (inputs, target) from the test
        split's pool, with a seed of the split's own; an input equal (by `key`) to a test input or
        to one drawn before is drawn again."""
        taken = {key(item.example.inputs) for item in self.labeled("test")}
        rng = random.Random(f"validation-{seed}")
        out: list[Labeled] = []
        for _ in range(100 * size):
            if len(out) == size:
                return out
            inputs, target = draw(rng)
            if key(inputs) not in taken:
                taken.add(key(inputs))
                out.append(Labeled(Example(f"validation-{len(out)}", inputs), target))
        if len(out) < size:
            raise DataError(f"task {self.name}: only {len(out)} distinct validation inputs could be drawn, not {size}; "
                            "ask for fewer (evaluate.cascade.validation_size)")
        return out

    def unlabeled(self, split: str) -> list[Example]:
        """The examples of a split without targets: what generation and curation receive."""
        return [item.example for item in self.labeled(split)]

    def question(self, example: Example) -> str:
        """The question as a person would ask it."""
        raise NotImplementedError

    def normalize(self, answer: str) -> str:
        """The canonical form two answers are compared in."""
        return re.sub(r"\s+", " ", answer.strip().strip("\"'`.").strip()).lower()

    def parse_answer(self, text: str) -> str | None:
        """Pull the final answer out of a model's text; None if there is none."""
        match = re.search(
            r"(?:answer is|final answer:)\s*:?\s*\"?([^\"\n]+?)\"?\s*\.?\s*$", text.strip(), re.IGNORECASE | re.MULTILINE
        )
        candidate = match.group(1) if match else text.strip().splitlines()[0] if text.strip() else ""
        candidate = self.normalize(candidate)
        return candidate or None

    def target(self, answer: str) -> str:
        """An answer as the student learns to write it (the answer-only and label-only targets): the
        answer itself, unless the task's prompt asks for another format (judging under Yu et al.'s
        Figure 13 prompt: "[[A]]"). Parsing it back gives the answer."""
        return answer

    def gold_answer(self, example: Example, label: str) -> str:
        """The answer a student trained on gold labels learns for `example` (the `gold` control,
        s2distill/distill/controls.py): the label itself, unless the task stores something else as
        its label (TriviaQA: every alias, as JSON; MBPP: the tests the code must pass)."""
        return label

    def score(self, answer: str | None, target: str) -> float:
        """Exact match after normalisation; an unparseable answer scores 0."""
        return float(answer is not None and self.normalize(answer) == self.normalize(target))

    def perturb(self, example: Example) -> Example | None:
        """A copy of `example` changed in a way that must not change its answer (the two judged
        responses swapped, options shuffled, people renamed), for the perturbation filter; None
        when the task has no such change."""
        return None

    def map_back(self, example_id: str, answer: str | None) -> str | None:
        """The answer on input `example_id`'s perturbed copy, expressed for the original (identity
        by default; a letter mapped through the shuffle for multiple choice)."""
        return answer

    def metrics(self, records: list[dict], examples: dict[str, Example]) -> dict[str, float]:
        """The seed paper's extra columns for this task, from the per-example evaluation records
        (biased/unbiased accuracy, position inconsistency, ...); none by default."""
        return {}

    def headline(self, records: list[dict], examples: dict[str, Example]) -> float | None:
        """The headline score when it is not the mean of per-example scores (a pair-level measure
        where no labels exist); None: the mean."""
        return None

    metric: ClassVar[str] = "exact_match"
    # Whether a direct answer spans lines (code): System 1 then stops at a blank line, not a newline.
    multiline_answers: ClassVar[bool] = False
    # Which TwT teacher prompt suits the task: math, multiple_choice, code or general.
    twt_family: ClassVar[str] = "general"
    # The prompts of 2-step Rephrase and Respond: the paper's for last letters and coin flip (Figures
    # 4 and 5), Figure 5's step 1 and the bare rephrased question for every other task.
    rar_templates: ClassVar[RaRTemplates] = RaRTemplates()

    # -- features generic code reads (stages, scoring, the report, predict), each with its default --
    has_labels: ClassVar[bool] = True
    """Whether the test split has reference answers. Without them (a custom task with no `label`),
    evaluation scores agreement with System 2's greedy answers instead of accuracy."""

    answer_kind: ClassVar[AnswerKind] = "exact"
    """What an answer is (see `AnswerKind`). Evaluation reads it for a task without labels:
    `free_text` answers are then compared by a pairwise judge. A built-in task parses and scores
    its answers with its own methods; its kind is informative."""

    runs_model_code: ClassVar[bool] = False
    """Whether scoring runs model-written code in the sandbox (MBPP's asserts), so a run needs a
    sandbox guard whatever its methods are."""

    @property
    def perturbable(self) -> bool:
        """Whether `perturb` gives answer-preserving copies (the perturbation filter needs them):
        by default, when the task overrides `perturb`. A task whose perturbation holds for some
        configurations only overrides this too (custom: multiple choice only)."""
        return type(self).perturb is not Task.perturb

    def notes(self) -> list[str]:
        """Sentences the report should carry about the data (skipped rows, a score that is agreement
        rather than accuracy); none by default."""
        return []

    def fingerprint(self) -> str | None:
        """A digest of data files whose content the task's config does not pin (a user's own files),
        so a run folder is not reused after the data changed; None: nothing to fingerprint (the
        built-in data sets are checked against SHA256SUMS, tasks/data.py)."""
        return None

    input_fields: ClassVar[dict[str, InputKind]] = {}
    """The input fields a row must have and what each holds ("text", "list of text"): `predict`
    checks a row against them, so `{"words": "Ada Lovelace"}` is an error naming the field and the
    type it needs, not a question built from a string's letters. Empty: only the question is built."""

    def example_from_row(self, row: dict, *, example_id: str = "input", where: str = "input") -> Example:
        """A row of the task's input fields (as the run's inputs/*.jsonl holds them) as an Example,
        checked against `input_fields` and by building its question: for `predict`. A `DataError`
        naming `where` (and the field) if the row is not an input of this task. A task that removes
        or converts fields (custom) overrides it."""
        if not isinstance(row, dict):
            raise DataError(f"{where}: not an object (got {type(row).__name__}); an input maps field names to values")
        for name, kind in self.input_fields.items():
            if name not in row:
                raise DataError(f"{where}: not an input of task {self.name} (field {name!r} missing: it needs "
                                f"{_article(kind)}; fields given: {', '.join(map(str, row)) or 'none'}); give the "
                                "question's text instead")
            _check_input_kind(row[name], kind, f"{where}: field {name!r}")
        example = Example(example_id, row)
        try:
            self.question(example)
        except (KeyError, TypeError, IndexError) as exc:
            raise DataError(f"{where}: not an input of task {self.name} (field {exc} missing or malformed); "
                            "give the question's text instead") from None
        return example
