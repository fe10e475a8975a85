"""The LM protocol every backend implements, and the view that applies a run's sampling settings.

A backend implements one batch-first method (DESIGN principle 1):

    generate(requests) -> completions, in the same order; one list of `n` completions per request

and exposes `name`, the identity that goes into cache keys. Backends decide how to batch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from s2distill.types import Completion, Request


@runtime_checkable
class LM(Protocol):
    """Anything that turns requests into completions."""

    name: str

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        """Return, for each request, its `n` completions (samples first_sample .. first_sample+n-1)."""
        ...


class SampledLM:
    """A view of an LM that fills in the run's sampling settings and picks the sample index.

    Methods write their requests without a temperature; the runner wraps the LM in this view so
    the same program runs greedily for evaluation and as sample `k` of N for self-consistency.
    Every request a program makes in sample `k` asks for sample `k` of that prompt, so a program
    with several calls stays one coherent sample.
    """

    def __init__(self, inner: LM, *, temperature: float, top_p: float = 1.0, sample: int = 0, seed: int = 0,
                 logprobs: bool = False):
        self.inner = inner
        self.logprobs = logprobs  # every request asks for its log-probability (a filter reads it)
        self.name = inner.name
        self._temperature = temperature
        self._top_p = top_p
        self.sample = sample  # public: a program that samples sub-programs (USC) derives indices from it
        self.seed = seed

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        def fill(request: Request) -> Request:
            if self.logprobs and not request.logprobs:
                request = dataclasses.replace(request, logprobs=True)
            if request.temperature is not None:  # the method pinned it; respect that
                return request
            return dataclasses.replace(
                request,
                temperature=self._temperature,
                top_p=self._top_p if self._temperature else 1.0,
                seed=self.seed,
                first_sample=request.first_sample + self.sample,
            )

        return self.inner.generate([fill(r) for r in requests])


def sample_rows(requests: Sequence[Request]) -> list[tuple[int, int]]:
    """(request index, sample index) of every completion a backend must produce: a greedy
    request needs one row whatever its `n`, since all its samples are the same."""
    return [(i, k) for i, r in enumerate(requests) for k in dict.fromkeys(r.sample_indices())]


def gather_samples(requests: Sequence[Request], done: dict[tuple[int, int], Completion]) -> list[list[Completion]]:
    """Each request's `n` completions from the rows of `sample_rows`, greedy rows copied to every index."""
    results = []
    for i, r in enumerate(requests):
        completions = [done[(i, k)] for k in r.sample_indices()]
        results.append([dataclasses.replace(c, sample_index=r.first_sample + j) for j, c in enumerate(completions)])
    return results


_WORDISH = re.compile(r"\w+|[^\w\s]")


def count_text_tokens(text: str) -> int:
    """A deterministic stand-in token count (words and punctuation) for backends without a tokenizer."""
    return len(_WORDISH.findall(text))


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; say whether one was found.

    Stop strings do not fire inside leading whitespace: a model that opens its reply with a blank
    line ("Evaluation Plan:\n\n1. ...") would otherwise be cut to nothing by a "\n\n" stop.
    """
    start = len(text) - len(text.lstrip())
    cut = min((i for i in (text.find(s, start) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def render_messages(messages: Sequence[tuple[str, str]]) -> str:
    """Plain-text rendering of chat messages for backends that have no chat template."""
    return "".join(f"{role}: {content}\n" for role, content in messages) + "assistant:"
