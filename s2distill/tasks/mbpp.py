"""MBPP (Austin et al. 2021): write a Python function from a description and three asserts;
scored by pass@1, the generated function run against the task's asserts in the sandbox.

Splits as published: tasks 2–4 are the exemplars (from the prompt split 1–10), the unlabeled
training pool is the train split (601–974), the test split is 11–510. Each assert runs in its own
sandboxed process with a time limit (`test_timeout`), so a test that hangs or crashes fails on
its own and never stops the run.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Literal

from s2distill.config.base import Strict, split_field
from s2distill.sandbox import run_python
from s2distill.tasks.base import Shot, Task
from s2distill.tasks.data import read_jsonl
from s2distill.types import Example, Labeled

_SHOT_IDS = (2, 3, 4)
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


class MBPPConfig(Strict):
    name: Literal["mbpp"] = "mbpp"
    train_size: int = split_field(256, ge=1, le=374)
    test_size: int = split_field(100, ge=1, le=500)
    test_timeout: float = split_field(5.0, gt=0, description="seconds per assert (scoring only)")


def clean_code(code: str) -> str:
    """Line endings and indentation as one writes them: LF, tabs as four spaces, no trailing blanks."""
    lines = [line.rstrip() for line in code.replace("\r\n", "\n").replace("\t", "    ").split("\n")]
    return "\n".join(line for line in lines if line.strip())


class MBPP(Task):
    description = "write a Python function that passes three asserts"
    name = "mbpp"
    metric = "pass@1"
    twt_family = "code"
    multiline_answers = True
    runs_model_code = True  # scoring runs the model's function against the asserts, in the sandbox

    config_class = MBPPConfig
    input_fields = {"text": "text", "tests": "list of text"}

    @cached_property
    def _by_id(self) -> dict[int, dict]:
        return {row["task_id"]: row for row in read_jsonl("mbpp/mbpp.jsonl", self.data_root)}

    @cached_property
    def shots(self) -> tuple[Shot, ...]:  # type: ignore[override]
        out = []
        for task_id in _SHOT_IDS:
            row = self._by_id[task_id]
            code = clean_code(row["code"])
            out.append(Shot(self.question(self._example(row, "shot")), "", code, code))
        return tuple(out)

    @staticmethod
    def _example(row: dict, example_id: str) -> Example:
        return Example(example_id, {"text": row["text"], "tests": row["test_list"], "setup": row["test_setup_code"]})

    def labeled(self, split: str) -> list[Labeled]:
        ids = range(601, 975) if split == "train" else range(11, 511)
        rows = [self._by_id[i] for i in ids if i in self._by_id]
        size = self.config.train_size if split == "train" else self.config.test_size
        target = lambda r: json.dumps({"tests": r["test_list"], "setup": r["test_setup_code"]})
        return [Labeled(self._example(r, f"{split}-{r['task_id']}"), target(r)) for r in rows[:size]]

    def gold_answer(self, example: Example, label: str) -> str:
        """MBPP's reference solution (the label is the tests it passes, for scoring)."""
        return clean_code(self._by_id[int(example.id.rsplit("-", 1)[1])]["code"])

    def question(self, example: Example) -> str:
        tests = "\n".join(example.inputs["tests"])
        return f"{example.inputs['text']} Your code should pass these tests:\n{tests}"

    def normalize(self, answer: str) -> str:
        return clean_code(answer)

    def parse_answer(self, text: str) -> str | None:
        """The code of a reply: its first ```python block, else from its first def/import/class line."""
        fenced = _FENCE.search(text)
        code = fenced.group(1) if fenced else text
        if not fenced:
            start = re.search(r"^[ \t]*(?:def |import |from |class )", code, re.MULTILINE)
            if not start:
                return None
            code = code[start.start():].lstrip()  # the first line may carry the prompt's leading space
            code = re.split(r"\n(?:The answer is|Answer:|Confidence:|score:)", code, maxsplit=1)[0]
        code = clean_code(code)
        return code or None

    def score(self, answer: str | None, target: str) -> float:
        """1.0 when every assert passes, each run alone in the sandbox with its own time limit."""
        if answer is None:
            return 0.0
        spec = json.loads(target)
        for test in spec["tests"]:
            result = run_python(f"{spec['setup']}\n{answer}\n{test}\n", timeout=self.config.test_timeout, policy=self.sandbox)
            if not result.ok:
                return 0.0
        return 1.0
