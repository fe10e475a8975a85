"""Score a system on the labelled test split: exact match and generated tokens per example.

Evaluation is the only place labels are read. Tokens per example sum every call a method made
(System 2's intermediate calls included), straight from the completions' own counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from s2distill.tasks import Task
from s2distill.types import Labeled, Trace
from s2distill.scoring.cascade import confidence_of
from s2distill.scoring.voting import vote


def majority_traces(traces: Sequence[Trace], normalize: Callable[[str], str]) -> list[Trace]:
    """maj@k: one trace per input whose answer is the most frequent of its k samples (on a tie, the
    one sampled first: `voting.vote(ties="first")`) and whose calls are all k samples' calls, so
    its tokens are the total of all k (the System 2 distillation paper's Table 3)."""
    grouped: dict[str, list[Trace]] = {}
    for trace in traces:
        grouped.setdefault(trace.example_id, []).append(trace)
    out = []
    for example_id, samples in grouped.items():
        result = vote((t.answer for t in samples), ties="first", normalize=normalize)
        calls = [call for t in samples for call in t.calls]
        error = None if result.answer is not None else f"no parseable answer in {len(samples)} samples"
        out.append(Trace(example_id, samples[0].method, result.answer, calls, error=error,
                         meta={"votes": result.votes, "k": len(samples)}))
    return out


@dataclass(frozen=True)
class Score:
    system: str
    method: str
    task: str
    metric: str
    score: float
    n: int
    tokens_per_example: float
    unparseable: int
    metrics: dict[str, float] = field(default_factory=dict)  # the task's extra columns

    def row(self) -> dict:
        return {
            "system": self.system, "method": self.method, "task": self.task, "metric": self.metric,
            "score": self.score, "n": self.n, "tokens_per_example": self.tokens_per_example,
            "unparseable": self.unparseable, "metrics": self.metrics,
        }


def score_traces(task: Task, labeled: Sequence[Labeled], traces: Sequence[Trace], *, system: str, method: str) -> tuple[Score, list[dict]]:
    """Compare each trace's answer with its target; return the summary and per-example records."""
    targets = {item.example.id: item.target for item in labeled}
    records = []
    for trace in traces:
        target = targets[trace.example_id]
        records.append({
            "id": trace.example_id, "answer": trace.answer, "target": target,
            "correct": task.score(trace.answer, target), "completion_tokens": trace.usage.completion_tokens,
            "prompt_tokens": trace.usage.prompt_tokens,
            "calls": len(trace.calls), "error": trace.error, "output": trace.last_output if trace.calls else None,
            "truncated": trace.truncated,  # a call was cut at its budget (maj@k: some sample's)
        })
        if trace.usage.cached_prompt_tokens:  # a server's prompt cache served some (priced lower: report/provenance.py)
            records[-1]["cached_prompt_tokens"] = trace.usage.cached_prompt_tokens
        if (confidence := confidence_of(trace)) is not None:  # asked with log-probabilities, or maj@k
            records[-1]["confidence"] = confidence
    n = len(records)
    examples = {item.example.id: item.example for item in labeled}
    headline = task.headline(records, examples)
    score = Score(
        system=system, method=method, task=task.name, metric=task.metric,
        score=headline if headline is not None else sum(r["correct"] for r in records) / n if n else 0.0, n=n,
        tokens_per_example=sum(r["completion_tokens"] for r in records) / n if n else 0.0,
        unparseable=sum(r["answer"] is None for r in records),
        metrics=task.metrics(records, examples),
    )
    return score, records
