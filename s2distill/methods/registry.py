"""The registry recipes name methods by: each method's config class, factory and one-line description.

A method is one file (methods/cot.py, methods/rar.py, ...) holding its factory `(task, **options)
-> program` and its config class: the typed fields a recipe's `method:` section may set, with
their bounds, `build(task) -> program` and `runs_model_code`. The file registers the class here
(`register`). This module sits below every method file: it imports none of them, and a method
that builds another (USC's base) asks for it here, so no method module imports the package
`s2distill.methods`. The package's `__init__` imports every method file, so the registry is
complete before anything reads it (importing any `s2distill.methods.*` module runs it first).

A config class's fields are its factory's keyword arguments, so `factory_options()` is the
config's fields less its name. Recipes written before the classes existed gave the method's own
settings under `options:` (`{name: rar, options: {steps: 1}}`); each class still takes that
mapping and moves its keys onto its fields, so an unknown or out-of-range option fails at load,
naming the field.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from s2distill.config.base import Strict
from s2distill.methods.runner import Program
from s2distill.user_code import load_user_function

USER_PROGRAM = "module:function"  # the tag of a user's own program among the method configs
MAX_SAMPLES = 1024  # as config/recipe.py's: samples inside one program (USC, RaR's responses) at most


class MethodConfigBase(Strict):
    """What every method config has: its `name`, the program it builds, and whether that program
    runs model-written code (in the sandbox)."""

    name: str

    @property
    def runs_model_code(self) -> bool:
        """Whether the program runs model-written code in the sandbox (PAL's programs)."""
        return False

    def factory_options(self) -> dict[str, Any]:
        """Keyword arguments for the method's factory: every field but the name (an unset
        `max_tokens` leaves the method's own budget)."""
        return {key: getattr(self, key) for key in type(self).model_fields
                if key != "name" and not (key == "max_tokens" and getattr(self, key) is None)}

    def build(self, task) -> Program:
        """The program this config names, for `task`."""
        return REGISTRY[self.name].factory(task, **self.factory_options())

    @model_validator(mode="before")
    @classmethod
    def _options_onto_fields(cls, data: Any) -> Any:
        """An earlier recipe's `options: {...}` mapping: each key onto the field it names."""
        if not isinstance(data, dict) or "options" not in data:
            return data
        data = dict(data)
        options = data.pop("options")
        if options is None:
            return data
        name = data.get("name", cls.model_fields["name"].default)
        if not isinstance(options, dict):
            raise ValueError(f"options: a mapping of method {name!r}'s settings, got {type(options).__name__}")
        settings = [key for key in cls.model_fields if key != "name"]
        for key, value in options.items():
            if key not in settings:
                raise ValueError(f"method {name!r} has no option {key!r}; its settings: {', '.join(settings)}")
            if key in data and data[key] != value:
                raise ValueError(f"method {name!r}: {key} is given twice ({key}: {data[key]!r} and options.{key}: "
                                 f"{value!r}); give it once, as {key}")
            data[key] = value
        return data


class PromptedMethod(MethodConfigBase):
    """A method whose prompts take solved exemplars, a token budget and either prompt format."""

    shots: int = Field(4, ge=0, le=64, description="solved exemplars in few-shot prompts")
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, description="default: the method's own")
    prompt_format: Literal["fewshot", "chat"] = Field(
        "fewshot", description="fewshot: raw prompts with exemplars (pretrained models); chat: the chat template"
    )


class System2Method(PromptedMethod):
    """A prompted method that adds nothing after the question (only `direct` has a question suffix)."""

    @property
    def question_suffix(self) -> str:
        return ""


@dataclass(frozen=True)
class MethodEntry:
    config: type[MethodConfigBase]
    factory: Callable[..., Program]
    description: str


REGISTRY: dict[str, MethodEntry] = {}
# name -> (factory, description): the registry as it was before config classes, for callers that
# build a program from a factory and keyword arguments directly (tests, benchmarks)
METHODS: dict[str, tuple[Callable[..., Program], str]] = {}


def register(config: type[MethodConfigBase], factory: Callable[..., Program], description: str) -> None:
    """Make a method nameable in recipes: its config class (whose `name` default is the name), its
    factory and the line `s2distill methods` shows."""
    name = config.model_fields["name"].default
    REGISTRY[name] = MethodEntry(config, factory, description)
    METHODS[name] = (factory, description)


def known() -> str:
    """The names a recipe may give, for error messages."""
    return ", ".join(sorted(REGISTRY)) + f", or your own program as {USER_PROGRAM} / file.py:function"


def config_class(name: str) -> type[MethodConfigBase]:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; known: {known()}")
    return REGISTRY[name].config


def method_parameters(name: str):
    """The keyword parameters a registered method's factory accepts."""
    return inspect.signature(REGISTRY[name].factory).parameters


def factory_options(name: str, *, shots: int, max_tokens: int | None = None, prompt_format: str = "fewshot",
                    options: dict | None = None) -> dict:
    """Keyword arguments for a registered method's factory from the settings every method shares;
    each goes only to a factory that takes it (`prompt_format` to methods with more than the
    few-shot format, `max_tokens` to methods with one budget)."""
    accepted = method_parameters(name)
    kwargs = {"shots": shots, **(options or {})}
    if max_tokens and "max_tokens" in accepted:
        kwargs["max_tokens"] = max_tokens
    if "prompt_format" in accepted:
        kwargs["prompt_format"] = prompt_format
    return kwargs


def build_program(task, name: str, options: dict) -> Program:
    """The program a recipe's method names: a registered method with its factory's keyword
    arguments, or a user's `module:function` (which takes none)."""
    if ":" in name:
        if options:
            raise ValueError(f"user program {name!r} takes no options, got {sorted(options)}")
        return load_user_function(name, kind="user program")
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; known: {known()}")
    return REGISTRY[name].factory(task, **options)
