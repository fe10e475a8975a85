"""What every stage of a run reads: the recipe, its tasks, the run folder, the models, the console.

It also holds the few rules every stage shares: how a program is built from a method, how a
program runs over inputs with a progress bar, and which slice of a config a fingerprint records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from s2distill.config import Recipe, RecipeError, TeacherConfig
from s2distill.configbase import identity
from s2distill.methods import build_program
from s2distill.methods.runner import iter_program
from s2distill.models import Models
from s2distill.progress import ProgressBar
from s2distill.stages.folder import RunFolder
from s2distill.tasks import Task, build_task
from s2distill.types import Example, Trace
from s2distill.variants import SYSTEM1_SOURCE

# Task settings that choose which inputs form a split (the inputs' content fingerprints those) or
# only the test split: a teacher's samples on the training inputs do not depend on them.
SPLIT_SETTINGS = ("train_size", "test_size", "seed", "test_source", "test_questions", "test_trees", "test_path",
                  "test_fraction", "test_timeout")


@dataclass
class RunContext:
    recipe: Recipe
    task: Task
    test_sets: list[tuple[str, Task]]  # (label, task): the recipe's test split ("") and each transfer split
    folder: RunFolder
    models: Models
    console: Console
    show_progress: bool = True

    @classmethod
    def open(cls, recipe: Recipe, folder: RunFolder, models: Models, *, console: Console,
             show_progress: bool) -> RunContext:
        data_root = recipe.data_root
        task = build_task(recipe.task, data_root=data_root)
        test_sets = [("", task)] + [(label, build_task(config, data_root=data_root))
                                    for label, config in recipe.transfer_tasks()]
        for _, split in test_sets:
            split.sandbox = recipe.sandbox.policy()  # how the model's code may run (PAL, MBPP)
        return cls(recipe, task, test_sets, folder, models, console, show_progress)

    # -- programs ----------------------------------------------------------------------------------
    def program(self, method, task: Task | None = None):
        return build_program(task or self.task, method.name, method.factory_options())

    def run(self, label: str, program, examples: Sequence[Example], lm, *, samples: int = 1,
            advance: Callable[[], None] | None = None, **settings: Any) -> list[Trace]:
        """Run a program over inputs (`samples` times each) with a progress bar (`advance`: a bar
        the caller holds open across several runs, instead of one of its own)."""
        return list(self.stream(label, program, examples, lm, samples=samples, advance=advance, **settings))

    def stream(self, label: str, program, examples: Sequence[Example], lm, *, samples: int = 1,
               advance: Callable[[], None] | None = None, **settings: Any) -> Iterator[Trace]:
        """`run`, its traces yielded in the same order as they are done, for a stage that writes
        them as they come rather than holding them all."""
        if advance is None:
            with ProgressBar(label, len(examples) * samples, self.console, enabled=self.show_progress) as bar:
                yield from self.stream(label, program, examples, lm, samples=samples, advance=bar, **settings)
            return
        yield from iter_program(program, examples, lm, samples=samples, workers=self.recipe.workers,
                                max_failures=self.recipe.max_failures, on_trace=lambda _: advance(), **settings)

    def source(self, name: str) -> TeacherConfig:
        """A teacher by name; `system1` is the student's own System 1, sampled like the first teacher."""
        if name != SYSTEM1_SOURCE:
            return self.recipe.teacher(name)
        first, student = self.recipe.teachers[0], self.recipe.student
        return TeacherConfig(name=SYSTEM1_SOURCE, model=student.model, method=student.method, samples=first.samples,
                             temperature=first.temperature, top_p=first.top_p, seed=first.seed)

    def trainable_student(self):
        model = self.recipe.student.model
        if not model.trainable:
            raise RecipeError(f"student.model: the {model.backend} backend cannot be fine-tuned; use embedded, hf or tiny")
        return model

    # -- what fingerprints record ------------------------------------------------------------------
    def prompt_settings(self, task: Task | None = None) -> dict:
        """The task's settings that shape prompts and answers (not which inputs form a split)."""
        config = identity((task or self.task).config)
        return {k: v for k, v in config.items() if k not in SPLIT_SETTINGS}


def sampling_identity(side: TeacherConfig) -> dict:
    """What a teacher's samples depend on: its model, its method and how it is sampled."""
    return {"model": identity(side.model), "method": identity(side.method), "samples": side.samples,
            "temperature": side.temperature, "top_p": side.top_p, "seed": side.seed}
