"""Each escape a hostile program found in the old sandbox (issue 10) now fails to escape.

Most escapes are tried twice: behind the whole sandbox, and behind the operating-system boundary
alone (`_audit_hook=False`), so the boundary is shown to hold without the audit hook's help. The
weaker guard (no boundary, opted into) is tried where its audit hook is what stops the escape.
"""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from s2distill import sandbox
from s2distill.sandbox import SandboxPolicy, SandboxUnavailable, run_python

pytestmark = pytest.mark.skipif(not sandbox.boundary_available(), reason="bubblewrap cannot run here")
LAYERS = [pytest.param(True, id="boundary+hook"), pytest.param(False, id="boundary-alone")]
WEAK = SandboxPolicy(allow_weak_guard=True)


@pytest.fixture
def weak_only(monkeypatch):
    """This machine as if it had no boundary: only the audit hook (the recipe opted in)."""
    monkeypatch.setattr(sandbox, "boundary_available", lambda: False)


@pytest.mark.parametrize("hook", LAYERS)
def test_parent_environment_is_out_of_sight(monkeypatch, hook):
    monkeypatch.setenv("S2D_TEST_API_KEY", "sk-secret-123")
    code = ("import os, glob\nfor p in [f'/proc/{os.getppid()}/environ', " f"'/proc/{os.getpid()}/environ'"
            "] + glob.glob('/proc/*/environ'):\n"
            "    try: print(open(p, 'rb').read())\n    except Exception as e: print(type(e).__name__)\n"
            "print(dict(os.environ))")
    result = run_python(code, _audit_hook=hook)
    assert "sk-secret-123" not in result.stdout + result.stderr
    assert "S2D_TEST_API_KEY" not in result.stdout


@pytest.mark.parametrize("hook", LAYERS)
def test_no_writes_renames_or_deletes_through_dir_fd(tmp_path, hook):
    (tmp_path / "keep.txt").write_text("keep")
    code = (f"import os\nfd = os.open({str(tmp_path)!r}, os.O_RDONLY)\n"
            "for f in [lambda: os.close(os.open('new.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd)),\n"
            "          lambda: os.rename('keep.txt', 'moved.txt', src_dir_fd=fd, dst_dir_fd=fd),\n"
            "          lambda: os.remove('keep.txt', dir_fd=fd)]:\n"
            "    try: f()\n    except Exception as e: print(type(e).__name__)\n")
    run_python(code, _audit_hook=hook)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    system = "import os\nfd = os.open('/usr', os.O_RDONLY)\nos.close(os.open('s2d-escape', os.O_WRONLY | os.O_CREAT, dir_fd=fd))"
    assert not run_python(system, _audit_hook=hook).ok and not os.path.exists("/usr/s2d-escape")
    assert (tmp_path / "keep.txt").read_text() == "keep"


def test_weak_guard_refuses_folders_outside_scratch_so_no_dir_fd(tmp_path, weak_only):
    code = f"import os\nfd = os.open({str(tmp_path)!r}, os.O_RDONLY)\nos.close(os.open('new.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd))"
    result = run_python(code, policy=WEAK)
    assert not result.ok and "folder" in result.error and result.guard == sandbox.WEAK
    assert not (tmp_path / "new.txt").exists()


def _cache(tmp_path):
    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE completions (key TEXT, text TEXT)")
        db.execute("INSERT INTO completions VALUES ('k', 'what the model said')")
    return path


def _rewrite(path) -> str:
    return (f"import sqlite3\nfor target in [{str(path)!r}, 'file:{path}?mode=rw']:\n"
            "    try:\n        db = sqlite3.connect(target, uri=target.startswith('file:'))\n"
            "        db.execute(\"UPDATE completions SET text = 'forged'\"); db.commit(); print('wrote')\n"
            "    except Exception as e: print(type(e).__name__, e)\n")


@pytest.mark.parametrize("hook", LAYERS)
def test_sqlite3_cannot_open_the_run_cache(tmp_path, hook):
    path = _cache(tmp_path)
    result = run_python(_rewrite(path), _audit_hook=hook)
    assert "wrote" not in result.stdout
    assert sqlite3.connect(path).execute("SELECT text FROM completions").fetchall() == [("what the model said",)]


def test_weak_guard_refuses_sqlite3_outside_scratch(tmp_path, weak_only):
    path = _cache(tmp_path)
    assert "wrote" not in run_python(_rewrite(path), policy=WEAK).stdout
    assert sqlite3.connect(path).execute("SELECT text FROM completions").fetchall() == [("what the model said",)]
    assert run_python("import sqlite3; print(sqlite3.connect(':memory:').execute('select 1').fetchone())", policy=WEAK).ok


@pytest.mark.parametrize("hook", LAYERS)
def test_posixsubprocess_fork_exec_reaches_nothing_outside(tmp_path, hook):
    marker = tmp_path / "ran"
    code = ("import _posixsubprocess, os\n"
            f"args = [b'/usr/bin/touch', {str(marker).encode()!r}]\n"
            "r, w = os.pipe()\n"
            "pid = _posixsubprocess.fork_exec(args, [args[0]], True, (), None, None, -1, -1, -1, -1, -1, -1, r, w,"
            " True, False, -1, None, None, None, -1, None, False)\n"
            "print('exit', os.waitpid(pid, 0)[1])\n")
    result = run_python(code, _audit_hook=hook)
    assert not marker.exists()
    if hook:
        assert not result.ok and "_posixsubprocess" in result.error
    elif "TypeError" not in result.stderr:  # this Python's fork_exec signature: the command ran, inside only
        assert result.stdout.strip() not in ("", "exit 0")
        inside = run_python(code.replace(repr(str(marker).encode()), "b'ran'") + "print(os.path.exists('ran'))", _audit_hook=False)
        assert inside.stdout.split() == ["exit", "0", "True"]


@pytest.mark.parametrize("weak", [False, True], ids=["boundary+hook", "weak-guard"])
def test_clearing_the_guards_globals_does_not_switch_it_off(tmp_path, monkeypatch, weak):
    if weak:
        monkeypatch.setattr(sandbox, "boundary_available", lambda: False)
    target = tmp_path / "escaped.txt"
    code = ("import sys\ng = sys.modules['__main__'].__dict__\nfor k in list(g):\n    if k not in ('__builtins__', '__name__'): del g[k]\n"
            "import builtins; builtins.isinstance = lambda *a: True; builtins.PermissionError = None\n"
            f"open({str(target)!r}, 'w').write('x')\n")
    result = run_python(code, policy=WEAK)
    assert not result.ok and not target.exists()


def test_weak_guard_hook_cannot_be_rewritten(tmp_path, weak_only):
    target = tmp_path / "escaped.txt"
    code = ("import gc\nhook = [f for f in gc.get_objects() if getattr(f, '__name__', '') == 'hook'][0]\n"
            f"hook.__code__ = (lambda *a, **k: None).__code__\nopen({str(target)!r}, 'w').write('x')\n")
    assert not run_python(code, policy=WEAK).ok and not target.exists()
    setter = "f = lambda: 0\nf.__defaults__ = (1,)\n"
    assert "__defaults__" in run_python(setter, policy=WEAK).error


@pytest.mark.parametrize("hook", LAYERS)
def test_a_setsid_child_holding_the_pipe_does_not_stretch_the_time_limit(hook):
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid(); time.sleep(30)\nelse:\n"
            "    print('parent', flush=True); time.sleep(30)\n")
    start = time.monotonic()
    result = run_python(code, timeout=1.0, _audit_hook=hook)
    assert time.monotonic() - start < 8.0 and not result.ok  # not the child's 30 s (slack: a busy CI machine)
    # the parent exits at once: its setsid child dies with the PID namespace, no wait for it
    # (were the pipe held, this would time out at 20 s and not be ok)
    quick = run_python("import os, time\nif os.fork() == 0:\n    os.setsid(); time.sleep(30)\nprint('done')\n",
                       timeout=20.0, _audit_hook=False)
    assert quick.ok and quick.stdout.strip() == "done"


@pytest.mark.parametrize("hook", LAYERS)
def test_printing_a_gigabyte_stops_at_the_output_cap(hook):
    start = time.monotonic()
    result = run_python("import sys\nfor _ in range(1000):\n    sys.stdout.write('x' * 1_000_000)\n",
                        timeout=30.0, max_output=10_000, _audit_hook=hook)
    assert time.monotonic() - start < 15.0  # a tenth of a second here; 26 s before, holding 1 GB
    assert result.output_capped and not result.ok and "output cap" in result.error
    assert len(result.stdout) <= 10_000


@pytest.mark.parametrize("hook", LAYERS)
def test_limits_hold_without_the_hook(hook):
    raise_limit = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nprint('raised')"
    assert "raised" not in run_python(raise_limit, _audit_hook=hook).stdout
    big_file = run_python("open('big.bin', 'wb').write(b'x' * 2_000_000)", _audit_hook=hook)
    assert not big_file.ok
    hog = run_python("x = bytearray(2 * 1024**3)", memory_mb=256, _audit_hook=hook)
    assert not hog.ok and "MemoryError" in hog.error


def test_no_network_even_without_the_hook():
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1); print('connected')\nexcept OSError as e: print('refused', e)\n"
    result = run_python(code, _audit_hook=False)
    assert "connected" not in result.stdout and "refused" in result.stdout


def test_no_view_of_host_files():
    result = run_python("import os\nprint(os.path.exists('/work'), os.path.exists('/etc/passwd'), os.path.exists(os.path.expanduser('~/.cache')))",
                        _audit_hook=False)
    assert result.stdout.split() == ["False", "False", "False"]


def test_without_a_boundary_model_code_does_not_run_unless_allowed(weak_only):
    with pytest.raises(SandboxUnavailable, match="allow_weak_guard"):
        run_python("print(1)")
    result = run_python("print(1)", policy=WEAK)
    assert result.ok and result.guard == sandbox.WEAK
    assert "refused" in sandbox.describe_guard() and "audit hook only" in sandbox.describe_guard(WEAK)
