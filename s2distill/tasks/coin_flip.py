"""Coin flip (Wei et al. 2022; RaR, System 2 distillation): "A coin is heads up. Ada flips the
coin. Bob does not flip the coin. Is the coin still heads up?" -> "no".

Training inputs are generated (the paper's 20k training split is deterministic, so it is
generated here rather than shipped); `test_source: rar` (the default) scores on the real RaR
evaluation file rar/coin_val_raw.json, whose names are kept out of the training pool.
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


class CoinFlipConfig(Strict):
    name: Literal["coin_flip"] = "coin_flip"
    people: int = Field(2, ge=1, le=6)
    train_size: int = split_field(256, ge=1, le=MAX_EXAMPLES)
    test_size: int = split_field(50, ge=1, le=MAX_EXAMPLES)
    seed: int = split_field(0, description="the draw of the generated inputs")
    test_source: Literal["generated", "rar"] = split_field("rar", description="rar: RaR's evaluation file")


def _question(flips: list[tuple[str, bool]]) -> str:
    steps = " ".join(f"{name} {'flips' if flipped else 'does not flip'} the coin." for name, flipped in flips)
    return f"A coin is heads up. {steps} Is the coin still heads up?"


def _answer(flips: list[tuple[str, bool]]) -> str:
    return "yes" if sum(flipped for _, flipped in flips) % 2 == 0 else "no"


def _program(flips: list[tuple[str, bool]]) -> str:
    listed = ", ".join(f'"{name}": {flipped}' for name, flipped in flips)
    return (
        f"flips = {{{listed}}}\nheads_up = True\nfor person, flipped in flips.items():\n"
        '    if flipped:\n        heads_up = not heads_up\nprint("yes" if heads_up else "no")'
    )


def _rationale(flips: list[tuple[str, bool]]) -> str:
    count = sum(flipped for _, flipped in flips)
    parity = "even" if count % 2 == 0 else "odd"
    return f"The coin was flipped {count} times, an {parity} number, so it is {'still' if parity == 'even' else 'not'} heads up."


def _rephrased(flips: list[tuple[str, bool]]) -> str:
    """A step-1 rephrasing as RaR's Figure 5 asks for it: the question reformulated, every detail
    kept, nothing added (no rule about what a flip does: Table 6's "Flip means reverse." is a
    prompt variant of its own, not part of RaR)."""
    steps = ", then ".join(f"{name} {'flips' if flipped else 'does not flip'} it" for name, flipped in flips)
    return f"A coin starts with heads facing up. {steps[0].upper()}{steps[1:]}. After this, is heads still facing up?"


_SHOT_FLIPS = (
    [("Ka", True), ("Sherrie", True)],
    [("Jamey", True), ("Teressa", False)],
    [("Maybelle", False), ("Shalonda", False)],
    [("Millicent", False), ("Conception", True)],
)


_STAND_INS = ("Alex", "Sam", "Robin", "Jordan", "Casey", "Taylor")


class CoinFlip(Task):
    description = "is the coin still heads up after some people flip it (generated; the RaR test set)"
    name = "coin_flip"
    shots = tuple(Shot(_question(f), _rationale(f), _program(f), _answer(f), _rephrased(f)) for f in _SHOT_FLIPS)

    config_class = CoinFlipConfig
    # Yu et al. 2024 Figure 5, 2-step RaR: step 1 is the default (`RAR_REPHRASE`, Figure 5's own), and
    # step 2 asks for Yes or No, which makes the reply's answer readable without the added line.
    rar_templates = RaRTemplates(respond="{rephrased} Answer the Yes or No question.", answer_line=False)

    @cached_property
    def _rar_rows(self) -> list[dict]:
        return read_json("rar/coin_val_raw.json", self.data_root)

    @staticmethod
    def _parse_rar(text: str) -> list[tuple[str, bool]]:
        return [(name, verb == "flips") for name, verb in re.findall(r"(\w+) (flips|does not flip) the coin", text)]

    @cached_property
    def _pools(self) -> tuple[list[str], list[str]]:
        reserved = {name for shot in _SHOT_FLIPS for name, _ in shot}
        if self.config.test_source == "rar":
            reserved |= {name for row in self._rar_rows for name, _ in self._parse_rar(row["inputs"])}
        return name_pools(self.data_root, reserved=reserved, seed=20240702)

    def labeled(self, split: str) -> list[Labeled]:
        if split == "test" and self.config.test_source == "rar":
            return [
                Labeled(Example(f"rar-{i}", {"flips": self._parse_rar(row["inputs"])}), row["targets"])
                for i, row in enumerate(self._rar_rows[: self.config.test_size])
            ]
        train_pool, test_pool = self._pools
        pool, size, offset = (train_pool, self.config.train_size, 0) if split == "train" else (test_pool, self.config.test_size, 1)
        rng = random.Random(self.config.seed * 2 + offset)
        out = []
        for i in range(size):
            flips = [(name, rng.random() < 0.5) for name in rng.sample(pool, self.config.people)]
            out.append(Labeled(Example(f"{split}-{i}", {"flips": flips}), _answer(flips)))
        return out

    has_validation = True

    def validation(self, size: int) -> list[Labeled]:
        """Inputs drawn from the test split's names, none a test input."""
        def draw(rng):
            flips = [(name, rng.random() < 0.5) for name in rng.sample(self._pools[1], self.config.people)]
            return {"flips": flips}, _answer(flips)

        return self.draw_validation(size, self.config.seed, draw, key=lambda inputs: tuple(map(tuple, inputs["flips"])))

    def question(self, example: Example) -> str:
        return _question([(name, bool(flipped)) for name, flipped in example.inputs["flips"]])

    def perturb(self, example: Example) -> Example:
        """The same flips by other people: who flips the coin cannot change whether it is heads up."""
        flips = [(_STAND_INS[i % len(_STAND_INS)], bool(flipped)) for i, (_, flipped) in enumerate(example.inputs["flips"])]
        return Example(example.id, {**example.inputs, "flips": flips})

    def parse_answer(self, text: str) -> str | None:
        words = re.findall(r"\b(yes|no)\b", text.lower())
        return words[-1] if words else None
