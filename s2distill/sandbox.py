"""Run model-written Python behind an operating-system boundary, with limits, and capture its output.

Two layers:

1. **The boundary: bubblewrap** (`bwrap`, Debian package `bubblewrap`). The program runs in new
   PID, mount, network, IPC, UTS and cgroup namespaces (user too where the kernel allows), with
   every capability dropped and `no_new_privs`: it sees only its own processes (so no parent's
   `/proc/<pid>/environ`), a read-only `/usr` and Python, an empty `/tmp`, no network, no run
   folder, no cache, no home, and a private scratch folder as its working directory. Its
   environment is cleared. When the time limit passes or its output reaches the cap, the
   sandbox's init is killed and with it every process of the namespace (a `setsid` child too).
2. **A Python audit hook** (PEP 578), installed before the code runs: refuses writes, renames and
   deletes outside the scratch folder (also through `dir_fd=`: folders outside cannot be opened),
   sockets, subprocesses (`_posixsubprocess` included), `ctypes`, `sqlite3` outside the scratch
   folder, and the introspection that would reach the hook itself (`gc`, rewriting functions).
   Its state lives in the hook's own default arguments, so clearing the guard's globals does not
   switch it off.

Limits, in both: wall-clock time on the whole process tree, address space (`memory_mb`), file
size (1 MB), no core files, and output read through a bounded buffer: the program is stopped as
soon as it prints more than `max_output` characters (nothing beyond the cap is ever held).

Where bubblewrap is missing or cannot create namespaces, model-written code does not run
(`SandboxUnavailable`) unless the caller opts into the weaker guard (`allow_weak_guard=True`,
a recipe's `sandbox.allow_weak_guard: true`): the audit hook alone, plus `unshare -n` where
permitted. That guards against model mistakes, not against code written to escape.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from s2distill.errors import SandboxUnavailable

BOUNDARY = "bubblewrap"
WEAK = "audit hook only"
FILE_SIZE_LIMIT = 1024 * 1024

_GUARD = r'''
import sys

def _install(memory, fsize):
    import os, resource
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    blocked = frozenset({
        "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "subprocess.Popen",
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
        "os.killpg", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.startfile",
        "shutil.copyfile", "shutil.copytree", "shutil.rmtree", "webbrowser.open", "urllib.Request",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.setprofile", "sys.settrace",
        "os.fchdir", "resource.setrlimit", "resource.prlimit", "sys.addaudithook"})
    modules = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi", "_testinternalcapi"})
    path_events = frozenset({"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
        "os.truncate", "os.chmod", "os.chown", "os.utime", "os.listxattr", "os.setxattr", "os.removexattr",
        "os.chdir", "sqlite3.connect"})
    function_fields = frozenset({"__code__", "__defaults__", "__kwdefaults__", "__closure__", "__globals__"})
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    scratch = os.path.realpath(os.getcwd())

    def hook(event, args, _blocked=blocked, _modules=modules, _paths=path_events, _fields=function_fields,
             _flags=write_flags, _scratch=scratch, _sep=os.sep, _realpath=os.path.realpath,
             _fsdecode=os.fsdecode, _isdir=os.path.isdir, _str=str, _bytes=bytes, _int=int,
             _isinstance=isinstance, _any=any, _PathLike=os.PathLike, _Error=PermissionError):
        def inside(path):
            if _isinstance(path, _int):
                return True
            if _fsdecode(path).startswith("file:"):  # an sqlite3 URI names a file anywhere
                return False
            real = _realpath(_fsdecode(path))
            return real == _scratch or real.startswith(_scratch + _sep)
        if event in _blocked or event.startswith("socket."):
            raise _Error(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in _modules:
            raise _Error(f"sandbox: importing {args[0]} is not allowed")
        if event == "object.__setattr__" and _str(args[1]) in _fields:
            raise _Error(f"sandbox: setting {args[1]} is not allowed")
        if event == "open":
            path, mode, flags = args
            if path is None or _isinstance(path, _int) or inside(path):
                return
            if (mode is not None and _any(c in _str(mode) for c in "wax+")) or (flags & _flags):
                raise _Error(f"sandbox: writing {path!r} outside the scratch folder")
            if _isdir(path):  # a folder's descriptor would let dir_fd= write outside
                raise _Error(f"sandbox: opening the folder {path!r} outside the scratch folder")
        elif event in _paths:
            for p in args[:2]:
                if p == ":memory:":
                    continue
                if _isinstance(p, (_str, _bytes, _PathLike)) and not inside(p):
                    raise _Error(f"sandbox: {event} on {p!r} outside the scratch folder")
    sys.addaudithook(hook)
_install(int(sys.argv[1]), int(sys.argv[2]))
del _install
_source = sys.stdin.read()
exec(compile(_source, "<program>", "exec"), {"__name__": "__main__"})
'''


@dataclass(frozen=True)
class SandboxResult:
    """What a program did: its output, and why it failed if it did."""

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool = False
    output_capped: bool = False
    guard: str = BOUNDARY

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_capped

    @property
    def error(self) -> str | None:
        if self.timed_out:
            return "timed out"
        if self.output_capped:
            return f"printed more than the output cap ({len(self.stdout)} characters); stopped"
        if self.returncode != 0:
            lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
            return lines[-1][:300] if lines else f"exit code {self.returncode}"
        return None


@dataclass(frozen=True)
class SandboxPolicy:
    """What a recipe allows: `allow_weak_guard` runs code with the audit hook alone where no
    operating-system boundary is available (otherwise such code does not run)."""

    allow_weak_guard: bool = False


def _python() -> tuple[str, str]:
    """The real interpreter (not a venv's symlink) and the folder it lives in."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return executable, os.path.realpath(sys.base_prefix)


@lru_cache(maxsize=1)
def boundary_available() -> bool:
    """Whether bubblewrap is installed and may create its namespaces here (probed once)."""
    if not shutil.which("bwrap"):
        return False
    folder = tempfile.mkdtemp(prefix="s2d-sandbox-probe-")
    try:
        probe = subprocess.run([*_bwrap_command(folder), "-c", "pass"], capture_output=True, timeout=20, check=False)
        return probe.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def require_guard(policy: SandboxPolicy | None = None) -> None:
    """Raise `SandboxUnavailable` unless model-written code may run here under `policy`."""
    if not boundary_available() and not (policy and policy.allow_weak_guard):
        raise SandboxUnavailable(
            "model-written code needs bubblewrap (apt-get install bubblewrap) and permission to create "
            "namespaces, which this machine lacks; set sandbox.allow_weak_guard=true to run it behind the "
            "Python audit hook alone (a guard against mistakes, not against code written to escape)")


def describe_guard(policy: SandboxPolicy | None = None) -> str:
    """Which guard model-written code runs behind on this machine under `policy` (for reports)."""
    if boundary_available():
        return f"{BOUNDARY} (PID, mount, network and IPC namespaces) + audit hook"
    if policy and policy.allow_weak_guard:
        return f"{WEAK} (no operating-system boundary here; the recipe allowed sandbox.allow_weak_guard)"
    return "none: bubblewrap is unavailable here, so model-written code is refused"


def _bwrap_command(scratch: str) -> list[str]:
    python, prefix = _python()
    command = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
               "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            command += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            command += ["--ro-bind", top, top]
    if not prefix.startswith("/usr/"):
        command += ["--ro-bind", prefix, prefix]
    command += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", scratch, "/scratch",
                "--chdir", "/scratch", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0", "--", python, "-I", "-S"]
    return command


@lru_cache(maxsize=1)
def _unshare_net() -> list[str]:
    """`unshare -n` when this process may create a network namespace (the weak guard), else nothing."""
    unshare = shutil.which("unshare")
    try:
        if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=5, check=False).returncode == 0:
            return [unshare, "-n", "--"]
    except (OSError, subprocess.SubprocessError):
        pass
    return []


def run_python(
    code: str,
    *,
    timeout: float = 5.0,
    memory_mb: int = 512,
    max_output: int = 10_000,
    scratch: str | Path | None = None,
    policy: SandboxPolicy | None = None,
    _audit_hook: bool = True,
) -> SandboxResult:
    """Run `code` behind the sandbox; never raises for what the code does.

    Raises `SandboxUnavailable` when no boundary is available and `policy` does not allow the
    weaker guard. `_audit_hook=False` (tests only) runs without the second layer, to show that
    the boundary holds on its own.
    """
    require_guard(policy)
    bounded = boundary_available()
    owns_scratch = scratch is None
    folder = Path(tempfile.mkdtemp(prefix="s2d-sandbox-")) if owns_scratch else Path(scratch)
    folder.mkdir(parents=True, exist_ok=True)
    limits = [str(memory_mb * 1024 * 1024), str(FILE_SIZE_LIMIT)]
    guard = _GUARD if _audit_hook else _GUARD.replace("    sys.addaudithook(hook)\n", "")
    if bounded:
        command = [*_bwrap_command(str(folder)), "-c", guard, *limits]
    else:
        command = [*_unshare_net(), _python()[0], "-I", "-S", "-c", guard, *limits]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        stdout, stderr, timed_out, capped = _communicate(proc, code.encode(), timeout=timeout, cap=max_output)
        decode = lambda b: b.decode("utf-8", errors="replace")
        return SandboxResult(decode(stdout)[:max_output], decode(stderr)[-max_output:],
                             None if timed_out or capped else proc.returncode, timed_out=timed_out,
                             output_capped=capped, guard=BOUNDARY if bounded else WEAK)
    finally:
        if owns_scratch:
            shutil.rmtree(folder, ignore_errors=True)


def _communicate(proc: subprocess.Popen, data: bytes, *, timeout: float, cap: int) -> tuple[bytes, bytes, bool, bool]:
    """Feed `data`, read stdout (at most `cap` bytes past which the program is stopped) and the
    last `cap` bytes of stderr, within `timeout` seconds of wall time for the whole process tree."""
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    timed_out = capped = False
    selector = selectors.DefaultSelector()
    streams = {proc.stdout: out, proc.stderr: err}
    for stream in streams:
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ)
    pending = memoryview(data)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    try:
        while selector.get_map() and not capped:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(remaining):
                if key.fileobj is proc.stdin:
                    try:
                        pending = pending[os.write(proc.stdin.fileno(), pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer = streams[key.fileobj]
                buffer += chunk
                if key.fileobj is proc.stdout and len(buffer) > cap:
                    capped = True
                    break
                if len(buffer) > 2 * cap:  # stderr: keep its tail only
                    del buffer[:-cap]
        if not timed_out and not capped:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        selector.close()
        if proc.poll() is None:
            _kill(proc)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if not stream.closed:
                stream.close()
    return bytes(out), bytes(err), timed_out, capped


def _kill(proc: subprocess.Popen) -> None:
    """Kill the program's process group; under bubblewrap its init dies with it and the kernel
    ends every other process of the PID namespace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
