"""HaRD stage 2 (TwT): the teacher rewrites each kept rationale after reading the student's own
output from stage 1, so the stage-2 targets are shorter and closer to what the student writes.

Who rewrites: each rationale is rewritten by the teacher that wrote it, with its own model and its
own method's prompt format. That is our reading of TwT, whose teachers are several (GPT-4,
GPT-4o-mini, Mistral-Large) and whose Section 3.2 has "the teacher model generates the original
reasoning r_i ... We design a prompt p' to guide the teacher model in refining its original
reasoning r_i" and Appendix B.4 "The teacher model modifies its original reasoning process based
on the student model's response preferences"; Figure 8 then tells it to "compare your previous
thinking process on this task with the student's thinking process" and to "modify your original
output", which is true only when the rationale is its own. `distill.refiner: NAME` departs from
this on purpose: that one teacher rewrites every teacher's rationale (still told it is "your
previous thinking"), e.g. for a user with one strong model and weaker samplers. Table 6's
compressor is per teacher the same way; fixed-length needs no model. A single-teacher recipe is
the same either way (its teacher is its own refiner), so its earlier runs keep their compression.

The rewrite's budget is `distill.rewrite_max_tokens` (160 by default; TwT generates up to 2,048
tokens, Section 4.1).

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
                        ratio: float | None = None, refiner: str | None = None):
    """A program that rewrites every kept rationale of one input; `meta["rewrites"]` holds them,
    each naming the teacher that wrote the rationale and, for a model's rewrite, `refiner`: the
    teacher whose model (`lm`) rewrote it.

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
                             **({"truncated": True} if truncated else {}),
                             **({"refiner": refiner} if refiner is not None and ratio is None else {})})
        return Trace(example.id, "refine", None, calls, meta={"rewrites": rewrites})

    return program


def rewritten_rationales(rows: Sequence[dict]) -> dict[tuple[str, str, int], str]:
    """(input, teacher, sample) -> the rationale stage 2 trains on: the rewrite if accepted, else the original."""
    return {
        output_key({"example_id": row["id"], **r}): r["rewritten"] if r["accepted"] else r["original"]
        for row in rows for r in row["rewrites"]
    }


def rewrite_counts(rows: Sequence[dict]) -> dict[str, dict[str, int]]:
    """Per teacher that rewrote (a rationale's own teacher for fixed-length cuts, and in rows from
    before rewrites named their refiner): its rewrites, how many were accepted, and how many were
    rejected as cut at their budget, as not shorter, or otherwise (empty, another answer)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        for r in row["rewrites"]:
            c = counts.setdefault(r.get("refiner") or r["teacher"],
                                  {"rewrites": 0, "accepted": 0, "truncated": 0, "not_shorter": 0, "other": 0})
            c["rewrites"] += 1
            if r["accepted"]:
                c["accepted"] += 1
            elif r.get("truncated"):
                c["truncated"] += 1
            elif r["reason"].startswith("not shorter"):
                c["not_shorter"] += 1
            else:
                c["other"] += 1
    return counts
