"""Per-program overhead of the sandbox for model-written code: programs per second.

Run: python benchmarks/sandbox.py [--programs 64] [--workers 1 16] [--repeats 3]

Runs a PAL-style program (a few lines that print one answer) through `run_python`, one at a time
and from worker threads as the method runner does (`workers`), and prints the best of `repeats`
rounds in programs/s (the best round is the least disturbed by other work on a shared machine),
the guard that ran, and what it ran on (CPU capability, kernel, bubblewrap version, root or not).
`--module PATH` times another copy of `s2distill/sandbox.py` (e.g. one written by
`git show HEAD~1:s2distill/sandbox.py > /tmp/old_sandbox.py`), to compare before and after a
change on one machine. The quickstart runs about 1,000 such programs (1,024 teacher samples, 50
greedy System 2 evaluations).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from s2distill import sandbox
from s2distill.hardware import describe

PROGRAM = 'words = ["Ron", "Shyam"]\nprint("".join(w[-1] for w in words))\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--module", help="time this copy of s2distill/sandbox.py instead of the installed one")
    args = parser.parse_args()
    global sandbox
    if args.module:
        spec = importlib.util.spec_from_file_location("sandbox_under_test", args.module)
        sandbox = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = sandbox
        spec.loader.exec_module(sandbox)
    bwrap = shutil.which("bwrap")
    version = "no bwrap"
    if bwrap:
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    print("hardware:", json.dumps(describe("float32")), f"kernel {platform.release()}; {version}; "
          f"{'root' if os.geteuid() == 0 else 'uid ' + str(os.geteuid())}; load average {os.getloadavg()[0]:.2f}")
    describe_guard = getattr(sandbox, "describe_guard", lambda *a, **k: "audit hook + unshare -n (before issue 10)")
    print(f"guard: {describe_guard()}")
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
