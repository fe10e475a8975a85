"""Model-written code runs limited: no writes outside scratch, no network, no subprocesses, bounded."""

from __future__ import annotations

from s2distill.sandbox import run_python


def test_prints_are_captured():
    result = run_python("print(sum(range(5)))")
    assert result.ok and result.stdout == "10\n"


def test_cannot_write_outside_its_scratch_folder(tmp_path):
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')")
    assert not result.ok and "outside the scratch folder" in result.error
    assert not target.exists()


def test_cannot_delete_or_rename_outside_its_scratch_folder(tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("keep")
    for code in [f"import os; os.remove({str(victim)!r})", f"import os; os.rename({str(victim)!r}, 'x')",
                 f"import shutil; shutil.rmtree({str(tmp_path)!r})"]:
        assert not run_python(code).ok
    assert victim.read_text() == "keep"


def test_can_write_inside_its_scratch_folder():
    result = run_python("open('notes.txt', 'w').write('hi'); print(open('notes.txt').read())")
    assert result.ok and result.stdout.strip() == "hi"


def test_no_network_no_subprocess_no_ctypes(tmp_path):
    assert "not allowed" in run_python("import socket; socket.create_connection(('127.0.0.1', 9))").error
    marker = tmp_path / "ran"
    assert not run_python(f"import os; os.system('touch {marker}')").ok
    assert not run_python(f"import subprocess; subprocess.run(['touch', '{marker}'])").ok
    assert not marker.exists()
    assert "ctypes" in run_python("import ctypes").error


def test_time_and_memory_limits():
    hang = run_python("while True: pass", timeout=1.0)
    assert hang.timed_out and hang.error == "timed out"
    hog = run_python("x = bytearray(4 * 1024**3)", memory_mb=256)
    assert not hog.ok and "MemoryError" in hog.error


def test_a_crashing_program_reports_its_last_error_line():
    result = run_python("1/0")
    assert not result.ok and "ZeroDivisionError" in result.error
