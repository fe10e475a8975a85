"""Tasks, one file each, and the registry recipes name them by."""

from __future__ import annotations

from s2distill.tasks.base import Shot, Task
from s2distill.tasks.coin_flip import CoinFlip, CoinFlipConfig
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig

TASKS: dict[str, type[Task]] = {LastLetters.name: LastLetters, CoinFlip.name: CoinFlip}
TaskConfig = LastLettersConfig | CoinFlipConfig


def build_task(config: TaskConfig) -> Task:
    return TASKS[config.name](config)


__all__ = ["TASKS", "Shot", "Task", "TaskConfig", "build_task"]
