"""Golden files: compare rendered text with a committed file; UPDATE_GOLDENS=1 rewrites it."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest


def assert_matches_golden(actual: str, golden: Path) -> None:
    """Fail with a diff when ``actual`` differs from ``golden`` (rewrite with UPDATE_GOLDENS=1)."""
    if os.environ.get("UPDATE_GOLDENS") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    if not golden.exists():
        pytest.fail(f"golden file {golden} is missing; create it with UPDATE_GOLDENS=1", False)
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(golden),
                tofile="actual",
            )
        )
        pytest.fail(f"output differs from {golden} (UPDATE_GOLDENS=1 accepts it):\n{diff}", False)
