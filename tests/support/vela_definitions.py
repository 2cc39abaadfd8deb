"""KubeVela's built-in definitions as plain YAML files, for offline `vela dry-run -d DIR`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORLD = REPO / "hack" / "cluster" / "world.py"

# `vela dry-run --offline` adds its own copy of these and panics on a duplicate
# ("workflowstepdefinitions.core.oam.dev "deploy" already exists"; references/cli/dryrun.go).
ADDED_BY_DRY_RUN = ("deploy.yaml",)


def render_builtin_definitions(out: Path, *, for_offline_dry_run: bool = True) -> Path:
    """Render KubeVela's built-in definitions (from the module zip) into ``out/definitions``.

    Needs no cluster (``world.py render-definitions``). With ``for_offline_dry_run`` the files
    that ``vela dry-run --offline`` brings itself are left out. Returns the directory.
    """
    done = subprocess.run(
        [sys.executable, str(WORLD), "render-definitions", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"world.py render-definitions failed:\n{done.stderr}")
    definitions = out / "definitions"
    if for_offline_dry_run:
        for name in ADDED_BY_DRY_RUN:
            (definitions / name).unlink()
    return definitions
