"""GSM8K (Cobbe et al. 2021): grade-school math word problems, scored by numeric exact match.

Training inputs are unlabeled questions from `gsm8k/train.jsonl` (the seeds' math pool; MetaMathQA
is not available offline); the test split is `gsm8k/test.jsonl`. Exemplars are four training
problems (kept out of the pool), with the dataset's own solutions as rationales and programs we
wrote for program-aided reasoning. Majority voting over k System 2 samples (maj@k, the System 2
distillation paper's Table 3) is `evaluate.system2_samples: k`.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

from s2distill.config.base import Strict, split_field
from s2distill.tasks.base import MAX_EXAMPLES, Shot, Task, normalize_number
from s2distill.tasks.data import read_jsonl
from s2distill.types import Example, Labeled

_SHOT_PROGRAMS = (
    "april = 48\nmay = april / 2\nprint(april + may)",
    "per_minute = 12 / 60\nprint(per_minute * 50)",
    "has = 100 / 2\nparents = 15\ngrandparents = 2 * parents\nprint(100 - has - parents - grandparents)",
    "read = 12 + 2 * 12\nremaining = 120 - read\nprint(remaining / 2)",
)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


class GSM8KConfig(Strict):
    name: Literal["gsm8k"] = "gsm8k"
    train_size: int = split_field(256, ge=1, le=MAX_EXAMPLES)
    test_size: int = split_field(100, ge=1, le=1319)


def final_number(solution: str) -> str:
    """The answer after '#### ' in a GSM8K solution."""
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def clean_solution(solution: str) -> str:
    """The worked solution as prose: calculator annotations <<...>> and the '#### n' line removed."""
    body = solution.rsplit("####", 1)[0]
    return " ".join(re.sub(r"<<[^>]*>>", "", body).split())


class GSM8K(Task):
    description = "grade-school math word problems, numeric answer"
    name = "gsm8k"
    metric = "exact_match"
    twt_family = "math"
    answer_kind = "number"

    config_class = GSM8KConfig
    input_fields = {"question": "text"}

    def _rows(self, split: str) -> list[dict]:
        return read_jsonl(f"gsm8k/{split}.jsonl", self.data_root)

    @cached_property
    def shots(self) -> tuple[Shot, ...]:  # type: ignore[override]
        rows = self._rows("train")[: len(_SHOT_PROGRAMS)]
        return tuple(Shot(r["question"], clean_solution(r["answer"]), program, final_number(r["answer"]))
                     for r, program in zip(rows, _SHOT_PROGRAMS, strict=True))

    def labeled(self, split: str) -> list[Labeled]:
        if split == "train":
            rows = self._rows("train")[len(_SHOT_PROGRAMS):][: self.config.train_size]
            offset = len(_SHOT_PROGRAMS)
        else:
            rows, offset = self._rows("test")[: self.config.test_size], 0
        return [Labeled(Example(f"{split}-{i + offset}", {"question": r["question"]}), final_number(r["answer"]))
                for i, r in enumerate(rows)]

    def question(self, example: Example) -> str:
        return example.inputs["question"]

    def normalize(self, answer: str) -> str:
        """'$1,234.00' -> '1234'; '0.50' -> '0.5'; text without a number stays as it is."""
        return normalize_number(answer)

    def parse_answer(self, text: str) -> str | None:
        """The number after 'The answer is' / 'Final answer:' if present, else the last number."""
        marked = re.search(r"(?:answer is|final answer:)\s*:?\s*(.*)", text, re.IGNORECASE)
        scope = marked.group(1) if marked else text
        numbers = _NUMBER.findall(scope)
        if not numbers:
            return None
        return self.normalize((numbers[0] if marked else numbers[-1]).replace("$", ""))
