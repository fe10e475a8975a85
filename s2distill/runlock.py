"""One run at a time in a run folder: an advisory lock (`flock`) on `RUN_DIR/.lock`, holding the
PID of the run that has it.

Two runs started into one `--out` would call the teacher twice and trip over each other's files;
the second now stops at once with an error naming the first's process. The kernel releases the
lock when its holder exits, even on kill -9, so a stale lock never blocks a rerun.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from s2distill.errors import RunFolderError


class FolderLock:
    """The held lock; `release()` gives it back (idempotent)."""

    def __init__(self, fd: int):
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_folder(folder: Path) -> FolderLock:
    """Create `folder` if needed and lock it for this process, or raise `RunFolderError`."""
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--out {folder} is a file, not a folder: pick another --out or remove the file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except (FileExistsError, NotADirectoryError):
        raise RunFolderError(f"--out {folder}: a part of the path is a file, not a folder; pick another --out") from None
    except OSError as exc:
        raise RunFolderError(f"cannot create or write the run folder {folder} ({exc.strerror}): pick a writable "
                             "folder with --out") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunFolderError(f"{folder} is in use by another s2distill run (PID {holder}); wait for it to finish, "
                             "or pick another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return FolderLock(fd)
