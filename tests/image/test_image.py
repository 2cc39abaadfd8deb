"""The controller image: its configuration, its files, and its process in a sandbox."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.image.conftest import REPO, Built, Layer, build_image

pytestmark = pytest.mark.image

METADATA = yaml.safe_load((REPO / "metadata.yaml").read_text())
TAG = f"v{METADATA['version']}"
SITE = "usr/local/lib/python3.11/dist-packages"
LABELS = ("title", "description", "source", "version", "revision", "created", "licenses")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_layout_holds_one_tagged_image_whose_blobs_match_their_digests(image: Built) -> None:
    assert json.loads((image.layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((image.layout / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == TAG
    assert entry["digest"] == image.report["digest"]
    assert image.report["reference"] == f"ghcr.io/vela-progressive/controller:{TAG}"
    manifest = image.manifest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    for descriptor in [entry, manifest["config"], *manifest["layers"]]:
        data = image.blob(descriptor["digest"]).read_bytes()
        assert len(data) == descriptor["size"]
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == descriptor["digest"]


def test_the_addon_names_the_image_the_build_tags() -> None:
    cue = (REPO / "addon/resources/controller.cue").read_text()
    assert '"ghcr.io/vela-progressive/controller:v\\(context.metadata.version)"' in cue


def test_it_runs_as_uid_65532_with_the_addon_entrypoint_and_environment(image: Built) -> None:
    config = image.config
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    run = config["config"]
    assert run["User"] == "65532:65532"
    assert run["Entrypoint"] == [
        "vela-progressive-controller",
        "--liveness=http://0.0.0.0:8080/healthz",
    ]
    assert not run.get("Cmd")
    env = dict(item.split("=", 1) for item in run["Env"])
    assert env["VP_WEBHOOK_MODE"] == "incluster"
    assert env["VP_STATE_DIR"].startswith("/tmp/")
    assert env["PATH"].split(":")[0] == "/usr/local/bin"


def test_labels_name_the_version_the_commit_and_its_time(image: Built) -> None:
    labels = image.config["config"]["Labels"]
    for name in LABELS:
        assert labels.get(f"org.opencontainers.image.{name}"), name
    assert labels["org.opencontainers.image.version"] == METADATA["version"]
    assert labels["org.opencontainers.image.source"] == METADATA["url"]
    assert labels["org.opencontainers.image.revision"].split("-")[0] == git("rev-parse", "HEAD")
    commit_time = datetime.datetime.fromtimestamp(
        int(git("log", "-1", "--format=%ct")), datetime.UTC
    )
    created = commit_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert labels["org.opencontainers.image.created"] == created
    assert image.config["created"] == created
    annotations = image.manifest["annotations"]
    assert {k: v for k, v in labels.items() if k.startswith("org.opencontainers")} == annotations


def test_there_is_no_shell_pip_compiler_or_package_manager(layer: Layer) -> None:
    programs = {
        name
        for name, member in layer.members.items()
        if name.startswith(("usr/bin/", "usr/sbin/", "usr/local/bin/", "usr/local/sbin/"))
        and not member.isdir()
    }
    assert programs == {"usr/bin/python3.11", "usr/local/bin/vela-progressive-controller"}
    # bin, sbin, lib and lib64 are the usr-merge links, nothing else at the top holds files
    assert {layer.members[top].linkname for top in ("bin", "sbin", "lib", "lib64")} == {
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
    }
    forbidden = [
        name
        for name in layer.members
        if any(
            part in {"pip", "ensurepip", "setuptools", "wheel", "gcc"}
            for part in Path(name).parts[:-1] or [""]
        )
        or Path(name).name.startswith(("pip-", "setuptools-"))
        or Path(name).name in {"sh", "bash", "dash", "busybox", "cc", "gcc", "ld", "as"}
    ]
    assert forbidden == []


def test_every_file_belongs_to_root_and_only_tmp_is_writable(layer: Layer) -> None:
    for name, member in layer.members.items():
        assert (member.uid, member.gid) == (0, 0), name
        assert not member.mode & (stat.S_ISUID | stat.S_ISGID), name
        if member.mode & stat.S_IWOTH and not member.issym():
            assert name == "tmp", name
            assert member.mode & stat.S_ISVTX, name


def test_the_templates_are_next_to_the_package(layer: Layer) -> None:
    tracked = git("ls-files", "templates").splitlines()
    assert tracked
    expected = {
        f"{SITE}/vela_progressive/{name}": hashlib.sha256((REPO / name).read_bytes()).hexdigest()
        for name in tracked
    }
    shipped = {
        name: digest
        for name, digest in layer.sha256.items()
        if name.startswith(f"{SITE}/vela_progressive/templates/")
    }
    assert shipped == expected


def test_a_compiled_module_is_shipped_for_every_python_file(layer: Layer) -> None:
    roots = ("usr/lib/python3.11/", SITE)
    sources = [n for n in layer.sha256 if n.endswith(".py") and n.startswith(roots)]
    assert len(sources) > 1000
    missing = [
        name
        for name in sources
        if f"{Path(name).parent}/__pycache__/{Path(name).stem}.cpython-311.pyc" not in layer.sha256
    ]
    assert missing == []


# Runs inside the image, as its user, with its read-only root and a tmpfs on /tmp.
PROBE = """
import ctypes, errno, glob, json, os, sys
import vela_progressive.handlers
from vela_progressive.core.rendering import render_text, templates_dir
loaded = []
# every extension module: their libraries (from the Debian packages) must all be there
for path in sorted(glob.glob("/usr/lib/python3.11/lib-dynload/*.so")
                   + glob.glob("/usr/local/lib/python3.11/dist-packages/**/*.so", recursive=True)):
    ctypes.CDLL(path)
    loaded.append(path)
try:
    open("/usr/local/probe", "w")
    root = "writable"
except OSError as error:
    root = errno.errorcode[error.errno]
os.makedirs(os.environ["VP_STATE_DIR"])
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "templates": str(templates_dir()),
    "root": root, "loaded": len(loaded), "modules": len(sys.modules),
    "python": sys.version.split()[0], "path": sys.path,
}))
"""


def test_the_package_imports_as_uid_65532_on_a_read_only_root(image: Built) -> None:
    done = image.run("-c", PROBE, entrypoint="/usr/bin/python3.11")
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert (probe["uid"], probe["gid"]) == (65532, 65532)
    assert probe["templates"] == f"/{SITE}/vela_progressive/templates"
    assert probe["root"] == "EROFS"
    assert probe["loaded"] > 50  # every extension module found its shared libraries


def test_the_entrypoint_starts(image: Built) -> None:
    done = image.run("--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: kopf run" in done.stdout
    assert "--liveness" in done.stdout


def test_the_tarball_and_the_layout_agree(image: Built) -> None:
    archive = Path(image.report["archive"])
    assert archive.name == f"controller-{TAG}.oci.tar"
    inside = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            content = tar.extractfile(member) if member.isfile() else None
            if content is not None:
                inside[member.name.removeprefix("./")] = content.read()
    docker = json.loads(inside.pop("manifest.json"))
    outside = {
        path.relative_to(image.layout).as_posix(): path.read_bytes()
        for path in image.layout.rglob("*")
        if path.is_file()
    }
    assert inside == outside
    manifest = image.manifest
    assert docker == [
        {
            "Config": "blobs/" + manifest["config"]["digest"].replace(":", "/"),
            "RepoTags": [f"ghcr.io/vela-progressive/controller:{TAG}"],
            "Layers": [
                "blobs/" + layer["digest"].replace(":", "/") for layer in manifest["layers"]
            ],
        }
    ]
    # Read back by a registry client: as an OCI archive (same manifest digest) and as a
    # docker-archive (docker load converts the manifest; the image ID, its config, is the same).
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is missing: apt-get install -y skopeo"

    def inspect(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [skopeo, "inspect", *args], check=False, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    oci = inspect(f"oci-archive:{archive}:{TAG}")
    assert oci["Digest"] == image.report["digest"]
    assert oci["Labels"]["org.opencontainers.image.version"] == METADATA["version"]
    converted = inspect("--raw", f"docker-archive:{archive}")
    assert converted["config"]["digest"] == manifest["config"]["digest"]


def test_it_stays_small(image: Built) -> None:
    assert image.report["compressed_bytes"] < 60 * 2**20
    assert image.report["rootfs_bytes"] < 200 * 2**20


def test_a_second_build_gives_the_same_digest(
    image: Built, tmp_path_factory: pytest.TempPathFactory
) -> None:
    again = build_image(tmp_path_factory.mktemp("image-again"))
    assert again.report["digest"] == image.report["digest"]
    assert again.report["archive_sha256"] == image.report["archive_sha256"]
