"""Recipes: YAML files validated into typed config, with `key=value` overrides (DESIGN principle 8).

Every section forbids unknown keys, so a typo fails at once with the field's dotted path instead
of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from s2distill.config.base import Strict as _Strict
from s2distill.config.base import added_field, runtime_field
from s2distill.curation.filters import FILTER_CLASSES, FilterConfig, SelfConsistencyFilter
from s2distill.errors import S2DistillError
from s2distill.config.generation import GenerationConfig
from s2distill.lm.configs import BACKENDS, EmbeddedModel, ModelConfig
from s2distill.methods import METHOD_TAGS, DirectConfig, MethodConfig, PALConfig, method_config  # noqa: F401
from s2distill.sandbox import SandboxPolicy
from s2distill.tasks import TASKS, TaskConfig
from s2distill.tasks.base import MAX_EXAMPLES

MAX_SAMPLES = 1024  # samples per input: far beyond any paper's N, well below a memory bomb


class RecipeError(S2DistillError, ValueError):
    """A recipe that cannot run: the message names the file and the field."""


# A method is one config class per method (s2distill/methods/: DirectConfig, CoTConfig, PALConfig,
# RaRConfig, S2AConfig, BSMConfig, TwTConfig, USCConfig, and UserProgram for a user's own
# `module:function`), told apart by `name`: `MethodConfig` is their union (imported above, and
# from here by the stage specs); `method_config(mapping)` validates one.


# -- cost (report.json's teacher spend) ----------------------------------------------------------
class PriceConfig(_Strict):
    """A teacher's price in money per million tokens (e.g. USD), read from its provider's price list."""

    prompt: float = Field(ge=0.0, description="per million prompt (input) tokens")
    completion: float = Field(ge=0.0, description="per million generated (output) tokens")
    cached_prompt_multiplier: float = Field(1.0, ge=0.0, le=1.0, description="what a prompt token the provider's "
                                            "prompt cache served costs, as a share of `prompt` (e.g. 0.1 or 0.5; "
                                            "default 1: no discount assumed)")
    batch_multiplier: float = Field(0.5, gt=0.0, le=1.0, description="what a request sent through a batch costs, "
                                    "as a share of its live price, when the teacher's model sets `batch` (OpenAI, "
                                    "Anthropic: 0.5); it compounds with the cache's")


class TeacherConfig(_Strict):
    """One System 2 teacher: a model, a method, and how it is sampled for curation.

    `name` labels its outputs in the run folder and the report (default: the method's name,
    numbered when two teachers share it)."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    model: ModelConfig = Field(default_factory=EmbeddedModel)
    method: MethodConfig = Field(default_factory=PALConfig)
    samples: int = Field(8, ge=1, le=MAX_SAMPLES, description="System 2 samples per input")
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    seed: int = 0
    price: PriceConfig | None = runtime_field(None, description="per million tokens: the report gives the teacher's spend in money")


class StudentConfig(_Strict):
    """The System 1 side: the model distilled into, and its direct-answer prompt."""

    model: ModelConfig = Field(default_factory=EmbeddedModel)
    # Zero-shot by default, as the paper's System 1: each training example is then a fraction of a
    # few-shot prompt's tokens (issue 15), and the distilled model's whole inference is cheap.
    method: MethodConfig = Field(default_factory=lambda: DirectConfig(shots=0))

    @model_validator(mode="before")
    @classmethod
    def _zero_shot_unless_said(cls, data: Any) -> Any:
        """A student method that does not say `shots` is zero-shot (a teacher's default stays 4); a
        user's program has no shots."""
        if not isinstance(data, dict) or not isinstance(data.get("method"), str | dict):
            return data
        method = {"name": data["method"]} if isinstance(data["method"], str) else data["method"]
        name, options = method.get("name", "direct"), method.get("options")
        said = "shots" in method or (isinstance(options, dict) and "shots" in options)
        if said or not isinstance(name, str) or ":" in name:
            return data
        return {**data, "method": {**method, "shots": 0}}


_FILTER_FIELDS = {cls.model_fields["name"].default: set(cls.model_fields) - {"name"} for cls in FILTER_CLASSES}
FORMATS = ("answer_only", "label_only", "full_reasoning", "compressed_reasoning", "step_by_step", "full_response")
# the last three are the controls a distillation result must beat (issue 26): s2distill/distill/variants.py
BASELINES = ("distill_system1", "standard_kd", "no_filter", "tinyllm", "distilling_step_by_step",
             "gold", "self_samples", "random_targets", "soft_labels")


class CurationConfig(_Strict):
    """The label-free filter over every teacher's outputs: one filter or a list applied in turn
    (s2distill/curation/filters.py). `filter: usc` is the filter with its defaults; its settings
    may sit beside it as in earlier recipes (`{filter: self_consistency, min_fraction: 0.6}`) or
    in it (`{filter: {name: self_consistency, min_fraction: 0.6}}`)."""

    filter: list[FilterConfig] = Field(default_factory=lambda: [SelfConsistencyFilter()], min_length=1)
    audit_labels: str | None = Field(
        None, description="a JSONL file of hand-labelled training inputs ({\"id\": ..., \"label\": ...} rows, ids as "
        "in the run's inputs/train.jsonl): the curation audit's precision, rescued and poisoned on them, with "
        "confidence intervals, in place of the task's train labels (s2distill/curation/hand_labels.py). Read by "
        "the audit alone, never by curation")

    @model_validator(mode="before")
    @classmethod
    def _filters_as_a_list(cls, data: Any) -> Any:
        """A name or mapping is a list of one; settings beside `filter` go to the filters that have them."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        filters = data.get("filter", "self_consistency")
        filters = [filters] if isinstance(filters, str | dict) else list(filters)
        filters = [{"name": f} if isinstance(f, str) else dict(f) for f in filters]
        for key in [k for k in data if k not in ("filter", "audit_labels")]:  # the section's own fields stay
            value = data.pop(key)
            takers = [f for f in filters if key in _FILTER_FIELDS.get(f.get("name"), ())]
            if not takers:
                raise ValueError(f"{key}: no filter of {[f.get('name') for f in filters]} has this setting")
            for f in takers:
                f.setdefault(key, value)
        data["filter"] = filters
        return data

    @field_validator("audit_labels")
    @classmethod
    def _labels_file_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"hand-labels file not found: {value}")
        return value

    def needs_perturbed(self) -> bool:
        return any(f.needs_perturbed for f in self.filter)

    def judges(self) -> list[str | None]:
        """The teachers named as USC judges (None: the first teacher)."""
        return [f.judge for f in self.filter if f.needs_judge]

    def names(self) -> str:
        return "+".join(f.name for f in self.filter)


class SoftLabelsConfig(_Strict):
    """The `soft_labels` variant (context distillation, s2distill/distill/soft.py): a teacher model reads
    each kept System 2 trace beside the question and its next-token distribution over the kept
    target's tokens is the student's target, not the target's tokens alone. A measured option, never
    a default: privileged self-distillation has hurt (arXiv 2607.05184)."""

    teacher_model: ModelConfig | None = Field(
        None, description="the local model that reads the trace (its vocabulary must be the student's); default: the "
        "student's own base model, untrained (TRL SDFT's teacher_model_kind 'base')")
    top_k: int = Field(20, ge=1, le=1000, description="the teacher's most likely tokens kept per answer token (the "
                       "rest of its mass is one tail bucket, as TRL's top-k distillation losses do)")
    temperature: float = Field(1.0, gt=0.0, le=10.0, description="softmax temperature of teacher and student alike")
    hard_weight: float = Field(0.0, ge=0.0, le=1.0, description="share of the loss that is the hard targets' "
                               "cross-entropy: (1 - w) * KL(teacher || student) + w * CE; 0 = soft labels alone")

    @field_validator("teacher_model")
    @classmethod
    def _local(cls, model):
        if model is not None and not model.trainable:
            raise ValueError(f"the {model.backend} backend gives no logits to distil from: the teacher that reads the "
                             "trace must be a local model (embedded, hf or tiny)")
        return model


class DistillConfig(_Strict):
    """What the student is trained on. One stage is one format; several stages form a curriculum
    (TwT's HaRD: [full_reasoning, compressed_reasoning, answer_only]), each stage continuing from
    the previous stage's weights and evaluated on its own."""

    stages: list[Literal[FORMATS]] = Field(default_factory=lambda: ["answer_only"], min_length=1)
    max_per_input: int | None = Field(None, ge=1, description="training pairs per input at most (default: one per "
                                      "distinct kept output)")
    reasoning_max_tokens: int = Field(160, ge=8, description="the student's budget when it answers with reasoning")
    refiner: str | None = Field(None, description="compressed_reasoning: one teacher that rewrites every teacher's "
                                "rationales (a departure from TwT, e.g. for a user with one strong model); default: "
                                "each teacher rewrites its own, as TwT's teachers refine 'your previous thinking' "
                                "(Section 3.2, Figure 8)")
    rewrite_max_tokens: int = Field(160, ge=8, le=1_000_000, description="compressed_reasoning (teacher_guided, "
                                    "compressor): each rewrite's token budget; a rewrite cut at it is rejected and the "
                                    "full rationale kept. 160 fits s2distill's embedded runs; TwT's models generate "
                                    "up to 2,048 tokens (Section 4.1: 'During inference, we used a temperature of 0, "
                                    "max tokens set to 2048'), a paper-sized run's value")
    compression: Literal["teacher_guided", "compressor", "fixed_length"] = Field(
        "teacher_guided", description="compressed_reasoning: teacher_guided (TwT's HaRD: each rationale's teacher, or "
        "the refiner, rewrites it after reading the student's output, Figure 8), compressor (the same teacher "
        "compresses without it) or fixed_length "
        "(the rationale's first compression_ratio of words): TwT Table 6")
    compression_ratio: float = Field(0.5, gt=0.0, lt=1.0, description="fixed_length: the share of words kept")
    soft: SoftLabelsConfig = Field(default_factory=SoftLabelsConfig, description="the soft_labels baseline's "
                                   "teacher, top-k, temperature and hard-label share")

    @field_validator("stages")
    @classmethod
    def _compressed_needs_a_student(cls, stages: list[str]) -> list[str]:
        if stages[0] == "compressed_reasoning":
            raise ValueError("compressed_reasoning rewrites rationales after the student's previous stage; "
                             "it cannot be the first stage (HaRD: full_reasoning, compressed_reasoning, answer_only)")
        return stages


# Training settings as the seed papers state them; `train: {preset: NAME}` fills them in and the
# recipe's own keys win. Only what a paper says is here; every other field keeps its default.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # Yu et al. 2024, Appendix A.2 "Model training": "SFT training with CE loss. The loss is only
    # applied on the answer part of the sequence. Model is trained with dropout 0.1, learning rate
    # 5.5e-6, with warmup 1." SFT of all the weights (no adapter is mentioned), answer-only loss
    # (already how training/sft.py trains). "warmup 1" is read as one warmup step. Table 4's step counts
    # are per task and in tokens per step, so they are not a preset.
    "yu2024": {"mode": "full", "dropout": 0.1, "learning_rate": 5.5e-6, "warmup_steps": 1},
    # TwT (Xu et al. 2025), Section 4.1 "Implementation Details": "training with LoRA fine-tuning,
    # setting the LoRA rank to 8, a learning rate of 1e-5, a batch size of 8, 4 training epochs, and
    # a context window of 4096 tokens." (LoRA alpha is not stated: the default stays.)
    "twt": {"mode": "lora", "lora_r": 8, "learning_rate": 1e-5, "batch_size": 8, "epochs": 4, "max_length": 4096},
}


class TrainConfig(_Strict):
    """How the student is fine-tuned (s2distill/training/sft.py). The defaults are the measured recipe of
    issue 15 (benchmarks/learning_curve.py): they apply to every recipe that does not set its own.
    `preset: yu2024` or `preset: twt` starts from a seed paper's stated settings (TRAIN_PRESETS)."""

    # runtime: the preset's values are what changes a training, and they are fields of their own
    preset: Literal[tuple(TRAIN_PRESETS)] | None = runtime_field(
        None, description="a seed paper's training settings as defaults: yu2024 (Yu et al. 2024, A.2: full SFT, "
        "dropout 0.1, lr 5.5e-6, warmup 1) or twt (TwT Section 4.1: LoRA rank 8, lr 1e-5, batch 8, 4 epochs, "
        "4096 tokens); the recipe's own keys win")
    mode: Literal["lora", "full"] = "lora"
    epochs: float = Field(4, gt=0)
    learning_rate: float = Field(1e-3, gt=0, description="LoRA's; full fine-tuning wants far less (e.g. 3e-5)")
    batch_size: int = Field(8, ge=1)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    max_length: int = Field(512, ge=16)
    answer_tokens: Literal["text", "characters"] = Field(
        "text", description="how the answer the student learns is split into tokens: text = as the tokenizer splits it; "
        "characters = one token per character, for letter-level answers (last-letter concatenation: Gemma writes "
        "' nm' as one token, so the student would have to learn every letter pair; s2distill/training/answer_tokens.py)")
    warmup_steps: int = Field(0, ge=0, description="optimizer steps of linear learning-rate warmup")
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="the model's own dropout during training (its "
                                  "config's attention/hidden dropout fields, whichever it has); None keeps the model's")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="mixed-precision compute: auto = bfloat16 where the hardware has it natively, else float32")
    frozen_weights: Literal["auto", "float32"] = added_field(
        "auto", description="LoRA's frozen base weights: auto = in bfloat16 when training computes in bfloat16 "
        "(half their memory, no cast per step; the adapters stay float32), float32 = a float32 copy cast at every "
        "step, as before")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory (slower; only "
                                         "for models that do not fit otherwise)")
    seed: int = 0
    report_to: list[str] = runtime_field(default_factory=list, description="experiment trackers passed to TRL (tensorboard, "
                                 "wandb, trackio, mlflow, ...); the loss history is kept in train_log.jsonl regardless")

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        """`preset: NAME` fills in that paper's settings (TRAIN_PRESETS) under the recipe's own keys."""
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        name = data["preset"]
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; known: {', '.join(sorted(TRAIN_PRESETS))}")
        return {**TRAIN_PRESETS[name], **data}

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker_or_none(cls, value: Any) -> Any:
        """`report_to: tensorboard` is a list of one; `none` is the empty list, as in transformers."""
        if isinstance(value, str):
            return [] if value == "none" else [value]
        return value

    processes: int = Field(1, ge=1, description="training processes (data parallel, through `accelerate launch`); "
                           "1 trains in this process")
    accelerate_config: str | None = Field(None, description="an accelerate config YAML (e.g. DeepSpeed or FSDP, from "
                                          "`accelerate config`) to launch training with; it sets the processes unless "
                                          "`processes` is above 1")

    @field_validator("accelerate_config")
    @classmethod
    def _config_file_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"accelerate config file not found: {value}")
        return value


class CascadeConfig(_Strict):
    """The distilled cascade (s2distill/stages/cascade.py): the student answers where its confidence is at
    least a threshold, System 2 everywhere else. The threshold is chosen by one rule on a validation
    split of the task's (never the test split), and the report shows the cascade at every threshold."""

    keep: float | None = Field(None, gt=0.0, le=1.0, description="the rule (default 0.95): the fewest generated "
                               "tokens that keep this share of System 2's validation score")
    token_budget: float | None = Field(None, gt=0.0, description="the rule instead: the best validation score within "
                                       "this many generated tokens per example (student and System 2 together)")
    validation_size: int = Field(100, ge=10, le=MAX_EXAMPLES, description="validation inputs the threshold is chosen "
                                 "on (neither training nor test inputs; labelled, else scored against System 2)")
    teacher: str | None = Field(None, description="the teacher whose System 2 answers below the threshold "
                                "(default: the first)")

    @model_validator(mode="after")
    def _one_rule(self) -> CascadeConfig:
        if self.keep is not None and self.token_budget is not None:
            raise ValueError("evaluate.cascade: give one rule, keep or token_budget, not both")
        if self.keep is None and self.token_budget is None:
            self.keep = 0.95
        return self

    def rule(self) -> dict[str, float]:
        """The rule as `scoring.cascade.choose_threshold` takes it."""
        return {"keep": self.keep} if self.keep is not None else {"token_budget": self.token_budget}


class EvaluateConfig(_Strict):
    systems: list[Literal["system1", "system2", "distilled"]] = Field(
        default_factory=lambda: ["system1", "system2", "distilled"], min_length=1,
        description="the rows of the report (at least one)",
    )
    system2_samples: int = Field(1, ge=1, le=MAX_SAMPLES, description="k > 1: System 2 answers by majority over k samples at the "
                                 "teacher's temperature (maj@k), its tokens the total of all k")
    system1_prompts: list[MethodConfig] = Field(
        default_factory=list, description="further System 1 prompts scored on the untrained student beside its own "
        "(e.g. the few-shot prompt that a zero-shot distilled student must beat)")
    transfer: list[dict[str, Any]] = Field(
        default_factory=list, description="further test splits, each the task's settings changed as given (e.g. "
        "{words: 3}: longer inputs than the student was trained on); every system is scored on each")
    judge: str | None = Field(None, description="free-text data without labels: the teacher whose model judges each "
                              "answer against System 2's (default: the first)")
    majority_at: list[int] = Field(default_factory=list, description="extra maj@k rows, one per k, for every "
                                   "system evaluated (System 1, each System 2, each distilled stage): the majority of k "
                                   "samples at the first teacher's sampling settings (a teacher's own for its System 2), "
                                   "tokens of all k charged (Yu et al. 2024, Table 3: k = 1, 5, 10)")
    cascade: CascadeConfig | None = Field(None, description="the distilled cascade: the student where it is sure, "
                                          "System 2 where it is not ({keep: 0.95} or {token_budget: N}; "
                                          "s2distill/stages/cascade.py)")

    @field_validator("majority_at")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError(f"every k of majority_at must be >= 1, got {ks}")
        return sorted(set(ks))


class SandboxConfig(_Strict):
    """How model-written code (PAL programs, MBPP tests) may run (`s2distill/sandbox.py`)."""

    allow_weak_guard: bool = Field(False, description="where bubblewrap is unavailable, run model-written code "
                                   "behind the Python audit hook alone (a guard against mistakes, not against "
                                   "code written to escape); otherwise such code does not run")

    def policy(self) -> SandboxPolicy:
        return SandboxPolicy(allow_weak_guard=self.allow_weak_guard)


class Recipe(_Strict):
    """A whole experiment: task, teacher (System 2), student (System 1), curation, training, evaluation."""

    name: str = "run"
    task: TaskConfig = Field(discriminator="name")
    teachers: list[TeacherConfig] = Field(default_factory=lambda: [TeacherConfig()], min_length=1,
                                          description="one or more System 2 teachers (`teacher:` for just one)")
    student: StudentConfig = Field(default_factory=StudentConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    baselines: list[Literal[BASELINES]] = Field(
        default_factory=list, description="distill_system1 (the filter on the student's own System 1 samples), "
        "standard_kd (the teachers' first samples' labels, no filter), no_filter (this recipe without its filter), "
        "tinyllm (every teacher's first rationale, no filter, full reasoning), distilling_step_by_step (every "
        "teacher's first sample, no filter, [label] and [rationale] tasks; asked with [label]); the controls: "
        "gold (the inputs curation kept, their train labels as targets: the ceiling), self_samples (the student's own "
        "System 1 samples, one per input at a training temperature, no filter: SSD), random_targets (the kept inputs, "
        "each with another's target: the floor); soft_labels (the distilled variant's pairs, the loss on a teacher's "
        "next-token distribution given the kept System 2 trace: context distillation, distill.soft)"
    )
    workers: int = runtime_field(16, ge=1, le=1024, description="programs run at once; their LM calls are batched together")
    data_dir: str | None = runtime_field(None, description="offline data sets (default: S2DISTILL_DATA or ../shared/data)")
    cache: str | None = runtime_field(None, description="SQLite completion cache, shared by every run that names it "
                                      "(default: the user cache, ~/.cache/s2distill/completions.sqlite)")
    sandbox: SandboxConfig = runtime_field(default_factory=SandboxConfig)
    generation: GenerationConfig = runtime_field(
        default_factory=GenerationConfig, description="where model calls run: this process, or Ray actors "
        "({executor: ray, address, actors, num_gpus_per_actor}); results do not depend on it")
    max_failures: float = runtime_field(0.02, ge=0.0, le=1.0, description="share of a stage's samples a server may refuse "
                                "for good (a 4xx, e.g. context length) before the run stops, naming them")
    require_chat_models: bool = runtime_field(
        False, description="every model asked in chat messages must be a chat model: a local one needs a chat template "
        "(a pretrained model, e.g. the embedded Gemma 3 270M, would be asked a plain 'user: ... assistant:' rendering); "
        "the seed recipes' paper profiles set it, so that they fail at load until the user names a chat model")

    @field_validator("baselines")
    @classmethod
    def _each_baseline_once(cls, value: list[str]) -> list[str]:
        """A baseline listed twice would be trained twice into the same folder and reported twice."""
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} listed more than once; list each baseline once")
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_teacher_shorthand(cls, data: Any) -> Any:
        """`teacher: {...}` is a recipe with one teacher."""
        if isinstance(data, dict) and "teacher" in data:
            if "teachers" in data:
                raise ValueError("give either teacher (one) or teachers (a list), not both")
            data = {**data, "teachers": [data["teacher"]]}
            del data["teacher"]
        return data

    @model_validator(mode="after")
    def _names_and_references(self) -> Recipe:
        taken: set[str] = set()
        for teacher in self.teachers:
            if teacher.name is None:
                base = teacher.method.name.split(":")[-1]
                name, k = base, 2
                while name in taken:
                    name, k = f"{base}-{k}", k + 1
                teacher.name = name
            if teacher.name in taken or teacher.name in ("system1", "system1_ssd"):  # the student's own samples
                raise ValueError(f"teacher name {teacher.name!r} is used twice (system1 and system1_ssd are reserved)")
            taken.add(teacher.name)
        named = [("curation.filter.judge", judge) for judge in self.curation.judges()]
        cascade_teacher = self.evaluate.cascade.teacher if self.evaluate.cascade else None
        for field, name in (*named, ("distill.refiner", self.distill.refiner), ("evaluate.judge", self.evaluate.judge),
                            ("evaluate.cascade.teacher", cascade_teacher)):
            if name is not None and name not in taken:
                raise ValueError(f"{field}: no teacher named {name!r}; teachers: {', '.join(sorted(taken))}")
        if ("distilling_step_by_step" in self.baselines or "step_by_step" in self.distill.stages) \
                and self.student.method.name != "direct":
            raise ValueError("Distilling Step-by-Step (baseline distilling_step_by_step, set step_by_step) asks the "
                             f"student with a task prefix, which only the direct method has; student.method is "
                             f"{self.student.method.name!r}")
        if "distill_system1" in self.baselines and any(f.name == "dual_criteria" for f in self.curation.filter):
            raise ValueError("baseline distill_system1 needs a filter System 1 outputs can pass; dual_criteria "
                             "reads the teachers' self-reported confidence")
        return self

    @model_validator(mode="after")
    def _student_reads_whole_responses(self) -> Recipe:
        """A student trained on whole responses is asked and read by its own method: one that reads them."""
        if "full_response" in self.distill.stages and getattr(self.student.method, "response", None) != "full":
            raise ValueError("distill.stages: full_response trains the student on whole responses, and it is asked "
                             "and read as its System 1 method says: set student.method.response=full (method direct)")
        return self

    @model_validator(mode="after")
    def _chat_models_when_required(self) -> Recipe:
        """`require_chat_models`: no model asked in chat messages is a pretrained one (see the field)."""
        if not self.require_chat_models:
            return self
        lacking = [path for path, model in self.chat_models() if model.has_chat_template() is False]
        if lacking:
            named = ", ".join(f"{path} ({_model_label(model)})" for path, model in self.chat_models() if path in lacking)
            teachers = [path for path in lacking if path != "student.model"]
            example = (f"{teachers[0]}='{{backend: openai, base_url: http://HOST:8000/v1, model: NAME}}' "
                       + ("(one for each teacher) " if len(teachers) > 1 else "") if teachers else "")
            if "student.model" in lacking:
                example += ("student.model='{backend: hf, path: /models/chat}' (a local folder with a chat template: "
                            "the student is fine-tuned, so it cannot be a server)")
            raise ValueError(
                f"{named}: no chat template. This recipe asks its models in chat messages, as the papers asked their chat "
                "models (require_chat_models, set by the paper profile); a pretrained model would get a plain "
                "'user: ... assistant:' rendering of them instead. Name your chat models on the command line, e.g. "
                f"{example.strip()}; or leave the profile out for the embedded model's run")
        return self

    def chat_models(self) -> list[tuple[str, Any]]:
        """(recipe path, model) of every model some method asks in chat messages: teachers, and the
        student (its own method, or a System 1 prompt of `evaluate.system1_prompts`)."""
        out = []
        for index, teacher in enumerate(self.teachers):
            if getattr(teacher.method, "prompt_format", None) == "chat":
                out.append(("teacher.model" if len(self.teachers) == 1 else f"teachers.{index}.model", teacher.model))
        methods = [self.student.method, *self.evaluate.system1_prompts]
        if any(getattr(m, "prompt_format", None) == "chat" for m in methods):
            out.append(("student.model", self.student.model))
        return out

    @model_validator(mode="after")
    def _transfer_tasks_valid(self) -> Recipe:
        self.transfer_tasks()  # raises naming the bad setting
        return self

    @property
    def data_root(self) -> Path | None:
        """`data_dir` as a path for `build_task` (None: the default, S2DISTILL_DATA or ../shared/data)."""
        return Path(self.data_dir).expanduser() if self.data_dir else None

    def transfer_tasks(self) -> list[tuple[str, Any]]:
        """`evaluate.transfer` as (label, task config) pairs, each validated as the recipe's task."""
        out = []
        for change in self.evaluate.transfer:
            if "name" in change:
                raise ValueError("evaluate.transfer: a test split changes the task's settings, not its name")
            try:
                config = type(self.task).model_validate({**self.task.model_dump(), **change})
            except ValidationError as exc:
                raise ValueError(f"evaluate.transfer {change}: {exc.errors()[0]['msg']}") from None
            out.append((",".join(f"{k}={v}" for k, v in change.items()), config))
        return out

    def teacher(self, name: str | None) -> TeacherConfig:
        """The teacher called `name`, or the first when `name` is None."""
        return next(t for t in self.teachers if name is None or t.name == name)

    @field_validator("data_dir")
    @classmethod
    def _data_dir_exists(cls, value: str | None) -> str | None:
        if value is not None and not (Path(value).expanduser() / "SOURCES.md").exists():
            raise ValueError(f"data folder {value!r} does not exist or has no SOURCES.md")
        return value


def runs_model_code(recipe: Recipe, task: Any = None) -> bool:
    """Whether the recipe runs model-written code in the sandbox: a method that does (PAL's programs,
    USC over PAL) or a task whose scoring does (MBPP's asserts). `task`: the Task object or class,
    or its name (default: the recipe's task)."""
    if task is None or isinstance(task, str):
        task = TASKS[task or recipe.task.name]
    methods = [t.method for t in recipe.teachers] + [recipe.student.method] + list(recipe.evaluate.system1_prompts)
    return task.runs_model_code or any(m.runs_model_code for m in methods)


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in nested dicts; the value is read as YAML (`3`, `0.7`, `[a, b]`, `null`)."""
    if "=" not in override:
        raise RecipeError(f"override {override!r} is not key=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) >= 3 and parts[-2] == "options" and _is_method(parts[:-2]):
        parts = parts[:-2] + parts[-1:]  # an earlier recipe's `method.options.X` is the method's field X
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list):
            node = _list_item(node, part, override)
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, dict | list):
            raise RecipeError(f"override {override!r}: {part!r} is not a section")
        node = child
    if isinstance(node, list):
        index = _list_index(node, parts[-1], override)
        node[index] = _override_value(raw, override)
    else:
        node[parts[-1]] = _override_value(raw, override)
        options = node.get("options")
        if _is_method(parts[:-1]) and isinstance(options, dict) and parts[-1] in options:
            node["options"] = {k: v for k, v in options.items() if k != parts[-1]}  # the override wins


def _is_method(path: list[str]) -> bool:
    """Whether `path` names a method section (`teacher.method`, `evaluate.system1_prompts.0`, ...)."""
    return bool(path) and (path[-1] == "method" or (len(path) >= 2 and path[-2] == "system1_prompts"
                                                    and path[-1].isdigit()))


def _override_value(raw: str, override: str) -> Any:
    """An override's value read as YAML, or a `RecipeError` saying what is wrong with it."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"override {override!r}: the value is not valid YAML ({problem}); balance its brackets "
                          "and quotes, or quote the whole value") from None


def _list_index(items: list, part: str, override: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise RecipeError(f"override {override!r}: {part!r} is not an index of a list of {len(items)}")
    return int(part)


def _list_item(items: list, part: str, override: str) -> Any:
    item = items[_list_index(items, part, override)]
    if not isinstance(item, dict):
        raise RecipeError(f"override {override!r}: item {part} is not a section")
    return item


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; raise `RecipeError` naming the bad field."""
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"recipe file {path} does not exist")
    if not path.is_file():
        raise RecipeError(f"recipe {path} is a folder, not a YAML file: name the recipe file in it")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    for override in overrides or []:
        apply_override(data, override)
    apply_profile(data, overrides or [])
    apply_size(data, overrides or [])
    return validate_recipe(data, source=str(path))


# Command-line overrides that choose a set of overrides rather than set a field.
_SELECTORS = ("size=", "profile=")


def apply_profile(data: dict[str, Any], overrides: list[str]) -> None:
    """`profile=paper` picks a named set of overrides from the recipe's own `profiles:` section (the
    seed recipes' `paper`: the papers' budgets, prompt formats, sample counts and training settings,
    for chat models named on the command line). It is applied before the size, and may hold a
    `sizes:` section of its own, which then replaces the recipe's (a profile's small run keeps its
    budgets); the command line's overrides win over both."""
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise RecipeError("profiles: a mapping of profile names to mappings of overrides (key: value)")
    _apply_named(data, overrides, "profile", "profiles")


def _apply_named(data: dict[str, Any], overrides: list[str], selector: str, section: str) -> None:
    """`SELECTOR=NAME`: the `key: value` overrides of entry NAME of the recipe's `SECTION:`, in order,
    then the command line's own overrides again, so that they win over it."""
    named = data.pop(section, None) or {}
    name = data.pop(selector, None)
    if name is None:
        return
    if name not in named:
        known = ", ".join(sorted(named)) or "none"
        raise RecipeError(f"{selector} {name!r} is not defined by this recipe's {section} section (defined: {known})")
    for key, value in named[name].items():
        apply_override(data, f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}")
    for override in overrides:
        if not override.strip().startswith(_SELECTORS):
            apply_override(data, override)


def apply_size(data: dict[str, Any], overrides: list[str]) -> None:
    """`size=small` picks a named set of overrides from the recipe's own `sizes:` section (e.g. a
    configuration that fits a CPU); the command line's overrides still win over it."""
    _apply_named(data, overrides, "size", "sizes")


def validate_recipe(data: dict[str, Any], *, source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = []
        one_teacher = "teacher" in data and "teachers" not in data
        for error in exc.errors():
            loc = list(error["loc"])
            if one_teacher and loc[:2] == ["teachers", 0]:
                loc[:2] = ["teacher"]  # report the field as the recipe spells it
            if loc[:1] == ["task"] and len(loc) > 2:
                del loc[1]  # the task's name tag pydantic adds for the discriminated union
            for i in range(len(loc) - 2, 0, -1):
                if loc[i - 1] == "model" and loc[i] in BACKENDS:
                    del loc[i]  # likewise the backend tag of a model section
            for i in range(len(loc) - 1, 0, -1):
                if loc[i] in METHOD_TAGS and _is_method([str(p) for p in loc[:i]]):
                    del loc[i]  # and the method tag of a method section
            field = ".".join(str(p) for p in loc) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "int_parsing_size":  # e.g. 1e30: say the bounds instead of pydantic's words
                message = (f"{error.get('input')!r} is far too large; counts are bounded (samples per input at most "
                           f"{MAX_SAMPLES}, examples per split at most {MAX_EXAMPLES})")
            lines.append(f"  {field}: {message}")
        raise RecipeError(f"{source} is not a valid recipe:\n" + "\n".join(lines)) from None


def _model_label(model) -> str:
    """A model as an error names it, without loading anything."""
    if model.backend == "embedded":
        return "the embedded Gemma 3 270M, a pretrained model"
    if model.backend == "hf":
        return model.path
    return f"the {model.backend} backend"
