"""Checks around training, so it fails with a message instead of a traceback or a silent NaN model.

- `check_pairs_fit`: before training, at least one pair (prompt and completion) fits in
  `train.max_length` tokens; otherwise TRL truncates every answer away and fails deep inside.
- `FiniteTraining`: a `TrainerCallback` that stops training when the logged loss or gradient norm
  is not finite, and checks at the end that every trainable weight is finite (a learning rate
  that is far too high otherwise "finishes" with an all-NaN adapter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from transformers import TrainerCallback

from s2distill.errors import TrainingError
from s2distill.training.trl_pairs import trl_pair


def pair_length(tokenizer, pair: dict, answer_tokens: str = "text") -> int:
    """The tokens of a training pair, prompt and completion, as TRL tokenises it: a conversational
    pair (chat student: lists of {"role", "content"} messages) through the model's chat template;
    a pair tokenised already (`train.answer_tokens: characters`) as it is."""
    pair = trl_pair(pair, tokenizer, answer_tokens)
    if "input_ids" in pair:
        return len(pair["input_ids"])
    if isinstance(pair["prompt"], list):
        text = tokenizer.apply_chat_template(pair["prompt"] + pair["completion"], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return len(tokenizer(pair["prompt"] + pair["completion"])["input_ids"])


def check_pairs_fit(pairs: Sequence[dict], trainer, max_length: int, answer_tokens: str = "text") -> None:
    """Raise `TrainingError` when no training pair fits in `max_length` tokens."""
    tokenizer = trainer.processing_class
    lengths = [pair_length(tokenizer, p, answer_tokens) for p in pairs]
    shortest = min(lengths, default=0)
    if shortest > max_length or len(trainer.train_dataset) == 0:
        raise TrainingError(
            f"train.max_length={max_length} is shorter than every training example (the shortest, prompt and "
            f"answer, is {shortest} tokens): raise train.max_length to at least {shortest}, or use fewer shots")


def guard_training(trainer, pairs: Sequence[dict], config) -> None:
    """Check the pairs fit, and watch the training for non-finite values (one line in training/sft.py)."""
    check_pairs_fit(pairs, trainer, config.max_length, config.answer_tokens)
    trainer.add_callback(FiniteTraining(config.learning_rate))


class FiniteTraining(TrainerCallback):
    """Stop with a `TrainingError` as soon as training goes non-finite (NaN or infinity)."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def _fail(self, what: str, step: int) -> None:
        raise TrainingError(f"training produced a non-finite {what} at step {step} (NaN or infinity): lower "
                            f"train.learning_rate (now {self.learning_rate:g}) and run again")

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "train_loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, int | float) and not math.isfinite(value):
                self._fail(key.replace("_", " "), state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        import torch

        for name, parameter in model.named_parameters():
            if parameter.requires_grad and not torch.isfinite(parameter).all():
                self._fail(f"weight ({name})", state.global_step)
