"""The data that flows through s2distill: examples, LM requests and completions, traces, verdicts.

Everything here is a small frozen-ish dataclass that round-trips through JSON, because every
stage of a run writes its output to disk and the next stage reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True)
class Example:
    """One task input, as a model may see it. It has no label field on purpose.

    Generation and curation only ever receive `Example`s; the target lives in `Labeled`,
    which evaluation reads, and, after curation, the `gold` control's training set (the ceiling a
    distilled student is compared with: stages/controls.py) (DESIGN principle 6).
    """

    id: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Labeled:
    """An example together with its reference answer; read by evaluation (and the gold control's set)."""

    example: Example
    target: str


@dataclass(frozen=True)
class Request:
    """One LM call: a raw prompt (or chat messages) and its sampling settings.

    `temperature=None` means "whatever the run says": methods leave it unset so that one program
    can be run greedily for evaluation and sampled N times for self-consistency. Samples
    `first_sample .. first_sample + n - 1` are asked for; sample `k` of a request is a
    deterministic function of (model, prompt, settings, seed, k), which is what lets the cache
    store and replay samples one by one.
    """

    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    temperature: float | None = None
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int = 0
    n: int = 1
    first_sample: int = 0
    logprobs: bool = False  # ask for the completion's log-probability (backends that have it)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a Request needs exactly one of prompt= or messages=")
        if self.n < 1 or self.max_tokens < 1:
            raise ValueError(f"n and max_tokens must be >= 1, got n={self.n}, max_tokens={self.max_tokens}")

    @property
    def greedy(self) -> bool:
        return not self.temperature

    def settings(self) -> dict[str, Any]:
        """The sampling settings as a backend should apply them: a greedy request's are canonical
        (temperature 0, top_p 1, seed 0) whatever it was built with, since its output cannot depend on them."""
        if self.greedy:
            return {"temperature": 0.0, "top_p": 1.0, "seed": 0}
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}

    def sample_seed(self, k: int, *, bits: int = 63) -> int:
        """The seed of sample `k`: a deterministic function of (seed, k), so sample k is the same
        whether it is drawn alone or beside others, by any backend that honours seeds."""
        return (self.seed * 1_000_003 + k) % (2**bits)

    def sample_indices(self) -> list[int]:
        """The sample index of each of its `n` completions; a greedy request's are all the first,
        since its samples are one and the same completion."""
        if self.greedy:
            return [self.first_sample] * self.n
        return list(range(self.first_sample, self.first_sample + self.n))


@dataclass(frozen=True)
class Usage:
    """Token counts of one or more calls; they add up (DESIGN principle 2)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, those the server served from its prompt cache (priced lower)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.cached_prompt_tokens + other.cached_prompt_tokens)


@dataclass(frozen=True)
class Completion:
    """One generated sample: its text and the tokens it cost."""

    text: str
    usage: Usage
    finish_reason: str = "stop"  # "stop" (stop string or end of sequence) or "length"
    sample_index: int = 0
    cached: bool = False
    error: str | None = None  # the server refused this request for good (a 4xx): no text, never cached
    logprob: float | None = None  # sum of the generated tokens' log-probabilities, when asked and known
    deferred: bool = False  # asked of a batch not yet collected (lm/batch.py): no text yet, never cached


@dataclass
class Call:
    """One call a program made, kept in its trace for audit and for token accounting.

    `finish_reason` is its completion's: "length" when the output was cut at the call's
    `max_tokens` budget, which makes the whole trace `truncated` (never a training target)."""

    prompt: str
    output: str
    usage: Usage
    name: str = "generate"
    logprob: float | None = None  # the completion's log-probability, when the run asked for it
    finish_reason: str = "stop"  # "stop" or "length" (cut at its budget); rows written before it read as "stop"


@dataclass
class Trace:
    """What one run of a method on one example did: every call, and the final answer.

    `answer` is None when the output could not be parsed; `error` then says why. An unparseable
    answer is data, never an exception. What later stages read of a trace is a typed field:
    `teacher` (the source that sampled it, set by the sampling stage), `rationale` (the reasoning
    a method records, e.g. PAL's program or CoT's chain), `final_response` (a method's own last
    response: S2A's answer call, BSM's merged judgement, USC's composition) and `confidence`
    (TwT's self-reported score); `meta` holds method-specific detail for audit only.
    """

    example_id: str
    method: str
    answer: str | None
    calls: list[Call] = field(default_factory=list)
    error: str | None = None
    sample: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    teacher: str = ""
    rationale: str | None = None
    final_response: str | None = None
    confidence: float | None = None

    @property
    def last_output(self) -> str:
        """The text of the last call the program made ("" when it made none)."""
        return self.calls[-1].output if self.calls else ""

    @property
    def truncated(self) -> bool:
        """Whether any call stopped at its length budget: its output is cut short, so the trace's
        answer cannot be trusted as a target (DESIGN: "A completion cut at its budget is
        'truncated', counted, and never kept as a target")."""
        return any(c.finish_reason == "length" for c in self.calls)

    @property
    def mean_logprob(self) -> float | None:
        """The mean log-probability per generated token over every call (None when a call has none):
        TwT Table 5's log-probability criterion."""
        if not self.calls or any(c.logprob is None for c in self.calls):
            return None
        tokens = sum(c.usage.completion_tokens for c in self.calls)
        return sum(c.logprob for c in self.calls) / max(tokens, 1)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for call in self.calls:
            total = total + call.usage
        return total

    def to_dict(self) -> dict[str, Any]:
        """`asdict(self)`, built directly when `meta` is empty (most samples): `asdict` recurses
        through every field and copies each value, a third of writing a samples artifact."""
        if self.meta:  # method detail of any shape: converted and copied as asdict does
            return asdict(self)
        return {"example_id": self.example_id, "method": self.method, "answer": self.answer,
                "calls": [{"prompt": c.prompt, "output": c.output,
                           "usage": {"prompt_tokens": c.usage.prompt_tokens, "completion_tokens": c.usage.completion_tokens,
                                     "cached_prompt_tokens": c.usage.cached_prompt_tokens},
                           "name": c.name, "logprob": c.logprob, "finish_reason": c.finish_reason} for c in self.calls],
                "error": self.error, "sample": self.sample, "meta": {}, "teacher": self.teacher,
                "rationale": self.rationale, "final_response": self.final_response, "confidence": self.confidence}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        calls = [Call(**{**c, "usage": Usage(**c["usage"])}) for c in data.get("calls", [])]
        data = {**data, "calls": calls}
        meta = dict(data.get("meta") or {})
        for key in _TYPED:  # written before these were fields: they were meta keys
            if key in meta and key not in data:
                data[key] = meta.pop(key)
        data["meta"] = meta
        return cls(**data)


_TYPED = ("teacher", "rationale", "final_response", "confidence")


class OutputRef(NamedTuple):
    """One output a verdict keeps: the teacher (source) that sampled it and its sample index, which
    together name the output among an input's; `answer` is its parsed answer, recorded for a person
    reading the verdicts artifact and not part of the output's identity (`key`).

    A named tuple, so a verdict stays JSON-serialisable as it is; in an artifact row it is written
    as a {"teacher", "sample", "answer"} mapping (`Verdict.to_row`).
    """

    teacher: str
    sample: int
    answer: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """(teacher, sample): which output this is, whatever its answer."""
        return self.teacher, self.sample

    def to_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "sample": self.sample, "answer": self.answer}

    @classmethod
    def of(cls, value: OutputRef | Mapping[str, Any] | Iterable[Any]) -> OutputRef:
        """An `OutputRef` from itself, its row mapping, or a [teacher, sample(, answer)] list (as JSON
        holds a named tuple)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls(value["teacher"], value["sample"], value.get("answer"))
        return cls(*value)


@dataclass(frozen=True)
class Verdict:
    """A curation filter's decision on one input, with the reason a person can read.

    What distillation reads of it is typed: `kept`, `answer`, `kept_outputs` (the outputs a kept
    input trains on, in the filter's order) and `composed` (USC's composed response, the
    answer-only target of that input; None for every other filter). `meta` holds each filter's own
    diagnostics (votes, sample counts, USC's fallback), for audit only.
    """

    example_id: str
    kept: bool
    reason: str
    answer: str | None = None
    filter: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    kept_outputs: tuple[OutputRef, ...] = ()
    composed: str | None = None

    def __post_init__(self) -> None:
        refs = self.kept_outputs
        if type(refs) is not tuple or not all(type(r) is OutputRef for r in refs):
            object.__setattr__(self, "kept_outputs", tuple(OutputRef.of(r) for r in refs))

    def to_row(self) -> dict[str, Any]:
        """The verdict as a row of a verdicts artifact (curation/*.jsonl)."""
        return {"example_id": self.example_id, "kept": self.kept, "reason": self.reason, "answer": self.answer,
                "filter": self.filter, "meta": self.meta, "kept_outputs": [r.to_dict() for r in self.kept_outputs],
                "composed": self.composed}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Verdict:
        """A verdict from its artifact row, also as written before `kept_outputs` and `composed`
        were fields: they were the `meta` keys "kept" (a list of {"teacher", "sample", "answer"})
        and "composed"."""
        data = dict(row)
        meta = dict(data.get("meta") or {})
        for key, old in (("kept_outputs", "kept"), ("composed", "composed")):
            if key not in data and old in meta:
                data[key] = meta.pop(old)
        data["meta"] = meta
        return cls(**data)
