"""Replicas of one teacher on several local faulty servers: load spread, failing and killed
replicas set aside and taken back, every replica down, rate limits, and the config."""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import ExitStack

import pytest
from pydantic import ValidationError

from s2distill.errors import BackendError
from s2distill.lm.configs import model_config
from s2distill.lm.openai_api import OpenAICompatibleLM
from s2distill.lm.replicas import RateLimits, ReplicaPool, TokenBucket
from s2distill.types import Request
from tests.openai_test_server import FaultyOpenAIServer


def echo(prompt, seed):
    return f"echo {prompt.split()[-1]} seed={seed}"


def lm_on(servers, **kwargs) -> OpenAICompatibleLM:
    kwargs.setdefault("backoff", 0.01)
    return OpenAICompatibleLM(base_urls=[s.url for s in servers], model="test-model", **kwargs)


def batch(count, seed=3):
    return [Request(prompt=f"item {i}", temperature=0.7, seed=seed) for i in range(count)]


def expected(requests):
    return [f"echo {r.prompt.split()[-1]} seed={(r.seed * 1_000_003) % 2**31}" for r in requests]


def servers(stack, *configs):
    return [stack.enter_context(FaultyOpenAIServer(echo, **config)) for config in configs]


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    return f"http://127.0.0.1:{port}/v1"


def kill_after(server, requests: int) -> None:
    """Kill `server` once it has received `requests` requests (the last ones still in flight)."""
    deadline = time.monotonic() + 10
    while len(server.received) < requests and time.monotonic() < deadline:
        time.sleep(0.005)
    server.kill()


def test_the_least_loaded_replica_takes_the_next_request_and_ties_go_round_robin():
    pool = ReplicaPool(["a", "b", "c"])
    picks = [pool.acquire()[0] for _ in range(3)]
    assert [r.url for r in picks] == ["a", "b", "c"]
    pool.release(picks[1])
    assert pool.acquire()[0].url == "b"  # the only one with nothing in flight
    for r in pool.replicas:
        while r.in_flight:
            pool.release(r)
    assert [pool.acquire()[0].url for _ in range(4)] == ["c", "a", "b", "c"]  # round robin goes on after b


def test_load_spreads_over_three_healthy_replicas():
    with ExitStack() as stack:
        replicas = servers(stack, {"delay": 0.02}, {"delay": 0.02}, {"delay": 0.02})
        lm = lm_on(replicas, max_concurrency=6)
        requests = batch(60)
        out = lm.generate(requests)
        assert [o[0].text for o in out] == expected(requests)
        shares = [len(s.received) for s in replicas]
        assert sum(shares) == 60 and min(shares) >= 12, shares  # a fair share each (20 if perfectly even)
        stats = lm.replica_stats
        assert [stats[s.url]["calls"] for s in replicas] == shares
        assert not lm.faults and lm.name == "openai:test-model"


def test_a_replica_that_always_fails_is_set_aside_and_the_others_give_the_same_completions():
    with ExitStack() as stack:
        bad, good1, good2, alone = servers(stack, {"default": "500"}, {}, {}, {})
        lm = lm_on([bad, good1, good2], max_concurrency=4, replica_cooldown=60, backoff=10)
        requests = batch(40) + [Request(messages=(("user", "chat 7"),), temperature=0.7, seed=3, n=2)]
        start = time.monotonic()
        out = lm.generate(requests)
        assert time.monotonic() - start < 5  # a failed call moved to another replica at once, without backing off
        single = OpenAICompatibleLM(base_url=alone.url, model="test-model").generate(requests)
        assert out == single  # texts, usage, sample indices: sample k does not depend on the server
        # Three failures in a row set it aside; only calls already on their way can reach it after that.
        assert 3 <= len(bad.received) <= 3 + 4
        stats = lm.replica_stats[bad.url]
        assert stats["set_aside"] == 1 and stats["down"] and stats["ok"] == 0
        assert stats["faults"] == {"500": len(bad.received)} and lm.faults == {"500": len(bad.received)}
        assert len(good1.received) + len(good2.received) == 42


def test_a_replica_killed_mid_batch_hands_its_calls_to_the_others_and_comes_back_after_its_cooldown():
    cooldown = 1.0
    with ExitStack() as stack:
        a, b, c = servers(stack, {"delay": 0.05}, {"delay": 0.05}, {"delay": 0.2})  # c's calls stay in flight
        lm = lm_on([a, b, c], max_concurrency=6, replica_cooldown=cooldown, timeout=5)
        killer = threading.Thread(target=kill_after, args=(c, 4))
        killer.start()
        requests = batch(60)
        out = lm.generate(requests)  # c dies with calls in flight
        killer.join()
        assert [o[0].text for o in out] == expected(requests)  # nothing lost
        before = lm.replica_stats[c.url]
        assert before["set_aside"] >= 1 and before["faults"]["connection"] >= 3, before  # (a slow batch may probe it)
        assert before["ok"] < len(c.received)  # some of its calls were cut in flight...
        assert lm.faults["connection"] == before["faults"]["connection"]  # ...and moved to a and b, which never failed
        assert set(lm.faults) <= {"connection", "health"}
        assert len(a.received) + len(b.received) == 60 - before["ok"]

        c.delay = 0.05
        c.restart()
        replica_c = lm.pool.replicas[2]
        while replica_c.down_until is not None and time.monotonic() < replica_c.down_until + 0.05:
            time.sleep(0.05)  # the rest of its cooldown
        served_before = len(c.received)
        requests = batch(30, seed=4)
        out = lm.generate(requests)
        assert [o[0].text for o in out] == expected(requests)
        assert c.health_checks >= 1  # checked before it was trusted again
        assert len(c.received) - served_before >= 5  # back in the rotation (a third would be 10)
        assert not lm.replica_stats[c.url]["down"]


def test_a_replica_failing_its_health_check_stays_aside_until_it_passes():
    with ExitStack() as stack:
        good, sick = servers(stack, {}, {"plan": ["500"] * 3})
        sick.healthy = False
        lm = lm_on([good, sick], max_concurrency=1, replica_cooldown=0.5)
        lm.generate(batch(6))  # three 500s set `sick` aside
        assert lm.replica_stats[sick.url]["down"]
        time.sleep(0.55)
        lm.generate(batch(4, seed=5))
        assert sick.health_checks >= 1  # (two if the batch outlasted another cooldown)
        assert lm.replica_stats[sick.url]["faults"]["health"] == sick.health_checks
        assert len(sick.received) == 3  # no request after a failed health check
        sick.healthy = True
        time.sleep(0.55)
        served = len(sick.received)
        lm.generate(batch(4, seed=6))
        assert len(sick.received) > served and not lm.replica_stats[sick.url]["down"]


def test_a_blip_on_every_replica_costs_a_backoff_not_the_call():
    with ExitStack() as stack:
        replicas = servers(stack, {"plan": ["503"]}, {"plan": ["503"]})
        lm = lm_on(replicas, max_retries=1, max_concurrency=1)  # one retry: one more round over both
        assert lm.generate(batch(1))[0][0].text == "echo 0 seed=3000009"
        assert lm.faults == {"503": 2} and [len(s.received) for s in replicas] in ([2, 1], [1, 2])


def test_every_replica_down_is_a_backend_error_naming_them_all_in_bounded_time():
    urls = [dead_url() for _ in range(3)]
    lm = OpenAICompatibleLM(base_urls=urls, model="test-model", backoff=0.01, timeout=2, max_retries=5,
                            replica_cooldown=0.2, max_concurrency=4)
    start = time.monotonic()
    with pytest.raises(BackendError) as caught:
        lm.generate(batch(12))
    assert time.monotonic() - start < 6
    message = str(caught.value)
    assert message.startswith("every replica of test-model failed")
    for url in urls:  # each with its state and last error (a refused connection, or a failed health check)
        assert re.search(rf"{re.escape(url)} \(set aside for [0-9.]+s more; last error: (connection|health): Connection error", message)

    with ExitStack() as stack:  # servers that answer, but only with 500s
        failing = servers(stack, {"default": "500"}, {"default": "500"})
        lm = lm_on(failing, max_retries=4, replica_cooldown=0.2, max_concurrency=4)
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"last error: 500: injected 500.*last error: 500: injected 500"):
            lm.generate(batch(8))
        assert time.monotonic() - start < 6


def test_requests_per_minute_spaces_the_calls_of_all_replicas():
    with ExitStack() as stack:
        lm = lm_on(servers(stack, {}, {}), max_concurrency=8, requests_per_minute=600)  # 10 a second, 10 at once
        start = time.monotonic()
        lm.generate(batch(20))
        elapsed = time.monotonic() - start
        assert 0.95 <= elapsed < 5, elapsed  # 10 at once, then 10 more at 0.1 s intervals


def test_tokens_per_minute_spaces_the_calls_by_their_estimated_tokens():
    def verbose(prompt, seed):  # reports as many tokens as were estimated: 2 prompt words + 118
        return " ".join(["w"] * 118)

    with FaultyOpenAIServer(verbose) as one, FaultyOpenAIServer(verbose) as two:
        lm = lm_on([one, two], max_concurrency=8, tokens_per_minute=72_000)  # 1200 a second, 1200 at once
        requests = [Request(prompt="x" * 396 + f" {i:03d}", temperature=0.7, max_tokens=20) for i in range(20)]
        start = time.monotonic()
        lm.generate(requests)  # 120 tokens each (400 characters / 4 + 20): 10 at once, 10 over a second
        elapsed = time.monotonic() - start
        assert 0.95 <= elapsed < 5, elapsed


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_token_bucket_waits_lends_to_a_big_request_and_is_corrected_by_real_usage():
    t = FakeTime()
    bucket = TokenBucket(60, clock=t.clock, sleep=t.sleep)  # one a second, one at once
    bucket.take(1)
    assert t.now == 0
    bucket.take(1)
    assert t.now == pytest.approx(1.0)
    bucket.take(5)  # larger than the bucket: waits for it to be full, then owes 4
    assert t.now == pytest.approx(2.0)
    bucket.take(1)
    assert t.now == pytest.approx(7.0)

    t = FakeTime()
    limits = RateLimits(tokens_per_minute=6000, clock=t.clock, sleep=t.sleep)  # 100 a second, 100 at once
    limits.before(100)
    limits.after(100, 20)  # used 20 of the 100 estimated: 80 back
    limits.before(80)
    assert t.now == 0
    limits.before(50)
    limits.after(50, 250)  # used 200 more than estimated: owed
    limits.before(10)
    assert t.now == pytest.approx(2.6)  # 50 + 200 + 10 tokens at 100 a second


def openai_model(**fields):
    return model_config({"backend": "openai", "model": "teacher", **fields})


def test_the_config_takes_one_server_or_replicas_and_names_replicas_by_the_model():
    with pytest.raises(ValidationError, match="either base_url .* or base_urls .*not both"):
        openai_model(base_url="http://a/v1", base_urls=["http://b/v1"])
    with pytest.raises(ValidationError, match="base_url .* or base_urls .* is required"):
        openai_model()
    with pytest.raises(ValidationError, match="lists http://a/v1 more than once"):
        openai_model(base_urls=["http://a/v1", "http://a/v1/"])

    one = openai_model(base_urls=["http://a/v1"])
    three = openai_model(base_urls=["http://a/v1/", "http://b/v1", "http://c/v1"], requests_per_minute=500,
                         tokens_per_minute=90_000, replica_cooldown=10)
    assert three.urls == ["http://a/v1", "http://b/v1", "http://c/v1"]
    assert one.build().name == three.build().name == "openai:teacher"  # the cache key: the model, not its servers
    from s2distill.config.base import identity

    assert identity(one) == identity(three)  # adding a replica redoes nothing
    single = openai_model(base_url="http://a/v1/")
    assert single.urls == ["http://a/v1"] and single.build().name == "openai:http://a/v1:teacher"  # as before
    assert identity(single) == {"backend": "openai", "base_url": "http://a/v1/", "model": "teacher"}
    assert three.describe() == "teacher on 3 replicas (http://a/v1, http://b/v1, http://c/v1)"
    assert single.describe() == "teacher at http://a/v1/"
    lm = three.build()
    assert lm.limits.requests.rate == pytest.approx(500 / 60) and lm.pool.cooldown == 10
    assert model_config(three.model_dump(), saved=True) == three  # a saved recipe reads back


def test_a_recipe_with_a_replicated_teacher_runs_end_to_end_past_a_failing_replica(tmp_path):
    from s2distill.config.recipe import validate_recipe
    from s2distill.pipeline import Pipeline
    from tests.test_lm_openai import pal_teacher

    with FaultyOpenAIServer(pal_teacher) as good, FaultyOpenAIServer(pal_teacher, default="500") as bad:
        recipe = validate_recipe({
            "task": {"name": "last_letters", "train_size": 8, "test_size": 4},
            "teacher": {
                "model": {"backend": "openai", "base_urls": [bad.url, good.url], "model": "teacher", "max_concurrency": 4,
                          "replica_cooldown": 60},
                "method": {"name": "pal", "shots": 2}, "samples": 2,
            },
            "student": {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 2, "max_tokens": 4}},
            "train": {"epochs": 1, "batch_size": 8, "lora_r": 2, "lora_alpha": 4},
        })
        report = Pipeline(recipe, tmp_path, progress=False).run()
    system2 = report["rows"][1]
    assert system2["system"] == "system2" and system2["score"] == 1.0
    assert system2["model"] == f"teacher on 2 replicas ({bad.url}, {good.url})"
    assert report["curation"][0]["kept"] == 8
    assert set(report["lm"]["faults"]) == {"500"} and 3 <= report["lm"]["faults"]["500"] <= 3 + 4
    replicas = report["lm"]["replicas"]["openai:teacher"]  # the report counts each server's share
    assert replicas[bad.url]["faults"]["500"] >= 3 and replicas[good.url]["ok"] > 0


# -- issue 32: a replica that refuses (4xx) what a healthy replica answers ------------------------
def test_a_replica_refusing_what_another_answers_is_set_aside_and_cannot_stop_the_run():
    with ExitStack() as stack:
        bad, good = servers(stack, {"refuse": lambda p: (401, "invalid api key")}, {})
        lm = lm_on([bad, good], max_concurrency=4, replica_cooldown=60)
        requests = batch(30)
        out = lm.generate(requests)
        assert [o[0].text for o in out] == expected(requests)  # every request answered, none refused
        assert all(o[0].error is None for o in out)
        stats = lm.replica_stats[bad.url]
        # Each refusal was retried at once on the healthy replica; three in a row set the refusing one aside.
        assert 3 <= stats["refused"] == len(bad.received) <= 3 + 4, stats
        assert stats["faults"] == {"refused": stats["refused"]} and lm.faults == {"refused": stats["refused"]}
        assert stats["set_aside"] == 1 and stats["down"] and stats["ok"] == 0
        assert stats["last_error"] == "refused: (401) invalid api key"
        assert stats["last_refusal"] == "(401) invalid api key"
        assert len(good.received) == 30 and lm.replica_stats[good.url]["refused"] == 0


def test_only_a_request_every_replica_refuses_is_a_refusal_naming_the_replicas():
    too_long = lambda p: "context length exceeded" if p.endswith(" 1") else None
    with ExitStack() as stack:
        a, b = servers(stack, {"refuse": too_long}, {"refuse": too_long})
        lm = lm_on([a, b], max_concurrency=2, replica_cooldown=60)
        out = lm.generate(batch(4))
        refused = out[1][0]
        assert refused.text == "" and refused.error.startswith("refused (400) by http://127.0.0.1:")
        assert a.url in refused.error and b.url in refused.error and refused.error.endswith(": context length exceeded")
        assert [o[0].error for i, o in enumerate(out) if i != 1] == [None, None, None]
        stats = lm.replica_stats
        assert stats[a.url]["refused"] == stats[b.url]["refused"] == 1  # each was asked once, and refused
        assert not lm.faults and not stats[a.url]["faults"] and not stats[b.url]["faults"]  # the request's fault
        assert not stats[a.url]["down"] and not stats[b.url]["down"]


def test_a_refusal_by_one_replica_while_the_other_is_down_is_a_refusal_after_the_rounds():
    with FaultyOpenAIServer(echo, refuse=lambda p: "model not found") as refusing:
        lm = OpenAICompatibleLM(base_urls=[refusing.url, dead_url()], model="test-model", backoff=0.01, timeout=2,
                                max_retries=2, replica_cooldown=0.05)
        [[only]] = lm.generate(batch(1))
        assert only.error.startswith(f"refused (400) by {refusing.url}: model not found; no answer from http://127.0.0.1")
        assert "(last error: Connection error" in only.error or "(last error: health check" in only.error
        assert len(refusing.received) == 1  # a replica that refused is not asked again


def test_a_replicated_run_past_a_replica_that_refuses_everything_quoting_the_key(tmp_path, monkeypatch):
    from s2distill.config.recipe import validate_recipe
    from s2distill.pipeline import Pipeline
    from tests.test_lm_openai import pal_teacher

    secret = "sk-test-replica-key-13579"
    monkeypatch.setenv("S2D_REPLICA_KEY", secret)
    with FaultyOpenAIServer(pal_teacher, refuse=lambda p: (403, "forbidden for {auth}")) as bad, \
            FaultyOpenAIServer(pal_teacher) as good:
        recipe = validate_recipe({
            "task": {"name": "last_letters", "train_size": 8, "test_size": 4}, "max_failures": 0.0,
            "teacher": {
                "model": {"backend": "openai", "base_urls": [bad.url, good.url], "model": "teacher",
                          "max_concurrency": 4, "replica_cooldown": 60, "api_key_env": "S2D_REPLICA_KEY"},
                "method": {"name": "pal", "shots": 2}, "samples": 2,
            },
            "student": {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 2, "max_tokens": 4}},
            "train": {"epochs": 1, "batch_size": 8, "lora_r": 2, "lora_alpha": 4},
        })
        report = Pipeline(recipe, tmp_path, progress=False).run()  # max_failures 0: one refusal would stop it
    assert report["rows"][1]["score"] == 1.0 and report["curation"][0]["kept"] == 8
    replicas = report["lm"]["replicas"]["openai:teacher"]
    assert replicas[bad.url]["refused"] >= 3 and replicas[bad.url]["faults"]["refused"] == replicas[bad.url]["refused"]
    assert replicas[bad.url]["last_error"] == "refused: (403) forbidden for Bearer [redacted]"
    assert report["lm"]["faults"]["refused"] == replicas[bad.url]["refused"]
    assert f"on {bad.url}" in (tmp_path / "report.md").read_text()  # the refusing replica is named
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
