"""The distilled score as a function of curated inputs and training mode, on one curated pool.

Run a recipe once with a large unlabeled pool (its samples and curation are what this reads):

    s2distill run recipes/quickstart.yaml task.train_size=1024 --out runs/pool
    python benchmarks/learning_curve.py runs/pool --sizes 128 256 512 1024 --modes lora full

Each point trains the student afresh on the answer-only pairs of the first N kept inputs (the
pool's input order, so a larger N holds every smaller one), with the recipe's training settings
(changed with `--train key=value`), then scores it greedily on the recipe's test split and on its
`evaluate.transfer` splits. It prints the score, tokens, and the wall time of training and
evaluation for every point, with the CPU capability and dtypes it ran on. No label is read before
evaluation: the pairs come from curation alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from s2distill.config.recipe import apply_override, validate_recipe  # noqa: E402
from s2distill.curation import output_key  # noqa: E402
from s2distill.distill.pairs import distill_pairs  # noqa: E402
from s2distill.scoring.score import score_traces  # noqa: E402
from s2distill.hardware import describe, resolve_dtype  # noqa: E402
from s2distill.lm import build_lm  # noqa: E402
from s2distill.methods import build_program, run_program  # noqa: E402
from s2distill.artifacts import read_jsonl  # noqa: E402
from s2distill.tasks import build_task  # noqa: E402
from s2distill.training.sft import train_student  # noqa: E402
from s2distill.types import Example, Trace, Verdict  # noqa: E402


def load_pool(run: Path, overrides: list[str]):
    """The run's recipe (with overrides), inputs, kept verdicts and traces."""
    data = yaml.safe_load((run / "recipe.yaml").read_text())
    for override in overrides:
        apply_override(data, override)
    recipe = validate_recipe(data, source=str(run / "recipe.yaml"))
    examples = [Example(r["id"], r["inputs"]) for r in read_jsonl(run / "inputs" / "train.jsonl")]
    verdicts = [Verdict.from_row(r) for r in read_jsonl(run / "curation" / "verdicts.jsonl")]
    traces = {}
    for teacher in recipe.teachers:
        for row in read_jsonl(run / "samples" / f"{teacher.name}.jsonl"):
            trace = Trace.from_dict(row)
            traces[output_key(trace)] = trace
    return recipe, examples, verdicts, traces


def evaluate(recipe, weights: Path) -> list[dict]:
    """The trained student, greedy, on the recipe's test split and each transfer split."""
    data_root = recipe.data_root
    splits = [("", build_task(recipe.task, data_root=data_root))]
    splits += [(label, build_task(config, data_root=data_root)) for label, config in recipe.transfer_tasks()]
    lm = build_lm(recipe.student.model, adapter=weights)
    method = recipe.student.method
    results = []
    for label, task in splits:
        labeled = task.labeled("test")
        started = time.perf_counter()
        program = build_program(task, method.name, method.factory_options())
        traces = run_program(program, [item.example for item in labeled], lm, temperature=0.0, workers=recipe.workers)
        score, _ = score_traces(task, labeled, traces, system="distilled", method=method.name)
        results.append({"test": label or "recipe", "score": score.score, "n": score.n,
                        "tokens": score.tokens_per_example, "seconds": time.perf_counter() - started})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder with samples and curation")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="recipe override for every point, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the points here")
    args = parser.parse_args()

    recipe, examples, verdicts, traces = load_pool(args.run, args.overrides)
    kept = [v for v in verdicts if v.kept]
    print(f"pool: {args.run} — {len(examples)} unlabeled inputs, {len(kept)} kept by {recipe.curation.names()}")
    print("hardware:", json.dumps(describe(resolve_dtype(recipe.student.model.dtype))),
          f"training precision: {resolve_dtype(recipe.train.precision)}")
    print(f"student prompt: {recipe.student.method.name}, {recipe.student.method.shots}-shot; train: "
          + json.dumps(recipe.train.model_dump(exclude={'mode'})))
    points = []
    header = f"{'mode':<5} {'inputs':>6} {'pairs':>6} {'train s':>8}  " + "  ".join(
        f"{'score ' + label:>14} {'tok':>5}" for label in ["recipe"] + [lbl for lbl, _ in recipe.transfer_tasks()])
    print(header)
    for mode in args.modes:
        for size in args.sizes:
            if size > len(kept):
                print(f"{mode:<5} {size:>6}  (the pool has only {len(kept)} kept inputs)")
                continue
            chosen = kept[:size]
            pairs = distill_pairs("answer_only", build_task(recipe.task), examples, chosen, traces,
                                  shots=recipe.student.method.shots, max_per_input=recipe.distill.max_per_input)
            train = recipe.train.model_copy(update={"mode": mode})
            workdir = Path(tempfile.mkdtemp(prefix="s2d-curve-"))
            try:
                started = time.perf_counter()
                weights = train_student(pairs, recipe.student.model.weights_dir(), workdir, train)
                train_seconds = time.perf_counter() - started
                results = evaluate(recipe, weights)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            point = {"mode": mode, "inputs": size, "pairs": len(pairs), "train_seconds": round(train_seconds, 1),
                     "results": results}
            points.append(point)
            print(f"{mode:<5} {size:>6} {len(pairs):>6} {train_seconds:>8.0f}  " + "  ".join(
                f"{100 * r['score']:>13.1f}% {r['tokens']:>5.1f}" for r in results), flush=True)
    if args.json:
        args.json.write_text(json.dumps(points, indent=2))


if __name__ == "__main__":
    main()
