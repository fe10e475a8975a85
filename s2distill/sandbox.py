"""Run model-written Python behind an operating-system boundary, with limits, and capture its output.

Two layers:

1. **The boundary: bubblewrap** (`bwrap` 0.8 or newer, Debian package `bubblewrap`). The program
   runs in new user, PID, mount, network, IPC, UTS and cgroup namespaces, as the unprivileged user
   65534 (nobody) with no capability, `no_new_privs`, and no way to make a further user namespace:
   never as the host's root. Run by a normal user, bubblewrap maps that uid to the caller's own;
   run by root, a user namespace made for each run maps it to the host's uid 65534 (root's uid 0 is
   mapped there only for bubblewrap to set up the mounts; `setpriv` then drops to 65534 before
   Python starts, and the program's startup code checks that no capability is left). It sees
   only its own processes (no parent's `/proc/<pid>/environ`; PID 1 is bubblewrap's init, whose
   death, when the sandbox is stopped, ends every process of the namespace), a
   read-only `/usr` and Python, a fresh `/proc` whose `/proc/sys` is read-only, a minimal
   read-only `/dev`, no `/sys`, no network, no run folder, no cache, no home; its only writable
   place is its working folder `/scratch`, a tmpfs of `DISK_LIMIT` bytes (16 MiB) that lives and
   dies with the run. Its environment is cleared. When the time limit passes, its output reaches
   the cap, or it creates more than `FILE_COUNT_LIMIT` files, the sandbox is killed and with it
   every process of the namespace (a `setsid` child too).
2. **A Python audit hook** (PEP 578), installed before the code runs: refuses writes, renames and
   deletes outside the scratch folder (also through `dir_fd=`: folders outside cannot be opened),
   symbolic links (a link swapped between the hook's check and the kernel's open would make the
   check a race), sockets, subprocesses (`_posixsubprocess` included), `ctypes`, `sqlite3`
   outside the scratch folder, and the introspection that would reach the hook itself (`gc`,
   rewriting functions). Its state lives in the hook's own default arguments, so clearing the
   guard's globals does not switch it off. The boundary holds without it
   (`tests/test_sandbox_escapes.py` tries every escape with the hook off too).

Limits, in both: wall-clock time on the whole process tree, address space (`memory_mb`), file
size (`FILE_SIZE_LIMIT`, 1 MiB), open files (`OPEN_FILES_LIMIT`), no core files, and output read
through a bounded buffer: the program is stopped as soon as it prints more than `max_output`
characters (nothing beyond the cap is ever held). Behind the boundary also: at most
`PROCESS_LIMIT` processes and threads, `DISK_LIMIT` bytes and `FILE_COUNT_LIMIT` files written.
A program stopped by a limit is a failed program whose `error` names the limit.

Where bubblewrap is missing, too old, or cannot create its namespaces (user namespaces not
allowed), model-written code does not run (`SandboxUnavailable`, naming what is missing) unless
the caller opts into the weaker guard (`allow_weak_guard=True`, a recipe's
`sandbox.allow_weak_guard: true`): the audit hook alone, plus `unshare -n` where permitted, in a
temporary folder on the host's disk, as the calling user. That guards against model mistakes, not
against code written to escape.
"""

from __future__ import annotations

import json
import os
import re
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
SANDBOX_UID = 65534  # nobody: the program's user, never the host's root
FILE_SIZE_LIMIT = 1024 * 1024  # bytes in one file
DISK_LIMIT = 16 * 1024 * 1024  # bytes in the working folder (a tmpfs of this size)
FILE_COUNT_LIMIT = 1024  # files and folders created in the working folder
OPEN_FILES_LIMIT = 64  # file descriptors open at once
PROCESS_LIMIT = 64  # processes and threads of the sandbox's user
WATCH_INTERVAL = 0.025  # seconds between looks at the working folder's file count
MIN_BWRAP = (0, 8, 0)  # --size and --disable-userns

_GUARD = r'''
import sys

def _install(memory, fsize, nofile, nproc, uid):
    import os, resource
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # bubblewrap passes its --userns descriptor on
    if uid >= 0:  # behind bubblewrap: nothing runs unless it is `uid` with no capability left
        with open("/proc/self/status") as status:
            caps = [line.split()[1] for line in status if line.startswith(("CapInh", "CapPrm", "CapEff", "CapAmb"))]
        # a caller's supplementary groups that an unprivileged user namespace cannot drop show up
        # unmapped, as the overflow id (`uid`, 65534): any other group is refused
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or set(os.getgroups()) - {uid} \
                or len(caps) < 3 \
                or any(int(c, 16) for c in caps):
            raise SystemExit("sandbox: not an unprivileged user; nothing ran")
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    if nproc > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    blocked = frozenset({
        "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "subprocess.Popen",
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
        "os.killpg", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.startfile",
        "shutil.copyfile", "shutil.copytree", "shutil.rmtree", "webbrowser.open", "urllib.Request",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.setprofile", "sys.settrace",
        "os.fchdir", "resource.setrlimit", "resource.prlimit", "sys.addaudithook", "os.symlink"})
    modules = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi", "_testinternalcapi"})
    path_events = frozenset({"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.link",
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
_install(*map(int, sys.argv[1:6]))
del _install
_source = sys.stdin.read()
exec(compile(_source, "<program>", "exec"), {"__name__": "__main__"})
'''

_LIMIT_ERRORS = {"files": f"created more than {FILE_COUNT_LIMIT} files in its working folder (the sandbox's limit); stopped"}


@dataclass(frozen=True)
class SandboxResult:
    """What a program did: its output, and why it failed if it did (`limit`: "files" when the
    sandbox stopped it for creating too many)."""

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool = False
    output_capped: bool = False
    guard: str = BOUNDARY
    limit: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_capped and self.limit is None

    @property
    def error(self) -> str | None:
        if self.timed_out:
            return "timed out"
        if self.output_capped:
            return f"printed more than the output cap ({len(self.stdout)} characters); stopped"
        if self.limit is not None:
            return _LIMIT_ERRORS.get(self.limit, f"stopped by the sandbox's {self.limit} limit")
        if self.returncode != 0:
            lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
            last = lines[-1][:300] if lines else f"exit code {self.returncode}"
            if self.guard == BOUNDARY and ("[Errno 28]" in last or "[Errno 27]" in last):  # ENOSPC, EFBIG
                return (f"hit the sandbox's disk limit ({DISK_LIMIT // 2**20} MiB in all, "
                        f"{FILE_SIZE_LIMIT // 2**20} MiB a file): {last}")
            return last
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


def bwrap_version(bwrap: str) -> tuple[int, ...] | None:
    """`bwrap --version` as numbers, e.g. (0, 8, 0); None when it does not say."""
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g or 0) for g in found.groups()) if found else None


USERNS_HINT = ("user namespaces must be allowed: sysctl user.max_user_namespaces above 0, "
               "kernel.unprivileged_userns_clone=1 where that sysctl exists, "
               "kernel.apparmor_restrict_unprivileged_userns=0 (or an AppArmor profile for bwrap) on Ubuntu, "
               "and a container started without a seccomp filter that blocks unshare/clone of a user namespace")


@lru_cache(maxsize=1)
def boundary_problem() -> str | None:
    """Why the bubblewrap boundary cannot run here, or None when it can (probed once, by running
    a program through it and checking it ran as the unprivileged user)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    version = bwrap_version(bwrap)
    if version is None or version < MIN_BWRAP:
        found = ".".join(map(str, version)) if version else "of unknown version"
        return (f"bubblewrap {found} is too old: the sandbox needs {'.'.join(map(str, MIN_BWRAP))} or newer "
                "(--size, --disable-userns)")
    if os.geteuid() == 0 and not (shutil.which("unshare") and shutil.which("setpriv")):
        return ("running as root, the sandbox needs util-linux's unshare and setpriv (to make a user namespace "
                f"and drop to uid {SANDBOX_UID} in it)")
    try:
        result = _run_bounded("import os\nprint(os.getuid(), os.getgid())\n", timeout=20, memory_mb=256,
                              max_output=1000, audit_hook=True)
    except (OSError, subprocess.SubprocessError, SandboxUnavailable) as exc:
        return f"bubblewrap could not start a sandbox: {exc}; {USERNS_HINT}"
    if result.ok and result.stdout.split() == [str(SANDBOX_UID), str(SANDBOX_UID)]:
        return None
    detail = (result.stderr.strip().splitlines() or [result.error or result.stdout.strip() or "no output"])[-1][:300]
    return f"bubblewrap could not start a sandbox as an unprivileged user ({detail}); {USERNS_HINT}"


def boundary_available() -> bool:
    """Whether bubblewrap is installed and may create its namespaces here (probed once)."""
    return boundary_problem() is None


def require_guard(policy: SandboxPolicy | None = None) -> None:
    """Raise `SandboxUnavailable` unless model-written code may run here under `policy`."""
    if not boundary_available() and not (policy and policy.allow_weak_guard):
        raise SandboxUnavailable(
            f"model-written code runs behind bubblewrap, which cannot run here: {boundary_problem() or 'unavailable'}. "
            "Set sandbox.allow_weak_guard=true to run it behind the Python audit hook alone (a guard against "
            "mistakes, not against code written to escape)")


def describe_guard(policy: SandboxPolicy | None = None) -> str:
    """Which guard model-written code runs behind on this machine under `policy` (for reports)."""
    if boundary_available():
        return (f"{BOUNDARY} (user, PID, mount, network and IPC namespaces; uid {SANDBOX_UID}, no capabilities; "
                f"read-only /proc/sys; a {DISK_LIMIT // 2**20} MiB working folder) + audit hook")
    if policy and policy.allow_weak_guard:
        return f"{WEAK} (no operating-system boundary here; the recipe allowed sandbox.allow_weak_guard)"
    return "none: bubblewrap is unavailable here, so model-written code is refused"


def _bwrap_command(*, userns_fd: int | None = None, info_fd: int | None = None) -> list[str]:
    """The bubblewrap command line up to the interpreter. `userns_fd`: run by root, the user
    namespace made for this run (`_root_user_namespace`); None: bubblewrap makes its own."""
    python, prefix = _python()
    command = [shutil.which("bwrap") or "bwrap"]
    if userns_fd is None:  # the caller's uid becomes 65534 inside; no nested user namespace
        command += ["--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                    "--cap-drop", "ALL"]
    else:  # root of the namespace for the setup; setpriv drops to 65534 with these two, then has none
        command += ["--userns", str(userns_fd), "--uid", "0", "--gid", "0",
                    "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    command += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            command += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            command += ["--ro-bind", top, top]
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        parents = Path(prefix).parents
        for parent in reversed([str(p) for p in parents if str(p) != "/"]):  # reachable by 65534 inside
            command += ["--perms", "0755", "--dir", parent]
        command += ["--ro-bind", prefix, prefix]
    command += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys",
                "--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
                "--dev", "/dev", "--perms", "0777", "--size", str(DISK_LIMIT), "--tmpfs", "/scratch",
                "--remount-ro", "/dev", "--remount-ro", "/",
                "--chdir", "/scratch", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0", "--setenv", "TMPDIR", "/scratch",
                "--setenv", "HOME", "/scratch"]
    if info_fd is not None:
        command += ["--info-fd", str(info_fd)]
    command.append("--")
    if userns_fd is not None:  # a change of uid clears the parent-death signal: --pdeathsig keep sets it again
        command += [shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid", str(SANDBOX_UID), "--regid", str(SANDBOX_UID),
                    "--clear-groups", "--inh-caps=-all", "--pdeathsig", "keep", "--"]
    return [*command, python, "-I", "-S"]


def _root_user_namespace() -> int:
    """Run by root: a new user namespace, as a descriptor, that maps uid and gid 0 and 65534 to
    themselves and allows no nested user namespace. bubblewrap sets up the mounts as its root
    (which can read a Python under /root), then setpriv makes the program 65534, the host's nobody."""
    unshare = shutil.which("unshare")
    if not unshare:
        raise SandboxUnavailable("util-linux's unshare is missing")
    # The second shell runs as root of the new namespace (mapped by then), so it may set its limit.
    script = 'echo ready; read go; exec /bin/sh -c "echo 0 > /proc/sys/user/max_user_namespaces && echo done"'
    helper = subprocess.Popen([unshare, "--user", "--", "/bin/sh", "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"})
    fd = None
    try:
        if helper.stdout.readline() != b"ready\n":
            raise SandboxUnavailable(f"unshare --user failed: {helper.stderr.read().decode(errors='replace').strip()[:200]}")
        mapping = f"0 0 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n"
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{helper.pid}/{name}", "w") as f:
                f.write(mapping)
        fd = os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        out, err = helper.communicate(b"go\n", timeout=10)
        if out != b"done\n":
            raise SandboxUnavailable(f"could not forbid nested user namespaces: {err.decode(errors='replace').strip()[:200]}")
        return fd
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    finally:
        if helper.poll() is None:
            helper.kill()
        helper.wait()
        for stream in (helper.stdin, helper.stdout, helper.stderr):
            if not stream.closed:
                stream.close()


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
    policy: SandboxPolicy | None = None,
    _audit_hook: bool = True,
) -> SandboxResult:
    """Run `code` behind the sandbox; never raises for what the code does.

    Raises `SandboxUnavailable` when no boundary is available and `policy` does not allow the
    weaker guard. `_audit_hook=False` (tests only) runs without the second layer, to show that
    the boundary holds on its own.
    """
    require_guard(policy)
    if boundary_available():
        return _run_bounded(code, timeout=timeout, memory_mb=memory_mb, max_output=max_output, audit_hook=_audit_hook)
    return _run_weak(code, timeout=timeout, memory_mb=memory_mb, max_output=max_output, audit_hook=_audit_hook)


def _guard(audit_hook: bool) -> str:
    return _GUARD if audit_hook else _GUARD.replace("    sys.addaudithook(hook)\n", "")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _run_bounded(code: str, *, timeout: float, memory_mb: int, max_output: int, audit_hook: bool) -> SandboxResult:
    """`code` behind bubblewrap, its working folder watched for the file count."""
    limits = [str(memory_mb * 1024 * 1024), str(FILE_SIZE_LIMIT), str(OPEN_FILES_LIMIT), str(PROCESS_LIMIT), str(SANDBOX_UID)]
    userns = _root_user_namespace() if os.geteuid() == 0 else None
    info_read, info_write = os.pipe()
    try:
        command = [*_bwrap_command(userns_fd=userns, info_fd=info_write), "-c", _guard(audit_hook), *limits]
        passed = (info_write,) if userns is None else (info_write, userns)
        proc = subprocess.Popen(command, cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, pass_fds=passed)
    except BaseException:
        os.close(info_read)
        raise
    finally:
        os.close(info_write)
        if userns is not None:
            os.close(userns)
    watch = _ScratchWatch(info_read)
    stdout, stderr, timed_out, capped, limit = _communicate(proc, code.encode(), timeout=timeout, cap=max_output, watch=watch)
    return SandboxResult(_decode(stdout)[:max_output], _decode(stderr)[-max_output:],
                         None if timed_out or capped or limit else proc.returncode, timed_out=timed_out,
                         output_capped=capped, guard=BOUNDARY, limit=limit)


def _run_weak(code: str, *, timeout: float, memory_mb: int, max_output: int, audit_hook: bool) -> SandboxResult:
    """`code` behind the audit hook alone, in a temporary folder on the host (the opted-in weak guard)."""
    folder = Path(tempfile.mkdtemp(prefix="s2d-sandbox-"))
    limits = [str(memory_mb * 1024 * 1024), str(FILE_SIZE_LIMIT), str(OPEN_FILES_LIMIT), "0", "-1"]
    command = [*_unshare_net(), _python()[0], "-I", "-S", "-c", _guard(audit_hook), *limits]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "TMPDIR": str(folder)}
    try:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        stdout, stderr, timed_out, capped, _ = _communicate(proc, code.encode(), timeout=timeout, cap=max_output)
        return SandboxResult(_decode(stdout)[:max_output], _decode(stderr)[-max_output:],
                             None if timed_out or capped else proc.returncode, timed_out=timed_out,
                             output_capped=capped, guard=WEAK)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _ScratchWatch:
    """The sandbox's working folder seen from outside (`/proc/<pid>/root/scratch`, the pid from
    bubblewrap's `--info-fd`): `check()` says "files" once it holds more than `FILE_COUNT_LIMIT`
    (a tmpfs's size bounds its bytes, not its files: 200,000 empty files fit in 16 MiB)."""

    def __init__(self, info_fd: int):
        self.info_fd = info_fd
        self._info = bytearray()
        self.pid: int | None = None

    def feed(self, chunk: bytes) -> None:
        """Bytes read from the info pipe (b"" at its end): the pid once the JSON object is whole."""
        if len(self._info) < 4096:
            self._info += chunk
        if self.pid is None and self._info.rstrip().endswith(b"}"):
            try:
                pid = json.loads(self._info.decode()).get("child-pid")
            except (ValueError, UnicodeDecodeError, AttributeError):
                return
            self.pid = pid if isinstance(pid, int) and pid > 0 else None

    def check(self) -> str | None:
        if self.pid is None:
            return None
        try:
            st = os.statvfs(f"/proc/{self.pid}/root/scratch")
        except OSError:  # not set up yet, or gone
            return None
        if st.f_blocks * st.f_frsize != DISK_LIMIT:  # not (yet) the sandbox's tmpfs
            return None
        if st.f_files - st.f_ffree > FILE_COUNT_LIMIT + 2:  # a fresh tmpfs counts 2 in use
            return "files"
        return None  # bytes need no look: the tmpfs refuses them (ENOSPC), and the error says so


def _communicate(proc: subprocess.Popen, data: bytes, *, timeout: float, cap: int,
                 watch: _ScratchWatch | None = None) -> tuple[bytes, bytes, bool, bool, str | None]:
    """Feed `data`, read stdout (at most `cap` bytes past which the program is stopped) and the
    last `cap` bytes of stderr, within `timeout` seconds of wall time for the whole process tree;
    every `WATCH_INTERVAL` seconds ask `watch` whether the program passed a disk limit (then it is
    stopped, and the limit comes back last)."""
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    timed_out = capped = False
    limit = None
    selector = selectors.DefaultSelector()
    streams = {proc.stdout: out, proc.stderr: err}
    for stream in streams:
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ)
    if watch is not None:
        selector.register(watch.info_fd, selectors.EVENT_READ)
    pending = memoryview(data)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    next_look = time.monotonic() + WATCH_INTERVAL

    def outputs_open() -> bool:
        return any(key.fileobj in streams or key.fileobj is proc.stdin for key in selector.get_map().values())

    try:
        while outputs_open() and not capped and limit is None:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                timed_out = True
                break
            if watch is not None and now >= next_look:
                limit = watch.check()
                next_look = now + WATCH_INTERVAL
                if limit is not None:
                    break
            wait = min(remaining, max(0.0, next_look - now)) if watch is not None else remaining
            for key, _ in selector.select(wait):
                if key.fileobj is proc.stdin:
                    try:
                        pending = pending[os.write(proc.stdin.fileno(), pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                if watch is not None and key.fileobj == watch.info_fd:
                    chunk = os.read(watch.info_fd, 4096)
                    watch.feed(chunk)
                    if not chunk:
                        selector.unregister(watch.info_fd)
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
        while not timed_out and not capped and limit is None:
            try:
                proc.wait(max(0.0, min(deadline - time.monotonic(), WATCH_INTERVAL if watch else 1e9)))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    timed_out = True
                elif watch is not None:
                    limit = watch.check()
    finally:
        selector.close()
        if proc.poll() is None:
            _kill(proc)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if not stream.closed:
                stream.close()
        if watch is not None:
            os.close(watch.info_fd)
    return bytes(out), bytes(err), timed_out, capped, limit


def _kill(proc: subprocess.Popen) -> None:
    """Kill the program's process group; under bubblewrap its init dies with it and the kernel
    ends every other process of the PID namespace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
