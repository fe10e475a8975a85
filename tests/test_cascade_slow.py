"""The cascade's confidence on the real embedded model (Gemma 3 270M): the probability of a greedy
answer, recorded while it answers (batched, prefix shared), is the probability the model gives
those tokens read back in one teacher-forced pass; and the cascade's curve ends at System 2. Slow."""

from __future__ import annotations

import math

import pytest

from s2distill.lm.embedded import embedded_lm
from s2distill.methods import run_program
from s2distill.methods.direct import direct
from s2distill.methods.pal import pal
from s2distill.scoring.cascade import ROUTE_ALL, cascade_curve, cascade_point, confidence_of
from s2distill.scoring.score import score_traces
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig

pytestmark = pytest.mark.slow


def _teacher_forced_logprob(lm, prompt: str, output: str, generated: int) -> float | None:
    """log p(the greedy answer | prompt) in one forward pass: the output's tokens, then the token that
    ended it (greedy: the most likely next one, e.g. "\n\n", cut at the stop string "\n"); None
    when re-tokenising the output gives another count than was generated."""
    import torch

    tokenizer = lm.tokenizer
    prompt_ids = tokenizer(prompt).input_ids
    answer_ids = tokenizer(output, add_special_tokens=False).input_ids
    if len(answer_ids) + 1 != generated:
        return None
    with torch.inference_mode():
        logits = lm._model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0].float()
    steps = torch.log_softmax(logits[len(prompt_ids) - 1 :], dim=-1)
    return float(sum(steps[i, t] for i, t in enumerate(answer_ids)) + steps[-1].max())


def test_the_answer_probability_is_the_models_own_and_the_cascade_ends_at_system2(monkeypatch):
    monkeypatch.delenv("S2DISTILL_HOME", raising=False)  # the real cache's converted model
    gemma = embedded_lm(dtype="float32", batch_rows=16)
    task = LastLetters(LastLettersConfig(test_size=12))
    labeled = task.labeled("test")
    examples = [item.example for item in labeled]
    traces = run_program(direct(task, shots=4, max_tokens=8), examples, gemma, logprobs=True)
    checked = 0
    for trace in traces:
        confidence = confidence_of(trace)
        assert confidence is not None and 0.0 < confidence <= 1.0
        call = trace.calls[0]
        forced = _teacher_forced_logprob(gemma, call.prompt, call.output, call.usage.completion_tokens)
        if forced is not None:
            checked += 1
            assert math.isclose(call.logprob, forced, abs_tol=0.02), (call.output, call.logprob, forced)
    assert checked >= len(traces) // 2

    _, own = score_traces(task, labeled, traces, system="system1", method="direct")
    _, fallback = score_traces(task, labeled, run_program(pal(task), examples, gemma, workers=8),
                               system="system2", method="pal")
    curve = cascade_curve(own, fallback)
    everything = cascade_point(own, fallback, ROUTE_ALL)
    assert curve[-1] == everything and everything.routed == 1.0
    assert everything.score == sum(float(r["correct"]) for r in fallback) / len(fallback)
    assert [p.tokens_per_example for p in curve] == sorted(p.tokens_per_example for p in curve)
