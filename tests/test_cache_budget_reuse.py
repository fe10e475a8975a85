"""Reuse on a bigger (or smaller) budget: a cache miss is served from a row of the same request bar
`max_tokens` that stopped on its own within the new budget; rows cut at their limit are asked again."""

from __future__ import annotations

import sqlite3

from s2distill.lm import CachedLM, FakeLM
from s2distill.lm.cache import budget_family, import_cache, open_cache, request_key
from s2distill.types import Request

SHORT = ["short0", "short1", "short2"]  # prompts answered in 3 words
LONG = ["long0", "long1"]  # prompts answered in 20 words


def reply(request: Request, k: int) -> str:
    words = 3 if request.prompt.startswith("short") else 20
    return " ".join(f"{request.prompt}s{k}w{j}" for j in range(words))  # a token a word


def fake() -> FakeLM:
    return FakeLM(responder=reply, name="fake:lengths")


def asked(inner: FakeLM) -> list[tuple[str, int, int]]:
    """(prompt, first sample, n) of every request the inner LM received."""
    return [(r.prompt, r.first_sample, r.n) for r in inner.requests]


def batch(max_tokens: int, **settings) -> list[Request]:
    return [Request(prompt=p, max_tokens=max_tokens, **settings) for p in SHORT + LONG]


def test_a_bigger_budget_asks_only_for_the_truncated_completions(tmp_path):
    inner = fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    first = lm.generate(batch(8))
    assert [row[0].finish_reason for row in first] == ["stop"] * 3 + ["length"] * 2
    assert inner.completions == 5

    second = lm.generate(batch(32))
    assert asked(inner)[5:] == [("long0", 0, 1), ("long1", 0, 1)]  # only what hit the old limit
    assert inner.completions == 7
    assert [row[0].text for row in second[:3]] == [row[0].text for row in first[:3]]
    assert all(row[0].cached and row[0].finish_reason == "stop" for row in second[:3])
    assert all(not row[0].cached and row[0].finish_reason == "stop" for row in second[3:])
    assert len(second[3][0].text.split()) == 20
    assert (lm.stats.generated, lm.stats.cached, lm.stats.reused) == (7, 3, 3)

    third = lm.generate(batch(32))  # everything is under the new key now: direct hits
    assert inner.completions == 7 and all(row[0].cached for row in third)
    assert [row[0].text for row in third] == [row[0].text for row in second]
    assert (lm.stats.cached, lm.stats.reused) == (8, 3)
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        keys = {k for (k,) in db.execute("SELECT key FROM completions WHERE max_tokens = 32")}
    assert keys == {request_key(lm.name, r) for r in batch(32)}  # the reused rows were written under their new key


def test_reuse_survives_a_new_process(tmp_path):
    CachedLM(fake(), tmp_path / "c.sqlite").generate(batch(8))
    inner = fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate(batch(32))
    assert [p for p, _, _ in asked(inner)] == LONG and lm.stats.reused == 3


def test_a_smaller_budget_reuses_only_what_fits(tmp_path):
    inner = fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    full = lm.generate(batch(32))
    assert inner.completions == 5
    small = lm.generate(batch(4))  # the 3-word replies fit in 4 tokens; the 20-word ones do not
    assert [p for p, _, _ in asked(inner)[5:]] == LONG
    assert [row[0].text for row in small[:3]] == [row[0].text for row in full[:3]] and all(r[0].cached for r in small[:3])
    assert [row[0].finish_reason for row in small[3:]] == ["length", "length"]
    assert len(small[3][0].text.split()) == 4
    lm.generate(batch(2))  # nothing fits in 2: every prompt asked again
    assert [p for p, _, _ in asked(inner)[7:]] == SHORT + LONG


def test_the_largest_budget_that_qualifies_is_served(tmp_path):
    lm = CachedLM(fake(), tmp_path / "c.sqlite")
    lm.generate([Request(prompt="short0", max_tokens=8)])
    lm.generate([Request(prompt="short0", max_tokens=16)])  # reused from 8, stored under 16
    with sqlite3.connect(tmp_path / "c.sqlite") as db:  # make the two rows tell apart
        db.execute("UPDATE completions SET text = 'from 16' WHERE max_tokens = 16")
    [[out]] = lm.generate([Request(prompt="short0", max_tokens=12)])
    assert out.text == "from 16" and lm.stats.reused == 2


def test_sampled_requests_reuse_per_sample(tmp_path):
    inner = fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    first = lm.generate(batch(8, temperature=0.7, n=3))
    assert inner.completions == 15
    second = lm.generate(batch(32, temperature=0.7, n=3))
    assert asked(inner)[5:] == [("long0", 0, 3), ("long1", 0, 3)]
    for before, after in zip(first[:3], second[:3]):
        assert [c.text for c in after] == [c.text for c in before] and all(c.cached for c in after)
        assert [c.sample_index for c in after] == [0, 1, 2]
    assert lm.stats.reused == 9

    more = lm.generate([Request(prompt="short0", max_tokens=64, temperature=0.7, n=5)])  # samples 3, 4 are new
    assert asked(inner)[-1] == ("short0", 3, 2)
    assert [c.cached for c in more[0]] == [True, True, True, False, False]


def test_a_sample_cut_at_the_limit_is_asked_again_beside_reused_ones(tmp_path):
    """Sample 1 of a prompt is long, samples 0 and 2 short: only sample 1 is asked for."""
    inner = FakeLM(responder=lambda r, k: " ".join(["w"] * (20 if k == 1 else 3)), name="fake:mixed")
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate([Request(prompt="p", max_tokens=8, temperature=0.7, n=3)])
    [out] = lm.generate([Request(prompt="p", max_tokens=32, temperature=0.7, n=3)])
    assert asked(inner)[-1] == ("p", 1, 1)
    assert [c.cached for c in out] == [True, False, True] and [c.sample_index for c in out] == [0, 1, 2]
    assert [len(c.text.split()) for c in out] == [3, 20, 3]


def test_greedy_requests_reuse_their_one_row(tmp_path):
    inner = fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate([Request(prompt="short0", max_tokens=8, temperature=0.0, n=3)])
    [out] = lm.generate([Request(prompt="short0", max_tokens=32, n=3, seed=5)])  # greedy: seed does not matter
    assert inner.completions == 1 and len(out) == 3 and all(c.cached and c.sample_index == 0 for c in out)
    assert (lm.stats.cached, lm.stats.reused) == (3, 3)
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("SELECT sample, max_tokens FROM completions ORDER BY max_tokens").fetchall() == [(0, 8), (0, 32)]


def test_another_stop_prompt_temperature_seed_or_model_is_never_reused(tmp_path):
    inner = fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate([Request(prompt="short0", max_tokens=8, temperature=0.7)])
    others = [
        Request(prompt="short0", max_tokens=32, temperature=0.7, stop=("\n",)),
        Request(prompt="short1", max_tokens=32, temperature=0.7),
        Request(prompt="short0", max_tokens=32, temperature=0.9),
        Request(prompt="short0", max_tokens=32, temperature=0.7, seed=1),
        Request(prompt="short0", max_tokens=32, temperature=0.7, logprobs=True),
        Request(prompt="short0", max_tokens=32),  # greedy
    ]
    for request in others:
        lm.generate([request])
    assert inner.completions == 1 + len(others) and lm.stats.reused == 0
    other_model = FakeLM(responder=reply, name="fake:other")
    CachedLM(other_model, tmp_path / "c.sqlite").generate([Request(prompt="short0", max_tokens=32, temperature=0.7)])
    assert other_model.completions == 1
    family = budget_family("m", others[0])
    assert family != budget_family("m", others[1]) and family == budget_family("m", Request(
        prompt="short0", max_tokens=1, temperature=0.7, stop=("\n",)))


def test_refusals_are_neither_stored_nor_reused(tmp_path):
    from s2distill.types import Completion, Usage

    class Refusing(FakeLM):
        def generate(self, requests):
            super().generate(requests)
            return [[Completion("", Usage(), "stop", r.first_sample, error="refused")] for r in requests]

    inner = Refusing(responder=reply, name="fake:refusing")
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate([Request(prompt="short0", max_tokens=8)])
    lm.generate([Request(prompt="short0", max_tokens=32)])
    assert inner.completions == 2 and lm.stats.reused == 0


def test_rows_without_a_known_length_are_reused_only_on_a_bigger_budget(tmp_path):
    """A server that reports no usage writes 0 tokens: its row is not known to fit a smaller budget."""
    lm = CachedLM(fake(), tmp_path / "c.sqlite")
    lm.generate([Request(prompt="short0", max_tokens=8)])
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        db.execute("UPDATE completions SET completion_tokens = 0")
    inner = fake()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    lm.generate([Request(prompt="short0", max_tokens=16)])
    lm.generate([Request(prompt="short0", max_tokens=4)])
    assert asked(inner) == [("short0", 0, 1)] and lm.stats.reused == 1  # the 4-token request was asked


def legacy_cache(path) -> None:
    """A cache as written before rows named their family and budget (nor their model or log-probability)."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE completions (key TEXT, sample INTEGER, text TEXT, prompt_tokens INTEGER,"
                   " completion_tokens INTEGER, finish_reason TEXT, PRIMARY KEY (key, sample))")
        db.execute("INSERT INTO completions VALUES (?, 0, 'old text', 1, 2, 'stop')",
                   (request_key("fake:lengths", Request(prompt="short0", max_tokens=8)),))


def test_a_legacy_cache_opens_and_its_rows_are_not_reused(tmp_path):
    path = tmp_path / "old.sqlite"
    legacy_cache(path)
    inner = fake()
    lm = CachedLM(inner, path)
    [[hit]] = lm.generate([Request(prompt="short0", max_tokens=8)])  # its own key still hits
    assert hit.text == "old text" and hit.cached and inner.completions == 0
    [[fresh]] = lm.generate([Request(prompt="short0", max_tokens=32)])
    assert not fresh.cached and inner.completions == 1 and lm.stats.reused == 0
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(completions)")}
        indexes = {row[1] for row in db.execute("PRAGMA index_list(completions)")}
        assert db.execute("SELECT family, max_tokens FROM completions WHERE text = 'old text'").fetchone() == (None, None)
    assert {"family", "max_tokens"} <= columns and "completions_family" in indexes


def test_import_cache_keeps_family_and_budget(tmp_path):
    CachedLM(fake(), tmp_path / "a.sqlite").generate(batch(8))
    legacy_cache(tmp_path / "old.sqlite")
    assert import_cache(tmp_path / "a.sqlite", tmp_path / "b.sqlite") == 5
    assert import_cache(tmp_path / "old.sqlite", tmp_path / "b.sqlite") == 0  # the same key as short0's: kept
    with sqlite3.connect(tmp_path / "a.sqlite") as a, sqlite3.connect(tmp_path / "b.sqlite") as b:
        query = "SELECT key, family, max_tokens FROM completions ORDER BY key"
        assert b.execute(query).fetchall() == a.execute(query).fetchall()
    inner = fake()
    lm = CachedLM(inner, tmp_path / "b.sqlite")
    lm.generate(batch(32))
    assert [p for p, _, _ in asked(inner)] == LONG and lm.stats.reused == 3


def test_family_lookups_run_once_per_call_for_the_misses_only(tmp_path, monkeypatch):
    """Many requests that miss: one family lookup per `generate` call, in `LOOKUP_KEYS`-sized queries."""
    lm = CachedLM(FakeLM(default="a b", name="fake:ab"), tmp_path / "c.sqlite", chunk_rows=100)
    requests = [Request(prompt=f"p{i}", max_tokens=8, temperature=0.7) for i in range(1100)]
    lm.generate(requests)
    seen: list[int] = []
    original = lm._lookup_families
    monkeypatch.setattr(lm, "_lookup_families", lambda families: seen.append(len(families)) or original(families))
    out = lm.generate([Request(prompt=f"p{i}", max_tokens=16, temperature=0.7) for i in range(1100)])
    assert seen == [1100] and all(row[0].cached for row in out) and lm.stats.reused == 1100
    lm.generate([Request(prompt=f"p{i}", max_tokens=16, temperature=0.7) for i in range(1100)])
    assert seen == [1100]  # every request hit its own key: no family lookup


def test_request_keys_are_unchanged():
    """Existing caches stay valid: the key of a request is what it was before families existed."""
    assert request_key("m", Request(prompt="p", temperature=0.7, n=3, max_tokens=8, stop=("\n",))) == (
        "a48cd4eb1f0939f2e058f8fdd224222dc3b2c7b3436afae664ebde7dc084ef2b")
    assert request_key("m", Request(messages=(("user", "hi"),), logprobs=True)) == (
        "e0bc6c733cf956d7bec8ba341603304cd788448d35a17cac0504e6eebb753a3d")


def test_open_cache_is_idempotent_on_a_migrated_database(tmp_path):
    legacy_cache(tmp_path / "old.sqlite")
    open_cache(tmp_path / "old.sqlite").close()
    open_cache(tmp_path / "old.sqlite").close()
    with sqlite3.connect(tmp_path / "old.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 1
