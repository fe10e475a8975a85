"""A user's own function, named in a recipe as `module:function` or `path/to/file.py:function`:
a method's program (a plain `(example, lm) -> Trace`, no base class, no registration; it may use
`s2distill.methods.calls.ask` to make calls that are recorded in its trace) or a custom task's
answer parser. It sits below tasks and methods, so both may load one.

Whatever goes wrong while loading it (no such file or module, a syntax error, an exception or a
`sys.exit()` while its module is imported, a name that is not a function) is one `ValueError`
naming the file and what is wrong, so a recipe naming it fails at load with that one line.

`load_user_function_and_digest` also gives the SHA-256 of the source that was run (the file, or
the module's file when it has one): a method config records it, so that editing the file changes
the fingerprint of every stage that runs the program.

While it runs, a user's function is the user's: its failures are its samples' failures, never the
run's. A parser that raises (or returns something other than a string) gives an unparseable answer
whose reason `note_failure` keeps for the trace (`take_failure`, read by the program runner), and a
program runs `guarded`: starting a process (`os.system`, `subprocess`, `os.exec*`, `os.fork`, ...)
or evaluating code (`eval`, `exec`) from its own code is refused, so that model-written text never
runs outside the sandbox (`s2distill.sandbox.run_python`, which stays allowed). That guard is a
Python audit hook checked only in the program's own thread: a guard against mistakes, like the
sandbox's weak guard, not a boundary.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType


def load_user_function(spec: str, *, kind: str = "user function"):
    """Import and return the function that `spec` names; raise ValueError saying what is wrong."""
    return load_user_function_and_digest(spec, kind=kind)[0]


def load_user_function_and_digest(spec: str, *, kind: str = "user function"):
    """(the function `spec` names, the SHA-256 of its module's source file or None when the module
    has no file); ValueError naming the file and what is wrong."""
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute or not attribute.isidentifier():
        raise ValueError(f"a {kind} is 'module:function' or 'file.py:function', got {spec!r}")
    if target.endswith(".py"):
        module, digest, where = _exec_file(target, kind)
    else:
        module = _import(target, kind)
        where = f"{kind} module {target!r}"
        digest = file_digest(getattr(module, "__file__", None))
    if not hasattr(module, attribute):
        raise ValueError(f"{where} has no function {attribute!r}")
    function = getattr(module, attribute)
    if not callable(function):
        raise ValueError(f"{where}: {attribute!r} is {type(function).__name__} {_short(function)}, not a function; a "
                         f"{kind} names a function")
    return function, digest


def file_digest(path: str | Path | None) -> str | None:
    """The SHA-256 of a file's bytes (None: no path, or no such file)."""
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _exec_file(target: str, kind: str) -> tuple[ModuleType, str, str]:
    """The module `target` (a .py file) defines, run from the bytes that are hashed."""
    path = Path(target).expanduser()
    where = f"{kind} file {target!r}"
    if not path.is_file():
        raise ValueError(f"{where} does not exist" if not path.exists() else f"{where} is not a file")
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise ValueError(f"{where} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # e.g. null bytes in the source
        raise ValueError(f"{where} is not Python source: {exc}") from None
    module_spec = importlib.util.spec_from_file_location(f"s2distill_user_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    _run_module_code(lambda: exec(code, module.__dict__), where)
    return module, hashlib.sha256(source).hexdigest(), where


def _import(target: str, kind: str) -> ModuleType:
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    where = f"{kind} module {target!r}"
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise ValueError(f"cannot import {where}: {exc}") from None
        raise _failed(exc, where) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - anything the user's module raises at import
        raise _failed(exc, where) from None


def _run_module_code(run, where: str):
    """Run a module's top level; every way it can fail is a ValueError naming `where`."""
    try:
        return run()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - anything the user's module raises at import
        raise _failed(exc, where) from None


def _failed(exc: BaseException, where: str) -> ValueError:
    """What went wrong while a user's module was imported, as one line."""
    if isinstance(exc, SyntaxError):
        place = f"{exc.filename}, line {exc.lineno}" if exc.filename else f"line {exc.lineno}"
        return ValueError(f"{where} has a syntax error ({place}): {exc.msg}")
    if isinstance(exc, SystemExit):
        return ValueError(f"{where} called sys.exit({exc.code!r}) while being imported; a module named in a "
                          "recipe may only define things (a script's top level goes under "
                          "`if __name__ == \"__main__\":`)")
    return ValueError(f"{where} raised {type(exc).__name__} while being imported: {exc}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- while a user's function runs ------------------------------------------------------------------
_state = threading.local()  # per program thread: `failure` (a parser's), `guard` and `violation` (a program's)


def note_failure(message: str) -> None:
    """Keep why a user's function failed on this thread's current output (a parser that raised), for
    the program runner to put on the trace (`take_failure`)."""
    _state.failure = message


def take_failure() -> str | None:
    """The failure noted on this thread since the last call, and forget it."""
    message = getattr(_state, "failure", None)
    _state.failure = None
    return message


def describe_exception(exc: BaseException) -> str:
    """`TypeName: message (file.py, line N)`: what a user's code raised, and where in it."""
    import traceback

    text = str(exc).strip().splitlines()
    where = ""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if frames:
        where = f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})"
    return f"{type(exc).__name__}: {text[0][:300] if text else repr(exc)}{where}"


class ForbiddenCall(PermissionError):
    """A user's program started a process or evaluated code while it ran (see the module docstring)."""


# Audit events (PEP 578) a user's program may not raise itself, with the name a person knows them by.
_FORBIDDEN = {"os.system": "os.system", "subprocess.Popen": "subprocess", "os.exec": "os.exec*",
              "os.posix_spawn": "os.posix_spawn", "os.spawn": "os.spawn*", "os.fork": "os.fork",
              "os.forkpty": "os.forkpty", "pty.spawn": "pty.spawn", "os.startfile": "os.startfile",
              "exec": "eval/exec"}
_SANDBOX_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox.py")
_LIBRARIES = tuple(sorted({os.path.join(os.path.realpath(p), "") for p in (
    *(sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")),
    os.path.dirname(os.path.abspath(__file__))) if p}))
_hook_lock = threading.Lock()
_hook_installed = False


def _code_file_is_library(filename: str) -> bool:
    """Python's own modules, installed packages and s2distill: their `exec` (imports, dataclasses,
    namedtuple) is not the user's."""
    return filename.startswith("<frozen ") or os.path.realpath(filename).startswith(_LIBRARIES)


def _audit(event: str, args: tuple) -> None:
    if event not in _FORBIDDEN:
        return
    where = getattr(_state, "guard", None)
    if where is None:
        return
    frame = sys._getframe(1)  # the code that raised the event (a builtin has no frame of its own)
    if event == "exec":
        if _code_file_is_library(frame.f_code.co_filename):
            return
    else:
        probe, depth = frame, 0
        while probe is not None and depth < 64:  # the sandbox starts its own processes: allowed
            if probe.f_code.co_filename == _SANDBOX_FILE:
                return
            probe, depth = probe.f_back, depth + 1
    message = (f"{where} called {_FORBIDDEN[event]} while it ran; a user's program may not start processes or "
               "evaluate code (run model-written code with s2distill.sandbox.run_python)")
    if getattr(_state, "violation", None) is None:
        _state.violation = message
    raise ForbiddenCall(message)


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)  # once per process; it acts only in a thread running `guarded`
            _hook_installed = True


@contextmanager
def guarded(where: str) -> Iterator[None]:
    """Run a user's program in this thread with the guard on (see the module docstring); afterwards
    `take_violation` says what it was refused, even if its code caught the error."""
    _install_hook()
    previous = getattr(_state, "guard", None)
    _state.guard, _state.violation = where, None
    try:
        yield
    finally:
        _state.guard = previous


@contextmanager
def unguarded() -> Iterator[None]:
    """Suspend the guard in this thread (around a model call: the backend's own work is not the user's)."""
    previous = getattr(_state, "guard", None)
    _state.guard = None
    try:
        yield
    finally:
        _state.guard = previous


def take_violation() -> str | None:
    """What the guarded program in this thread was refused (the first), and forget it."""
    message = getattr(_state, "violation", None)
    _state.violation = None
    return message
