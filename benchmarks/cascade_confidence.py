"""Which student confidence separates its right answers from its wrong ones better: the probability
of its greedy answer (what the cascade routes on: s2distill/scoring/cascade.py), or the agreement of
k sampled answers (maj@k's share of votes)? Measured by AUROC on held-out inputs (the task's
validation split: neither training nor test inputs), with what each costs in generated tokens.

    python benchmarks/cascade_confidence.py runs/quickstart --inputs 200 --k 5
    python benchmarks/cascade_confidence.py runs/quickstart --inputs 200 --k 5 --task words=3

Prints the CPU capability and dtype it ran on, each confidence's AUROC, the student's score
(greedy, and by majority), and tokens per input. Model calls go through the run's completion cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from s2distill.config.recipe import validate_recipe  # noqa: E402
from s2distill.hardware import describe, resolve_dtype  # noqa: E402
from s2distill.lm import build_lm  # noqa: E402
from s2distill.lm.cache import CachedLM  # noqa: E402
from s2distill.methods import run_program  # noqa: E402
from s2distill.paths import completion_cache  # noqa: E402
from s2distill.scoring.cascade import auroc  # noqa: E402
from s2distill.scoring.score import majority_traces, score_traces  # noqa: E402
from s2distill.student.predict import load_student  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder with a trained student")
    parser.add_argument("--inputs", type=int, default=200, help="validation inputs")
    parser.add_argument("--k", type=int, default=5, help="samples for the agreement confidence")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--task", dest="task_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change the task's settings, e.g. --task words=3 (inputs longer than any trained on)")
    args = parser.parse_args()

    recipe = validate_recipe(yaml.safe_load((args.run / "recipe.yaml").read_text()), source=str(args.run))
    student = load_student(args.run)
    task = student.task
    if args.task_overrides:
        from s2distill.tasks import build_task

        changes = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.task_overrides)}
        task = build_task(task.config.model_copy(update=changes), data_root=task.data_root)
    labeled = task.validation(args.inputs)
    examples = [item.example for item in labeled]
    lm = CachedLM(build_lm(student.lm_config, adapter=student.weights), completion_cache())
    print("hardware:", json.dumps(describe(resolve_dtype(recipe.student.model.dtype))))
    print(f"student: {student.weights} ({student.where}); {len(examples)} validation inputs"
          + (f" ({', '.join(args.task_overrides)})" if args.task_overrides else ""))

    started = time.perf_counter()
    greedy = run_program(student.program, examples, lm, temperature=0.0, workers=recipe.workers, logprobs=True)
    greedy_s = time.perf_counter() - started
    started = time.perf_counter()
    sampled = run_program(student.program, examples, lm, samples=args.k, temperature=args.temperature,
                          top_p=recipe.teachers[0].top_p, seed=recipe.teachers[0].seed, workers=recipe.workers)
    sampled_s = time.perf_counter() - started
    majority = majority_traces(sampled, task.normalize)

    _, greedy_records = score_traces(task, labeled, greedy, system="distilled", method="direct")
    _, majority_records = score_traces(task, labeled, majority, system="distilled", method="direct")
    # agreement of the k samples with the greedy answer: the confidence a cascade would route the greedy answer on
    votes = {t.example_id: t.meta["votes"] for t in majority}
    agreement_records = [{**r, "confidence": (votes[r["id"]].get(task.normalize(r["answer"]), 0) / args.k
                                              if r["answer"] is not None else 0.0)} for r in greedy_records]

    def line(label, records, tokens, seconds):
        score = sum(float(r["correct"]) for r in records) / len(records)
        value = auroc(records)
        shown = "–" if value is None else f"{value:.3f}"  # no AUROC where every answer is right, or every one wrong
        print(f"{label:<44} AUROC {shown:>6}  score {100 * score:5.1f}%  "
              f"{tokens:5.1f} tokens/input  {seconds:6.1f} s")

    greedy_tokens = sum(r["completion_tokens"] for r in greedy_records) / len(examples)
    line("answer probability (greedy, 1 sample)", greedy_records, greedy_tokens, greedy_s)
    line(f"agreement of {args.k} samples with the greedy answer", agreement_records,
         greedy_tokens + sum(r["completion_tokens"] for r in majority_records) / len(examples), greedy_s + sampled_s)
    line(f"maj@{args.k}'s vote share (its own answer)", majority_records,
         sum(r["completion_tokens"] for r in majority_records) / len(examples), sampled_s)


if __name__ == "__main__":
    main()
