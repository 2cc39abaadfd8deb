"""Image tier: ``hack/image/build.py`` builds the controller image; the tests read what it wrote.

The checks read the OCI layout and the layer themselves (JSON and tar, not the build's code), and
run the image's files only through ``build.py run`` (a bubblewrap sandbox, uid 65532, read-only
root). A build that cannot run (a tool missing as non-root, no user namespaces, the Debian
archive gone) makes every test here FAIL with the build's message: the tier never skips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tarfile
from pathlib import Path

import pytest

from tests.support.image import Built, build_image

REPO = Path(__file__).resolve().parents[2]


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
