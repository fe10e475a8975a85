"""The pipeline's own cost as work grows: wall time and memory per stage at 1k, 10k, 100k inputs.

Run: python benchmarks/scale.py [--sizes 1000 10000 [100000]] [--samples 8] [--latency 0.01] [--workers 64]

A fake teacher (the scripted FakeLM, sleeping `--latency` seconds per call, i.e. per batch, as a
served model would) samples chain of thought on `last_letters` (`train_size` N) `--samples` times
per input; self-consistency curates; the answer-only training set is built. Training and
evaluation are the user's model's cost, not the framework's, and are left out. Each size runs in a
fresh subprocess (so its peak memory is its own) that calls the stage functions directly, as
`Pipeline.run` does, and then twice more over the same folder:

- rerun: every stage kept (what a rerun costs: checking seals and loading artifacts);
- replay: the samples stage redone (`--redo samples`), every completion served from the cache.

Per stage it prints wall seconds, the LM calls (batches) the fake received and the seconds spent
inside it (its latency and its own scripted work: the model's cost), the framework's own time per
1,000 samples (wall minus the model's seconds), the peak resident memory above the stage's start
(sampled every 5 ms from /proc/self/status) and the artifact's size. Beside the wall time, the
process's CPU time per 1,000 samples (all its threads), which other jobs on the cores disturb less.
Figures, not asserts; the load average says whether other jobs shared the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

# The fake's chain of thought: right in 6 samples of 8, so self-consistency keeps most inputs.
RIGHT = ('The last letter of "\\1\\2" is "\\2". The last letter of "\\3\\4" is "\\4". '
         'Concatenating them is "\\2\\4".\nFinal answer: \\2\\4')
WRONG = 'The last letters are "\\4" and "\\2".\nFinal answer: \\4\\2'
RULES = [{"pattern": r'in "(\w*)(\w) (\w*)(\w)" and concatenate them\.\nSolution:$',
          "responses": [RIGHT, RIGHT, RIGHT, WRONG, RIGHT, RIGHT, WRONG, RIGHT]}]


def recipe(size: int, samples: int, latency: float, workers: int):
    from s2distill.config.recipe import Recipe

    fake = {"backend": "fake", "rules": RULES, "latency": latency}
    return Recipe.model_validate({
        "name": f"scale-{size}",
        "task": {"name": "last_letters", "train_size": size, "test_size": 8, "seed": 0},
        "teacher": {"model": fake, "method": {"name": "cot", "shots": 0}, "samples": samples, "temperature": 0.7},
        "student": {"model": {"backend": "fake"}, "method": {"name": "direct", "shots": 0}},
        "curation": {"min_fraction": 0.5},
        "workers": workers,
    })


class RSS:
    """Resident memory sampled in a thread: `peak_since(mark)` is the peak above a mark, in MB."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak, self._stop = every, 0, False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _loop(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def mark(self) -> int:
        start = self.now()
        self.peak = start
        return start

    def stop(self) -> None:
        self._stop = True


def one_size(size: int, samples: int, latency: float, workers: int, root: Path, cache: Path) -> dict:
    """Every stage up to the training set, then a rerun and a replay; figures as a dict."""
    rss = RSS()
    r = recipe(size, samples, latency, workers)
    figures: dict[str, list] = {"lm": []}
    for label, redo in (("first run", ()), ("rerun (all kept)", ()), ("replay (--redo samples)", ("samples",))):
        figures[label], lm = one_run(r, root, cache, redo, rss)
        figures["lm"].append({"run": label, **lm})
    rss.stop()
    figures["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["cache_bytes"] = sum(p.stat().st_size for p in cache.parent.glob(cache.name + "*"))
    return figures


def one_run(r, root: Path, cache: Path, redo: tuple[str, ...], rss: RSS) -> tuple[list[dict], dict]:
    """The stages as `Pipeline.run` calls them, each timed: (a row per stage, the LM's counts)."""
    from s2distill.models import Models
    from s2distill.report.summary import curation_summary
    from s2distill.stages.context import RunContext
    from s2distill.stages.curate import curate_stage, variant_traces
    from s2distill.stages.distill import Step, set_stage
    from s2distill.stages.folder import RunFolder
    from s2distill.stages.sampling import inputs_stage, samples_stage
    from s2distill.distill.variants import plan_variants

    console = Console(stderr=True, quiet=True)
    teacher = r.teachers[0]
    ctx = RunContext.open(r, RunFolder(root, console, redo=redo), Models(cache), console=console, show_progress=False)
    variant = plan_variants(r)[0]
    rows: list[dict] = []
    in_model = [0.0]  # seconds inside the fake's generate: its latency and its own scripted work

    def timed(name, artifact, fn, lm_batches=lambda: 0):
        before_batches, before_model = lm_batches(), in_model[0]
        start_rss = rss.mark()
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        batches, model = lm_batches() - before_batches, in_model[0] - before_model
        path = root / artifact if artifact else None
        rows.append({"stage": name, "wall": wall, "cpu": cpu, "lm_batches": batches, "model": model,
                     "overhead": wall - model, "rss_growth": rss.peak - start_rss, "rss_end": rss.now(),
                     "artifact_bytes": path.stat().st_size if path and path.exists() else None,
                     "status": ctx.folder.log[-1].status if path and ctx.folder.log else ""})
        return value

    with ctx.models:
        fake = ctx.models.get(teacher.model).inner
        fake.keep_requests = False  # 800k requests would otherwise all stay in memory
        generate = fake.generate

        def timed_generate(requests):
            start = time.perf_counter()
            try:
                return generate(requests)
            finally:
                in_model[0] += time.perf_counter() - start

        fake.generate = timed_generate
        inputs = timed("inputs", "inputs/train.jsonl", lambda: inputs_stage(ctx))
        sampled = timed("samples", f"samples/{teacher.name}.jsonl",
                        lambda: {(teacher.name, False): samples_stage(ctx, teacher.name, inputs)},
                        lm_batches=lambda: fake.batches)
        verdicts = timed("curation", "curation/verdicts.jsonl", lambda: curate_stage(ctx, variant, inputs, sampled))
        timed("curation summary", None, lambda: curation_summary(variant, verdicts.value, variant_traces(variant, sampled).tallies()))
        step = Step(variant, 1, variant.stages[0])
        pairs = timed("training set", f"distill/{step.base}.jsonl", lambda: set_stage(
            ctx, step, inputs, verdicts, variant_traces(variant, sampled), None))
        return rows, {**ctx.models.calls(), "pairs": len(pairs.value)}


def machine() -> str:
    from s2distill.hardware import describe

    load = os.getloadavg()
    return (f"{describe('float32')}; {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
            f" ({'other jobs share the cores' if load[0] > 0.5 else 'idle'}); python {sys.version.split()[0]}")


def show(size: int, samples: int, latency: float, figures: dict) -> None:
    total = size * samples
    print(f"\n{size} inputs × {samples} samples = {total} samples; fake latency {latency * 1000:g} ms per LM call; "
          f"peak RSS of the process {figures['max_rss_mb']:.0f} MB; cache {figures['cache_bytes'] / 1e6:.1f} MB")
    print(f"{'run':<26}{'stage':<18}{'status':<9}{'wall s':>8}{'LM calls':>9}{'model s':>8}{'own ms/1k':>10}{'CPU ms/1k':>10}{'RSS +MB':>9}"
          f"{'artifact MB':>12}")
    for label in ("first run", "rerun (all kept)", "replay (--redo samples)"):
        for row in figures[label]:
            size_mb = f"{row['artifact_bytes'] / 1e6:.1f}" if row["artifact_bytes"] is not None else "-"
            print(f"{label:<26}{row['stage']:<18}{row['status']:<9}{row['wall']:>8.2f}{row['lm_batches']:>9}{row['model']:>8.2f}"
                  f"{row['overhead'] / total * 1e6:>10.1f}{row['cpu'] / total * 1e6:>10.1f}{row['rss_growth'] / 1e6:>9.0f}{size_mb:>12}")
        own = sum(row["overhead"] for row in figures[label])
        print(f"{label:<26}{'all':<18}{'':<9}{sum(r['wall'] for r in figures[label]):>8.2f}"
              f"{sum(r['lm_batches'] for r in figures[label]):>9}{sum(r['model'] for r in figures[label]):>8.2f}"
              f"{own / total * 1e6:>10.1f}"
              f"{sum(r['cpu'] for r in figures[label]) / total * 1e6:>10.1f}  "
              f"= {own / total * 1e3:.3f} ms of the framework's own time per sample")
    for lm in figures["lm"]:
        print(f"  {lm['run']}: {lm['calls']} completions generated, {lm['cached']} from the cache, {lm['pairs']} pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="inputs (100000 is opt-in: minutes)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the fake sleeps per LM call (batch)")
    parser.add_argument("--workers", type=int, default=64, help="programs run at once (the LM sees batches this big)")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process: one size, figures as JSON
    args = parser.parse_args()

    if args.one:
        with tempfile.TemporaryDirectory(prefix="s2d-scale-") as folder:
            cache = Path(os.environ.get("S2DISTILL_CACHE") or Path(folder) / "cache.sqlite")
            cache = cache.with_name(f"{cache.stem}-{args.one}-{os.getpid()}{cache.suffix}")  # a fresh cache per size
            try:
                figures = one_size(args.one, args.samples, args.latency, args.workers, Path(folder) / "run", cache)
            finally:
                for path in cache.parent.glob(cache.name + "*"):
                    path.unlink()
        print(json.dumps(figures))
        return

    print(machine())
    everything = {}
    for size in args.sizes:
        child = subprocess.run([sys.executable, __file__, "--one", str(size), "--samples", str(args.samples),
                                "--latency", str(args.latency), "--workers", str(args.workers)],
                               capture_output=True, text=True, check=False)
        if child.returncode:
            print(child.stderr[-3000:])
            raise SystemExit(f"size {size} failed")
        figures = json.loads(child.stdout.splitlines()[-1])
        everything[size] = figures
        show(size, args.samples, args.latency, figures)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
