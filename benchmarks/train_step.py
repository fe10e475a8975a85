"""Seconds per SFT step on the embedded model: TRL's own loss vs s2distill's answer-positions loss.

Run: python benchmarks/train_step.py [--batch 8] [--shots 4] [--steps 3]

Both use the same TRL SFTTrainer, data, LoRA config and bf16 autocast; only `compute_loss`
differs. The batch is answer-only last-letter pairs behind the few-shot System 1 prompt, as the
quickstart trains on. Figures are means over `--steps` steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from s2distill.config.recipe import TrainConfig
from s2distill.hardware import describe, resolve_dtype
from s2distill.lm.embedded import embedded_model_dir
from s2distill.methods import direct_completion, direct_prompt
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.training.sft import build_trainer


def seconds_per_step(trainer, batch, steps: int) -> float:
    from trl import SFTTrainer

    model = trainer.model
    model.train()
    optimizer = trainer.create_optimizer()
    timings = []
    for step in range(steps + 1):
        started = time.perf_counter()
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, dict(batch)) if not isinstance(trainer, _Plain) else SFTTrainer.compute_loss(trainer, model, dict(batch))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up
            timings.append(time.perf_counter() - started)
    return sum(timings) / len(timings)


class _Plain:  # marker: time TRL's own compute_loss on the same trainer object
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mode", choices=["lora", "full"], default="lora")
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto")
    args = parser.parse_args()
    config = TrainConfig(batch_size=args.batch, mode=args.mode, precision=args.precision)

    task = LastLetters(LastLettersConfig(train_size=args.batch))
    pairs = [
        {"prompt": direct_prompt(task, item.example, shots=args.shots), "completion": direct_completion(item.target)}
        for item in task.labeled("train")
    ]
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(pairs, embedded_model_dir(), Path(out), config)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(args.batch)])
        print(f"batch {tuple(batch['input_ids'].shape)}, answer tokens {(batch['labels'] != -100).sum().item()}, bf16 autocast {trainer.args.bf16}, "
              f"hardware: {describe(resolve_dtype(config.precision))}, mode {config.mode}")
        ours = seconds_per_step(trainer, batch, args.steps)
        trainer.__class__ = type("PlainTRL", (_Plain, trainer.__class__), {})
        theirs = seconds_per_step(trainer, batch, args.steps)
    print(f"TRL SFTTrainer loss (fused LM head): {theirs:6.2f} s/step")
    print(f"s2distill answer-positions loss:      {ours:6.2f} s/step   ({theirs / ours:.1f}x faster)")


if __name__ == "__main__":
    main()
