"""The base of every config section, and what a section's *identity* is.

A config field either changes what a stage computes (a model, a temperature, the number of
epochs) or only how fast or where it runs (`workers`, `batch_rows`, a server's timeout). Fields of
the second kind are declared with `runtime_field`; `identity()` leaves them out, so the
fingerprint of an artifact (s2distill/stages.py) changes with the first kind only: raising
`workers` redoes nothing, changing `train.epochs` retrains.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUNTIME = "runtime"


class Strict(BaseModel):
    """A config section: unknown keys are typos, and infinities or NaN are never a setting."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def runtime_field(default: Any = ..., **kwargs: Any) -> Any:
    """A field that changes how a stage runs, never what it computes (left out of fingerprints)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[RUNTIME] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def identity(value: Any) -> Any:
    """`value` as plain JSON data without its runtime fields, recursively: what a fingerprint hashes."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        out = {}
        for name in fields:
            extra = fields[name].json_schema_extra
            if isinstance(extra, dict) and extra.get(RUNTIME):
                continue
            out[name] = identity(getattr(value, name))
        return out
    if isinstance(value, dict):
        return {str(k): identity(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [identity(v) for v in value]
    return value
