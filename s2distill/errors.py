"""Errors a user can act on: the command line prints each as one line naming the file, field or
folder and what to do, never as a traceback."""

from __future__ import annotations

import errno


class S2DistillError(Exception):
    """A problem with the run's inputs, folder or machine that the message tells how to fix."""


class DataError(S2DistillError, ValueError):
    """A data file that is missing, damaged or changed, or a user's file that cannot be read as the
    recipe describes it (the message names the file, the row and the field)."""


class RunFolderError(S2DistillError):
    """The run folder (or its completion cache) cannot be used as it is."""


class BackendError(S2DistillError, RuntimeError):
    """A model server could not be used: unreachable, or failing after every retry."""


class SandboxUnavailable(S2DistillError, RuntimeError):
    """No operating-system boundary on this machine, and the weaker guard was not allowed."""


class TrainingError(S2DistillError):
    """Training cannot run on these pairs and settings, or produced a non-finite model."""


class TrainingLaunchError(TrainingError):
    """Training launched in several processes (`accelerate launch`) failed outside s2distill's own
    checks: the message carries the end of the launcher's error output."""


def explain_os_error(exc: OSError) -> str:
    """One line for a failure of the file system: what happened to which file, and what to do."""
    name = exc.filename or "a file"
    if exc.errno == errno.ENOSPC:
        return f"the disk is full while writing {name}: free some space and run the same command again (finished stages are kept)"
    if exc.errno == errno.EDQUOT:
        return f"the disk quota is exhausted while writing {name}: free some space and run again"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {name} ({exc.strerror}): pick a writable folder with --out"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and name:
        return f"{name} is a file where a folder is needed: pick another --out or remove the file"
    return f"{name}: {exc.strerror or exc}"
