"""CommonsenseQA (Talmor et al. 2019): five-way multiple choice, scored by letter exact match.

Training inputs are unlabeled questions from the train split; the test split is the labelled dev
split (the official test split has no answers). The answer-preserving perturbation for curation
shuffles the options (seeded by the input's id, so it is the same on every run) and maps the
chosen letter back.
"""

from __future__ import annotations

import hashlib
import random
import re
from functools import cached_property
from typing import Literal

from s2distill.config.base import Strict, split_field
from s2distill.tasks.base import MAX_EXAMPLES, Shot, Task
from s2distill.tasks.data import read_jsonl
from s2distill.types import Example, Labeled

LETTERS = "ABCDE"
# The first four training questions are the exemplars, with rationales we wrote (PAL does not apply).
_SHOT_RATIONALES = (
    "Sanctions that punish a school after it tried to change disregard its efforts: they ignore them.",
    "People are found in places where many people live, which are populated areas.",
    "A choker is a necklace; one that is not in a jewelry box or a boutique can be bought at a jewelry store.",
    "GPS services show routes and maps, which is what people used an atlas for.",
)
_SHOT_COUNT = len(_SHOT_RATIONALES)


class CommonsenseQAConfig(Strict):
    name: Literal["commonsenseqa"] = "commonsenseqa"
    train_size: int = split_field(256, ge=1, le=MAX_EXAMPLES)
    test_size: int = split_field(100, ge=1, le=1221)


def _example(row: dict, example_id: str) -> Example:
    choices = [(c["label"], c["text"]) for c in row["question"]["choices"]]
    return Example(example_id, {"stem": row["question"]["stem"], "choices": choices})


def _shuffle(example_id: str, n: int) -> list[int]:
    """The option order of an input's perturbed copy: new position i shows original option order[i]."""
    order = list(range(n))
    random.Random(int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16)).shuffle(order)
    return order


class CommonsenseQA(Task):
    description = "five-way commonsense multiple choice"
    name = "commonsenseqa"
    metric = "exact_match"
    twt_family = "multiple_choice"
    answer_kind = "choice"

    config_class = CommonsenseQAConfig

    @cached_property
    def _train(self) -> list[dict]:
        return read_jsonl("commonsenseqa/train_rand_split.jsonl", self.data_root)

    @cached_property
    def shots(self) -> tuple[Shot, ...]:  # type: ignore[override]
        rows = self._train[:_SHOT_COUNT]
        return tuple(Shot(self.question(_example(row, "shot")), rationale, "", row["answerKey"])
                     for row, rationale in zip(rows, _SHOT_RATIONALES, strict=True))

    def labeled(self, split: str) -> list[Labeled]:
        if split == "train":
            rows = self._train[_SHOT_COUNT:][: self.config.train_size]
            offset = _SHOT_COUNT
        else:
            rows, offset = read_jsonl("commonsenseqa/dev_rand_split.jsonl", self.data_root)[: self.config.test_size], 0
        return [Labeled(_example(r, f"{split}-{i + offset}"), r["answerKey"]) for i, r in enumerate(rows)]

    def question(self, example: Example) -> str:
        options = " ".join(f"({label}) {text}" for label, text in example.inputs["choices"])
        return f"{example.inputs['stem']}\nAnswer Choices: {options}"

    def normalize(self, answer: str) -> str:
        return answer.strip().strip("().[]* ").upper()

    def parse_answer(self, text: str) -> str | None:
        """'The answer is (B).', '(B)', 'B', 'B) bank' -> 'B'; the marked answer wins over stray letters."""
        marked = re.search(r"(?:answer is|final answer:|answer:)\s*\(?([A-E])\b", text, re.IGNORECASE)
        if marked:
            return marked.group(1).upper()
        lone = re.search(r"^\s*\(?([A-E])(?:\)|\.|:|\s*$)", text)
        return lone.group(1) if lone else None

    def perturb(self, example: Example) -> Example:
        choices = example.inputs["choices"]
        order = _shuffle(example.id, len(choices))
        shuffled = [(LETTERS[i], choices[j][1]) for i, j in enumerate(order)]
        return Example(example.id, {**example.inputs, "choices": shuffled})

    def map_back(self, example_id: str, answer: str | None) -> str | None:
        if answer is None or self.normalize(answer) not in LETTERS:
            return None
        order = _shuffle(example_id, len(LETTERS))
        return LETTERS[order[LETTERS.index(self.normalize(answer))]]
