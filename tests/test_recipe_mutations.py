"""Every recipe field, changed on a finished smoke run, redoes exactly the stages that read it.

The fields are found by walking the recipe's config classes (every non-runtime field of every
section the smoke recipe holds), so a new field is covered without editing this test, and a new
field without an entry in `MUTATIONS` fails with a message saying what to add. Fields of the
union members the smoke recipe does not hold (other tasks, backends, methods, filters) are
checked one level down: each changes the identity of its section, which is what every stage spec
holding that section hashes (`test_every_field_of_every_config_class_is_in_its_identity`).

A stage is redone when its spec or the *content* of an input artifact changed, so a change
whose upstream stage comes out the same (the scripted teacher ignores its temperature) redoes that
stage alone. Stage groups of the smoke run (one teacher `pal`, the student's System 1, one
distilled stage) are named below.
"""

from __future__ import annotations

import shutil
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from s2distill.config.base import RUNTIME, at_added_default, identity
from s2distill.config.recipe import Recipe, load_recipe
from s2distill.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "recipes" / "smoke.yaml"

INPUTS = {"inputs"}
SAMPLES = {"samples:pal"}
CURATION = {"curation:distilled"}
SET = {"distill:distilled/stage1-answer_only"}
TRAIN = {"train:distilled/stage1"}
EVAL_STUDENT = {"eval:distilled-stage1"}
EVAL_S1 = {"eval:system1"}
EVAL_S2 = {"eval:system2-pal"}
AUDIT = {"audit:distilled"}  # the curation audit (stages/audit.py): verdicts, samples and labels
SYSTEM1_TRAIN = {"audit:system1-train"}  # System 1 on the training inputs, for the audit's "rescued"
STUDENT = TRAIN | EVAL_STUDENT  # the training and what evaluates it
FROM_CURATION = CURATION | SET | STUDENT | AUDIT
FROM_SAMPLES = SAMPLES | FROM_CURATION
NOTHING: set[str] = set()

EVALS = EVAL_S1 | EVAL_S2 | EVAL_STUDENT
EVERYTHING = INPUTS | FROM_SAMPLES | EVALS | SYSTEM1_TRAIN


def named(*names: str) -> set[str]:
    return set(names)


# field (as a `key=value` override spells it) -> (a new value, in YAML; the stages it must redo)
MUTATIONS: dict[str, tuple[str, set[str]]] = {
    "name": ("other", NOTHING),  # the report's title: the report is written on every invocation
    # -- the task: its training inputs are fingerprinted by content, its test split by its settings
    "task.name": ("coin_flip", EVERYTHING - STUDENT - EVAL_STUDENT),  # the fake teacher has no rule for it: nothing kept
    "task.words": ("3", EVERYTHING - STUDENT),  # the fake teacher's rules are for two words: nothing kept
    "task.train_size": ("20", INPUTS | FROM_SAMPLES | SYSTEM1_TRAIN),
    "task.test_size": ("6", EVALS),
    "task.seed": ("1", EVERYTHING),
    "task.test_source": ("rar", EVERYTHING),  # training names stay disjoint from RaR's test set: new inputs
    # -- the teacher: its samples, what is distilled from them, and its System 2 evaluation
    "teacher.name": ("writer", named("samples:writer", "eval:system2-writer") | FROM_CURATION),
    "teacher.model.backend": ("tiny", FROM_SAMPLES | EVAL_S2),
    "teacher.model.rules": ("[]", SAMPLES | CURATION | SET | EVAL_S2 | AUDIT),  # every output unparseable: untrained
    "teacher.model.default": ("x", SAMPLES | EVAL_S2),  # no input falls through to the default: same samples
    "teacher.method.name": ("cot", named("samples:cot", "eval:system2-cot") | CURATION | SET | AUDIT),  # none kept: untrained
    "teacher.method.shots": ("1", SAMPLES | CURATION | SET | EVAL_S2 | AUDIT),  # other prompts, the same verdicts and pairs
    # the fake teacher writes the same programs, and they run the same within these limits
    "teacher.method.max_tokens": ("200", SAMPLES | EVAL_S2),
    "teacher.method.timeout": ("4", SAMPLES | EVAL_S2),
    "teacher.method.memory_mb": ("256", SAMPLES | EVAL_S2),
    "teacher.samples": ("3", SAMPLES | CURATION | SET | AUDIT),  # the same kept answers: the set is unchanged
    # the fake teacher's responses do not depend on how it is sampled: the samples come out the same
    "teacher.temperature": ("0.5", SAMPLES),
    "teacher.top_p": ("0.9", SAMPLES),
    "teacher.seed": ("1", SAMPLES),
    # -- the student: its training, its System 1 and the distilled evaluation
    "student.model.backend": ("embedded", STUDENT | EVAL_S1 | SYSTEM1_TRAIN),
    "student.model.dtype": ("bfloat16", STUDENT | EVAL_S1 | SYSTEM1_TRAIN),
    "student.model.lm_head": ("model", STUDENT | EVAL_S1 | SYSTEM1_TRAIN),
    "student.method.name": ("cot", STUDENT | EVAL_S1 | SYSTEM1_TRAIN),  # the pairs are direct prompts whatever asks the student
    "student.method.shots": ("1", SET | STUDENT | EVAL_S1 | SYSTEM1_TRAIN),
    "student.method.max_tokens": ("8", STUDENT | EVAL_S1 | SYSTEM1_TRAIN),  # its saved prompt file records the budget
    "student.method.prompt_format": ("chat", SET | STUDENT | EVAL_S1 | SYSTEM1_TRAIN),
    "student.method.question_suffix": ("' Answer:'", SET | STUDENT | EVAL_S1 | SYSTEM1_TRAIN),
    # read from the whole reply (stopped at a blank line): System 1's answers and the saved prompt, not the pairs
    "student.method.response": ("full", STUDENT | EVAL_S1 | SYSTEM1_TRAIN),
    # -- curation
    "curation.filter": ("none", FROM_CURATION),
    # three samples of four agree: the same inputs pass; the audit's curve marks another threshold
    "curation.min_fraction": ("0.75", CURATION | SET | AUDIT),
    "curation.vote": ("plurality", FROM_CURATION),
    "curation.audit_labels": (None, SYSTEM1_TRAIN | AUDIT),  # a file: NOT_RERUN (tests/test_curation_audit.py)
    # -- the distillation set and the curriculum
    "distill.stages": ("[label_only]", named("distill:distilled/stage1-label_only") | STUDENT),
    "distill.max_per_input": ("1", SET),  # one pair per input already: the same set
    "distill.reasoning_max_tokens": ("100", NOTHING),  # read only by reasoning students and compression
    "distill.refiner": ("pal", NOTHING),  # read only by a compressed step
    # read only by a compressed step: there it redoes the compression and what follows it, nothing
    # before (tests/test_compress_per_teacher.py)
    "distill.rewrite_max_tokens": ("64", NOTHING),
    "distill.compression": ("compressor", NOTHING),
    "distill.compression_ratio": ("0.3", NOTHING),
    # read only by the soft_labels variant, which the smoke run has not (tests/test_soft_labels.py: what they redo there)
    "distill.soft.teacher_model": ("{backend: tiny}", NOTHING),
    "distill.soft.top_k": ("5", NOTHING),
    "distill.soft.temperature": ("2.0", NOTHING),
    "distill.soft.hard_weight": ("0.5", NOTHING),
    # -- training: the student's weights and what evaluates them
    "train.mode": ("full", STUDENT),
    "train.epochs": ("1", STUDENT),
    "train.learning_rate": ("0.002", STUDENT),
    "train.batch_size": ("4", STUDENT),
    "train.lora_r": ("2", STUDENT),
    "train.lora_alpha": ("4", STUDENT),
    "train.lora_dropout": ("0.1", STUDENT),
    "train.max_length": ("256", STUDENT),
    "train.answer_tokens": ("characters", STUDENT),
    "train.warmup_steps": ("1", STUDENT),
    "train.dropout": ("0.1", STUDENT),
    "train.precision": ("bfloat16", STUDENT),
    "train.frozen_weights": ("float32", STUDENT),  # in the config's identity once set, on any CPU
    "train.gradient_checkpointing": ("true", STUDENT),
    "train.seed": ("1", STUDENT),
    "train.processes": ("2", STUDENT),
    "train.accelerate_config": (None, STUDENT),  # a file: set in the test
    # -- evaluation: new rows are computed, the others kept
    "evaluate.systems": ("[system1, distilled]", NOTHING),
    "evaluate.system2_samples": ("2", EVAL_S2),
    "evaluate.system1_prompts": ("[{name: direct, shots: 0}]", named("eval:system1-direct-0shot")),
    "evaluate.transfer": ("[{words: 3}]", named("eval:system1@words=3", "eval:system2-pal@words=3",
                                                "eval:distilled-stage1@words=3")),
    "evaluate.judge": ("pal", NOTHING),  # judges free text without labels only
    "evaluate.majority_at": ("[2]", named("eval:system1-maj2", "eval:system2-pal-maj2", "eval:distilled-stage1-maj2")),
    # the student's answers now carry their probabilities, and the cascade's threshold is a stage of its own
    "evaluate.cascade": ("{validation_size: 10}", EVAL_STUDENT | named("cascade:distilled-stage1")),
    "baselines": ("[no_filter]", named("curation:no_filter", "distill:no_filter/stage1-answer_only",
                                       "train:no_filter/stage1", "eval:no_filter-stage1", "audit:no_filter")),
}
# Changes that start other processes or need what a test machine lacks: checked by the spec they
# reach (the fingerprint changes), not by a whole rerun. Each names the test that runs it for real.
NOT_RERUN = {
    "train.processes": "several training processes (tests/test_train_multiprocess.py)",
    "train.accelerate_config": "an accelerate config file (tests/test_train_multiprocess.py)",
    "student.model.backend": "the embedded model (the slow tests)",
    "teacher.model.backend": "a real model as teacher",
    "curation.audit_labels": "a hand-labels file (tests/test_curation_audit.py: editing it redoes the audit alone)",
}


def _is_runtime(model: type[BaseModel], name: str) -> bool:
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(RUNTIME))


def recipe_fields(value: BaseModel, prefix: str = "") -> list[str]:
    """Every non-runtime leaf field of a config instance, as override paths (list items by index)."""
    paths = []
    for name in type(value).model_fields:
        if _is_runtime(type(value), name):
            continue
        child = getattr(value, name)
        path = f"{prefix}{name}"
        if isinstance(child, BaseModel):
            paths += recipe_fields(child, f"{path}.")
        elif isinstance(child, list) and child and all(isinstance(c, BaseModel) for c in child):
            for index, item in enumerate(child):
                paths += recipe_fields(item, f"{path}.{index}.")
        else:
            paths.append(path)
    return paths


def _spelled(path: str) -> str:
    """A field as the smoke recipe spells it, and so as an override names it: one `teacher:`, and
    its one filter's settings beside `curation.filter` (which is the filter's name)."""
    path = path.replace("teachers.0.", "teacher.", 1)
    if path == "curation.filter.0.name":
        return "curation.filter"
    return path.replace("curation.filter.0.", "curation.", 1)


def test_every_field_of_the_smoke_recipe_has_a_mutation():
    recipe = load_recipe(SMOKE)
    missing = [p for p in recipe_fields(recipe) if _spelled(p) not in MUTATIONS]
    assert not missing, ("recipe fields with no entry in MUTATIONS (tests/test_recipe_mutations.py): add each as "
                         "'field': ('a new value in YAML', {the stages a change must redo}) — " + ", ".join(missing))
    stale = [key for key in MUTATIONS if key not in {_spelled(p) for p in recipe_fields(recipe)}]
    assert not stale, f"MUTATIONS entries for fields the smoke recipe no longer has: {stale}"


def _override(field: str, value: str) -> str:
    """`field=value`; another filter replaces the curation section whole (the smoke recipe's
    `min_fraction` beside it belongs to self-consistency)."""
    return f"curation={{filter: {value}}}" if field == "curation.filter" else f"{field}={value}"


@pytest.fixture(scope="module")
def finished_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "smoke"
    cache = out.parent / "completions.sqlite"
    mp = pytest.MonkeyPatch()
    mp.setenv("S2DISTILL_CACHE", str(cache))
    Pipeline(load_recipe(SMOKE), out, progress=False).run()
    mp.undo()
    return out, cache


# Rerun in the fast suite: the fields that once left a stage stale, and one of each section. Every
# other field is rerun with the slow tests (about four seconds each).
FAST = {"name", "task.test_size", "teacher.method.max_tokens", "teacher.method.timeout", "teacher.method.shots",
        "student.method.max_tokens", "student.method.question_suffix", "curation.min_fraction",
        "distill.max_per_input", "train.epochs", "evaluate.majority_at", "evaluate.cascade"}


@pytest.mark.parametrize("field", [f if f in FAST else pytest.param(f, marks=pytest.mark.slow)
                                   for f in sorted(set(MUTATIONS) - set(NOT_RERUN))])
def test_a_changed_field_redoes_exactly_what_reads_it(field, finished_smoke, tmp_path, monkeypatch):
    finished, cache = finished_smoke
    value, expected = MUTATIONS[field]
    monkeypatch.setenv("S2DISTILL_CACHE", str(cache))  # the samples already paid for, as a user's rerun has
    out = tmp_path / "smoke"
    shutil.copytree(finished, out)
    pipeline = Pipeline(load_recipe(SMOKE, [_override(field, value)]), out, progress=False)
    pipeline.run()
    redone = {r.name for r in pipeline.ctx.folder.log if r.status != "kept"}
    assert redone == expected, (f"{field}={value}: redid {sorted(redone)}, expected {sorted(expected)} "
                                f"(missing {sorted(expected - redone)}, extra {sorted(redone - expected)})")


# -- the union members the smoke recipe does not hold ---------------------------------------------
def _config_classes(model: type[BaseModel], seen: set[type]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for cls in _classes_in(field.annotation):
            _config_classes(cls, seen)


def _classes_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [cls for arg in typing.get_args(annotation) for cls in _classes_in(arg)]


def all_config_classes() -> list[type[BaseModel]]:
    seen: set[type] = set()
    _config_classes(Recipe, seen)
    return sorted(seen, key=lambda c: c.__name__)


def test_every_field_of_every_config_class_is_in_its_identity():
    """A non-runtime field of any section is part of what a fingerprint hashes; a runtime one is not.
    A field added after runs were made (`added_field`) is left out while at its default, so that
    earlier runs keep their fingerprints, and hashed once it holds any other value."""
    for cls in all_config_classes():
        try:
            instance = cls.model_validate(_minimal(cls))
        except Exception:  # a section with required fields the walk cannot invent: covered by the smoke walk
            continue
        keys = set(identity(instance))
        for name in cls.model_fields:
            added = at_added_default(instance, name)
            assert (name in keys) != (_is_runtime(cls, name) or added), f"{cls.__name__}.{name}"
            if added:  # the default left out, every other value hashed
                other = _another_value(cls.model_fields[name])
                assert name in identity(instance.model_copy(update={name: other})), f"{cls.__name__}.{name}"


def _another_value(field):
    """A value of an added field other than its default (a Literal's other choice, or the number plus one)."""
    choices = typing.get_args(field.annotation)
    return next((c for c in choices if c != field.default), None) if choices else field.default + 1


def _minimal(cls: type[BaseModel]) -> dict:
    data = {}
    for name, field in cls.model_fields.items():
        if field.is_required() and name == "name" and typing.get_args(field.annotation):
            data[name] = typing.get_args(field.annotation)[0]
    return data


@pytest.mark.parametrize("field", sorted(NOT_RERUN))
def test_a_field_not_rerun_still_changes_the_fingerprint_of_its_section(field, tmp_path):
    value, _ = MUTATIONS[field]
    if value is None:  # a file the setting names
        (tmp_path / "accelerate.yaml").write_text("num_processes: 2\n")
        value = str(tmp_path / "accelerate.yaml")
    section = field.split(".")[0].replace("teacher", "teachers")
    override = f"{field}={value}"
    if field.endswith(".backend"):  # another backend: the model section as that backend's defaults
        override = f"{field.removesuffix('.backend')}={{backend: {value}}}"
    before = identity(getattr(load_recipe(SMOKE), section))
    after = identity(getattr(load_recipe(SMOKE, [override]), section))
    assert before != after, NOT_RERUN[field]


def test_the_mutation_values_are_valid_yaml():
    for field, (value, _) in MUTATIONS.items():
        if value is not None:
            yaml.safe_load(value)
