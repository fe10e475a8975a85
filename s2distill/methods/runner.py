"""Run a method over many examples (and N samples each), batching their LM calls together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from queue import SimpleQueue

from s2distill.errors import BackendError
from s2distill.lm.base import LM, SampledLM, render_messages
from s2distill.lm.batch import BatchPending
from s2distill.lm.batching import BatchingLM
from s2distill.types import Completion, Example, Request, Trace
from s2distill.user_code import take_failure

Program = Callable[[Example, LM], Trace]


class RefusedRequest(Exception):
    """A server refused one of a program's requests for good; the program's sample has failed."""

    def __init__(self, prompt: str, message: str):
        super().__init__(message)
        self.prompt, self.message = prompt, message


class DeferredRequest(Exception):
    """A batched model has no answer yet to one of a program's requests (lm/batch.py): the program
    stops here, and its sample is done on a later pass, once the batch is collected."""


class TooManyFailures(BackendError):
    """More of a stage's samples were refused than the recipe's `max_failures` allows."""


class _RefusalsRaise(SampledLM):
    """The program's view of the LM: a refused completion ends the program (a failed sample)."""

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        results = super().generate(requests)
        if any(c.deferred for completions in results for c in completions):
            raise DeferredRequest
        for request, completions in zip(requests, results):
            for completion in completions:
                if completion.error:
                    prompt = request.prompt if request.prompt is not None else render_messages(request.messages or ())
                    raise RefusedRequest(prompt, completion.error)
        return results


def failed_trace(example: Example, exc: RefusedRequest) -> Trace:
    """A sample the server refused: no answer, the server's message and the prompt kept for audit."""
    return Trace(example.id, "failed", None, error=f"server {exc.message}", meta={"failed": exc.message, "prompt": exc.prompt[-500:]})


def _check_failed(shown_traces: Sequence[Trace], failed: int, total: int, max_failures: float,
                  program_errors: int = 0) -> None:
    """Raise `TooManyFailures`, naming the first few failed inputs and prompts (`shown_traces`),
    when the share of failed samples (refused by the server, or failed in a user's program:
    `program_errors` of them) passes `max_failures`."""
    if failed and failed > max_failures * total:
        shown = "; ".join(f"{t.example_id}: {t.meta['failed']}"
                          + (f" (prompt ends {t.meta['prompt'][-80:]!r})" if t.meta.get("prompt") else "")
                          for t in shown_traces)
        more = f" and {failed - 3} more" if failed > 3 else ""
        if not program_errors:
            raise TooManyFailures(
                f"{failed} of {total} samples were refused by the server, more than max_failures="
                f"{max_failures:g} allows: {shown}{more}. Shorten or drop those inputs, or raise max_failures")
        refused = failed - program_errors
        raise TooManyFailures(
            f"{failed} of {total} samples failed ({program_errors} in the user's program"
            + (f", {refused} refused by the server" if refused else "") + f"), more than max_failures={max_failures:g} "
            f"allows: {shown}{more}. Fix the program (or those inputs), or raise max_failures")


def run_program(program: Program, examples: Sequence[Example], lm: LM, **settings) -> list[Trace]:
    """Run `program` on every example `samples` times; traces come back in (example, sample) order,
    as a list (see `iter_program` for the settings; a stage that writes them streams them instead)."""
    return list(iter_program(program, examples, lm, **settings))


def iter_program(
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
) -> Iterator[Trace]:
    """Run `program` on every example `samples` times, yielding the traces in (example, sample)
    order as soon as each is done and every one before it has been yielded. `logprobs`: every
    call asks for its completion's log-probability (TwT Table 5's criterion).

    Programs run in `workers` threads; their LM calls meet in a `BatchingLM`, so the backend sees
    up to `workers` requests at once. Sample `k` of an example is run with the LM's sample index
    `k`, so its completions are cached and replayed independently of the others.

    Only the traces done out of order wait here (programs advance together, batch by batch, so a
    few times `workers` at most): the caller writes each trace as it comes and nothing holds
    them all (at 100k inputs × 8 samples, every trace in a list was 1.6 GB; benchmarks/scale.py).

    A sample whose request the server refused for good, or whose user program failed
    (methods/user.py), is a failed trace (`meta["failed"]`); the others go on, and once all are
    done the run stops (`TooManyFailures`, raised after the last trace is yielded, so a stage
    writing them seals nothing) only if the failed share passes `max_failures`. A user's answer
    parser that raised leaves its message on the trace's `error`. A sample whose request waits for
    a batch (lm/batch.py) stops there (`meta["deferred"]`); once all are done, `BatchPending` is
    raised, likewise after the last trace. Closing the iterator early stops the run as an error does.
    """
    total = len(examples) * samples
    if not total:
        return
    workers = max(1, min(workers, total))
    batcher = BatchingLM(lm, programs=total, concurrency=workers)

    def one(example: Example, k: int) -> Trace:
        with batcher.program():
            view = _RefusalsRaise(batcher, temperature=temperature, top_p=top_p, sample=k, seed=seed, logprobs=logprobs)
            take_failure()  # nothing left over from an earlier program on this thread
            try:
                trace = program(example, view)
            except RefusedRequest as exc:
                trace = failed_trace(example, exc)
            except DeferredRequest:
                trace = Trace(example.id, "deferred", None, meta={"deferred": True})
            parser_failure = take_failure()  # a user's answer parser that raised: why this output is unparseable
            if parser_failure is not None and trace.answer is None:
                trace.error = f"{trace.error} ({parser_failure})" if trace.error else parser_failure
        trace.sample = k
        if on_trace is not None:
            on_trace(trace)
        return trace

    # `workers` threads each take the next job until none is left, rather than one Future per job
    # submitted up front (a Future, a work item and their locks per sample: 800k of each at 100k
    # inputs × 8), and the jobs are made as they are taken, not listed up front.
    queue = enumerate((example, k) for example in examples for k in range(samples))
    taking = threading.Lock()
    done: SimpleQueue = SimpleQueue()  # (index, trace) as programs finish; _END or an error last
    stop = threading.Event()  # no further job starts: a program failed, or the run was interrupted
    running = [workers]

    def work() -> None:
        try:
            while not stop.is_set():
                with taking:
                    item = next(queue, None)
                if item is None:
                    return
                index, (example, k) = item
                done.put((index, one(example, k)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            stop.set()
            done.put((-1, exc))
        finally:
            with taking:
                running[0] -= 1
                if running[0] == 0:
                    done.put((-1, _END))

    started: list[threading.Thread] = []
    try:
        for i in range(workers):
            started.append(threading.Thread(target=work, name=f"s2distill-program-{i}"))
            started[-1].start()
        waiting: dict[int, Trace] = {}  # done ahead of the next one in order
        following, failed, program_errors, shown, deferred = 0, 0, 0, [], 0
        while following < total:
            index, item = done.get()
            if index < 0:
                if item is _END:
                    break
                raise item
            waiting[index] = item
            while following in waiting:
                trace = waiting.pop(following)
                following += 1
                if trace.meta.get("deferred"):
                    deferred += 1
                elif "failed" in trace.meta:
                    failed += 1
                    program_errors += trace.meta.get("kind") == "program"
                    if len(shown) < 3:
                        shown.append(trace)
                yield trace
        if following < total:  # cannot happen: a worker's error comes before the end
            raise RuntimeError(f"the program run ended after {following} of {total} samples")
        if deferred:  # waiting for a batch: nothing of this run may be sealed (after the last trace, as below)
            raise BatchPending(deferred, total)
        _check_failed(shown, failed, total, max_failures, program_errors)
    finally:
        # On an error, Ctrl-C or a caller that stops reading, no further job starts and running
        # programs stop at their next call; only the batch already with the model finishes (and
        # reaches the cache).
        stop.set()
        batcher.close()
        for thread in started:
            thread.join()


_END = object()  # the last worker has ended
