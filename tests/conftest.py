"""Fixtures and helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
#: The SigmaHQ corpus (DRL license: read in place, never copied into this repository).
CORPUS = SHARED / "corpora" / "sigmahq"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"needs the SigmaHQ corpus at {CORPUS}")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's ~/.cache (ATT&CK data cache)."""
    monkeypatch.setenv("CATALOG_CACHE_DIR", str(tmp_path / "cache"))


def git(repo: Path, *args: str, date: str = "2026-01-01T00:00:00Z") -> str:
    """Run git in `repo` as a fixed author at a fixed time (commits are reproducible)."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org",
        "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
    }
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout
