"""The real embedded model (Gemma 3 270M): conversion, batched generation, methods. Marked slow."""

from __future__ import annotations

import pytest

from s2distill.lm import CachedLM
from s2distill.lm.embedded import embedded_lm
from s2distill.methods import run_program
from s2distill.methods.direct import direct
from s2distill.methods.pal import pal
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.types import Request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma(tmp_path_factory, monkeypatch_module):
    # The conversion lands in the user's real cache (S2DISTILL_HOME unset) so later runs reuse it.
    monkeypatch_module.delenv("S2DISTILL_HOME", raising=False)
    return embedded_lm(dtype="auto", batch_rows=16)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_program_aided_reasoning_solves_last_letters(gemma):
    task = LastLetters(LastLettersConfig(test_size=8))
    labeled = task.labeled("test")
    traces = run_program(pal(task), [item.example for item in labeled], gemma, workers=8)
    correct = sum(task.score(t.answer, item.target) for t, item in zip(traces, labeled))
    assert correct >= 6, [(t.answer, item.target, t.error) for t, item in zip(traces, labeled)]
    assert all(0 < t.usage.completion_tokens <= 96 for t in traces)


def test_samples_differ_and_replay_from_the_cache(gemma, tmp_path):
    prompt = "The three primary colours are"
    request = Request(prompt=prompt, temperature=1.0, max_tokens=8, n=4)
    first = gemma.generate([request])[0]
    assert len({c.text for c in first}) > 1  # each sample row has its own generator
    again = gemma.generate([request])[0]
    assert [c.text for c in again] == [c.text for c in first]  # same batch, same seeds: same samples
    cached = CachedLM(gemma, tmp_path / "c.sqlite")
    stored = cached.generate([request])[0]
    replayed = cached.generate([request])[0]
    assert [c.text for c in replayed] == [c.text for c in stored] and cached.stats.cached == 4


def test_direct_answer_stops_at_the_newline(gemma):
    task = LastLetters(LastLettersConfig(test_size=4))
    traces = run_program(direct(task, max_tokens=8), task.unlabeled("test"), gemma)
    assert all("\n" not in t.calls[0].output for t in traces)
    assert all(t.usage.completion_tokens <= 8 for t in traces)


def test_every_method_runs_end_to_end_on_the_embedded_model(gemma):
    """Each registered method once, small budgets: calls recorded, tokens summed, nothing raised.
    (Scores are not asserted: the 270M base model is too weak for most of these methods.)"""
    from s2distill.methods import METHODS
    from s2distill.types import Example

    task = LastLetters(LastLettersConfig(test_size=2))
    words = task.unlabeled("test")
    pair = Example("p", {"question": "How do I boil an egg?", "response_a": "Simmer it for nine minutes.", "response_b": "Eggs are oval."})
    biased = Example("b", {"text": "Which planet is the largest? I think the answer is Mars but I'm really not sure."})
    cases = {
        "direct": ({"max_tokens": 8}, words), "cot": ({"max_tokens": 48}, words), "pal": ({}, words),
        "rar": ({"max_tokens": 48}, words), "usc": ({"samples": 2, "max_tokens": 48}, words),
        "s2a": ({"max_tokens": 64, "answer_tokens": 16, "prompt_format": "fewshot"}, [biased]),
        "bsm": ({"branch_tokens": 64, "solve_tokens": 16, "merge_tokens": 48, "prompt_format": "fewshot"}, [pair]),
        "twt": ({"max_tokens": 64, "prompt_format": "fewshot"}, words),
    }
    assert set(cases) == set(METHODS)
    for name, (options, examples) in cases.items():
        traces = run_program(METHODS[name][0](task, **options), examples, gemma)
        for trace in traces:
            assert trace.calls, name
            assert trace.usage.completion_tokens == sum(c.usage.completion_tokens for c in trace.calls) > 0, name
            assert trace.answer is not None or trace.error, name


@pytest.mark.parametrize("task_name", ["gsm8k", "commonsenseqa", "mbpp", "triviaqa", "judging"])
def test_system1_on_every_real_task_runs_and_scores_real_rows(gemma, task_name):
    """Two real test rows per task through the embedded model's System 1 and the task's scorer:
    the answer is parsed (or recorded as unparseable), scored, and its tokens counted."""
    from s2distill.scoring.score import score_traces
    from s2distill.tasks import TASKS

    task = TASKS[task_name]()
    labeled = task.labeled("test")[:2]
    traces = run_program(direct(task, shots=2), [x.example for x in labeled], gemma, temperature=0.0, workers=2)
    score, records = score_traces(task, labeled, traces, system="system1", method="direct")
    assert score.n == 2 and 0.0 <= score.score <= 1.0 and score.tokens_per_example > 0
    assert all(r["answer"] is not None or r["error"] for r in records)
