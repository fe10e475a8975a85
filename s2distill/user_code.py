"""A user's own function, named in a recipe as `module:function` or `path/to/file.py:function`:
a method's program (a plain `(example, lm) -> Trace`, no base class, no registration; it may use
`s2distill.methods.calls.ask` to make calls that are recorded in its trace) or a custom task's
answer parser. It sits below tasks and methods, so both may load one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def load_user_function(spec: str):
    """Import and return the function that `spec` names; raise ValueError saying what is wrong."""
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise ValueError(f"a user method is 'module:function' or 'file.py:function', got {spec!r}")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.exists():
            raise ValueError(f"user method file {target!r} does not exist")
        module_spec = importlib.util.spec_from_file_location(f"s2distill_user_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    else:
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ValueError(f"cannot import user method module {target!r}: {exc}") from exc
    program = getattr(module, attribute, None)
    if not callable(program):
        raise ValueError(f"{target!r} has no function {attribute!r}")
    return program
