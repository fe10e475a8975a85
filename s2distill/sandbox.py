"""Run model-written Python in a separate process with limits, and capture what it prints.

Guards, in layers:
- a fresh interpreter (`python -I`) in an empty scratch folder, with a clean environment;
- a wall-clock time limit (the process group is killed), an address-space limit, a cap on file
  size and on output size;
- an audit hook (PEP 578) installed before the code runs that refuses writes, renames and deletes
  outside the scratch folder, sockets, subprocesses, `os.system`/`exec`/`fork`, and `ctypes`;
- where the process may (root, or unprivileged user namespaces), a new network namespace with no
  interfaces, so even a bypass of the hook reaches no network.

This stops model mistakes and accidents (a program that loops, eats memory, deletes files, or
reaches for the network). It is not a security boundary against code written to escape it: run
untrusted code from unknown sources in a container or VM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_GUARD = r'''
import os, resource, sys
_memory, _fsize = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (_memory, _memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (_fsize, _fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
_scratch = os.path.realpath(os.getcwd())
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_BLOCKED = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "subprocess.Popen",
            "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
            "os.killpg", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.startfile",
            "shutil.copyfile", "shutil.copytree", "shutil.rmtree", "webbrowser.open", "urllib.Request"}
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.truncate",
                "os.chmod", "os.chown", "os.utime", "os.listxattr", "os.setxattr", "os.removexattr"}
def _inside(path):
    if isinstance(path, int):
        return True
    real = os.path.realpath(os.fsdecode(path))
    return real == _scratch or real.startswith(_scratch + os.sep)
def _hook(event, args):
    if event in _BLOCKED or event.startswith("socket."):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "import" and args[0] in ("ctypes", "_ctypes"):
        raise PermissionError("sandbox: ctypes is not allowed")
    if event == "open":
        path, mode, flags = args
        writes = (mode is not None and any(c in str(mode) for c in "wax+")) or (flags & _WRITE_FLAGS)
        if path is not None and writes and not _inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the scratch folder")
    elif event in _PATH_EVENTS:
        for p in args[:2]:
            if isinstance(p, (str, bytes, os.PathLike)) and not _inside(p):
                raise PermissionError(f"sandbox: {event} on {p!r} outside the scratch folder")
sys.addaudithook(_hook)
del _hook
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

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def error(self) -> str | None:
        if self.timed_out:
            return "timed out"
        if self.returncode != 0:
            lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
            return lines[-1][:300] if lines else f"exit code {self.returncode}"
        return None


def _network_isolation() -> list[str]:
    """`unshare -n` when this process may create a network namespace, else nothing."""
    unshare = shutil.which("unshare")
    if unshare and _can_unshare_net(unshare):
        return [unshare, "-n", "--"]
    return []


_UNSHARE_OK: bool | None = None


def _can_unshare_net(unshare: str) -> bool:
    global _UNSHARE_OK
    if _UNSHARE_OK is None:
        try:
            _UNSHARE_OK = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=5).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _UNSHARE_OK = False
    return _UNSHARE_OK


def run_python(
    code: str,
    *,
    timeout: float = 5.0,
    memory_mb: int = 512,
    max_output: int = 10_000,
    scratch: str | Path | None = None,
) -> SandboxResult:
    """Run `code` in a separate, limited Python process; never raises for what the code does."""

    owns_scratch = scratch is None
    folder = Path(tempfile.mkdtemp(prefix="s2d-sandbox-")) if owns_scratch else Path(scratch)
    folder.mkdir(parents=True, exist_ok=True)
    # Limits are set by the guard inside the child: preexec_fn is unsafe in a threaded parent.
    limits = [str(memory_mb * 1024 * 1024), str(1024 * 1024)]
    command = [*_network_isolation(), sys.executable, "-I", "-S", "-c", _GUARD, *limits]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.Popen(
            command, cwd=folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, text=True, errors="replace",
        )
        try:
            stdout, stderr = proc.communicate(code, timeout=timeout)
            return SandboxResult(stdout[:max_output], stderr[-max_output:], proc.returncode)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            return SandboxResult(stdout[:max_output], stderr[-max_output:], None, timed_out=True)
    finally:
        if owns_scratch:
            shutil.rmtree(folder, ignore_errors=True)
