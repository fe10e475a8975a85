"""Universal self-consistency (Chen et al. 2023, arXiv 2311.17311) as Yu et al. 2024 use it
("Distilling System 2 into System 1", Section 4.3 and Figure 12): the model reads N sampled answers
to a question and *composes* the final answer consistent with the majority of them, after
"FINAL:". The composed answer is the distillation target (`Trace.final_response`).

The prompt is Figure 12's, verbatim (its text is only in the second copy of the paper), with
"20 answers" reading "N answers" for the N given (20 in the paper) and its unclosed quote kept.
Our reading where the figure names a slot only: {answers} lists the answers one a line as
"Answer i: ...".

Too long for the context (appendix A.2: "we reduce the answer set to 10 or select an answer
randomly if 10 generated answers are still too long"): when the listing of N answers exceeds
`max_chars` characters, half of them are used (N = 20 gives the paper's 10); when those still do
not fit, one answer chosen at random (seeded by the input) is the composed answer and no call is
made. Characters stand in for tokens, since the judge's tokenizer is not known here; the trace
records what was done (`meta["used"]`, `meta["fallback"]`).

Used as a System 2 method of its own (`usc`: N samples of a base method, then the composition) and
by curation (`curation.filter: usc`, over the teachers' outputs). Addition for pretrained models
(the `fewshot` format): one worked composition (`exemplars.USC`) first, and the reply is primed
with "FINAL:".
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field, field_validator

import s2distill.methods.exemplars as exemplars
from s2distill.lm.base import SampledLM
from s2distill.methods.calls import PromptFormat, ask
from s2distill.methods.registry import MAX_SAMPLES, REGISTRY, System2Method, config_class, factory_options, register
from s2distill.tasks import Task
from s2distill.types import Call, Example, Trace

# Figure 12 (in the 000_ copy of the paper); "20" is {n}.
COMPOSE = (
    "Read the question: {question}. {n} answers have been provided: {answers} Carefully read all answers and compose "
    "the final answer such that it is consistent with the majority of variants provided. Provide final answer as "
    '"FINAL: <your final answer>'
)
MAX_CHARS = 12000  # about 3,000 tokens of answers: what fits a 4k context beside the prompt


def listed(answers) -> str:
    """Figure 12's {answers}: one answer a line, numbered."""
    return "\n" + "\n".join(f"Answer {i}: {' '.join(text.split())}" for i, text in enumerate(answers, 1)) + "\n"


def parse_final(text: str) -> str | None:
    """The composed answer after the last "FINAL:", or None when there is none."""
    at = text.upper().rfind("FINAL:")
    if at < 0:
        return None
    final = text[at + len("FINAL:"):].strip().strip('"').strip("<>").strip()
    return final or None


def fitting(answers: list[str], question: str, *, max_chars: int, key: str) -> tuple[list[str], str]:
    """The answers the composition reads and how they were chosen: all N; half of them when all do
    not fit in `max_chars`; one at random (seeded by `key`) when half do not fit either."""
    def size(some):
        return len(COMPOSE.format(question=question, n=len(some), answers=listed(some)))

    if size(answers) <= max_chars:
        return answers, "all"
    half = answers[: max(1, len(answers) // 2)]
    if len(half) > 1 and size(half) <= max_chars:
        return half, f"the first {len(half)} of {len(answers)} (all do not fit in {max_chars} characters)"
    pick = random.Random(key).randrange(len(answers))
    return [answers[pick]], f"answer {pick + 1} of {len(answers)} at random (half do not fit in {max_chars} characters)"


def usc_compose(task: Task, question: str, answers: list[str], lm, *, calls: list[Call], prompt_format: PromptFormat,
                key: str, max_tokens: int = 128, max_chars: int = MAX_CHARS, shots: int = 1) -> tuple[str | None, dict]:
    """Compose the final answer from `answers` (greedily); record the call. Returns the composed
    text (None when the reply has no "FINAL:") and what was read (`used`, `fallback`)."""
    used, how = fitting(answers, question, max_chars=max_chars, key=key)
    meta = {"used": len(used), "of": len(answers), "fallback": how}
    if len(used) == 1:  # one answer: it is the final answer (the paper's random pick), no call
        return used[0].strip(), meta
    text = COMPOSE.format(question=question, n=len(used), answers=listed(used))
    if prompt_format == "fewshot":
        prefix = "".join(
            COMPOSE.format(question=e["question"], n=len(e["answers"]), answers=listed(e["answers"])) + f"\nFINAL: {e['final']}\n\n"
            for e in exemplars.USC[:shots]
        )
        text = prefix + text + "\nFINAL:"
    reply = ask(lm, text, calls=calls, name="compose", prompt_format=prompt_format, max_tokens=max_tokens,
                stop=("\n",) if prompt_format == "fewshot" else (), temperature=0.0)
    composed = parse_final(reply.text if prompt_format == "chat" else f"FINAL:{reply.text}")
    return composed, meta


def usc(task: Task, *, base: str = "cot", samples: int = 4, temperature: float = 0.7, shots: int = 4,
        prompt_format: PromptFormat = "fewshot", max_tokens: int | None = None, max_chars: int = MAX_CHARS):
    """Build the USC program over `samples` runs of the `base` method, which gets `shots`,
    `max_tokens` and `prompt_format` where its factory takes them."""
    config_class(base)  # raises naming the registered methods
    base_program = REGISTRY[base].factory(task, **factory_options(base, shots=shots, max_tokens=max_tokens,
                                                                  prompt_format=prompt_format))

    def program(example: Example, lm) -> Trace:
        # Sample k of USC draws its N base samples as sample indices k*N .. k*N+N-1 of the model.
        k = getattr(lm, "sample", 0)
        candidates = [
            base_program(example, SampledLM(lm, temperature=temperature, sample=k * samples + j, seed=getattr(lm, "seed", 0)))
            for j in range(samples)
        ]
        calls = [call for trace in candidates for call in trace.calls]
        responses = [final_response(t) for t in candidates if t.answer is not None]
        if not responses:
            return Trace(example.id, "usc", None, calls, error="no sample has an answer",
                         meta={"candidates": [t.answer for t in candidates]})
        composed, meta = usc_compose(task, task.question(example), responses, lm, calls=calls, prompt_format=prompt_format,
                                     key=f"{example.id}/{k}", max_chars=max_chars, shots=1 if shots else 0)
        answer = task.parse_answer(composed) if composed else None
        error = None if answer is not None else "no FINAL answer composed"
        return Trace(example.id, "usc", answer, calls, error=error,
                     meta={**meta, "candidates": [t.answer for t in candidates]}, final_response=composed or "")

    return program


class USCConfig(System2Method):
    """Universal self-consistency: `samples` runs of the `base` method (with this config's shots,
    budget and prompt format), then the model composes the final answer."""

    name: Literal["usc"] = "usc"
    base: str = Field("cot", description="the registered method sampled (`s2distill methods`)")
    samples: int = Field(4, ge=1, le=MAX_SAMPLES, description="base samples per composition (the paper: 20)")
    temperature: float = Field(0.7, ge=0.0, le=10.0, description="the base samples' temperature")
    max_chars: int = Field(MAX_CHARS, ge=1, description="characters of answers the composition reads at most; "
                           "beyond, half of them, then one at random (appendix A.2)")

    @field_validator("base")
    @classmethod
    def _registered(cls, base: str) -> str:
        if base not in REGISTRY:
            raise ValueError(f"unknown method {base!r}; the base is a registered method: {', '.join(sorted(REGISTRY))}")
        return base

    @property
    def runs_model_code(self) -> bool:
        return config_class(self.base).model_validate({"name": self.base}).runs_model_code


register(USCConfig, usc, "System 2: universal self-consistency: N samples of a base method, the model composes the "
         "FINAL answer")


def final_response(trace: Trace) -> str:
    """What USC reads of one output: the method's final response (S2A's answer, BSM's judgement),
    else its last call's text, else its answer."""
    return trace.final_response or trace.last_output or (trace.answer or "")


def composition_program(task: Task, traces_by_input: Mapping[str, Sequence[Trace]], *,
                        prompt_format: PromptFormat = "fewshot", max_chars: int = MAX_CHARS, max_tokens: int = 128):
    """Universal self-consistency over outputs already sampled (curation's `usc` filter): a program
    whose `answer` is the composed final answer parsed, `final_response` its text (`max_tokens`: the
    composition's budget, `curation.usc_max_tokens`)."""

    def program(example: Example, lm) -> Trace:
        responses = [final_response(t) for t in traces_by_input[example.id] if t.answer is not None]
        calls: list[Call] = []
        if not responses:
            return Trace(example.id, "usc_compose", None, calls, error="no parseable output", meta={"used": 0})
        composed, meta = usc_compose(task, task.question(example), responses, lm, calls=calls, prompt_format=prompt_format,
                                     key=example.id, max_chars=max_chars, max_tokens=max_tokens)
        answer = task.parse_answer(composed) if composed else None
        return Trace(example.id, "usc_compose", answer, calls, error=None if answer is not None else "the judge composed no FINAL answer",
                     meta=meta, final_response=composed or "")

    return program
