"""The base of every config section, and what a section's *identity* is.

A config field either changes what a stage computes (a model, a temperature, the number of
epochs) or only how fast or where it runs (`workers`, `batch_rows`, a server's timeout). Fields of
the second kind are declared with `runtime_field`; `identity()` leaves them out, so the
fingerprint of an artifact (s2distill/stages/folder.py) changes with the first kind only: raising
`workers` redoes nothing, changing `train.epochs` retrains.

A task's config has a third kind: settings that only choose which inputs form a split, or only
concern the test split (`train_size`, `seed`, `test_size`, `test_path`, ...). They are declared
with `split_field` and `split_settings(config)` names them. They stay in `identity()` (evaluation
depends on them), but the stages that compute on the training inputs leave them out of their
fingerprints: those stages fingerprint the training inputs' *content* instead, so a split setting
that changes which training inputs exist is still caught there, and one that only changes the
test split redoes nothing but evaluation.

A field added after runs were made, whose default does what the code did before it existed, is
declared with `added_field`: `identity()` (and `dump()`, for configs saved into fingerprinted
records) leave it out while it holds that default, so adding it redoes no earlier run; any other
value is hashed like every field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUNTIME = "runtime"
SPLIT = "split"
ADDED = "added"


class Strict(BaseModel):
    """A config section: unknown keys are typos, and infinities or NaN are never a setting."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _marked_field(marker: str, default: Any, kwargs: dict[str, Any]) -> Any:
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[marker] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def _is_marked(info: Any, marker: str) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(marker))


def runtime_field(default: Any = ..., **kwargs: Any) -> Any:
    """A field that changes how a stage runs, never what it computes (left out of fingerprints)."""
    return _marked_field(RUNTIME, default, kwargs)


def added_field(default: Any, **kwargs: Any) -> Any:
    """A field added after runs were made, its default the behaviour from before it existed: left out
    of `identity` and `dump` while it holds that default, so that its arrival changes no earlier
    run's fingerprint (see the module docstring). Takes what `pydantic.Field` takes."""
    return _marked_field(ADDED, default, kwargs)


def at_added_default(value: BaseModel, name: str) -> bool:
    """Whether field `name` of `value` is an `added_field` holding its default (left out of identities)."""
    info = type(value).model_fields[name]
    return _is_marked(info, ADDED) and getattr(value, name) == info.get_default(call_default_factory=True)


def split_field(default: Any = ..., **kwargs: Any) -> Any:
    """A task setting that only chooses which inputs form a split, or concerns the test split alone
    (`train_size`, `seed`, `test_size`, `test_path`, ...): see `split_settings`. Takes what
    `pydantic.Field` takes."""
    return _marked_field(SPLIT, default, kwargs)


def split_settings(config: BaseModel | type[BaseModel]) -> frozenset[str]:
    """The names of a config's (instance or class) fields declared with `split_field`: the task
    settings that prompts and answers do not depend on. A stage computing on the training inputs
    leaves them out of its fingerprint (it fingerprints the inputs' content), e.g.
    `{k: v for k, v in identity(task.config).items() if k not in split_settings(task.config)}`."""
    fields = (config if isinstance(config, type) else type(config)).model_fields
    return frozenset(name for name, info in fields.items() if _is_marked(info, SPLIT))


def identity(value: Any) -> Any:
    """`value` as plain JSON data without its runtime fields (nor its `added_field`s at their defaults),
    recursively: what a fingerprint hashes."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {name: identity(getattr(value, name)) for name in fields
                if not _is_marked(fields[name], RUNTIME) and not at_added_default(value, name)}
    if isinstance(value, dict):
        return {str(k): identity(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [identity(v) for v in value]
    return value


def dump(value: BaseModel) -> dict[str, Any]:
    """`value.model_dump(mode="json")` without its `added_field`s at their defaults, at any depth: a
    config saved into a record a fingerprint reads (a student's saved prompt) is then the record
    written before those fields existed."""
    data = value.model_dump(mode="json")
    _drop_added_defaults(value, data)
    return data


def _drop_added_defaults(value: Any, data: Any) -> None:
    if isinstance(value, BaseModel) and isinstance(data, dict):
        for name in type(value).model_fields:
            if at_added_default(value, name):
                data.pop(name, None)
            elif name in data:
                _drop_added_defaults(getattr(value, name), data[name])
    elif isinstance(value, list | tuple) and isinstance(data, list):
        for item, dumped in zip(value, data):
            _drop_added_defaults(item, dumped)
