"""Run a method over many examples (and N samples each), batching their LM calls together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from s2distill.errors import BackendError
from s2distill.lm.base import LM, SampledLM, render_messages
from s2distill.lm.batching import BatchingLM
from s2distill.types import Completion, Example, Request, Trace

Program = Callable[[Example, LM], Trace]


class RefusedRequest(Exception):
    """A server refused one of a program's requests for good; the program's sample has failed."""

    def __init__(self, prompt: str, message: str):
        super().__init__(message)
        self.prompt, self.message = prompt, message


class TooManyFailures(BackendError):
    """More of a stage's samples were refused than the recipe's `max_failures` allows."""


class _RefusalsRaise(SampledLM):
    """The program's view of the LM: a refused completion ends the program (a failed sample)."""

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        results = super().generate(requests)
        for request, completions in zip(requests, results):
            for completion in completions:
                if completion.error:
                    prompt = request.prompt if request.prompt is not None else render_messages(request.messages or ())
                    raise RefusedRequest(prompt, completion.error)
        return results


def failed_trace(example: Example, exc: RefusedRequest) -> Trace:
    """A sample the server refused: no answer, the server's message and the prompt kept for audit."""
    return Trace(example.id, "failed", None, error=f"server {exc.message}", meta={"failed": exc.message, "prompt": exc.prompt[-500:]})


def check_failures(traces: Sequence[Trace], max_failures: float) -> None:
    """Raise `TooManyFailures`, naming the inputs and prompts, when the share of failed samples
    passes `max_failures`."""
    failed = [t for t in traces if "failed" in t.meta]
    if failed and len(failed) > max_failures * len(traces):
        shown = "; ".join(f"{t.example_id}: {t.meta['failed']} (prompt ends {t.meta['prompt'][-80:]!r})" for t in failed[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise TooManyFailures(
            f"{len(failed)} of {len(traces)} samples were refused by the server, more than max_failures="
            f"{max_failures:g} allows: {shown}{more}. Shorten or drop those inputs, or raise max_failures")


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
    max_failures: float = 0.0,
    logprobs: bool = False,
) -> list[Trace]:
    """Run `program` on every example `samples` times; traces come back in (example, sample) order.
    `logprobs`: every call asks for its completion's log-probability (TwT Table 5's criterion).

    Programs run in `workers` threads; their LM calls meet in a `BatchingLM`, so the backend sees
    up to `workers` requests at once. Sample `k` of an example is run with the LM's sample index
    `k`, so its completions are cached and replayed independently of the others.

    A sample whose request the server refused for good is a failed trace (`meta["failed"]`); the
    others go on, and once all are done the run stops (`TooManyFailures`) only if the failed share
    passes `max_failures`.
    """
    jobs = [(example, k) for example in examples for k in range(samples)]
    workers = max(1, min(workers, len(jobs)))
    batcher = BatchingLM(lm, programs=len(jobs), concurrency=workers)

    def one(job: tuple[Example, int]) -> Trace:
        example, k = job
        with batcher.program():
            view = _RefusalsRaise(batcher, temperature=temperature, top_p=top_p, sample=k, seed=seed, logprobs=logprobs)
            try:
                trace = program(example, view)
            except RefusedRequest as exc:
                trace = failed_trace(example, exc)
        trace.sample = k
        if on_trace is not None:
            on_trace(trace)
        return trace

    if not jobs:
        return []
    traces: list[Trace | None] = [None] * len(jobs)
    queue = iter(enumerate(jobs))
    taking = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()  # no further job starts: a program failed, or the run was interrupted
    over = threading.Event()  # set on the first error, or when the last worker ends
    running = [workers]

    def work() -> None:
        # `workers` threads each take the next job until none is left, rather than one Future per
        # job submitted up front (a Future, a work item and their locks per sample: 800k of each
        # at 100k inputs × 8). Each trace lands at its job's position: (example, sample) order.
        try:
            while not stop.is_set():
                with taking:
                    item = next(queue, None)
                if item is None:
                    return
                index, job = item
                traces[index] = one(job)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)
            stop.set()
            over.set()
        finally:
            with taking:
                running[0] -= 1
                if running[0] == 0:
                    over.set()

    started: list[threading.Thread] = []
    try:
        for i in range(workers):
            started.append(threading.Thread(target=work, name=f"s2distill-program-{i}"))
            started[-1].start()
        over.wait()
        if errors:
            raise errors[0]
        check_failures(traces, max_failures)  # type: ignore[arg-type]
        return traces  # type: ignore[return-value]
    finally:
        # On an error or Ctrl-C, no further job starts and running programs stop at their next
        # call; only the batch already with the model finishes (and reaches the cache).
        stop.set()
        batcher.close()
        for thread in started:
            thread.join()
