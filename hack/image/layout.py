"""Packing a root filesystem into an OCI image layout with umoci, and the layout's tarball.

One layer (the whole root filesystem), the runtime configuration (user, entrypoint, env, labels)
and every date set to ``SOURCE_DATE_EPOCH``, so two builds of the same inputs give the same
manifest digest. The tarball is the layout directory itself in a tar (``oci-archive``: what
``skopeo copy oci-archive:...`` and ``podman load`` read) plus the ``manifest.json`` of a
``docker-archive`` (what every ``docker load`` reads), as ``docker save`` writes since Docker 25.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    user: str
    entrypoint: tuple[str, ...]
    env: dict[str, str]
    labels: dict[str, str]
    epoch: int


class LayoutError(RuntimeError):
    """umoci failed or the layout is not what was asked for."""


def _umoci(umoci: str, *args: str) -> str:
    done = subprocess.run([umoci, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LayoutError(f"umoci {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def rfc3339(epoch: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pack(umoci: str, rootfs: Path, layout: Path, tag: str, config: ImageConfig) -> str:
    """Write ``layout`` (replacing it) with one image tagged ``tag``; return its digest."""
    if layout.exists():
        shutil.rmtree(layout)
    created = rfc3339(config.epoch)
    image = f"{layout}:{tag}"
    _umoci(umoci, "init", "--layout", str(layout))
    _umoci(umoci, "new", "--image", image)
    # `umoci insert` of Debian 12's umoci (0.4.7) leaves the layer's tar without its end
    # blocks (umoci issue 436, fixed upstream in 2024): unpack the empty image and repack it.
    bundle = rootfs.parent / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    _umoci(umoci, "unpack", "--image", image, str(bundle))
    (bundle / "rootfs").rmdir()
    rootfs.rename(bundle / "rootfs")
    try:
        _umoci(
            umoci,
            "repack",
            "--image",
            image,
            "--history.created",
            created,
            "--history.created_by",
            "hack/image/build.py",
            "--history.comment",
            "root filesystem",
            str(bundle),
        )
    finally:
        (bundle / "rootfs").rename(rootfs)
    args = [
        "config",
        "--image",
        image,
        "--no-history",
        "--created",
        created,
        "--author",
        "vela-progressive",
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.user",
        config.user,
        "--config.workingdir",
        "/tmp",
        "--clear=config.entrypoint",
        "--clear=config.cmd",
        "--clear=config.env",
    ]
    args += [f"--config.entrypoint={part}" for part in config.entrypoint]
    args += [f"--config.env={key}={value}" for key, value in config.env.items()]
    args += [f"--config.label={key}={value}" for key, value in config.labels.items()]
    args += [f"--manifest.annotation={key}={value}" for key, value in config.labels.items()]
    _umoci(umoci, *args)
    _umoci(umoci, "gc", "--layout", str(layout))
    return manifest_digest(layout, tag)


def manifest_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return str(entry["digest"])
    raise LayoutError(f"{layout}/index.json has no manifest tagged {tag}")


def check_with_skopeo(skopeo: str, reference: str, digest: str) -> None:
    """Read the image the way a registry client does; it must see the same digest."""
    done = subprocess.run(
        [skopeo, "inspect", reference], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LayoutError(f"skopeo inspect {reference} failed: {done.stderr.strip()}")
    seen = json.loads(done.stdout).get("Digest")
    if seen != digest:
        raise LayoutError(f"skopeo inspect {reference} sees {seen}, umoci wrote {digest}")


def docker_manifest(layout: Path, tag: str, reference: str) -> bytes:
    """The ``manifest.json`` of ``docker save``, naming the layout's blobs.

    With it the tarball is also a ``docker-archive`` (what ``docker save`` writes since Docker
    25: both files side by side), so any ``docker load`` reads it.
    """
    digest = manifest_digest(layout, tag)
    manifest = json.loads((layout / "blobs" / digest.replace(":", "/")).read_text())
    entry = {
        "Config": "blobs/" + manifest["config"]["digest"].replace(":", "/"),
        "RepoTags": [reference],
        "Layers": ["blobs/" + layer["digest"].replace(":", "/") for layer in manifest["layers"]],
    }
    return json.dumps([entry], separators=(",", ":")).encode() + b"\n"


def write_archive(layout: Path, archive: Path, epoch: int, extra: dict[str, bytes]) -> None:
    """The layout (plus ``extra`` files) as a deterministic tar: sorted, fixed times and owners."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    entries: dict[str, bytes | None] = {".": None}
    for path in sorted(layout.rglob("*")):
        entries[path.relative_to(layout).as_posix()] = None if path.is_dir() else path.read_bytes()
    entries.update(extra)
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            data = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    partial.rename(archive)
