"""The boundary of issue 32: model-written code never reaches the host's root, and cannot fill the disk.

An attacker's PAL program found two holes in series: a thread swapping a symlink between the audit
hook's check and the kernel's open passed a path outside the sandbox (3 to 924 tries), and
`/proc/sys` was writable by a uid 0 that was the host's root, so `kernel.core_pattern` (a program
the kernel runs as root on every crash) was in reach. Each test runs behind the whole sandbox and
behind bubblewrap alone (`_audit_hook=False`): the boundary must hold without the hook.

Safety, for a sandbox that fails one day: a test that tries `/proc/sys` writes back exactly the
value it read (never another); the race aims at `/proc/sys/vm/overcommit_ratio` (written back
unchanged) and at a file the test made in its own temporary folder; every loop is bounded in tries
and seconds, and the disk tests write into a tmpfs that vanishes with the sandbox.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time

import pytest

from s2distill import sandbox
from s2distill.errors import SandboxUnavailable
from s2distill.sandbox import SandboxPolicy, run_python

pytestmark = pytest.mark.skipif(not sandbox.boundary_available(), reason="bubblewrap cannot run here")
LAYERS = [pytest.param(True, id="boundary+hook"), pytest.param(False, id="boundary-alone")]
GUARD_MARK = "sys.argv[1:6]"  # in the command line of every sandboxed interpreter
REFUSED = {errno.EROFS, errno.EACCES, errno.EPERM}
SYSCTLS = ["/proc/sys/kernel/core_pattern", "/proc/sys/vm/overcommit_ratio"]


def sandboxed_processes() -> dict[int, str]:
    """Every running sandboxed interpreter on this machine (not bubblewrap, whose arguments hold
    the guard too): pid -> its `Uid:` line seen from the host."""
    found = {}
    python = sandbox._python()[0].encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if argv[0] != python or not any(GUARD_MARK.encode() in arg for arg in argv):
                continue
            with open(f"/proc/{name}/status") as f:
                status = f.read()
        except OSError:
            continue
        if "\nState:\tZ" not in status:  # a zombie is dead, only not reaped yet
            found[int(name)] = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return found


def wait_until_none_left(seconds: float = 5.0) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    while (left := sandboxed_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def expected_host_uid() -> int:
    return sandbox.SANDBOX_UID if os.geteuid() == 0 else os.geteuid()


@pytest.mark.parametrize("hook", LAYERS)
def test_the_program_is_an_unprivileged_user_never_the_hosts_root(hook):
    code = ("import os, time\nprint(os.getresuid(), os.getresgid(), os.getgroups())\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapPrm', 'CapEff', 'CapAmb'))])\n"
            "print(open('/proc/self/status').read().count('NoNewPrivs:\\t1'))\n"
            "import sys; sys.stdout.flush(); time.sleep(1.5)\n")
    seen: dict[int, str] = {}

    def look():
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            seen.update(sandboxed_processes())
            time.sleep(0.05)

    import threading

    watcher = threading.Thread(target=look)
    watcher.start()
    result = run_python(code, timeout=10, _audit_hook=hook)
    watcher.join()
    lines = result.stdout.splitlines()
    assert lines[0] == "(65534, 65534, 65534) (65534, 65534, 65534) []", result.stderr
    assert lines[1] == "['0000000000000000', '0000000000000000', '0000000000000000']" and lines[2] == "1"
    # Seen from the host: the interpreter's real, effective, saved and file-system uids are 65534
    # (run by root) or the caller's own, never 0.
    assert seen, "the sandboxed interpreter was not seen running"
    host = str(expected_host_uid())
    for pid, uid_line in seen.items():
        assert uid_line.split()[1:] == [host] * 4, (pid, uid_line)


@pytest.mark.parametrize("hook", LAYERS)
def test_proc_sys_cannot_be_written_even_with_the_value_it_holds(hook):
    before = {path: open(path).read() for path in SYSCTLS}
    code = ("import os\nfor path in " + repr(SYSCTLS) + ":\n"
            "    value = open(path).read()\n"
            "    try:\n"
            "        with open(path, 'r+') as f:\n"
            "            f.write(value)  # the same value back: harmless were it to succeed\n"
            "        print('WROTE', path)\n"
            "    except OSError as e:\n"
            "        print('refused', path, e.errno)\n"
            "    try:\n"
            "        fd = os.open(path, os.O_WRONLY)\n"
            "        os.write(fd, value.encode()); os.close(fd); print('WROTE', path)\n"
            "    except OSError as e:\n"
            "        print('refused', path, e.errno)\n")
    result = run_python(code, _audit_hook=hook)
    assert "WROTE" not in result.stdout
    refusals = [line.split() for line in result.stdout.splitlines()]
    assert [r[1] for r in refusals] == [p for p in SYSCTLS for _ in range(2)], result.stdout + result.stderr
    if not hook:  # the kernel refused, not the hook (which raises PermissionError without an errno)
        assert all(int(r[2]) in REFUSED for r in refusals), refusals
    assert {path: open(path).read() for path in SYSCTLS} == before


@pytest.mark.parametrize("hook", LAYERS)
def test_only_the_working_folder_is_writable_and_there_is_no_sys(hook):
    code = ("import os\nfor path in ['/x', '/usr/x', '/dev/x', '/proc/x', '/tmp/x', '/scratch/x']:\n"
            "    try:\n        fd = os.open(path, os.O_WRONLY | os.O_CREAT); os.close(fd); print('wrote', path)\n"
            "    except OSError as e:\n        print('refused', path)\n"
            "print(os.path.exists('/sys'), os.getcwd(), os.environ.get('TMPDIR'))\n")
    result = run_python(code, _audit_hook=hook)
    assert result.stdout.splitlines() == ["refused /x", "refused /usr/x", "refused /dev/x", "refused /proc/x",
                                          "refused /tmp/x", "wrote /scratch/x", "False /scratch /scratch"]


def test_no_nested_user_namespace_and_no_way_back_to_uid_0():
    code = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"
            "print('setuid', libc.setuid(0), ctypes.get_errno())\n"
            "print(os.getuid())\n")
    result = run_python(code, _audit_hook=False)  # ctypes is the hook's to refuse: here it is the boundary's
    lines = result.stdout.splitlines()
    assert lines[0].split()[1] == "-1" and int(lines[0].split()[2]) in (errno.ENOSPC, errno.EPERM, errno.EINVAL), lines
    assert lines[1].split()[1] == "-1" and int(lines[1].split()[2]) == errno.EPERM
    assert lines[2] == "65534"


RACE = r'''
import errno, os, threading, time
targets = TARGETS
values = {}
for t in targets:
    try:
        values[t] = open(t).read()  # what a write would put back: the same value
    except OSError:
        pass
os.makedirs("a/b/c"); os.makedirs("din"); os.makedirs("dout")
open("inside.txt", "w").write("inside\n")
scratch = os.getcwd()
scratch_dev = os.stat(".").st_dev
os.chdir("a/b/c")  # from here "../../<target>" reads as a path inside the working folder (the hook's view)
made = 0
for i, t in enumerate(targets):
    try:
        os.symlink("../.." + t, f"{scratch}/dout/link{i}")  # from dout/, ../.. is the root: outside
        os.symlink("../inside.txt", f"{scratch}/din/link{i}")
        made += 1
    except OSError as e:
        print("symlink refused:", e)
os.chdir(scratch)
os.rename("din", "d")
stop = False
swaps = 0
def swap():  # d/ is din/ (links inside), then dout/ (links outside), and back
    global swaps
    while not stop:
        os.rename("d", "din"); os.rename("dout", "d")
        os.rename("d", "dout"); os.rename("din", "d")
        swaps += 1
if made:
    threading.Thread(target=swap, daemon=True).start()
tries = escaped = kernel_refused = 0
start = time.monotonic()
while made and tries < MAX_TRIES and time.monotonic() - start < SECONDS and not escaped:
    for i, t in enumerate(targets):
        tries += 1
        try:
            f = open(f"d/link{i}", "r+")  # read and write, no truncation
        except OSError as e:
            kernel_refused += e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
            continue
        with f:
            if os.fstat(f.fileno()).st_dev != scratch_dev:
                escaped += 1
                print("ESCAPED", t, "after", tries, "tries")
                if t in values:
                    f.write(values[t])  # the same value back
stop = True
print("tries", tries, "escaped", escaped, "kernel_refused", kernel_refused, "swaps", swaps)
'''


@pytest.mark.parametrize("guard", ["boundary+hook", "boundary-alone", "weak-guard"])
def test_a_symlink_swapped_under_the_hook_reaches_nothing_outside(tmp_path, monkeypatch, guard):
    """The attack of issue 32, bounded (20,000 tries, 3 s): against the old sandbox it wrote to
    /proc/sys/vm/overcommit_ratio within 3 to 6 tries, hook or no hook."""
    target = tmp_path / "target.txt"
    target.write_text("the host's file\n")
    ratio = open("/proc/sys/vm/overcommit_ratio").read()
    policy = None
    if guard == "weak-guard":  # no boundary: the hook must refuse the symlinks themselves
        monkeypatch.setattr(sandbox, "boundary_available", lambda: False)
        policy = SandboxPolicy(allow_weak_guard=True)
    code = (RACE.replace("TARGETS", repr(["/proc/sys/vm/overcommit_ratio", str(target)]))
            .replace("MAX_TRIES", "20000").replace("SECONDS", "3.0"))
    start = time.monotonic()
    result = run_python(code, timeout=15, policy=policy, _audit_hook=guard != "boundary-alone")
    assert time.monotonic() - start < 12
    assert "ESCAPED" not in result.stdout, result.stdout
    assert target.read_text() == "the host's file\n"
    assert open("/proc/sys/vm/overcommit_ratio").read() == ratio
    last = result.stdout.split()
    if guard == "boundary-alone":  # the race ran, and the kernel refused the outside file
        counts = dict(zip(last[-8::2], map(int, last[-7::2])))
        assert counts["tries"] > 0 and counts["escaped"] == 0, result.stdout + result.stderr
    else:
        assert "symlink refused: sandbox: os.symlink is not allowed" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("hook", LAYERS)
def test_a_gigabyte_written_stops_at_the_disk_limit_quickly(hook):
    before = set(os.listdir(tempfile.gettempdir()))
    many_files = ("for n in range(1024):\n    with open(f'chunk{n}', 'wb') as f:\n        f.write(b'x' * 1048576)\n"
                  "print('wrote a gigabyte')\n")
    one_file = ("with open('big', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 1048576)\n"
                "print('wrote a gigabyte')\n")
    for code, errno_name in [(many_files, "[Errno 28]"), (one_file, "[Errno 27]")]:
        start = time.monotonic()
        result = run_python(code, timeout=20, _audit_hook=hook)
        assert time.monotonic() - start < 5  # 2 s and a gigabyte on the host's disk before
        assert not result.ok and "wrote" not in result.stdout
        assert "the sandbox's disk limit" in result.error and errno_name in result.error, result.error
    assert set(os.listdir(tempfile.gettempdir())) <= before  # nothing was written on the host's disk


@pytest.mark.parametrize("hook", LAYERS)
def test_twenty_thousand_files_stop_at_the_file_count_limit_quickly(hook):
    code = ("import sys\nfor n in range(20000):\n    open(f'f{n}', 'w').close()\n"
            "    if n % 100 == 0:\n        print(n, flush=True)\nprint('done')\n")
    start = time.monotonic()
    result = run_python(code, timeout=20, _audit_hook=hook)
    assert time.monotonic() - start < 5  # 3 s and 20,000 files on the host's disk before
    assert result.limit == "files" and not result.ok and "done" not in result.stdout
    assert f"more than {sandbox.FILE_COUNT_LIMIT} files" in result.error
    assert int(result.stdout.split()[-1]) < 10 * sandbox.FILE_COUNT_LIMIT  # stopped soon after the limit
    assert run_python("for n in range(200):\n    open(f'f{n}', 'w').close()\nprint('ok')", _audit_hook=hook).ok


def test_processes_and_open_files_are_limited_and_none_outlives_the_run():
    code = ("import os, time\nn = 0\ntry:\n    while n < 5000:\n        if os.fork() == 0:\n"
            "            time.sleep(30); os._exit(0)\n        n += 1\n"
            "except OSError as e:\n    print('forks', n, e.errno)\n"
            "fds = []\ntry:\n    while len(fds) < 5000:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as e:\n    print('files', len(fds), e.errno)\n")
    result = run_python(code, timeout=10, _audit_hook=False)  # the hook refuses fork: here the limit holds
    forks, files = (line.split() for line in result.stdout.splitlines())
    assert int(forks[1]) < sandbox.PROCESS_LIMIT and int(forks[2]) == errno.EAGAIN, result.stdout + result.stderr
    assert int(files[1]) < sandbox.OPEN_FILES_LIMIT and int(files[2]) == errno.EMFILE
    assert not wait_until_none_left(), "a forked child outlived the sandbox"


@pytest.mark.parametrize("hook", LAYERS)
def test_a_program_stopped_at_its_time_limit_leaves_no_process(hook):
    result = run_python("while True:\n    pass\n", timeout=1.0, _audit_hook=hook)
    assert result.timed_out
    assert not wait_until_none_left(), "the program outlived its time limit"


def test_the_bubblewrap_command_binds_nothing_of_the_host_writable():
    for command in (sandbox._bwrap_command(), sandbox._bwrap_command(userns_fd=9)):
        joined = " ".join(command)
        writable_binds = [arg for arg in command if arg in ("--bind", "--bind-try", "--dev-bind", "--dev-bind-try", "--bind-fd")]
        assert not writable_binds and "/sys" not in command
        assert "--proc /proc --ro-bind /proc/sys /proc/sys" in joined
        assert f"--size {sandbox.DISK_LIMIT} --tmpfs /scratch" in joined and "--remount-ro /" in joined
        assert "--unshare-pid --unshare-net --unshare-ipc" in joined and "--cap-drop ALL" in joined
        assert "--die-with-parent --new-session" in joined
    normal = " ".join(sandbox._bwrap_command())
    assert "--unshare-user --disable-userns --uid 65534 --gid 65534" in normal and "setpriv" not in normal
    root = sandbox._bwrap_command(userns_fd=9)
    assert "--userns 9" in " ".join(root)
    setpriv = root.index("--", root.index("--userns")) + 1
    assert root[setpriv].endswith("setpriv")
    assert root[setpriv + 1:setpriv + 5] == ["--reuid", "65534", "--regid", "65534"]


@pytest.fixture
def fresh_probe():
    sandbox.boundary_problem.cache_clear()
    yield
    sandbox.boundary_problem.cache_clear()


def test_without_user_namespaces_or_a_recent_bubblewrap_it_fails_closed_naming_what_is_missing(monkeypatch, fresh_probe):
    which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None if name == "bwrap" else which(name))
    assert "bubblewrap is not installed" in sandbox.boundary_problem()
    with pytest.raises(SandboxUnavailable, match="not installed.*allow_weak_guard"):
        run_python("print(1)")
    monkeypatch.setattr(sandbox.shutil, "which", which)

    sandbox.boundary_problem.cache_clear()
    monkeypatch.setattr(sandbox, "bwrap_version", lambda bwrap: (0, 6, 2))
    assert "bubblewrap 0.6.2 is too old: the sandbox needs 0.8.0 or newer" in sandbox.boundary_problem()

    sandbox.boundary_problem.cache_clear()
    monkeypatch.setattr(sandbox, "bwrap_version", lambda bwrap: (0, 8, 0))
    denied = sandbox.SandboxResult("", "bwrap: No permissions to creating new namespace, likely because the kernel "
                                   "does not allow non-privileged user namespaces.", 1)
    monkeypatch.setattr(sandbox, "_run_bounded", lambda *a, **k: denied)
    problem = sandbox.boundary_problem()
    assert "No permissions to creating new namespace" in problem and "user namespaces must be allowed" in problem
    with pytest.raises(SandboxUnavailable, match="user namespaces must be allowed"):
        run_python("print(1)")
    weak = run_python("print(1)", policy=SandboxPolicy(allow_weak_guard=True))  # the documented opt-out
    assert weak.ok and weak.guard == sandbox.WEAK
