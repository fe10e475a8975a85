"""HaRD stage 2 (TwT): the teacher rewrites each kept rationale after reading the student's own
output from stage 1, so the stage-2 targets are shorter and closer to what the student writes.

A rewrite is accepted when it is non-empty, shorter than the original, does not state an
answer other than the kept one, and was not cut at its budget (a truncated rewrite is shorter only
because it stops early: DESIGN, "never kept as a target"); otherwise the original rationale is
kept and the reason recorded (`distill/<variant>/<stage>.rewrites.jsonl`, where a cut rewrite also
has `"truncated": true`, counted by the stage), so a weak refiner can slow the curriculum but never
corrupt its answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from s2distill.curation import output_key
from s2distill.distill.pairs import fold_blank_lines, rationale_of
from s2distill.methods.calls import PromptFormat
from s2distill.methods.twt import refine_rationale
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace


def judge_rewrite(task: Task, original: str, rewritten: str, answer: str, *,
                  truncated: bool = False) -> tuple[bool, str]:
    """Whether a rewrite may replace the original rationale, and why (`truncated`: its call was cut
    at its budget, so it is rejected whatever its length)."""
    if truncated:
        return False, "truncated at max_tokens"
    if not rewritten.strip():
        return False, "empty rewrite"
    if len(rewritten) >= len(original):
        return False, f"not shorter ({len(rewritten)} >= {len(original)} characters)"
    stated = re.search(r"answer is\s*(.+?)\.?\s*$", rewritten, re.IGNORECASE | re.MULTILINE)
    if stated and task.normalize(stated.group(1)) != task.normalize(answer):
        return False, f"states another answer: {stated.group(1)!r}"
    return True, f"{len(original)} -> {len(rewritten)} characters"


def fixed_length(rationale: str, ratio: float) -> str:
    """TwT Table 6's "Fixed-Length Compression": the rationale cut to its first `ratio` of words
    (the paper names the method only; keeping the opening words is our reading), lines kept."""
    words = rationale.split(" ")
    return " ".join(words[: max(1, math.ceil(ratio * len(words)))]).strip()


def compression_program(task: Task, kept: Mapping[str, Sequence[Trace]], student_outputs: Mapping[str, str] | None, *,
                        prompt_format: PromptFormat, max_tokens: int = 160,
                        rationales: Mapping[tuple[str, str, int], str] | None = None,
                        ratio: float | None = None):
    """A program that rewrites every kept rationale of one input; `meta["rewrites"]` holds them.

    Teacher-guided (TwT's HaRD, Figure 8) with `student_outputs`; the compressor alternative of
    Table 6 with `student_outputs=None` (the same model, no student output); fixed-length with
    `ratio` (no model call). `rationales` (output key -> rationale) replaces the traces' own: a later
    compression stage rewrites the previous stage's result, not the original again (TwT Table 3's
    fourth stage: "the teacher model further compresses the reasoning process based on the
    student's output")."""

    def program(example: Example, lm) -> Trace:
        calls: list[Call] = []
        rewrites = []
        for trace in kept[example.id]:
            original = (rationales or {}).get(output_key(trace)) or rationale_of(trace)
            truncated = False
            if ratio is not None:
                rewritten = fixed_length(original, ratio)
            else:
                student = student_outputs.get(example.id, "").strip() if student_outputs is not None else None
                rewritten = refine_rationale(lm, question=task.question(example), rationale=original,
                                             answer=trace.answer, student=student, calls=calls,
                                             prompt_format=prompt_format, max_tokens=max_tokens)
                truncated = calls[-1].finish_reason == "length"
            rewritten = fold_blank_lines(rewritten)
            accepted, reason = judge_rewrite(task, original, rewritten, trace.answer, truncated=truncated)
            rewrites.append({"teacher": trace.teacher, "sample": trace.sample, "original": original,
                             "rewritten": rewritten, "accepted": accepted, "reason": reason,
                             **({"truncated": True} if truncated else {})})
        return Trace(example.id, "refine", None, calls, meta={"rewrites": rewrites})

    return program


def rewritten_rationales(rows: Sequence[dict]) -> dict[tuple[str, str, int], str]:
    """(input, teacher, sample) -> the rationale stage 2 trains on: the rewrite if accepted, else the original."""
    return {
        output_key({"example_id": row["id"], **r}): r["rewritten"] if r["accepted"] else r["original"]
        for row in rows for r in row["rewrites"]
    }
