"""Per-program overhead of the sandbox for model-written code: programs per second.

Run: python benchmarks/sandbox.py [--programs 64] [--workers 1 16] [--repeats 3]

Runs a PAL-style program (a few lines that print one answer) through `run_python`, one at a time
and from worker threads as the method runner does (`workers`), and prints the best of `repeats`
rounds in programs/s (the best round is the least disturbed by other work on a shared machine),
and the guard that ran. The quickstart runs about 1,000 such programs (1,024 teacher samples,
50 greedy System 2 evaluations).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from s2distill import sandbox

PROGRAM = 'words = ["Ron", "Shyam"]\nprint("".join(w[-1] for w in words))\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    describe = getattr(sandbox, "describe_guard", lambda *a, **k: "audit hook + unshare -n (before issue 10)")
    print(f"guard: {describe()}")
    for workers in args.workers:
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(lambda _: sandbox.run_python(PROGRAM), range(args.programs)))
            best = min(best, time.perf_counter() - start)
            assert all(r.ok and r.stdout == "nm\n" for r in results), [r.error for r in results if not r.ok][:1]
        print(f"workers={workers:>2}: {args.programs} programs in {best:.2f} s (best of {args.repeats}) = "
              f"{args.programs / best:.1f} programs/s, {1000 * best / args.programs:.1f} ms each")


if __name__ == "__main__":
    main()
