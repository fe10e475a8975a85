"""Cost and provenance for report.json: what a run spent, and exactly what it ran on.

Cost: per evaluated system, prompt and generated tokens and wall time per example (from its
per-example records and the evaluation's own clock). The teachers' spend is report/cost.py's.
Provenance: the versions of s2distill (and its git commit when run from a clone), torch,
transformers, TRL and PEFT; the SHA256 of every data file the task reads; the SHA256 of every
trained student's weights.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any


PACKAGES = ("s2distill", "torch", "transformers", "trl", "peft")
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.json", "*.model")  # what loading the weights reads
_SKIPPED = {"training_args.bin"}  # the trainer's settings, not weights


def evaluation_cost(records: list[dict], seconds: float) -> dict[str, Any]:
    """Prompt tokens per example, and the evaluation's wall time per example and throughput."""
    n = len(records)
    prompt = sum(r.get("prompt_tokens") or 0 for r in records)
    return {
        "prompt_tokens_per_example": prompt / n if n else 0.0,
        "seconds": round(seconds, 3),
        "seconds_per_example": round(seconds / n, 6) if n else None,
        "examples_per_second": round(n / seconds, 3) if n and seconds > 0 else None,
    }


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_state(path: Path | None = None) -> dict[str, Any]:
    """The commit of the clone s2distill runs from, and whether its tracked files are modified;
    empty when it is not a git clone (an installed wheel)."""
    root = path.parent if path else Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit, "git_dirty": bool(status.strip())}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_folder(folder: Path) -> str:
    """One digest over the weight files of a folder: their relative names and contents, sorted."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in _WEIGHT_FILES for p in folder.rglob(pattern) if p.is_file() and p.name not in _SKIPPED})
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def weights_hashes(out: Path) -> dict[str, str]:
    """SHA256 of every trained student's weights in the run folder, by path relative to it."""
    return {str(path.relative_to(out)): sha256_folder(path) for path in sorted(out.glob("student/*/stage*/weights")) if path.is_dir()}


def data_hashes(task_config, data_root: Path | None) -> dict[str, str]:
    """SHA256 of every data file the task reads (both splits), by the path the task names it."""
    from s2distill.tasks import build_task
    from s2distill.tasks.data import files_read

    with files_read() as files:
        task = build_task(task_config, data_root=data_root)  # a fresh task: its reads are not cached yet
        for split in ("train", "test"):
            try:
                task.labeled(split)
            except (FileNotFoundError, ValueError, NotImplementedError):
                continue
    return {name: sha256_file(path) for name, path in sorted(files.items())}


def provenance(out: Path, recipe) -> dict[str, Any]:
    data_root = recipe.data_root
    return {
        "versions": versions(), **git_state(),
        "data_files": data_hashes(recipe.task, data_root),
        "weights": weights_hashes(out),
    }
