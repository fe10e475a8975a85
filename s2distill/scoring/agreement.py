"""Scoring without labels: agreement with System 2's answer on each test input.

When the user's data has no labels, the run still evaluates every system: the references are the
first teacher's greedy System 2 answers on the test inputs (the answers distillation aims to
reproduce), and a system's score is how often it agrees with them. For short answers agreement is
exact match after the task's normalisation. For free-text answers a judge model compares the
system's response with System 2's in both orders (A/B swapped) and the pair counts as a win, a tie
or a loss for the system: a win only when both orders prefer it, a loss only when both prefer
System 2, a tie otherwise (position-inconsistent verdicts included, as MT-bench's pairwise
protocol counts them). The score is the win rate with ties counting half, so a system that gives
System 2's own answers scores 0.5.

The judge prompt is the project's pairwise judging format (`tasks/judging.py`): its question
template and its `[[A]]`/`A` answer parsing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from s2distill.methods.calls import ask
from s2distill.methods.direct import direct_prompt
from s2distill.tasks.judging import Judging
from s2distill.types import Example, Labeled, Trace

MAX_CHARS = 1500
CHAT_SUFFIX = "\n\nThink about helpfulness, accuracy and detail, then reply with exactly [[A]], [[B]] or [[C]] (a tie)."
_JUDGING = Judging()


def with_references(labeled: Sequence[Labeled], references: Mapping[str, str | None]) -> list[Labeled]:
    """The test examples with System 2's answers as their targets ("" where it gave none)."""
    return [Labeled(item.example, references.get(item.example.id) or "") for item in labeled]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS].rstrip() + " …"


def judge_program(task, answers: Mapping[str, str], references: Mapping[str, str], *, prompt_format: str):
    """A program that judges one test input's answer against its reference in both orders; the
    trace's answer is "win", "tie" or "loss" for the answer."""

    def program(example: Example, lm) -> Trace:
        calls: list = []
        verdicts = []
        for first, second in ((answers[example.id], references[example.id]), (references[example.id], answers[example.id])):
            pair = Example(example.id, {"question": task.question(example), "response_a": _cut(first),
                                        "response_b": _cut(second)})
            if prompt_format == "chat":
                completion = ask(lm, _JUDGING.question(pair) + CHAT_SUFFIX, calls=calls, name="judge",
                                 prompt_format="chat", max_tokens=256)
            else:
                completion = ask(lm, direct_prompt(_JUDGING, pair, shots=len(_JUDGING.shots)), calls=calls, name="judge",
                                 prompt_format="fewshot", max_tokens=8, stop=("\n",))
            verdicts.append(_JUDGING.parse_answer(completion.text))
        prefers_answer = verdicts[0] == "A" and verdicts[1] == "B"
        prefers_reference = verdicts[0] == "B" and verdicts[1] == "A"
        outcome = "win" if prefers_answer else "loss" if prefers_reference else "tie"
        return Trace(example.id, "pairwise_judge", outcome, calls, meta={"verdicts": verdicts})

    return program


def outcome_without_judge(answer: str | None, reference: str | None, normalize) -> str | None:
    """The outcome when no judgement is needed: a missing side loses, the same text ties."""
    if not reference:
        return "win" if answer else "tie"
    if not answer:
        return "loss"
    if normalize(answer) == normalize(reference):
        return "tie"
    return None


def win_tie_loss(records: list[dict], outcomes: Mapping[str, str]) -> tuple[float, dict[str, float]]:
    """Put each record's outcome in it (`correct`: 1, 0.5, 0); return the score and the shares."""
    value = {"win": 1.0, "tie": 0.5, "loss": 0.0}
    for record in records:
        record["judged"] = outcomes[record["id"]]
        record["correct"] = value[record["judged"]]
    n = len(records) or 1
    shares = {k: sum(r["judged"] == k for r in records) / n for k in ("win", "tie", "loss")}
    return sum(r["correct"] for r in records) / n, shares
