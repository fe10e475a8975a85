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
    ControlSetSpec a control's pairs (gold labels, random targets): SetSpec, and how its targets are made
    SoftSpec     soft_labels' teacher distributions: the model reading the traces, top-k, temperature
    TrainSpec    the student's fine-tuning, and the prompt it is trained and later asked with
    EvalSpec     one evaluation: system, method, model, test split, greedy or maj@k, judge
    CascadeSpec  the cascade's threshold: student, teacher, validation split, rule
    ReferenceSpec System 2's answers standing in for labels on data without them
    AuditSystem1Spec the untrained student's greedy System 1 on the labelled training inputs
    AuditSpec    a variant's curation audit: its filters, the task, and the labels' content
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from s2distill.config.base import added_field, identity
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


class ControlSetSpec(SetSpec):
    """A control's training pairs (s2distill/distill/controls.py): a set's prompt settings and how its
    targets are made. `labels`: gold's, the train labels' digest, so that editing a label redoes
    gold's set (and so its training) and nothing else; `seed`: random_targets' permutation (train.seed).
    A class of its own so that adding it left every other set's fingerprint as it was."""

    targets: str  # "gold" or "random_targets"
    labels: str | None = None
    seed: int | None = None


# The rewrite budget compression had before `distill.rewrite_max_tokens` (its default) was a setting.
LEGACY_REWRITE_MAX_TOKENS = 160


class CompressSpec(StageSpec):
    """Who rewrites whose rationales, and within what budget (the model-based compressions): one
    teacher rewriting every rationale is `refiner` (`distill.refiner`, or the one teacher of a
    single-teacher recipe, its own refiner); several teachers each rewriting their own (TwT's
    reading, s2distill/distill/compress.py) are `refiners`, source -> the teacher that rewrites it."""

    compression: str
    ratio: float | None = None  # fixed_length only
    refiner: TeacherConfig | None = None  # the model-based compressions, one teacher for all
    refiners: dict[str, TeacherConfig] | None = None  # ... or each source's own
    rewrite_max_tokens: int | None = None  # the model-based compressions: each rewrite's budget
    student_method: MethodConfig
    max_per_input: int | None
    reasoning_max_tokens: int
    task: dict[str, Any]
    student_model: ModelConfig | None = None  # teacher_guided: the model the previous step's student answers on

    def identity(self) -> dict[str, Any]:
        """Without `refiners` when one teacher rewrites all, and without `rewrite_max_tokens` at
        LEGACY_REWRITE_MAX_TOKENS (the budget fixed in the code before it was a setting): a
        compression made before either field existed keeps its fingerprint, as its rewrites are
        the ones this spec asks for."""
        out = super().identity()
        if out.get("refiners") is None:
            out.pop("refiners", None)
        if out.get("rewrite_max_tokens") in (None, LEGACY_REWRITE_MAX_TOKENS):
            out.pop("rewrite_max_tokens", None)
        return out

    def refining(self) -> list[tuple[TeacherConfig, tuple[str, ...] | None]]:
        """Each refining teacher with the sources whose rationales it rewrites (None: every one)."""
        if self.refiner is not None:
            return [(self.refiner, None)]
        groups: dict[str, tuple[TeacherConfig, list[str]]] = {}
        for source, teacher in (self.refiners or {}).items():
            groups.setdefault(teacher.name, (teacher, []))[1].append(source)
        return [(teacher, tuple(sources)) for teacher, sources in groups.values()]


class StudentProgram(StageSpec):
    """How a trained student is asked: its System 1 method, in several lines when it was taught to
    reason (within `reasoning_max_tokens`), after `task_prefix` when it was taught tasks by prefix."""

    method: MethodConfig
    multiline: bool
    reasoning_max_tokens: int | None  # None: a one-line answer, asked within its method's own budget
    task_prefix: str = ""


class SoftSpec(StageSpec):
    """The teacher's top-k distribution at each target token of a set's pairs, given the kept trace
    (distill/soft.py): the model that reads it and the dtype it computes in, the student whose
    tokens it scores (and their answer tokenisation), and the teacher prompt's settings."""

    teacher_model: ModelConfig
    student_model: ModelConfig
    dtype: str
    top_k: int
    temperature: float
    answer_tokens: str
    shots: int
    question_suffix: str
    prompt_format: str
    task: dict[str, Any]


class SoftTrainSpec(StageSpec):
    """How a student learns from soft labels (training/soft_labels.py): its temperature and the share
    of the hard targets' cross-entropy."""

    temperature: float
    hard_weight: float


class TrainSpec(StageSpec):
    train: TrainConfig
    model: ModelConfig
    format: str
    # The prompt template the student is trained on and saved with (student/prompt.py), less what
    # only locates it (the data folder) or names splits it never sees.
    prompt: dict[str, Any]
    # LoRA's frozen weights as this machine trains them (training/sft.py: bfloat16 where training
    # computes in it): float32, the default, keeps every training made before it existed.
    frozen_weights: Literal["float32", "bfloat16"] = added_field("float32")
    # soft_labels: the loss on the teacher's distributions (None: the targets' tokens, as always)
    soft: SoftTrainSpec | None = added_field(None)


class EvalSpec(StageSpec):
    system: str
    method: MethodConfig
    model: ModelConfig
    test_task: dict[str, Any]  # the task's settings the test split depends on, and a data file's content
    sampling: Sampling | None = None  # maj@k at these settings; None: greedy
    samples: int = 1
    student: StudentProgram | None = None  # a trained student's program (else the method's own)
    judge: TeacherConfig | None = None  # free text without labels: the teacher that judges
    logprobs: bool = False  # each answer records its confidence (a student beside a cascade: stages/cascade.py)

    def identity(self) -> dict[str, Any]:
        """Without `logprobs` when off, so that every evaluation made before it existed keeps its fingerprint."""
        out = super().identity()
        if not out.get("logprobs"):
            out.pop("logprobs", None)
        return out


class CascadeSpec(StageSpec):
    """The cascade's threshold, chosen on the validation split: the student (its program, model and,
    as an input, its weights) against one teacher's System 2, both greedy, under the recipe's rule."""

    student: StudentProgram
    model: ModelConfig
    teacher: TeacherConfig
    validation_task: dict[str, Any]  # the task's settings the validation inputs depend on
    validation_size: int
    rule: dict[str, float]  # {"keep": share} or {"token_budget": tokens}


class ReferenceSpec(StageSpec):
    teacher: TeacherConfig
    test_task: dict[str, Any]


class AuditSystem1Spec(StageSpec):
    """System 1 (the student's own method on its untrained model, greedy) on the training inputs the
    audit has labels for: which inputs (`asked`, a digest of their ids; not `inputs`, which a
    fingerprint's record keeps for its input artifacts), never their labels."""

    method: MethodConfig
    model: ModelConfig
    task: dict[str, Any]
    asked: str


class AuditSpec(StageSpec):
    """What a curation audit computes from (s2distill/stages/audit.py): the variant's filters (the
    threshold curve runs them again), the task's answer settings (its score), and the labels by
    content (`labels`: a digest; `label_source`: the task's train labels or a hand-labelled file),
    so that editing a label redoes the audit alone, and curation never depends on one."""

    filters: list[FilterConfig]
    first_sample_only: bool
    task: dict[str, Any]
    labels: str
    label_source: str
