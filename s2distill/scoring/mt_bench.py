"""Two answers per MT-bench question, for out-of-domain judging consistency.

MT-bench's 80 first-turn questions ship without the human pairwise judgments (not available
offline), so what a judge can be measured on there is position consistency: does it name the same
answer when the two are swapped? This writes the answer pairs to judge: two samples of one model
(`s2distill mt-bench-answers`), read back by the `judging` task with `source: mt_bench`.
"""

from __future__ import annotations

import json
from pathlib import Path

from s2distill.lm import build_lm
from s2distill.tasks.data import read_jsonl
from s2distill.types import Request

PROMPT = "Question: {question}\nAnswer:"


def mt_bench_questions(data_root: Path | None = None) -> list[dict]:
    return read_jsonl("mt_bench/question.jsonl", data_root)


def generate_answers(model_config, out: Path, *, temperature: float = 0.7, max_tokens: int = 256, seed: int = 0,
                     data_root: Path | None = None) -> int:
    """Answer every first-turn question twice (samples 0 and 1); write one JSONL row per question."""
    questions = mt_bench_questions(data_root)
    lm = build_lm(model_config)
    requests = [Request(prompt=PROMPT.format(question=q["turns"][0]), temperature=temperature, max_tokens=max_tokens,
                        stop=("\nQuestion:",), seed=seed, n=2) for q in questions]
    completions = lm.generate(requests)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for q, (a, b) in zip(questions, completions, strict=True):
            f.write(json.dumps({"question_id": q["question_id"], "category": q["category"], "question": q["turns"][0],
                                "answer_a": a.text.strip(), "answer_b": b.text.strip(), "model": lm.name}) + "\n")
    return len(questions)
