"""Where a run's memory goes: peak resident memory per stage, for the main process and its children.

Run: python benchmarks/memory.py [RECIPE] [key=value ...] [--out DIR] [--interval 0.1]
     (default: recipes/quickstart.yaml, in a fresh temporary folder with a fresh completion cache,
     so every sample is generated rather than replayed)

A thread reads, every `--interval` seconds, the resident set size (RSS) of this process and of
every process below it (the sandbox's program runners, a training launched as its own process),
and charges it to the stage running at that moment (the benchmark wraps `RunFolder.stage` to know
which). It prints, per stage: its wall time, the main process's peak RSS and its RSS when the stage
returned (what the stage left held for the next ones), the peak of the whole
process tree (the sum at one instant), and how many processes that tree held then. GNU `time -v`'s
"Maximum resident set size" is the largest peak of any single process it waited for: here, the
main process's column unless a child grew larger (the end line prints both from `getrusage`).

Figures depend on the CPU (the dtype `auto` picks, the kernels torch dispatches to): the first line
printed names it. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import psutil

from s2distill.config.recipe import load_recipe
from s2distill.hardware import cpu_capability, describe, resolve_dtype
from s2distill.pipeline import Pipeline
from s2distill.stages import folder as folder_module

GIB = 1024 ** 3


class StageMemory:
    """Peak RSS per stage, sampled on a thread while the run goes on."""

    def __init__(self, interval: float):
        self.interval = interval
        self.current = "(before the first stage)"
        self.main_peak: dict[str, int] = {}
        self.tree_peak: dict[str, tuple[int, int]] = {}  # stage -> (bytes, processes at that instant)
        self.seconds: dict[str, float] = {}
        self.end_rss: dict[str, int] = {}  # stage -> the main process's RSS as it returned: what it left behind
        self._stop = threading.Event()
        self._process = psutil.Process(os.getpid())
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> StageMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            stage = self.current
            try:
                main = self._process.memory_info().rss
                children = self._process.children(recursive=True)
                tree = main + sum(_rss(child) for child in children)
            except psutil.Error:
                self._stop.wait(self.interval)
                continue
            self.main_peak[stage] = max(self.main_peak.get(stage, 0), main)
            if tree > self.tree_peak.get(stage, (0, 0))[0]:
                self.tree_peak[stage] = (tree, 1 + len(children))
            self._stop.wait(self.interval)

    def wrap(self, stage_method):
        """`RunFolder.stage`, recording which stage runs (a kept stage passes in a moment)."""
        monitor = self

        def stage(folder, name, *args, **kwargs):
            monitor.current = name
            started = time.perf_counter()
            try:
                return stage_method(folder, name, *args, **kwargs)
            finally:
                monitor.seconds[name] = monitor.seconds.get(name, 0.0) + time.perf_counter() - started
                monitor.end_rss[name] = _rss(monitor._process)
                monitor.current = "(between stages: curation's filters, the report)"

        return stage


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:  # ended between listing and reading
        return 0


def _maxrss(who: int) -> float:
    """`getrusage`'s peak RSS in GiB (Linux reports kilobytes): what GNU `time -v` prints."""
    return resource.getrusage(who).ru_maxrss * 1024 / GIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="recipes/quickstart.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value recipe overrides, e.g. task.train_size=128")
    parser.add_argument("--out", type=Path, help="run folder (default: a fresh temporary one)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between RSS readings")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="s2d-memory-")
    out = args.out or Path(scratch.name) / "run"
    overrides = list(args.overrides)
    if not any(o.startswith("cache=") for o in overrides):
        overrides.append(f"cache={Path(scratch.name) / 'completions.sqlite'}")  # generate, never replay
    try:
        _measure(args, out, overrides)
    finally:
        scratch.cleanup()


def _measure(args, out: Path, overrides: list[str]) -> None:
    recipe = load_recipe(args.recipe, overrides)
    print(f"cpu capability: {cpu_capability()}  ({describe(resolve_dtype('auto'))})  cores: {os.cpu_count()}  "
          f"load average at start: {os.getloadavg()[0]:.1f}")
    print(f"recipe: {args.recipe} {' '.join(args.overrides)}  folder: {out}")

    monitor = StageMemory(args.interval)
    original = folder_module.RunFolder.stage
    folder_module.RunFolder.stage = monitor.wrap(original)
    started = time.perf_counter()
    try:
        with monitor:
            Pipeline(recipe, out, progress=False).run()
    finally:
        folder_module.RunFolder.stage = original
    total = time.perf_counter() - started

    print(f"\n{'stage':<44}{'seconds':>9}{'main peak GiB':>15}{'main end GiB':>14}{'tree peak GiB':>15}{'processes':>11}")
    for stage, main_peak in monitor.main_peak.items():
        tree, processes = monitor.tree_peak.get(stage, (0, 0))
        seconds = monitor.seconds.get(stage)
        end = monitor.end_rss.get(stage)
        print(f"{stage:<44}{'' if seconds is None else f'{seconds:.1f}':>9}{main_peak / GIB:>15.2f}"
              f"{'' if end is None else f'{end / GIB:.2f}':>14}{tree / GIB:>15.2f}{processes:>11}")
    print(f"\nwhole run: {total:.0f} s; main process peak {max(monitor.main_peak.values()) / GIB:.2f} GiB "
          f"(getrusage: this process {_maxrss(resource.RUSAGE_SELF):.2f} GiB, largest child {_maxrss(resource.RUSAGE_CHILDREN):.2f} GiB); process-tree peak "
          f"{max(t for t, _ in monitor.tree_peak.values()) / GIB:.2f} GiB; load average at the end "
          f"{os.getloadavg()[0]:.1f} (above ~2 means other jobs shared the cores)")


if __name__ == "__main__":
    main()
