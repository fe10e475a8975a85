"""The Task protocol: every feature generic code reads is declared on `tasks.base.Task` with a
default, every task has it with the declared type, the split-choosing config fields are marked on
the field, and every task config is strict."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path
from typing import ClassVar, Literal, get_args, get_origin, get_type_hints

import pytest
from pydantic import ValidationError

from s2distill.config.base import Strict, identity, split_settings
from s2distill.config.recipe import RecipeError, validate_recipe
from s2distill.tasks import TASKS, DataError, Task, TaskConfig, build_task
from s2distill.tasks.base import AnswerKind
from s2distill.tasks.custom import CustomConfig, Exemplar
from s2distill.types import Example

PACKAGE = Path(__file__).resolve().parents[1] / "s2distill"

# Declared on Task as class variables: (name, default).
CLASS_FEATURES = {"has_labels": True, "answer_kind": "exact", "runs_model_code": False}
METHODS = ("notes", "fingerprint", "example_from_row", "perturb", "map_back", "metrics", "headline")

PERTURBABLE = {"coin_flip", "commonsenseqa", "judging"}  # the built-in tasks with an answer-preserving change

SPLIT_FIELDS = {
    "last_letters": {"train_size", "test_size", "seed", "test_source"},
    "coin_flip": {"train_size", "test_size", "seed", "test_source"},
    "gsm8k": {"train_size", "test_size"},
    "commonsenseqa": {"train_size", "test_size"},
    "mbpp": {"train_size", "test_size", "test_timeout"},
    "triviaqa": {"train_size", "test_questions", "templates"},
    "judging": {"train_size", "test_trees", "test_size", "source", "answers"},
    "custom": {"train_size", "test_size", "seed", "test_path", "test_fraction", "split"},
}
# stages/context.py's hand list before the markers: every name in it is marked somewhere.
OLD_SPLIT_SETTINGS = {"train_size", "test_size", "seed", "test_source", "test_questions", "test_trees", "test_path",
                      "test_fraction", "test_timeout"}


def custom_config(tmp_path: Path, **fields) -> CustomConfig:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"q": f"question {i}?", "opts": ["x", "y"], "y": "A"}) + "\n" for i in range(6)))
    return CustomConfig(path=str(data), question="q", **fields)


def every_task(tmp_path: Path) -> list[Task]:
    """One instance of every registered task (defaults; the custom task on a small file). No data is read."""
    return [build_task(custom_config(tmp_path) if name == "custom" else TASKS[name].config_class())
            for name in TASKS]


def conforms(value, hint) -> bool:
    """Whether `value` has the type `hint` (a class, a Literal, or a ClassVar of either)."""
    if get_origin(hint) is ClassVar:
        (hint,) = get_args(hint)
    if get_origin(hint) is Literal:
        return value in get_args(hint)
    return isinstance(value, hint)


def test_the_protocol_is_declared_on_task_with_defaults():
    hints = get_type_hints(Task)
    for name, default in CLASS_FEATURES.items():
        assert name in Task.__dict__ and get_origin(hints[name]) is ClassVar, name
        assert getattr(Task, name) == default and conforms(default, hints[name]), name
    assert isinstance(Task.__dict__["perturbable"], property)
    for name in METHODS:
        assert callable(Task.__dict__[name]) and Task.__dict__[name].__doc__, name
    assert set(get_args(AnswerKind)) == {"exact", "number", "choice", "free_text", "parser"}
    # Each class variable of the protocol has a docstring (the string right after it in the class body).
    body = next(node for node in ast.parse(inspect.getsource(Task)).body if isinstance(node, ast.ClassDef)).body
    documented = {stmt.target.id for stmt, after in zip(body, body[1:], strict=False)
                  if isinstance(stmt, ast.AnnAssign) and isinstance(after, ast.Expr)
                  and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)}
    assert set(CLASS_FEATURES) <= documented


def test_every_task_has_every_feature_with_the_declared_type(tmp_path):
    hints = get_type_hints(Task)
    for task in every_task(tmp_path):
        for name in CLASS_FEATURES:
            assert conforms(getattr(type(task), name), hints[name]), (task.name, name)
            assert conforms(getattr(task, name), hints[name]), (task.name, name)
        assert isinstance(task.perturbable, bool), task.name
        assert isinstance(task.notes(), list) and all(isinstance(n, str) for n in task.notes()), task.name
        fingerprint = task.fingerprint()
        assert fingerprint is None if task.name != "custom" else isinstance(fingerprint, str), task.name
        for name in METHODS:
            assert callable(getattr(task, name)), (task.name, name)
    assert [n for n, cls in TASKS.items() if cls.runs_model_code] == ["mbpp"]


def test_a_users_answers_file_is_fingerprinted_by_content(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": 1, "question": "q", "answer_a": "a", "answer_b": "b"}) + "\n")
    task = build_task(TASKS["judging"].config_class(source="mt_bench", answers=str(answers)))
    before = task.fingerprint()
    answers.write_text(json.dumps({"question_id": 1, "question": "q", "answer_a": "a", "answer_b": "c"}) + "\n")
    assert isinstance(before, str) and task.fingerprint() != before


def test_perturbable_exactly_for_the_tasks_with_a_perturbation(tmp_path):
    tasks = {task.name: task for task in every_task(tmp_path)}
    assert {name for name, task in tasks.items() if task.perturbable} == PERTURBABLE
    # The property's default: a task is perturbable when it overrides perturb.
    assert {name for name, cls in TASKS.items() if cls.perturb is not Task.perturb} == PERTURBABLE | {"custom"}
    examples = {"coin_flip": {"flips": [["Ada", True], ["Bo", False]]},
                "commonsenseqa": {"stem": "Where?", "choices": [[x, x.lower()] for x in "ABCDE"]},
                "judging": {"question": "q", "response_a": "a", "response_b": "b", "pair": "p", "order": "ab"}}
    for name in PERTURBABLE:
        assert tasks[name].perturb(Example("train-1", examples[name])) is not None, name
    for name in set(TASKS) - PERTURBABLE - {"custom"}:
        assert tasks[name].perturb(Example("train-1", {"question": "q"})) is None, name
    # The custom task: only multiple choice shuffles its options.
    assert not tasks["custom"].perturbable
    choice = build_task(custom_config(tmp_path, answer="choice", options="opts", label="y"))
    assert choice.perturbable and choice.perturb(choice.labeled("train")[0].example) is not None


def test_split_fields_are_marked_on_the_field():
    for name, cls in TASKS.items():
        assert split_settings(cls.config_class) == SPLIT_FIELDS[name], name
    assert set().union(*SPLIT_FIELDS.values()) >= OLD_SPLIT_SETTINGS
    # An instance answers as its class does, and identity() still records the split fields (evaluation needs them).
    config = TASKS["coin_flip"].config_class(seed=3)
    assert split_settings(config) == SPLIT_FIELDS["coin_flip"] and identity(config)["seed"] == 3
    # What a stage on the training inputs keeps: the settings that shape prompts and answers.
    assert {k for k in identity(config) if k not in split_settings(config)} == {"name", "people"}


def test_task_configs_are_strict(tmp_path):
    union = set(get_args(TaskConfig))
    assert union == {cls.config_class for cls in TASKS.values()}
    for cls in [*union, Exemplar]:
        assert issubclass(cls, Strict), cls.__name__
    for name, cls in TASKS.items():
        required = {"path": str(tmp_path), "template": "{q}"} if name == "custom" else {}
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            cls.config_class(**required, trian_size=5)
        with pytest.raises(RecipeError, match="trian_size"):
            validate_recipe({"task": {"name": name, **required, "trian_size": 5}})
    with pytest.raises(ValidationError, match="finite number"):
        TASKS["mbpp"].config_class(test_timeout=float("inf"))


def test_default_example_from_row_checks_the_row_by_its_question():
    task = build_task(TASKS["gsm8k"].config_class())
    assert task.example_from_row({"question": "2+2?"}, example_id="input-0") == Example("input-0", {"question": "2+2?"})
    with pytest.raises(DataError, match=r"inputs.jsonl: row 2: not an input of task gsm8k \(field 'question' missing"):
        task.example_from_row({"text": "2+2?"}, where="inputs.jsonl: row 2")
    with pytest.raises(DataError, match="row 3: not an object"):
        task.example_from_row(["2+2?"], where="row 3")  # type: ignore[arg-type]


# -- generic code reads the protocol directly ------------------------------------------------------
_LOOKUP = re.compile(r"\b(?:getattr|hasattr)\(\s*[\w.]*task\s*,\s*[\"']")  # a named feature looked up on a task
_LATER = ("stages/", "pipeline.py")  # fixed separately (issue 24 item 4)


def feature_lookups(*, skip: tuple[str, ...] = ()) -> list[str]:
    """`getattr(task, "x", ...)` / `hasattr(ctx.task, "x")` sites outside tasks/, as 'path:line'."""
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("tasks/") or relative.startswith(skip):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _LOOKUP.search(line):
                sites.append(f"{relative}:{number}")
    return sites


def test_the_pattern_finds_feature_lookups():
    for line in ('getattr(task, "has_labels", True)', "hasattr(ctx.task, 'notes')", 'getattr(self.task, "x")'):
        assert _LOOKUP.search(line), line
    assert not _LOOKUP.search("return getattr(self._task, name)")  # a wrapper delegating, not a feature lookup


def test_no_task_feature_is_looked_up_by_getattr_outside_stages():
    assert feature_lookups(skip=_LATER) == []


def test_no_task_feature_is_looked_up_by_getattr_anywhere():
    assert feature_lookups() == []

