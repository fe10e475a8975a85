"""Curated System 2 outputs -> the student's training set, in TRL's prompt–completion format.

Answer-only: the prompt is exactly the student's System 1 prompt, the completion is the curated
answer alone, so fine-tuning teaches the model to answer without the intermediate tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from s2distill.methods import direct_completion, direct_prompt
from s2distill.tasks import Task
from s2distill.types import Example, Verdict


def answer_only_pairs(task: Task, examples: Sequence[Example], verdicts: Sequence[Verdict], *, shots: int) -> list[dict]:
    """One {"prompt", "completion"} pair per kept input; dropped inputs contribute nothing."""
    by_id = {e.id: e for e in examples}
    return [
        {"id": v.example_id, "prompt": direct_prompt(task, by_id[v.example_id], shots=shots), "completion": direct_completion(v.answer)}
        for v in verdicts
        if v.kept and v.answer is not None
    ]
