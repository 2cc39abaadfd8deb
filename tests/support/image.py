"""The controller image as ``make image`` builds it (``hack/image/build.py``), for the image tier
and the e2e test that runs it as the addon installs it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import REPO

BUILD = REPO / "hack/image/build.py"


@dataclasses.dataclass(frozen=True)
class Built:
    out: Path
    report: dict[str, Any]

    @property
    def layout(self) -> Path:
        return self.out / "oci"

    def blob(self, digest: str) -> Path:
        algorithm, hexdigest = digest.split(":", 1)
        return self.layout / "blobs" / algorithm / hexdigest

    def json_blob(self, digest: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.blob(digest).read_bytes())
        return data

    @property
    def manifest(self) -> dict[str, Any]:
        return self.json_blob(self.report["digest"])

    @property
    def config(self) -> dict[str, Any]:
        return self.json_blob(self.manifest["config"]["digest"])

    def run(self, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the image's entrypoint (``args`` appended) or ``entrypoint`` in the sandbox."""
        argv = [sys.executable, str(BUILD), "run", "--out", str(self.out)]
        if entrypoint:
            argv += ["--entrypoint", entrypoint]
        return subprocess.run(
            [*argv, "--", *args], capture_output=True, text=True, timeout=300, check=False
        )


def build_image(out: Path) -> Built:
    done = subprocess.run(
        [sys.executable, str(BUILD), "build", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"hack/image/build.py build failed:\n{done.stderr[-4000:]}", pytrace=False)
    return Built(out, json.loads((out / "build.json").read_text()))
