"""System 1 and System 2 methods, and the registry recipes name them by.

A method is a factory `(task, **options) -> program`, and a program is a plain function
`(example, lm) -> Trace` (DESIGN principle 3): no base class to inherit. Each method's file also
holds its config class (the typed settings a recipe's `method:` section may give, with
`build(task)` and `runs_model_code`) and registers it (methods/registry.py). `MethodConfig` is
the union of them all, told apart by `name`: a registered name, or a user's own
`module:function` / `file.py:function` program (methods/user.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Discriminator, Tag, TypeAdapter

# Every method file, imported here so that the registry is complete (the order is `s2distill methods`' order).
from s2distill.methods.direct import DirectConfig, direct, direct_completion, direct_prompt
from s2distill.methods.cot import CoTConfig, cot
from s2distill.methods.pal import PALConfig, pal
from s2distill.methods.rar import RaRConfig, rar
from s2distill.methods.s2a import S2AConfig, s2a
from s2distill.methods.bsm import BSMConfig, bsm
from s2distill.methods.twt import TwTConfig, twt_teacher
from s2distill.methods.usc import USCConfig, usc
from s2distill.methods.user import UserProgram, load_user_program
from s2distill.methods.registry import (
    METHODS,
    REGISTRY,
    USER_PROGRAM,
    MethodConfigBase,
    build_program,
    config_class,
    factory_options,
    known,
    method_parameters,
)
from s2distill.methods.runner import Program, run_program


def method_tag(value: Any) -> str | None:
    """The discriminator of `MethodConfig`: a mapping's `name` (default direct) or a config's; a name
    with ":" is a user's program; None for a name no method has."""
    name = value.get("name", "direct") if isinstance(value, dict) else getattr(value, "name", None)
    if not isinstance(name, str):
        return None
    if ":" in name:
        return USER_PROGRAM
    return name if name in REGISTRY else None


def _a_known_method(value: Any) -> Any:
    """`method: NAME` is `{name: NAME}`; a name no method has is one error listing the known ones."""
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, dict):
        name = value.get("name", "direct")
        if not isinstance(name, str):
            raise ValueError(f"name: a method's name is text, got {type(name).__name__} {name!r}")
        if method_tag(value) is None:
            raise ValueError(f"unknown method {name!r}; known: {known()}")
    elif not isinstance(value, MethodConfigBase):
        raise ValueError(f"a method is a mapping such as {{name: cot, shots: 4}}, got {type(value).__name__}")
    return value


MethodConfig = Annotated[
    Annotated[
        Union[tuple(Annotated[entry.config, Tag(name)] for name, entry in REGISTRY.items())  # noqa: UP007
              + (Annotated[UserProgram, Tag(USER_PROGRAM)],)],
        Discriminator(method_tag),
    ],
    BeforeValidator(_a_known_method),
]
METHOD_TAGS = frozenset(REGISTRY) | {USER_PROGRAM}  # what pydantic adds to an error's location inside a method
_ADAPTER = TypeAdapter(MethodConfig)


def method_config(data: Any = None, *, saved: bool = False, **fields: Any) -> MethodConfigBase:
    """A method config from a mapping (a recipe's `method:` section) or keywords. `saved`: a mapping an
    earlier version wrote (a student's saved prompt, `weights/s2distill_prompt.json`), which held
    `shots`, `max_tokens`, `prompt_format` and `options` for every method: the ones the method's
    class has no field for are dropped (they had no effect on it)."""
    data = {**(data or {}), **fields}
    if saved:
        tag = method_tag(data)
        cls = UserProgram if tag == USER_PROGRAM else REGISTRY[tag].config if tag else None
        if cls is not None:
            keep = set(cls.model_fields) | ({"options"} if cls is not UserProgram else set())
            data = {key: value for key, value in data.items() if key in keep}
    return _ADAPTER.validate_python(data)


__all__ = [
    "BSMConfig", "CoTConfig", "DirectConfig", "METHODS", "METHOD_TAGS", "MethodConfig", "MethodConfigBase", "PALConfig",
    "Program", "REGISTRY", "RaRConfig", "S2AConfig", "TwTConfig", "USCConfig", "UserProgram", "bsm", "build_program",
    "config_class", "cot", "direct", "direct_completion", "direct_prompt", "factory_options", "load_user_program",
    "method_config", "method_parameters", "pal", "rar", "run_program", "s2a", "twt_teacher", "usc",
]
