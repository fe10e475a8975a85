"""Generation on Ray actors (s2distill/lm/ray_pool.py), on a small local Ray instance.

Skipped where Ray is not installed (it is the `ray` extra, not a test dependency).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from s2distill.config.generation import GenerationConfig, wrap_for_executor
from s2distill.lm import CachedLM, FakeLM, build_lm
from s2distill.lm.configs import model_config as ModelConfig  # keyword form: ModelConfig(backend=...)
from s2distill.lm.ray_pool import RayExecutorError, RayPoolLM, split_pieces
from s2distill.types import Request

FAKE = ModelConfig(backend="fake", rules=[{"pattern": r"Q(\d+)", "responses": ["a\\1", "b\\1", "c\\1"]}], default="none")
POOL = {"actors": 2, "num_cpus": 0.5}  # two pools fit at once in the 2 CPUs the instance has


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, object_store_memory=200_000_000, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def mixed_requests(count: int = 24) -> list[Request]:
    """Greedy and sampled requests, n > 1, first_sample > 0, prompts and chat messages."""
    out = []
    for i in range(count):
        kind = {"prompt": f"Q{i}"} if i % 5 else {"messages": (("user", f"Q{i}?"),)}
        out.append(Request(**kind, temperature=0.7 if i % 2 else 0.0, seed=i % 3, n=1 + i % 4, first_sample=i % 3,
                           max_tokens=8))
    return out


def test_split_pieces_balances_rows_and_keeps_sample_order():
    requests = [Request(prompt="a", temperature=0.7, n=7), Request(prompt="b", n=5), Request(prompt="c", temperature=1.0, n=2)]
    shards = split_pieces(requests, 3)  # rows: 7 + 1 (greedy) + 2 = 10
    assert [sum(1 if r.greedy else r.n for _, r in s) for s in shards] == [4, 4, 2]
    pieces = [(i, r.first_sample, r.n) for s in shards for i, r in s]
    assert pieces == [(0, 0, 4), (0, 4, 3), (1, 0, 5), (2, 0, 2)]
    assert split_pieces(requests[1:2], 4) == [[(0, requests[1])]]


def test_fake_lm_on_two_actors_matches_local(local_ray):
    pool = RayPoolLM.from_model_config(FAKE, **POOL)
    try:
        local = build_lm(FAKE)
        assert pool.name == local.name
        requests = mixed_requests()
        assert pool.generate(requests) == local.generate(requests)
        assert len(set(pool.actor_pids())) == 2
        assert pool.generate([]) == []
    finally:
        pool.close()


def test_wrap_for_executor_builds_local_or_ray(local_ray):
    assert isinstance(wrap_for_executor(GenerationConfig(), FAKE), FakeLM)
    pool = wrap_for_executor(GenerationConfig(executor="ray", actors=1, num_cpus_per_actor=0.5), FAKE)
    try:
        assert isinstance(pool, RayPoolLM) and pool.name == build_lm(FAKE).name
        assert not pool.faults
    finally:
        pool.close()
    with pytest.raises(ValueError):
        GenerationConfig(executor="ray", actorz=2)


def test_the_cache_is_shared_between_executors(local_ray, tmp_path):
    requests = mixed_requests(16)
    pool = RayPoolLM.from_model_config(FAKE, **POOL)
    try:
        on_ray = CachedLM(pool, tmp_path / "c.sqlite")
        first = on_ray.generate(requests)
        generated = on_ray.stats.generated
        again = on_ray.generate(requests)
        assert on_ray.stats.generated == generated  # the second call asked the actors for nothing
        assert all(c.cached for row in again for c in row)
        assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in first]
        on_ray.close()
    finally:
        pool.close()
    inner = build_lm(FAKE)
    replay = CachedLM(inner, tmp_path / "c.sqlite")  # the same cache, used locally
    assert [[c.text for c in row] for row in replay.generate(requests)] == [[c.text for c in row] for row in first]
    assert inner.completions == 0
    # and back: what is made locally is replayed on Ray
    more = [Request(prompt=f"Q{i}", temperature=0.9, n=2) for i in range(50, 54)]
    replay.generate(more)
    replay.close()
    pool = RayPoolLM.from_model_config(FAKE, **POOL)
    try:
        on_ray = CachedLM(pool, tmp_path / "c.sqlite")
        on_ray.generate(more)
        assert (on_ray.stats.generated, on_ray.stats.cached) == (0, 8)
        on_ray.close()
    finally:
        pool.close()


def test_a_killed_actor_hands_its_shard_to_another_and_none_left_is_a_clear_error(local_ray):
    pool = RayPoolLM.from_model_config(FAKE, **POOL)
    try:
        requests = mixed_requests()
        expected = build_lm(FAKE).generate(requests)
        ray.kill(pool.actors[0])  # gone for good (no restart)
        assert dies_soon(pool.actors[0])
        assert pool.generate(requests) == expected
        assert pool.actor_pids()[0] is None
        ray.kill(pool.actors[1])
        assert dies_soon(pool.actors[1])
        with pytest.raises(RayExecutorError, match="actors"):
            pool.generate(requests)
    finally:
        pool.close()


def crash_once_factory(marker: str):
    """A fake LM whose process dies on its first call anywhere (a marker file remembers it)."""

    def respond(request, k):
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)
        return f"{request.prompt}#{k}"

    return lambda: FakeLM(responder=respond, name="fake:crash-once")


def test_an_actor_process_that_crashes_is_restarted_and_its_call_retried(local_ray, tmp_path):
    marker = str(tmp_path / "crashed")
    pool = RayPoolLM(crash_once_factory(marker), **POOL)
    try:
        requests = [Request(prompt=f"p{i}", temperature=0.7, n=3) for i in range(8)]
        results = pool.generate(requests)
        assert Path(marker).exists()
        assert [[c.text for c in row] for row in results] == [[f"p{i}#{k}" for k in range(3)] for i in range(8)]
    finally:
        pool.close()


def test_an_error_of_the_model_is_raised_as_itself_not_retried(local_ray):
    pool = RayPoolLM(lambda: FakeLM(responder=lambda r, k: "x", name="fake:failing", fail_after=0), actors=1, num_cpus=0.5)
    try:
        with pytest.raises(RuntimeError, match="simulated failure"):
            pool.generate([Request(prompt="p")])
        assert pool.actor_pids()[0] is not None  # the actor lives on
    finally:
        pool.close()


def test_tiny_model_samples_are_the_same_locally_and_on_ray(local_ray):
    config = ModelConfig(backend="tiny", dtype="float32", threads=1, batch_rows=8)
    local = build_lm(config)
    pool = RayPoolLM.from_model_config(config, **POOL)
    try:
        assert pool.name == local.name
        requests = [Request(prompt=f"Question {i}:", temperature=0.7, seed=3, n=3, max_tokens=6) for i in range(4)]
        requests.append(Request(prompt="Greedy:", temperature=0.0, n=2, max_tokens=6))
        ours, theirs = pool.generate(requests), local.generate(requests)
        assert [[(c.text, c.sample_index, c.usage) for c in row] for row in ours] == \
            [[(c.text, c.sample_index, c.usage) for c in row] for row in theirs]
    finally:
        pool.close()


def test_a_pool_no_actor_can_start_on_fails_with_the_resources_named(local_ray):
    with pytest.raises(RayExecutorError, match="GPUs"):
        RayPoolLM.from_model_config(FAKE, actors=1, num_cpus=0.5, num_gpus=1, schedule_timeout=2)


def test_closing_the_cache_closes_the_pool_and_frees_its_actors(local_ray, tmp_path):
    pool = RayPoolLM.from_model_config(FAKE, **POOL)
    actors = pool.actors
    CachedLM(pool, tmp_path / "c.sqlite").close()  # the pipeline's _release of a trained student's weights
    assert pool.actors == []
    assert all(dies_soon(actor) for actor in actors)


def dies_soon(actor, seconds: float = 30) -> bool:
    """ray.kill is asynchronous: a call made just after it may still be answered."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ray.get(actor.ready.remote(), timeout=5)
        except ray.exceptions.RayActorError:
            return True
        except ray.exceptions.GetTimeoutError:
            pass
        time.sleep(0.2)
    return False


def test_concurrent_callers_share_the_pool(local_ray):
    from concurrent.futures import ThreadPoolExecutor

    pool = RayPoolLM.from_model_config(FAKE, **POOL)
    try:
        batches = [mixed_requests(8 + i) for i in range(6)]
        local = build_lm(FAKE)
        with ThreadPoolExecutor(3) as threads:
            got = list(threads.map(pool.generate, batches))
        assert got == [local.generate(b) for b in batches]
        assert pool._load == [0, 0]  # every shard's rows were released
    finally:
        pool.close()


def slow_factory():
    def respond(request, k):
        time.sleep(0.2)
        return f"{request.prompt}#{k}"

    return FakeLM(responder=respond, name="fake:slow")


def test_an_actor_killed_during_a_call_has_its_shard_redone_elsewhere(local_ray):
    from concurrent.futures import ThreadPoolExecutor

    pool = RayPoolLM(slow_factory, **POOL)
    try:
        requests = [Request(prompt=f"p{i}", temperature=0.7, n=2) for i in range(16)]  # 16 rows, 3.2 s per actor
        with ThreadPoolExecutor(1) as thread:
            running = thread.submit(pool.generate, requests)
            time.sleep(0.6)
            ray.kill(pool.actors[0])
            results = running.result(timeout=60)
        assert [[c.text for c in row] for row in results] == [[f"p{i}#{k}" for k in range(2)] for i in range(16)]
        assert pool.actor_pids()[0] is None
    finally:
        pool.close()


@pytest.mark.slow
def test_a_recipe_on_ray_gives_the_local_runs_report_and_shares_its_cache(local_ray, recipes_dir, tmp_path):
    """`generation: {executor: ray}` on the smoke recipe: the same rows as a local run, and a Ray
    run in a second folder replays what the local run paid for (the pool's name is the model's)."""
    from s2distill.config.recipe import load_recipe
    from s2distill.pipeline import Pipeline

    def rows(report):
        drop = {"seconds", "seconds_per_example", "examples_per_second", "train_seconds", "model"}
        return [{k: v for k, v in row.items() if k not in drop} for row in report["rows"]]

    local = Pipeline(load_recipe(recipes_dir / "smoke.yaml"), tmp_path / "local", progress=False).run()
    on_ray = Pipeline(load_recipe(recipes_dir / "smoke.yaml", ["generation={executor: ray, actors: 2, "
                                                               "num_cpus_per_actor: 0.25}"]),
                      tmp_path / "ray", progress=False).run()
    assert rows(on_ray) == rows(local)
    assert on_ray["lm"]["cached"] >= 24 * 4 + 2 * 8  # samples, System 1 and System 2 from the local run's cache
