"""What a task provides: examples (labels kept apart), its question text, few-shot exemplars,
answer parsing and scoring. One file per task implements it (DESIGN principle 6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from s2distill.sandbox import SandboxPolicy
from s2distill.types import Example, Labeled

MAX_EXAMPLES = 100_000  # examples per split at most: bounded at load, not by running out of memory


def normalize_number(answer: str) -> str:
    """'$1,234.00' -> '1234'; '0.50' -> '0.5'; text without a number stays as it is (lowercased)."""
    text = answer.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text.lower()
    return str(int(value)) if value == int(value) else f"{value:g}"


@dataclass(frozen=True)
class Shot:
    """A worked exemplar for few-shot prompts: the question, a rationale, a program, the answer."""

    question: str
    rationale: str
    program: str
    answer: str
    rephrased: str = ""  # the question rephrased and expanded (few-shot Rephrase and Respond)


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
