"""What each stage reads, as a frozen, typed spec: its fingerprint is derived from it, never written by hand.

A stage's `compute` gets its spec and its input artifacts, and nothing of the recipe: while a
stage computes, `RunContext.recipe` refuses to be read (stages/context.py), so a setting a stage
uses but its spec lacks is an error in the tests, not a stale artifact in a user's run. The
fingerprint is the spec's identity (`config.base.identity`: runtime fields left out, as
everywhere) plus its inputs' content checksums (stages/folder.py). One record is written beside
a result without fingerprinting it: the student's prompt file also names the task's data folder,
its split settings and the model's runtime settings, which locate things and change nothing the
student learns (`UNFINGERPRINTED_PROMPT_KEYS` in stages/distill.py).

One spec per stage kind:

    InputsSpec   the training inputs' content
    SampleSpec   a source (teacher, or the student's System 1) sampled N times per input
    CurateSpec   a variant's filters, and the teachers that judge for them
    CompressSpec TwT's compression of the kept rationales
    SetSpec      a curriculum step's training pairs
    TrainSpec    the student's fine-tuning, and the prompt it is trained and later asked with
    EvalSpec     one evaluation: system, method, model, test split, greedy or maj@k, judge
    ReferenceSpec System 2's answers standing in for labels on data without them
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from s2distill.config.base import identity
from s2distill.config.recipe import MethodConfig, TeacherConfig, TrainConfig
from s2distill.curation.filters import FilterConfig
from s2distill.lm.configs import ModelConfig


class StageSpec(BaseModel):
    """The base of every spec: frozen, and no field outside the declared ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def identity(self) -> dict[str, Any]:
        """What the fingerprint hashes: the spec's kind and its non-runtime fields, as plain JSON."""
        return {"spec": type(self).__name__, **identity(self)}


class Sampling(StageSpec):
    """How a model is sampled (temperature, nucleus, seed); greedy when there is none."""

    temperature: float
    top_p: float
    seed: int

    @classmethod
    def of(cls, side: TeacherConfig) -> Sampling:
        return cls(temperature=side.temperature, top_p=side.top_p, seed=side.seed)


class InputsSpec(StageSpec):
    content: str  # SHA-256 of the unlabeled training inputs as written


class SampleSpec(StageSpec):
    source: TeacherConfig  # model, method, samples, sampling, and the name its traces carry
    task: dict[str, Any]  # the task's prompt-shaping settings (RunContext.prompt_settings)
    perturbed: bool
    logprobs: bool


class CurateSpec(StageSpec):
    filters: list[FilterConfig]
    first_sample_only: bool
    judges: list[TeacherConfig]  # USC: the teachers whose models compose the final answer
    task: dict[str, Any]


class SetSpec(StageSpec):
    """What a training pair's prompt is built from: the student's System 1 prompt (shots, the text
    after the question, raw or chat), not the rest of its method (its budget is the asking's)."""

    format: str
    shots: int
    question_suffix: str
    prompt_format: str
    max_per_input: int | None
    task: dict[str, Any]


class CompressSpec(StageSpec):
    compression: str
    ratio: float | None = None  # fixed_length only
    refiner: TeacherConfig | None = None  # the model-based compressions
    student_method: MethodConfig
    max_per_input: int | None
    reasoning_max_tokens: int
    task: dict[str, Any]
    student_model: ModelConfig | None = None  # teacher_guided: the model the previous step's student answers on


class StudentProgram(StageSpec):
    """How a trained student is asked: its System 1 method, in several lines when it was taught to
    reason (within `reasoning_max_tokens`), after `task_prefix` when it was taught tasks by prefix."""

    method: MethodConfig
    multiline: bool
    reasoning_max_tokens: int | None  # None: a one-line answer, asked within its method's own budget
    task_prefix: str = ""


class TrainSpec(StageSpec):
    train: TrainConfig
    model: ModelConfig
    format: str
    # The prompt template the student is trained on and saved with (student/prompt.py), less what
    # only locates it (the data folder) or names splits it never sees.
    prompt: dict[str, Any]


class EvalSpec(StageSpec):
    system: str
    method: MethodConfig
    model: ModelConfig
    test_task: dict[str, Any]  # the task's settings the test split depends on, and a data file's content
    sampling: Sampling | None = None  # maj@k at these settings; None: greedy
    samples: int = 1
    student: StudentProgram | None = None  # a trained student's program (else the method's own)
    judge: TeacherConfig | None = None  # free text without labels: the teacher that judges


class ReferenceSpec(StageSpec):
    teacher: TeacherConfig
    test_task: dict[str, Any]
