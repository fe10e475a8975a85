"""A user's own program as a method: `module:function` or `path/to/file.py:function` (see
s2distill/user_code.py for how it is found).

Its config is the name alone: the function is the whole program, so it takes no options, shots,
budget or prompt format (it sets those in its own code). The SHA-256 of its source file is
recorded when the recipe is loaded (`source_sha256`), so editing the file changes the fingerprint
of every stage that runs it; anything wrong with the file (missing, a syntax error, an exception
or `sys.exit()` at import, a name that is not a function) fails the recipe's load with one line.

While it runs, whatever the function does wrong is its sample's failure, not the run's: an exception,
a return value that is not a `Trace`, or a call it may not make (`os.system`, `subprocess`, `eval`:
`user_code.guarded`) gives a failed trace (`meta["failed"]` says what and where) that the stage
counts against `max_failures` and the report counts, and the other samples go on. Errors of the
model it calls (a server's refusal, a backend failing) are not its own and are raised as they are.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from s2distill.methods.registry import USER_PROGRAM, MethodConfigBase
from s2distill.methods.runner import DeferredRequest, Program
from s2distill.types import Example, Trace
from s2distill.user_code import (describe_exception, guarded, load_user_function, load_user_function_and_digest,
                                 take_violation, unguarded)


def load_user_program(spec: str) -> Program:
    """The function `spec` names; ValueError saying what is wrong."""
    return load_user_function(spec, kind="user program")


class _ModelView:
    """The LM as a user's program sees it: the same calls, made with the guard off, and any error
    they raise remembered as the model's (raised as it is, never counted as the program's)."""

    def __init__(self, lm):
        self._lm = lm
        self.error: BaseException | None = None

    def generate(self, requests):
        try:
            with unguarded():
                return self._lm.generate(requests)
        except BaseException as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str):
        return getattr(self._lm, name)


def failed_program_trace(example: Example, message: str) -> Trace:
    """A sample whose user program failed: no answer, and why."""
    return Trace(example.id, "failed", None, error=message, meta={"failed": message, "kind": "program"})


def run_guarded(program: Program, name: str) -> Program:
    """`program` as a run calls it: a failure of the user's code is a failed trace (module docstring)."""
    where = f"user program {name!r}"

    def run(example: Example, lm) -> Trace:
        view = _ModelView(lm)
        try:
            with guarded(where):
                trace = program(example, view)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code: its sample fails
            if view.error is not None:
                raise view.error from None  # the model's error (a refusal, a backend down): not the program's
            violation = take_violation()
            return failed_program_trace(example, violation or f"{where} raised {describe_exception(exc)}")
        if isinstance(view.error, DeferredRequest):  # caught by the program: its sample still waits for a batch
            raise view.error
        violation = take_violation()
        if violation is not None:  # refused, and the program caught it: its result cannot be trusted
            return failed_program_trace(example, violation)
        if not isinstance(trace, Trace):
            return failed_program_trace(example, f"{where} returned {type(trace).__name__}, not a Trace "
                                        "(a program returns s2distill.types.Trace(example.id, method, answer, calls))")
        return trace

    return run


_EARLIER_DUMP_KEYS = ("shots", "max_tokens", "prompt_format", "options")


def _earlier_dump(data: dict) -> bool:
    """Whether a method section is an earlier version's dump of a user program's config: all four
    generic fields present, at the values a user's program had (a recipe a person writes names
    none of them, and naming any is an error)."""
    return (all(key in data for key in _EARLIER_DUMP_KEYS) and data["max_tokens"] is None
            and data["prompt_format"] == "fewshot" and not data["options"])


class UserProgram(MethodConfigBase):
    """A user's program, named `module:function` or `path/to/file.py:function`: a plain function
    `(example, lm) -> Trace`."""

    name: str = Field(description=f"{USER_PROGRAM} or path/to/file.py:function")
    source_sha256: str | None = Field(None, description="the SHA-256 of the program's source file, recorded at load "
                                      "(None: a module without a file)")

    @model_validator(mode="before")
    @classmethod
    def _options_onto_fields(cls, data: Any) -> Any:
        """A user's program takes no options: any setting beside its name is an error."""
        if not isinstance(data, dict):
            return data
        if _earlier_dump(data):  # a recipe.yaml an earlier version wrote: every method section had these
            data = {key: value for key, value in data.items() if key not in _EARLIER_DUMP_KEYS}
        given = [key for key, value in data.items()
                 if key not in ("name", "source_sha256") and not (key == "options" and not value)]
        if given:
            raise ValueError(f"a user's program takes no options: remove {', '.join(given)} from method "
                             f"{data.get('name')!r} (the function is the whole program; it sets its own prompts, "
                             "exemplars and budgets)")
        return {key: value for key, value in data.items() if key != "options"}

    @model_validator(mode="after")
    def _loads(self) -> UserProgram:
        """Load the program now (so a broken file fails the recipe, not a run) and record its source's hash."""
        _, self.source_sha256 = load_user_function_and_digest(self.name, kind="user program")
        return self

    def factory_options(self) -> dict[str, Any]:
        return {}

    def build(self, task) -> Program:
        program, digest = load_user_function_and_digest(self.name, kind="user program")
        if digest != self.source_sha256:
            raise ValueError(f"user program {self.name!r}: its source file changed after the recipe was loaded "
                             "(load the recipe again, so that the run's fingerprints record the new source)")
        return run_guarded(program, self.name)

    @property
    def shots(self) -> int:
        return 0

    @property
    def max_tokens(self) -> None:
        return None

    @property
    def prompt_format(self) -> str:
        return "fewshot"

    @property
    def question_suffix(self) -> str:
        return ""


__all__ = ["UserProgram", "failed_program_trace", "load_user_program", "run_guarded"]
