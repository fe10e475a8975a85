"""What soft labels cost beside hard ones, on a run's own pairs: the teacher's pass per pair, and
seconds per training step with the hard and the soft-label loss on the same batches.

Run (on a run folder whose recipe lists `baselines: [soft_labels]`, e.g. the quickstart's):
    python benchmarks/soft_labels.py RUN [--pairs 64] [--batch 8] [--steps 4]

The teacher's pass re-scores `--pairs` of the run's soft pairs with the embedded model (their
stored teacher prompts and target tokens, top-k as the run's) and prints seconds per pair; the
training figures are means over `--steps` optimizer steps after one warm-up step, LoRA and the
recipe's precision, the same batch for both losses. It prints the CPU it ran on and the load
average (the two cores shared with other jobs slow both figures alike; the ratio stands).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from train_step import seconds_per_step  # this folder's: the same step timing as the loss comparison

from s2distill.artifacts import read_jsonl
from s2distill.config.recipe import load_recipe
from s2distill.hardware import describe, resolve_dtype
from s2distill.training.sft import build_trainer
from s2distill.training.soft_labels import completion_ids, prompt_ids, teacher_distributions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--pairs", type=int, default=64, help="soft pairs the teacher's pass re-scores")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = load_recipe(args.run / "recipe.yaml")
    soft_files = sorted((args.run / "distill" / "soft_labels").glob("stage*.soft.jsonl"))
    if not soft_files:
        raise SystemExit(f"{args.run} has no soft_labels pairs: run its recipe with baselines=[soft_labels] first")
    rows = read_jsonl(soft_files[-1])
    settings = recipe.distill.soft
    weights = recipe.student.model.weights_dir()
    dtype = resolve_dtype(recipe.train.precision)
    print(f"hardware: {describe(dtype)}; load average {os.getloadavg()[0]:.2f} (2 cores: above 0.5 means shared)")
    print(f"{len(rows)} soft pairs in {soft_files[-1].relative_to(args.run)}, {soft_files[-1].stat().st_size / 1e6:.1f} MB "
          f"({soft_files[-1].stat().st_size / len(rows) / 1e3:.1f} kB a pair), top-{settings.top_k}")

    tokenizer = AutoTokenizer.from_pretrained(weights)
    teacher = AutoModelForCausalLM.from_pretrained(weights, dtype=getattr(torch, dtype)).eval()
    sample = rows[:args.pairs]
    sequences = [(prompt_ids(r["teacher_prompt"], tokenizer) + completion_ids(r), len(completion_ids(r))) for r in sample]
    started = time.perf_counter()
    again = teacher_distributions(teacher, sequences, top_k=settings.top_k, temperature=settings.temperature)
    teacher_seconds = time.perf_counter() - started
    same = sum(a["teacher_top_ids"][0][0] == r["teacher_top_ids"][0][0] for a, r in zip(again, sample, strict=True))
    print(f"teacher's pass: {teacher_seconds / len(sample):.3f} s a pair ({len(sample)} pairs, mean "
          f"{sum(len(s) for s, _ in sequences) / len(sequences):.0f} tokens each; the stored top-1 reproduced on "
          f"{same} of {len(sample)})")
    del teacher

    soft_loss = {"temperature": settings.temperature, "hard_weight": settings.hard_weight}
    with tempfile.TemporaryDirectory() as out:
        figures = {}
        for name, kwargs in (("hard", {}), ("soft", {"soft_loss": soft_loss})):
            trainer = build_trainer(rows[:args.batch], weights, Path(out) / name, recipe.train, **kwargs)
            batch = trainer.data_collator([trainer.train_dataset[i] for i in range(args.batch)])
            figures[name] = seconds_per_step(trainer, batch, args.steps)
            del trainer
    print(f"training step, batch {args.batch}: hard labels {figures['hard']:.2f} s, soft labels {figures['soft']:.2f} s "
          f"({figures['soft'] / figures['hard']:.2f}x)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
