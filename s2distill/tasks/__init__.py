"""Tasks, one file each, and the registry recipes name them by."""

from __future__ import annotations

from pathlib import Path

from s2distill.errors import DataError
from s2distill.tasks.base import Shot, Task
from s2distill.tasks.coin_flip import CoinFlip, CoinFlipConfig
from s2distill.tasks.commonsenseqa import CommonsenseQA, CommonsenseQAConfig
from s2distill.tasks.custom import CustomConfig, CustomTask
from s2distill.tasks.gsm8k import GSM8K, GSM8KConfig
from s2distill.tasks.judging import Judging, JudgingConfig
from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
from s2distill.tasks.mbpp import MBPP, MBPPConfig
from s2distill.tasks.triviaqa import TriviaQA, TriviaQAConfig

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (LastLetters, CoinFlip, GSM8K, CommonsenseQA, MBPP, TriviaQA, Judging, CustomTask)
}
TaskConfig = (LastLettersConfig | CoinFlipConfig | GSM8KConfig | CommonsenseQAConfig | MBPPConfig | TriviaQAConfig
              | JudgingConfig | CustomConfig)


def build_task(config: TaskConfig, *, data_root: Path | None = None) -> Task:
    """The task a recipe names; `data_root` is the data folder (default: found by `paths.data_dir`)."""
    return TASKS[config.name](config, data_root=data_root)


__all__ = ["TASKS", "DataError", "Shot", "Task", "TaskConfig", "build_task"]
