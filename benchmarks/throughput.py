"""Generation throughput of the embedded model on this machine: single vs batched requests.

Run: python benchmarks/throughput.py [--dtype auto|float32|bfloat16] [--rows 1 4 16] [--tokens 48]

Prints generated tokens per second for one request at a time and for batches of greedy and
sampled rows (sampled rows of one prompt share its prefill), on a few-shot program-aided prompt
like the quickstart's. The cache is not used: every token is generated.
"""

from __future__ import annotations

import argparse
import time

from s2distill.hardware import describe
from s2distill.lm.embedded import embedded_lm
from s2distill.methods.pal import QUERY, SHOT
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.types import Request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()

    task = LastLetters(LastLettersConfig(test_size=64))
    prefix = "".join(SHOT.format(question=s.question, program=s.program) for s in task.shots)
    prompts = [prefix + QUERY.format(question=task.question(item.example)) for item in task.labeled("test")]
    lm = embedded_lm(dtype=args.dtype, batch_rows=max(args.rows))
    started = time.perf_counter()
    lm.load()
    print(f"model load: {time.perf_counter() - started:.1f}s  hardware: {describe(lm.dtype)}")
    lm.generate([Request(prompt=prompts[0], temperature=0.0, max_tokens=4)])  # warm-up

    print(f"{'mode':<34}{'rows':>5}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}")
    for rows in args.rows:
        for mode in ("greedy, distinct prompts", "sampled, 4 samples per prompt"):
            if mode.startswith("greedy"):
                requests = [Request(prompt=p, temperature=0.0, max_tokens=args.tokens) for p in prompts[:rows]]
            else:
                if rows < 4:
                    continue
                requests = [Request(prompt=p, temperature=0.7, top_p=0.95, max_tokens=args.tokens, n=4) for p in prompts[: rows // 4]]
            lm.batch_rows = rows
            started = time.perf_counter()
            outputs = lm.generate(requests)
            seconds = time.perf_counter() - started
            tokens = sum(c.usage.completion_tokens for out in outputs for c in out)
            print(f"{mode:<34}{rows:>5}{tokens:>8}{seconds:>9.2f}{tokens / seconds:>10.1f}")


if __name__ == "__main__":
    main()
