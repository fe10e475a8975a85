"""An LM whose `generate` runs on a pool of Ray actors, each holding its own copy of the model.

The driver keeps everything else: the programs, the batching of their calls and the completion
cache (`CachedLM` wraps this pool like any backend). Each actor builds its LM once, in its own
process (an in-process transformers model on its GPU, or a client of a server's replicas), and a
call's requests are cut into one shard per live actor, balanced by the sample rows they cost (a
sampled request may be split by sample index: sample k depends only on (model, prompt, settings,
seed, k), so where it is generated does not matter). Results come back in request order.

The pool's `name` is the inner LM's, read from the first actor, so the driver's cache key is the
same whether generation is local or on Ray. An actor process that crashes is restarted by Ray
(`restarts`) and its call retried there; one that is gone for good has its shard retried on
another actor, up to `max_retries` times, and when no actor is left the call fails with
`RayExecutorError`. An error raised by the model itself (a refused request, a bad setting) is
not retried: it reaches the caller as the original exception.

`ray` is an optional extra (pip install 's2distill[ray]'); it is imported only here, when used.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from s2distill.errors import S2DistillError
from s2distill.lm.base import LM
from s2distill.types import Completion, Request

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 's2distill[ray]'"


class RayExecutorError(S2DistillError):
    """Generation on Ray cannot go on: Ray is missing, no actor started, or every actor died."""


def import_ray():
    """The `ray` module, or a `RayExecutorError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RayExecutorError(f"generation.executor is 'ray' but Ray is not installed: {INSTALL_HINT}") from None
    return ray


class _ModelActor:
    """Holds one LM in a Ray worker process; made a Ray actor class by `_actor_class`.

    The model is built on first use, not in `__init__`: the driver can then tell an actor that
    waits for resources (`ready` does not answer) from one that loads a large model, and an actor
    Ray restarts after a crash builds its model again when its call is retried.
    """

    def __init__(self, factory: Callable[[], LM]):
        self._factory = factory
        self._lm: LM | None = None

    @property
    def lm(self) -> LM:
        if self._lm is None:
            self._lm = self._factory()
        return self._lm

    def ready(self) -> int:
        return os.getpid()

    def name(self) -> str:
        return self.lm.name

    def pid(self) -> int:
        return os.getpid()

    def faults(self) -> dict[str, int]:
        return dict(getattr(self._lm, "faults", {}) or {})

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        return self.lm.generate(requests)


@functools.cache
def _actor_class():
    return import_ray().remote(_ModelActor)


def _cost(request: Request) -> int:
    """Sample rows a backend decodes for a request: a greedy request is one row whatever its n."""
    return 1 if request.greedy else request.n


def split_pieces(requests: Sequence[Request], shards: int) -> list[list[tuple[int, Request]]]:
    """Cut `requests` into at most `shards` contiguous shards of about equal cost.

    Each shard is a list of (request index, piece); a sampled request may be cut into pieces by
    sample index (`first_sample`, `n`). Pieces are in request and sample order across the shards,
    so concatenating the shards' completions per request index gives each request's samples.
    """
    total = sum(_cost(r) for r in requests)
    shards = max(1, min(shards, total))
    target = -(-total // shards)  # ceil: the last shard is the smallest
    out: list[list[tuple[int, Request]]] = [[]]
    room = target
    for i, request in enumerate(requests):
        if request.greedy:
            if room <= 0 and len(out) < shards:
                out.append([])
                room = target
            out[-1].append((i, request))
            room -= 1
            continue
        first, left = request.first_sample, request.n
        while left:
            if room <= 0 and len(out) < shards:
                out.append([])
                room = target
            take = left if len(out) == shards else min(left, room)
            out[-1].append((i, replace(request, first_sample=first, n=take)))
            first, left, room = first + take, left - take, room - take
    return [shard for shard in out if shard]


class RayPoolLM:
    """The LM protocol over `actors` Ray actors, each running `factory()` (for a recipe's model:
    `RayPoolLM.from_model_config`)."""

    def __init__(
        self,
        factory: Callable[[], LM],
        *,
        actors: int = 2,
        num_gpus: float = 0.0,
        num_cpus: float = 1.0,
        address: str | None = None,
        restarts: int = 1,  # Ray restarts a crashed actor process this many times (its call is retried there)
        max_retries: int = 3,  # a shard whose actor is gone is sent to another actor this many times
        schedule_timeout: float = 300.0,  # seconds for the first actor to get its CPUs and GPUs
        init_kwargs: dict | None = None,  # for ray.init when this pool starts Ray
    ):
        if actors < 1:
            raise ValueError(f"actors must be >= 1, got {actors}")
        ray = import_ray()
        self._ray = ray
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": True, **(init_kwargs or {})}
            ray.init(address=address, **kwargs)
        self.max_retries = max_retries
        self._lock = threading.Lock()
        options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": restarts, "max_task_retries": restarts}
        cls = _actor_class().options(**options)
        # The first actor alone: a model folder built on first use (tiny, embedded) is built once,
        # and a bad config fails once, before more actors are started.
        first = cls.remote(factory)
        try:
            ray.get(first.ready.remote(), timeout=schedule_timeout)
        except ray.exceptions.GetTimeoutError:
            ray.kill(first)
            raise RayExecutorError(
                f"no Ray actor could start within {schedule_timeout:g} s: each asks for {num_cpus:g} CPUs and "
                f"{num_gpus:g} GPUs; the cluster has {_resources(ray.cluster_resources())} of which "
                f"{_resources(ray.available_resources())} are free (every model of a run holds its own actors). "
                "Lower generation.actors, num_gpus_per_actor (a fraction shares a GPU) or num_cpus_per_actor, "
                "or add nodes") from None
        try:
            self.name: str = ray.get(first.name.remote())
        except ray.exceptions.RayTaskError as exc:
            ray.kill(first)
            raise _cause(exc) from None
        except ray.exceptions.RayActorError as exc:
            raise RayExecutorError(f"the first Ray actor died while building its model: {exc}") from None
        self._actors = [first] + self._start_more(cls, factory, actors - 1, schedule_timeout)
        self._alive = [True] * len(self._actors)
        self._load = [0] * len(self._actors)  # sample rows in flight per actor, across concurrent callers

    def _start_more(self, cls, factory, count: int, schedule_timeout: float) -> list:
        """The other actors, each with its model built; those that get no resources in time are
        given up (with a warning), and models whose name differs from the first's are an error
        (say, a GPU node resolving dtype auto to bfloat16 beside a CPU node's float32)."""
        ray = self._ray
        if count == 0:
            return []
        more = [cls.remote(factory) for _ in range(count)]
        ready_refs = {a.ready.remote(): a for a in more}
        ready, waiting = ray.wait(list(ready_refs), num_returns=len(ready_refs), timeout=schedule_timeout)
        started = [ready_refs[r] for r in ready]
        if waiting:
            log.warning("only %d of %d Ray actors could start within %g s (free: %s); generating with those",
                        len(started) + 1, count + 1, schedule_timeout, _resources(ray.available_resources()))
            for ref in waiting:
                ray.kill(ready_refs[ref])
        try:
            names = ray.get([a.name.remote() for a in started])
        except ray.exceptions.RayError as exc:
            for actor in more:
                ray.kill(actor)
            raise _cause(exc) if isinstance(exc, ray.exceptions.RayTaskError) else RayExecutorError(
                f"a Ray actor died while building its model: {exc}") from None
        if any(n != self.name for n in names):
            for actor in more:
                ray.kill(actor)
            raise RayExecutorError(
                f"the Ray actors built different models ({sorted(set(names) | {self.name})}): their completions "
                "could not share one cache key. Pin model.dtype, or run on nodes of one kind")
        return started

    @classmethod
    def from_model_config(cls, model_config, *, adapter: str | Path | None = None, **kwargs) -> RayPoolLM:
        """A pool whose actors each run `build_lm(model_config, adapter=adapter)`. The config object
        is pickled as is (not re-validated in the actor, where a driver's path may not exist); an
        `adapter` folder and an `hf` model path must be readable on the actors' nodes."""
        from s2distill.lm import build_lm

        return cls(functools.partial(build_lm, model_config, adapter=adapter), **kwargs)

    # -- the LM protocol -----------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        requests = list(requests)
        if not requests:
            return []
        ray = self._ray
        shards = split_pieces(requests, max(1, sum(self._alive)))
        pending: dict = {}  # object ref -> (shard number, actor index, attempts)
        outputs: list[list[list[Completion]] | None] = [None] * len(shards)
        try:
            for s in range(len(shards)):
                self._submit(shards, s, 0, pending)
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                s, actor, attempts = pending.pop(ref)
                self._release(actor, shards[s])
                try:
                    outputs[s] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the model raised: not a fault of the actor
                    raise _cause(exc) from None
                except ray.exceptions.RayActorError as exc:
                    if not isinstance(exc, ray.exceptions.ActorUnavailableError):
                        with self._lock:
                            self._alive[actor] = False
                    if attempts >= self.max_retries:
                        raise RayExecutorError(
                            f"a shard of {len(shards[s])} requests failed on {attempts + 1} Ray actors (last: {exc}); "
                            f"{sum(self._alive)} of {len(self._actors)} actors are alive") from None
                    self._submit(shards, s, attempts + 1, pending, last_error=exc)
        finally:
            for s, actor, _ in pending.values():  # an error left calls in flight: they no longer count
                self._release(actor, shards[s])
        results: list[list[Completion]] = [[] for _ in requests]
        for shard, completions in zip(shards, outputs):
            for (i, _), got in zip(shard, completions):  # type: ignore[arg-type]
                results[i].extend(got)
        return results

    @property
    def faults(self) -> Counter[str]:
        """Transient server faults the actors' LMs retried (an openai backend's), summed."""
        total: Counter[str] = Counter()
        refs = [a.faults.remote() for a, ok in zip(self._actors, self._alive) if ok]
        for ref in refs:
            with contextlib.suppress(self._ray.exceptions.RayActorError):  # a dead actor's counts are lost
                total.update(self._ray.get(ref))
        return total

    def close(self) -> None:
        """Kill the actors (their models and GPU memory go with them). Ray itself keeps running."""
        with self._lock:
            actors, self._actors = self._actors, []
            self._alive, self._load = [], []
        for actor in actors:
            with contextlib.suppress(Exception):  # already dead, or Ray was shut down
                self._ray.kill(actor)

    def actor_pids(self) -> list[int | None]:
        """The live actors' process ids (None for dead ones), for tests and diagnostics."""
        refs = [a.pid.remote() if ok else None for a, ok in zip(self._actors, self._alive)]
        pids: list[int | None] = []
        for ref in refs:
            try:
                pids.append(self._ray.get(ref) if ref is not None else None)
            except self._ray.exceptions.RayActorError:
                pids.append(None)
        return pids

    @property
    def actors(self) -> list:
        return list(self._actors)

    # -- scheduling ----------------------------------------------------------------------------
    def _submit(self, shards, s: int, attempts: int, pending: dict, last_error: BaseException | None = None) -> None:
        rows = sum(_cost(r) for _, r in shards[s])
        with self._lock:
            live = [i for i, ok in enumerate(self._alive) if ok]
            if not live:
                raise RayExecutorError(
                    f"all {len(self._actors)} Ray actors have died (out of memory, a lost node, killed, or a crash of "
                    f"the model{': ' + str(last_error).splitlines()[0] if last_error else ''}); the completions made so "
                    "far are in the cache: run the same command again to go on")
            actor = min(live, key=lambda i: self._load[i])  # the least busy, across concurrent callers
            self._load[actor] += rows
        ref = self._actors[actor].generate.remote([r for _, r in shards[s]])
        pending[ref] = (s, actor, attempts)

    def _release(self, actor: int, shard) -> None:
        with self._lock:
            if actor < len(self._load):
                self._load[actor] -= sum(_cost(r) for _, r in shard)


def _resources(resources: dict) -> str:
    return ", ".join(f"{resources.get(k, 0):g} {k}s" for k in ("CPU", "GPU"))


def _cause(exc) -> BaseException:
    """The exception the model raised in an actor, as itself (a `BackendError` stays one)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        cause.add_note(f"(raised in a Ray actor, pid {getattr(exc, 'pid', '?')})")
        return cause
    return exc
