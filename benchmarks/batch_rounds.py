"""Batch mode's own cost: one round of N requests submitted, collected and replayed, end to end.

Run: python benchmarks/batch_rounds.py [--sizes 1000 10000] [--samples 2]

A two-call program (a question, then an answer to the reply: the shape of 2-step RaR) runs over N
inputs x `--samples` samples against a local fake of the OpenAI Files + Batch API
(tests/openai_batch_server.py, which answers at once), through the completion cache and `BatchLM`,
as a run does. Per round it prints the wall seconds of

- the pass that defers every request (each program stops at its first unanswered call);
- `submit` (writing the JSONL and uploading it; its size is printed);
- the next pass, which collects the round (download, parse, cache) and defers the next call;

and the process's peak resident memory. The fake's own time (it runs in this process, on the
same two cores) is inside these figures: they bound the framework's cost from above. A provider's
queueing (minutes to hours) is not what this measures. Figures, not asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2distill.lm.batch import BatchLM, BatchPending
from s2distill.lm.cache import CachedLM
from s2distill.lm.configs import BatchSettings
from s2distill.lm.openai_api import OpenAICompatibleLM
from s2distill.methods.runner import run_program
from s2distill.types import Call, Example, Request, Trace
from tests.openai_batch_server import OpenAIBatchServer


def two_calls(example: Example, lm) -> Trace:
    """Ask, then answer the reply: two call depths, so two batch rounds."""
    first = lm.generate([Request(prompt=f"Rephrase: what are the last letters of {example.inputs['q']}?",
                                 max_tokens=32)])[0][0]
    second = lm.generate([Request(prompt=f"{first.text}\nAnswer:", max_tokens=8)])[0][0]
    calls = [Call("q", first.text, first.usage), Call("a", second.text, second.usage)]
    return Trace(example.id, "two_calls", second.text.split()[-1], calls=calls)


def reply(body: dict) -> str:
    prompt = body["prompt"]
    return "The answer is xy." if prompt.endswith("Answer:") else f"Which letters end {prompt.split()[-1]}"


def one_size(n: int, samples: int) -> None:
    examples = [Example(f"e{i}", {"q": f"word{i} other{i}"}) for i in range(n)]
    with tempfile.TemporaryDirectory() as folder, OpenAIBatchServer(reply) as server:
        live = OpenAICompatibleLM(base_url=server.url, model="bench")
        lm = BatchLM(live, BatchSettings(), Path(folder) / "batches", say=lambda text: None)
        cache = CachedLM(lm, Path(folder) / "cache.sqlite")
        for depth in (1, 2, 3):
            started = time.perf_counter()
            try:
                traces = run_program(two_calls, examples, cache, samples=samples, temperature=0.7, workers=64)
            except BatchPending:
                traces = None
            passed = time.perf_counter() - started
            if traces is not None:
                right = sum(t.answer == "xy." for t in traces)
                print(f"  pass {depth}: {passed:6.2f} s, every program done ({right} of {len(traces)} answers read)")
                break
            started = time.perf_counter()
            [round_] = lm.submit()
            submitted = time.perf_counter() - started
            size = round_.input_path.stat().st_size
            print(f"  pass {depth}: {passed:6.2f} s to defer {round_.record['requests']:,} requests; submit "
                  f"{submitted:5.2f} s ({size / 1e6:.1f} MB)")
            lm.new_pass()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident memory so far: {peak:.0f} MB; fake server answered {server.answered:,} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    import torch

    print(f"cpu capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} (other jobs on the cores slow every figure)")
    for n in args.sizes:
        print(f"{n:,} inputs x {args.samples} samples:")
        one_size(n, args.samples)


if __name__ == "__main__":
    main()
