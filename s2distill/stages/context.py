"""What every stage of a run reads: the recipe, its tasks, the run folder, the models, the console.

It also holds the few rules every stage shares: how a program is built from a method, how a
program runs over inputs with a progress bar, and which slice of a config a fingerprint records.

The recipe is read while a stage's spec is built, never while the stage computes: `ctx.stage`
runs `compute` with the recipe locked (`RecipeReadInCompute`), so every setting a stage uses
reaches it through its spec, and so through its fingerprint (stages/specs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from s2distill.config.recipe import Recipe, RecipeError, TeacherConfig
from s2distill.config.base import identity, split_settings
from s2distill.methods.runner import iter_program
from s2distill.models import Models
from s2distill.progress import ProgressBar
from s2distill.stages.folder import Codec, Done, RunFolder
from s2distill.stages.specs import StageSpec
from s2distill.tasks import Task, build_task
from s2distill.types import Example, Trace
from s2distill.distill.variants import SSD_SOURCE, SSD_TEMPERATURE, SYSTEM1_SOURCE

class RecipeReadInCompute(RuntimeError):
    """A stage read the recipe while computing: the setting belongs in its spec (stages/specs.py)."""


@dataclass
class RunContext:
    _recipe: Recipe
    task: Task
    test_sets: list[tuple[str, Task]]  # (label, task): the recipe's test split ("") and each transfer split
    folder: RunFolder
    models: Models
    console: Console
    show_progress: bool = True
    computing: str | None = field(default=None, init=False)  # the stage computing now: the recipe is locked

    @property
    def recipe(self) -> Recipe:
        if self.computing is not None:
            raise RecipeReadInCompute(f"stage {self.computing} read the recipe while computing; add the setting to "
                                      "its spec (s2distill/stages/specs.py) so that its fingerprint records it")
        return self._recipe

    @property
    def workers(self) -> int:
        """Programs run at once (runtime: changes how fast a stage runs, never what it computes)."""
        return self._recipe.workers

    def stage(self, name: str, artifact: str, *, spec: StageSpec, inputs: dict[str, Done | str | None],
              compute: Callable[[], Any], codec: Codec) -> Done:
        """`RunFolder.stage`, with the recipe locked while `compute` runs (see the module docstring)."""
        def locked():
            self.computing = name
            try:
                value = compute()
                if codec.streamed:  # a generator computes while it is written: lock it as it runs
                    value = self._locked_iter(name, value)
                return value
            finally:
                self.computing = None

        return self.folder.stage(name, artifact, spec=spec, inputs=inputs, compute=locked, codec=codec)

    def _locked_iter(self, name: str, values):
        iterator = iter(values)
        while True:
            self.computing = name
            try:
                value = next(iterator)
            except StopIteration:
                return
            finally:
                self.computing = None
            yield value

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
        return method.build(task or self.task)

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
        yield from iter_program(program, examples, lm, samples=samples, workers=self._recipe.workers,
                                max_failures=self._recipe.max_failures, on_trace=lambda _: advance(), **settings)

    def source(self, name: str) -> TeacherConfig:
        """A teacher by name; `system1` is the student's own System 1, sampled like the first teacher;
        `system1_ssd` the same once per input at SSD_TEMPERATURE (`self_samples` when the first
        teacher is greedy: distill/variants.py)."""
        if name not in (SYSTEM1_SOURCE, SSD_SOURCE):
            return self.recipe.teacher(name)
        first, student = self.recipe.teachers[0], self.recipe.student
        ssd = name == SSD_SOURCE
        return TeacherConfig(name=name, model=student.model, method=student.method, samples=1 if ssd else first.samples,
                             temperature=SSD_TEMPERATURE if ssd else first.temperature, top_p=first.top_p,
                             seed=first.seed)

    def trainable_student(self):
        model = self.recipe.student.model
        if not model.trainable:
            raise RecipeError(f"student.model: the {model.backend} backend cannot be fine-tuned; use embedded, hf or tiny")
        return model

    # -- what fingerprints record ------------------------------------------------------------------
    def prompt_settings(self, task: Task | None = None) -> dict:
        """The task's settings that shape prompts and answers (not which inputs form a split)."""
        config = (task or self.task).config
        return {k: v for k, v in identity(config).items() if k not in split_settings(config)}

