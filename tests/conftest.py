"""Shared fixtures: a private cache home per test session, and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory):
    """Tests build the tiny model into a throwaway cache, never the user's (the embedded model
    conversion is reused from the real cache by the slow tests, which set nothing)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("S2DISTILL_HOME", str(tmp_path_factory.mktemp("s2d-home")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _private_completion_cache(tmp_path, monkeypatch):
    """Each test its own completion cache (runs share the user cache by default), so counts of
    model calls are the test's own."""
    monkeypatch.setenv("S2DISTILL_CACHE", str(tmp_path / "completions.sqlite"))


@pytest.fixture
def recipes_dir() -> Path:
    return ROOT / "recipes"
