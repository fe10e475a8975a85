"""A scripted LM that ships with the package, so the whole pipeline runs in tests in seconds.

Rules are (regex, responses): the last match of the regex in the prompt selects the rule, sample
`k` gets `responses[k % len(responses)]`, and `\\1`-style group references in a response are
filled from that match. So a fake can "solve" a task (echo the words it was asked about into a
program) and be wrong on purpose for some samples, which is what curation tests need.
Token counts are real counts of words and punctuation, so token accounting is exercised too.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s2distill.lm.base import count_text_tokens, render_messages, truncate_at_stop
from s2distill.types import Completion, Request, Usage

Responder = Callable[[Request, int], str]


@dataclass(frozen=True)
class Rule:
    pattern: str
    responses: tuple[str, ...]


class FakeLM:
    """Answer from rules or from a Python function `(request, sample_index) -> text`."""

    def __init__(
        self,
        rules: Sequence[Rule | dict] = (),
        *,
        default: str = "",
        responder: Responder | None = None,
        name: str | None = None,
        fail_after: int | None = None,
        latency: float = 0.0,
        keep_requests: bool = True,
        logprob: Callable[[Request, str], float] | None = None,
    ):
        self.rules = [r if isinstance(r, Rule) else Rule(r["pattern"], tuple(r["responses"])) for r in rules]
        self.default = default
        self.responder = responder
        self.fail_after = fail_after  # raise after this many completions: simulates a crash mid-run
        self.latency = latency  # seconds slept per `generate` call (a batch), as a served model would take
        self.keep_requests = keep_requests  # False: do not keep every request (a benchmark's 800k would all stay in memory)
        self.logprob = logprob  # a scripted log-probability `(request, text) -> float` (a student's confidence), when asked
        self.requests: list[Request] = []  # every request received, for tests
        self.batches = 0  # `generate` calls so far
        self.completions = 0
        digest = hashlib.sha256(json.dumps([[r.pattern, r.responses] for r in self.rules] + [default]).encode())
        self.name = name or f"fake:{digest.hexdigest()[:12]}"

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        self.batches += 1
        if self.latency:
            time.sleep(self.latency)
        out = []
        for request in requests:
            if self.keep_requests:
                self.requests.append(request)
            prompt = request.prompt if request.prompt is not None else render_messages(request.messages or ())
            samples = []
            for k in range(request.first_sample, request.first_sample + request.n):
                if self.fail_after is not None and self.completions >= self.fail_after:
                    raise RuntimeError(f"FakeLM: simulated failure after {self.fail_after} completions")
                raw = self.responder(request, k) if self.responder else self._from_rules(prompt, k)
                text, stopped = truncate_at_stop(raw, request.stop)
                words = text.split(" ")
                if len(words) > request.max_tokens:  # crude, but honours the budget
                    text, stopped = " ".join(words[: request.max_tokens]), False
                usage = Usage(count_text_tokens(prompt), count_text_tokens(text))
                # A scripted log-probability when asked: the `logprob` function's, else -0.1 per token
                # (so longer outputs are less likely).
                logprob = None
                if request.logprobs:
                    logprob = self.logprob(request, text) if self.logprob else -0.1 * usage.completion_tokens
                samples.append(Completion(text, usage, "stop" if stopped or raw == text else "length", k, logprob=logprob))
                self.completions += 1
            out.append(samples)
        return out

    def _from_rules(self, prompt: str, sample: int) -> str:
        best: tuple[int, Rule, re.Match] | None = None
        for rule in self.rules:
            matches = list(re.finditer(rule.pattern, prompt))
            if matches and (best is None or matches[-1].start() > best[0]):
                best = (matches[-1].start(), rule, matches[-1])
        if best is None:
            return self.default
        _, rule, match = best
        return match.expand(rule.responses[sample % len(rule.responses)])
