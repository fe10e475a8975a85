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
    return embedded_lm(dtype="bfloat16", batch_rows=16)


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


def test_samples_are_reproducible_and_independent_of_the_batch(gemma, tmp_path):
    prompt = "The three primary colours are"
    alone = gemma.generate([Request(prompt=prompt, temperature=1.0, max_tokens=8, first_sample=2)])[0][0]
    together = gemma.generate([Request(prompt=prompt, temperature=1.0, max_tokens=8, n=4), Request(prompt="Hello", max_tokens=3)])
    assert together[0][2].text == alone.text  # sample 2 is sample 2, whatever shares its batch
    assert len({c.text for c in together[0]}) > 1  # and samples differ from one another
    cached = CachedLM(gemma, tmp_path / "c.sqlite")
    first = cached.generate([Request(prompt=prompt, temperature=1.0, max_tokens=8, n=4)])
    second = cached.generate([Request(prompt=prompt, temperature=1.0, max_tokens=8, n=4)])
    assert [c.text for c in first[0]] == [c.text for c in second[0]] and cached.stats.cached == 4


def test_direct_answer_stops_at_the_newline(gemma):
    task = LastLetters(LastLettersConfig(test_size=4))
    traces = run_program(direct(task, max_tokens=8), task.unlabeled("test"), gemma)
    assert all("\n" not in t.calls[0].output for t in traces)
    assert all(t.usage.completion_tokens <= 8 for t in traces)
