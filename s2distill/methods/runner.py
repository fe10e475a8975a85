"""Run a method over many examples (and N samples each), batching their LM calls together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from s2distill.lm.base import LM, SampledLM
from s2distill.lm.batching import BatchingLM
from s2distill.types import Example, Trace

Program = Callable[[Example, LM], Trace]


def run_program(
    program: Program,
    examples: Sequence[Example],
    lm: LM,
    *,
    samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    workers: int = 16,
    on_trace: Callable[[Trace], None] | None = None,
) -> list[Trace]:
    """Run `program` on every example `samples` times; traces come back in (example, sample) order.

    Programs run in `workers` threads; their LM calls meet in a `BatchingLM`, so the backend sees
    up to `workers` requests at once. Sample `k` of an example is run with the LM's sample index
    `k`, so its completions are cached and replayed independently of the others.
    """
    jobs = [(example, k) for example in examples for k in range(samples)]
    workers = max(1, min(workers, len(jobs)))
    batcher = BatchingLM(lm, programs=len(jobs), concurrency=workers)

    def one(job: tuple[Example, int]) -> Trace:
        example, k = job
        with batcher.program():
            view = SampledLM(batcher, temperature=temperature, top_p=top_p, sample=k, seed=seed)
            trace = program(example, view)
        trace.sample = k
        if on_trace is not None:
            on_trace(trace)
        return trace

    if not jobs:
        return []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(one, job) for job in jobs]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in finished if f.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        return [f.result() for f in futures]
    finally:
        # On an error or Ctrl-C, queued programs are dropped and running ones stop at their next
        # call; only the batch already with the model finishes (and reaches the cache).
        batcher.close()
        pool.shutdown(wait=True, cancel_futures=True)
