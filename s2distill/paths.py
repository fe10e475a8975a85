"""Where s2distill keeps things on disk: the user cache and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """The folder for converted models and other one-time work (`S2DISTILL_HOME` overrides it)."""
    root = os.environ.get("S2DISTILL_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "s2distill"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def completion_cache() -> Path:
    """The completion cache every run shares unless its recipe names one: `S2DISTILL_CACHE`, else
    `completions.sqlite` in the cache home."""
    return Path(os.environ.get("S2DISTILL_CACHE") or cache_home() / "completions.sqlite").expanduser()


def data_dir(explicit: str | Path | None = None) -> Path:
    """Find the offline data sets: the recipe's `data_dir`, `S2DISTILL_DATA`, or a `shared/data`
    folder beside or above the working directory (the layout of this project's checkouts)."""
    candidates = [explicit, os.environ.get("S2DISTILL_DATA")]
    here = Path.cwd().resolve()
    for folder in [here, *here.parents]:
        candidates += [folder / "shared" / "data", folder.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "SOURCES.md").exists():
            return Path(candidate)
    raise FileNotFoundError(
        "could not find the data folder (shared/data with SOURCES.md): set data_dir in the recipe "
        "or the S2DISTILL_DATA environment variable"
    )
