"""The SQLite completion cache: per-sample keys, replay, partial resume, persistence."""

from __future__ import annotations

import sqlite3

from s2distill.lm import CachedLM, FakeLM
from s2distill.types import Request


def numbered_fake() -> FakeLM:
    return FakeLM(responder=lambda request, k: f"sample {k} of {request.prompt}", name="fake:numbered")


def test_n_samples_of_one_prompt_are_n_distinct_cached_completions(tmp_path):
    inner = numbered_fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    [out] = lm.generate([Request(prompt="p", temperature=0.7, n=4)])
    assert [c.text for c in out] == [f"sample {k} of p" for k in range(4)]
    rows = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT COUNT(*), COUNT(DISTINCT text) FROM completions").fetchone()
    assert rows == (4, 4)
    assert (lm.stats.generated, lm.stats.cached) == (4, 0)

    [again] = lm.generate([Request(prompt="p", temperature=0.7, n=4)])
    assert [c.text for c in again] == [c.text for c in out]
    assert all(c.cached for c in again)
    assert inner.completions == 4  # nothing generated the second time
    assert (lm.stats.generated, lm.stats.cached) == (4, 4)


def test_more_samples_later_only_generates_the_new_ones(tmp_path):
    inner = numbered_fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate([Request(prompt="p", temperature=0.7, n=2)])
    [out] = lm.generate([Request(prompt="p", temperature=0.7, n=5)])
    assert [c.sample_index for c in out] == [0, 1, 2, 3, 4]
    assert inner.completions == 5
    assert inner.requests[-1].first_sample == 2 and inner.requests[-1].n == 3


def test_greedy_samples_are_generated_once(tmp_path):
    inner = numbered_fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    [out] = lm.generate([Request(prompt="p", temperature=0.0, n=3)])
    assert len(out) == 3 and len({c.text for c in out}) == 1
    assert inner.completions == 1


def test_key_separates_model_settings_and_seed(tmp_path):
    inner = numbered_fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    for request in [
        Request(prompt="p", temperature=0.7),
        Request(prompt="p", temperature=0.7, seed=1),
        Request(prompt="p", temperature=0.9),
        Request(prompt="p", temperature=0.7, max_tokens=3),  # the reply does not fit: a budget it fits reuses it
        Request(prompt="p", temperature=0.7, stop=("\n",)),
    ]:
        lm.generate([request])
    assert inner.completions == 5


def test_cache_survives_a_new_process(tmp_path):
    CachedLM(numbered_fake(), tmp_path / "c.sqlite").generate([Request(prompt="p", temperature=0.7, n=3)])
    inner = numbered_fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate([Request(prompt="p", temperature=0.7, n=3)])
    assert inner.completions == 0 and lm.stats.cached == 3


def test_completed_chunks_are_kept_when_the_model_fails(tmp_path):
    failing = FakeLM(responder=lambda r, k: "x", name="fake:same", fail_after=3)
    lm = CachedLM(failing, tmp_path / "c.sqlite", chunk_rows=1)
    requests = [Request(prompt=f"p{i}", temperature=0.7) for i in range(5)]
    try:
        lm.generate(requests)
    except RuntimeError:
        pass
    healthy = FakeLM(responder=lambda r, k: "x", name="fake:same")
    lm2 = CachedLM(healthy, tmp_path / "c.sqlite")
    lm2.generate(requests)
    assert lm2.stats.cached == 3 and healthy.completions == 2


def test_a_batch_of_more_requests_than_one_lookup_query_holds_is_served_whole(tmp_path):
    """Lookups go `LOOKUP_KEYS` keys per query (benchmarks/scale.py): a batch larger than that,
    with repeated prompts and a greedy request among them, comes back complete and in order."""
    inner = numbered_fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite", chunk_rows=100)
    requests = [Request(prompt=f"p{i % 700}", temperature=0.7, first_sample=i % 3, n=2) for i in range(1200)]
    requests.append(Request(prompt="g", temperature=0.0, n=3))
    first = lm.generate(requests)
    again = lm.generate(requests)
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in first]
    assert [[c.sample_index for c in row] for row in again] == [[c.sample_index for c in row] for row in first]
    assert all(c.cached for row in again for c in row)
    assert first[0][1].text == "sample 1 of p0" and again[-1][2].text == "sample 0 of g"


def test_fake_latency_and_requests_not_kept():
    lm = FakeLM(responder=lambda request, k: "x", latency=0.01, keep_requests=False)
    lm.generate([Request(prompt="a")])
    lm.generate([Request(prompt="b")])
    assert lm.batches == 2 and lm.requests == [] and lm.completions == 2


def test_log_probabilities_are_kept_and_asked_for_under_their_own_key(tmp_path):
    from s2distill.lm.cache import request_key

    fake = FakeLM(default="a b c")
    lm = CachedLM(fake, tmp_path / "c.sqlite")
    asked = Request(prompt="x", temperature=0.7, n=2, logprobs=True)
    first = lm.generate([asked])[0]
    again = CachedLM(FakeLM(default="a b c"), tmp_path / "c.sqlite").generate([asked])[0]
    assert [c.logprob for c in again] == [c.logprob for c in first] and all(c.cached for c in again)
    assert all(abs(c.logprob + 0.3) < 1e-9 for c in first)  # the fake: -0.1 per token
    plain = Request(prompt="x", temperature=0.7, n=2)
    assert request_key("m", plain) != request_key("m", asked)  # a plain request keeps its earlier key
    assert all(c.logprob is None for c in lm.generate([plain])[0])


def test_an_openai_replys_token_log_probabilities_add_up():
    from types import SimpleNamespace as NS

    from s2distill.lm.openai_api import _summed_logprob

    assert _summed_logprob(NS(logprobs=NS(token_logprobs=[-0.5, -0.25, None]))) == -0.75  # /completions
    assert _summed_logprob(NS(logprobs=NS(token_logprobs=None, content=[NS(logprob=-1.0), NS(logprob=-0.5)]))) == -1.5
    assert _summed_logprob(NS(logprobs=None)) is None and _summed_logprob(NS()) is None


class _CallRecorder(FakeLM):
    """A fake that remembers, per call to it, the (prompt, sample) pairs it was asked for."""

    def __init__(self):
        super().__init__(responder=lambda request, k: f"sample {k} of {request.prompt}", name="fake:numbered")
        self.calls: list[list[tuple[str, int]]] = []

    def generate(self, requests):
        self.calls.append([(r.prompt, r.first_sample + j) for r in requests for j in range(r.n)])
        return super().generate(requests)


def test_a_chunk_holds_whole_prompts_up_to_the_backends_batch(tmp_path):
    """The runner asks for each sample of a prompt separately, in the order its programs arrive;
    a prompt's samples must still reach the backend in one call (one prefill, shared rows), and
    a call holds `chunk_rows` distinct prompts, not `chunk_rows` samples."""
    inner = _CallRecorder()
    lm = CachedLM(inner, tmp_path / "c.sqlite", chunk_rows=4)
    order = [(p, k) for k in range(2) for p in range(10)]  # every sample 0 first, then every sample 1
    requests = [Request(prompt=f"p{p}", temperature=0.7, first_sample=k) for p, k in order]
    out = lm.generate(requests)
    assert [row[0].text for row in out] == [f"sample {k} of p{p}" for p, k in order]
    assert [len({prompt for prompt, _ in call}) for call in inner.calls] == [4, 4, 2]
    for call in inner.calls:
        assert sorted(call) == sorted((prompt, k) for prompt in {p for p, _ in call} for k in range(2))


def test_a_chunk_caps_its_samples_when_prompts_ask_for_many(tmp_path):
    inner = _CallRecorder()
    lm = CachedLM(inner, tmp_path / "c.sqlite", chunk_rows=4)
    lm.generate([Request(prompt=f"p{p}", temperature=0.7, n=10) for p in range(3)])
    assert [len(call) for call in inner.calls] == [10, 10, 10]  # 16 samples at most: one prompt per call
