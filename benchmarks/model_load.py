"""Loading a model: the resident-memory peak and the time, transformers' mapped load against ours.

Run: python benchmarks/model_load.py [MODEL_DIR] [--dtypes bfloat16 float32] [--repeats 2]
     (default: the embedded Gemma 3 270M's converted folder)

Each load runs in a fresh process, so one's memory does not hide the next's. A thread reads the
process's RSS every 5 ms; the script prints, per loader and dtype, the RSS before loading, the peak
while loading, the RSS once loaded (the model itself), and the seconds `load` took. The loaders:
`from_pretrained` (`AutoModelForCausalLM.from_pretrained(folder, dtype=...)`, which maps the file)
and `load_causal_lm` (s2distill/lm/weights.py: a block at a time where the load converts dtypes,
the mapped file where it does not).
Asserts nothing; the first line names the CPU capability.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

# The child's RSS watcher: from here on, `peak[0]` is the largest RSS read every 5 ms, `before` the
# RSS it started from (benchmarks/gguf_convert.py's children use it too).
PEAK_WATCHER = """
import threading, time
import psutil
process, peak = psutil.Process(), [0]
def watch():
    while True:
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.005)
before = process.memory_info().rss
peak[0] = before
threading.Thread(target=watch, daemon=True).start()
"""

CHILD = """
import json, sys, time
import torch
from s2distill.allocator import tune_allocator
tune_allocator()
from transformers import AutoModelForCausalLM
from s2distill.lm.weights import load_causal_lm
folder, loader, dtype = sys.argv[1], sys.argv[2], getattr(torch, sys.argv[3])
""" + PEAK_WATCHER + """started = time.perf_counter()
model = (AutoModelForCausalLM.from_pretrained(folder, dtype=dtype) if loader == "from_pretrained"
         else load_causal_lm(folder, dtype))
seconds = time.perf_counter() - started
time.sleep(0.05)
print(json.dumps({"before": before, "peak": peak[0], "after": process.memory_info().rss, "seconds": seconds}))
"""

GIB = 1024 ** 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", help="a converted model folder (default: the embedded model's)")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from s2distill.hardware import cpu_capability

    if args.model_dir is None:
        from s2distill.lm.embedded import embedded_model_dir

        args.model_dir = str(embedded_model_dir())
    print(f"cpu capability: {cpu_capability()}  cores: {os.cpu_count()}  load average at start: {os.getloadavg()[0]:.1f}")
    print(f"model: {args.model_dir}\n")
    print(f"{'loader':<17}{'dtype':<10}{'before GiB':>11}{'peak GiB':>10}{'loaded GiB':>11}{'peak - loaded':>15}{'seconds':>9}")
    for dtype in args.dtypes:
        for _ in range(args.repeats):
            for loader in ("from_pretrained", "load_causal_lm"):
                done = subprocess.run([sys.executable, "-c", CHILD, args.model_dir, loader, dtype],
                                      capture_output=True, text=True, check=True)
                r = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"{loader:<17}{dtype:<10}{r['before'] / GIB:>11.2f}{r['peak'] / GIB:>10.2f}{r['after'] / GIB:>11.2f}"
                      f"{(r['peak'] - r['after']) / GIB:>15.2f}{r['seconds']:>9.2f}")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (above ~2 means other jobs shared the cores)")


if __name__ == "__main__":
    main()
