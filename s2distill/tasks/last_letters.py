"""Last-letter concatenation (Wei et al. 2022; the Rephrase-and-Respond and System 2 distillation
papers): "Take the last letters of the words in "Elon Musk" and concatenate them." -> "nk".

Inputs are generated with a seed from first names (shared/data/wordlists/propernames). Train and
test draw their words from disjoint halves of the name list, so the distilled model is scored on
words it never saw. `test_source: rar` scores on the real RaR evaluation set instead (its names
are then removed from the training pool).
"""

from __future__ import annotations

import random
import re
from functools import cached_property
from typing import Literal

from pydantic import Field

from s2distill.config.base import Strict, split_field
from s2distill.tasks.base import MAX_EXAMPLES, RaRTemplates, Shot, Task
from s2distill.tasks.data import name_pools, read_json
from s2distill.types import Example, Labeled


class LastLettersConfig(Strict):
    name: Literal["last_letters"] = "last_letters"
    words: int = Field(2, ge=1, le=6, description="words per input")
    train_size: int = split_field(256, ge=1, le=MAX_EXAMPLES)
    test_size: int = split_field(50, ge=1, le=MAX_EXAMPLES)
    seed: int = split_field(0, description="the draw of the generated inputs")
    test_source: Literal["generated", "rar"] = split_field("generated", description="rar: RaR's evaluation file")


def _program(words: list[str]) -> str:
    listed = ", ".join(f'"{w}"' for w in words)
    return f'words = [{listed}]\nanswer = "".join(word[-1] for word in words)\nprint(answer)'


def _rationale(words: list[str]) -> str:
    steps = " ".join(f'The last letter of "{w}" is "{w[-1]}".' for w in words)
    return f'{steps} Concatenating them is "{"".join(w[-1] for w in words)}".'


def _rephrased(words: list[str]) -> str:
    """A step-1 rephrasing as RaR's Figure 4 asks for it: the words separated, each unchanged."""
    separated = " and ".join(f'"{w}"' for w in words)
    return f"What do you get when you take the last letter of each of the words {separated}, in this order, and concatenate them?"


_SHOT_WORDS = (["Elon", "Musk"], ["Larry", "Page"], ["Sergey", "Brin"], ["Bill", "Gates"])


def _question(words: list[str]) -> str:
    return f'Take the last letters of the words in "{" ".join(words)}" and concatenate them.'


class LastLetters(Task):
    description = "concatenate the last letters of N names (generated; the RaR test set optional)"
    name = "last_letters"
    shots = tuple(
        Shot(_question(w), _rationale(w), _program(w), "".join(x[-1] for x in w).lower(), _rephrased(w)) for w in _SHOT_WORDS
    )

    config_class = LastLettersConfig
    input_fields = {"words": "list of text"}
    # Yu et al. 2024 Figure 4, 2-step RaR: step 1 verbatim, but "these 2 words" is the input's word
    # count `{n}` (the paper's inputs all have two); step 2 is the rephrased question alone.
    rar_templates = RaRTemplates(
        rephrase="{question}\n\nBased on the details given in the initial inquiry, could you kindly rephrase the "
        "question and separate these {n} words in the revised question? Please ensure these {n} words remain "
        "unchanged from the original question.",
        respond="{rephrased}",
    )

    @cached_property
    def _rar_rows(self) -> list[dict]:
        return read_json("rar/last_letter_concatenation_gpt-4.json", self.data_root)

    @cached_property
    def _pools(self) -> tuple[list[str], list[str]]:
        reserved = {w for shot in _SHOT_WORDS for w in shot}
        if self.config.test_source == "rar":
            reserved |= {w for row in self._rar_rows for w in re.findall(r'"([^"]+)"', row["question"])[0].split()}
        return name_pools(self.data_root, reserved=reserved, seed=20240701)

    def labeled(self, split: str) -> list[Labeled]:
        if split == "test" and self.config.test_source == "rar":
            rows = self._rar_rows[: self.config.test_size]
            out = []
            for i, row in enumerate(rows):
                words = re.findall(r'"([^"]+)"', row["question"])[0].split()
                out.append(Labeled(Example(f"rar-{i}", {"words": words}), row["answer"]))
            return out
        train_pool, test_pool = self._pools
        pool, size, offset = (train_pool, self.config.train_size, 0) if split == "train" else (test_pool, self.config.test_size, 1)
        rng = random.Random(self.config.seed * 2 + offset)
        out = []
        for i in range(size):
            words = rng.sample(pool, self.config.words)
            target = "".join(w[-1] for w in words).lower()
            out.append(Labeled(Example(f"{split}-{i}", {"words": words}), target))
        return out

    has_validation = True

    def validation(self, size: int) -> list[Labeled]:
        """Inputs drawn from the test split's names (words the student never trained on), none a test input."""
        def draw(rng):
            words = rng.sample(self._pools[1], self.config.words)
            return {"words": words}, "".join(w[-1] for w in words).lower()

        return self.draw_validation(size, self.config.seed, draw, key=lambda inputs: tuple(inputs["words"]))

    def question(self, example: Example) -> str:
        return _question(example.inputs["words"])

    def parse_answer(self, text: str) -> str | None:
        answer = super().parse_answer(text)
        if answer is None:
            return None
        answer = answer.split()[0] if answer.split() else ""  # "rb" from "rb (the last letters)"
        return answer if re.fullmatch(r"[a-z]+", answer) else None
