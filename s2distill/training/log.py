"""Training's history, kept in the run folder whatever `train.report_to` says.

TRL's checkpoints (and with them the trainer's log history) are deleted once the weights are
saved; the loss curve is worth keeping. `keep_history` attaches a callback that appends every
logged step (loss, token accuracy, learning rate, grad norm, epoch) to `STAGE/train_log.jsonl`,
which report.html draws per curriculum stage. When `train.report_to` names TensorBoard, its event
files go to `STAGE/tensorboard/` instead of the checkpoints folder, so they survive too.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

LOG_NAME = "train_log.jsonl"
# report_to names -> the module that must be importable (others are left to transformers to check)
_INTEGRATIONS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "trackio": ("trackio",),
                 "mlflow": ("mlflow",), "comet_ml": ("comet_ml",), "swanlab": ("swanlab",), "clearml": ("clearml",)}


def check_report_to(names: list[str]) -> None:
    """Fail before training, naming the package, when a named tracker is not installed."""
    for name in names:
        modules = _INTEGRATIONS.get(name)
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            raise ValueError(f"train.report_to: {name} is not installed (pip install {modules[0]})")


def token_accuracy(logits, labels) -> float:
    """Share of label tokens the model predicts (argmax), for logits at the answer-predicting
    positions only (as `answer_positions_loss` computes them)."""
    next_labels = labels[:, 1:]
    positions = (next_labels != -100).any(dim=0).nonzero().squeeze(-1)
    targets = next_labels[:, positions]
    mask = targets != -100
    if not mask.any():
        return 0.0
    return (logits.argmax(dim=-1)[mask] == targets[mask]).float().mean().item()


def _history_callback_class():
    from transformers import TrainerCallback

    class LossHistory(TrainerCallback):
        """Appends each log event to a JSON-lines file; on a resumed run, first drops the steps
        after the checkpoint it resumes from (they are logged again)."""

        def __init__(self, path: Path):
            self.path = path

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and self.path.exists():  # one writer when several processes train
                rows = _history_rows(self.path)
                kept = [r for r in rows if r.get("step", 0) <= state.global_step and "train_runtime" not in r]
                self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "epoch": state.epoch,
                   **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    return LossHistory


def keep_history(trainer, stage_dir: Path) -> Path:
    """Attach the history callback to `trainer`, and point TensorBoard (when used) at
    `stage_dir/tensorboard`; return the history file's path."""
    path = Path(stage_dir) / LOG_NAME
    trainer.add_callback(_history_callback_class()(path))
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TensorBoardCallback" and getattr(callback, "logging_dir", None) is None:
            callback.logging_dir = str(Path(stage_dir) / "tensorboard")
    return path


def read_history(stage_dir: Path) -> list[dict]:
    path = Path(stage_dir) / LOG_NAME
    return _history_rows(path) if path.exists() else []


def _history_rows(path: Path) -> list[dict]:
    """The logged steps; a line cut short (the disk filled up, or the process was killed, while it
    was appended) is left out, not an error."""
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
