"""A rich progress bar per stage, counting finished program runs."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """`with ProgressBar(label, total, console, enabled=...) as advance:` and call `advance()` per run
    (`advance(n)`: n at once)."""

    def __init__(self, label: str, total: int, console: Console, *, enabled: bool):
        self.progress = Progress(
            TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, disable=not enabled,
        )
        self.task_id = self.progress.add_task(label, total=total)

    def __enter__(self):
        self.progress.start()
        return lambda steps=1: self.progress.advance(self.task_id, steps)

    def __exit__(self, *exc):
        self.progress.stop()
