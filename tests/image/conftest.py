"""Image tier: ``hack/image/build.py`` builds the controller image; the tests read what it wrote.

The checks read the OCI layout and the layer themselves (JSON and tar, not the build's code), and
run the image's files only through ``build.py run`` (a bubblewrap sandbox, uid 65532, read-only
root). A build that cannot run (a tool missing as non-root, no user namespaces, the Debian
archive gone) makes every test here FAIL with the build's message: the tier never skips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_image(tmp_path_factory.mktemp("image"))


@dataclasses.dataclass(frozen=True)
class Layer:
    """Every entry of the image's (single) layer by path (no leading ``./`` or ``/``), and the
    SHA-256 of every regular file's content."""

    members: dict[str, tarfile.TarInfo]
    sha256: dict[str, str]


@pytest.fixture(scope="session")
def layer(image: Built) -> Layer:
    layers = image.manifest["layers"]
    assert len(layers) == 1, layers
    members, digests = {}, {}
    with tarfile.open(image.blob(layers[0]["digest"]), "r|gz") as tar:
        for member in tar:
            name = member.name.removeprefix("./").removeprefix("/") or "."
            members[name] = member
            if member.isfile():
                content = tar.extractfile(member)
                assert content is not None
                digests[name] = hashlib.file_digest(content, "sha256").hexdigest()
    return Layer(members, digests)
