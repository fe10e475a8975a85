"""Tasks, one file each, and the registry recipes name them by."""

from __future__ import annotations

from pathlib import Path

from s2distill.tasks.base import Shot, Task
from s2distill.tasks.coin_flip import CoinFlip, CoinFlipConfig
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig

TASKS: dict[str, type[Task]] = {LastLetters.name: LastLetters, CoinFlip.name: CoinFlip}
TaskConfig = LastLettersConfig | CoinFlipConfig


def build_task(config: TaskConfig, *, data_root: Path | None = None) -> Task:
    """The task a recipe names; `data_root` is the data folder (default: found by `paths.data_dir`)."""
    return TASKS[config.name](config, data_root=data_root)


__all__ = ["TASKS", "Shot", "Task", "TaskConfig", "build_task"]
