#!/usr/bin/env python3
"""Build the controller's OCI image without a container engine or a registry.

    build.py build [--out dist/image]   root fs from hack/image/debian.lock + requirements.lock,
                                        packed by umoci into <out>/oci (tag v<addon version>)
                                        and <out>/controller-v<version>.oci.tar
    build.py lock                       re-resolve hack/image/debian.lock from deb.debian.org
    build.py run [--out dist/image] [--entrypoint PROGRAM] -- ARGS...
                                        run the image's entrypoint (ARGS appended, as a Pod's
                                        args) or PROGRAM from the unpacked layout in a bubblewrap
                                        sandbox, as uid 65532 with a read-only root

Inputs: the tracked files of controller/, templates/ and pyproject.toml (their working-tree
content), requirements.lock, hack/image/debian.lock, and the commit time (SOURCE_DATE_EPOCH).
Downloads (.deb files, wheels) are cached in ~/.cache/vela-progressive/image ($VP_CACHE_DIR
overrides the root). Missing Debian tools are installed when running as root. Progress goes to
stderr; the last stdout line is the image reference and digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import debs
import host_tools
import layout
import rootfs
import sandbox
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCK = Path(__file__).resolve().parent / "debian.lock"
REPOSITORY = "ghcr.io/vela-progressive/controller"
#: the addon's Deployment passes the same argument (addon/resources/controller.cue)
ENTRYPOINT = (rootfs.ENTRYPOINT, "--liveness=http://0.0.0.0:8080/healthz")
#: inputs whose uncommitted changes make the build "dirty" (the revision label says so)
INPUTS = ("controller", "templates", "pyproject.toml", "requirements.lock", "hack/image")


def cache_dir() -> Path:
    base = os.environ.get("VP_CACHE_DIR") or str(Path.home() / ".cache/vela-progressive")
    return Path(base) / "image"


def progress(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def metadata() -> dict[str, str]:
    meta = yaml.safe_load((ROOT / "metadata.yaml").read_text())
    return {key: str(meta[key]) for key in ("name", "version", "url")}


def image_config(epoch: int) -> tuple[str, layout.ImageConfig]:
    meta = metadata()
    revision = git("rev-parse", "HEAD")
    if git("status", "--porcelain", "--", *INPUTS):
        revision += "-dirty"
    tag = f"v{meta['version']}"
    labels = {
        "org.opencontainers.image.title": "vela-progressive-controller",
        "org.opencontainers.image.description": (
            "Kopf controller of vela-progressive: progressive delivery for KubeVela Applications"
        ),
        "org.opencontainers.image.source": meta["url"],
        "org.opencontainers.image.version": meta["version"],
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": layout.rfc3339(epoch),
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    env = {
        "PATH": "/usr/local/bin:/usr/bin",
        "VP_WEBHOOK_MODE": "incluster",
        "VP_STATE_DIR": "/tmp/vela-progressive",
        # The image has no /etc/ssl/certs: TLS to public endpoints (analysis, webhooks) trusts
        # the Mozilla bundle of the locked certifi wheel.
        "SSL_CERT_FILE": f"/{rootfs.SITE}/certifi/cacert.pem",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    config = layout.ImageConfig(
        user=f"{rootfs.UID}:{rootfs.UID}",
        entrypoint=ENTRYPOINT,
        env=env,
        labels=labels,
        epoch=epoch,
    )
    return tag, config


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            file = Path(dirpath) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def build(out: Path) -> int:
    started = time.monotonic()
    tools = host_tools.ensure("umoci", "bwrap", "skopeo")
    uv = ROOT / ".venv/bin/uv"
    if not uv.exists():
        raise host_tools.MissingTool(f"{uv} is missing: run make venv")
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct"))
    tag, config = image_config(epoch)
    cache = cache_dir()
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": str(epoch),
        "UV_CACHE_DIR": str(cache / "uv"),
        "PYTHONHASHSEED": "0",
    }
    cache.mkdir(parents=True, exist_ok=True)
    # Own work directory: worktrees share the cache and may build at the same time.
    work = Path(tempfile.mkdtemp(prefix="work-", dir=cache))
    try:
        return _build(out, work, tag, config, env, tools, uv, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build(
    out: Path,
    work: Path,
    tag: str,
    config: layout.ImageConfig,
    env: dict[str, str],
    tools: dict[str, str],
    uv: Path,
    started: float,
) -> int:
    cache = cache_dir()
    epoch = config.epoch
    root = work / "rootfs"

    locked = debs.read_lock(LOCK)
    progress(f"fetching {len(locked)} Debian packages (hack/image/debian.lock)")
    files = []
    for number, deb in enumerate(locked, 1):
        cached = (cache / "debs" / f"{deb.sha256}.deb").is_file()
        files.append((deb, debs.fetch(deb, cache / "debs")))
        if not cached:
            progress(f"  [{number}/{len(locked)}] downloaded {deb.package} {deb.version}")
    progress("extracting them into the root filesystem")
    rootfs.install_debian(root, files)
    progress("building the package's wheel (tracked files, templates inside)")
    wheel = rootfs.build_wheel(ROOT, uv, work / "wheel", env)
    progress("installing it and its dependencies (binary wheels pinned by requirements.lock)")
    rootfs.install_python(root, uv, wheel, ROOT / "requirements.lock", env)
    rootfs.add_system_files(root)
    progress("compiling bytecode with the image's python3.11 (one process)")
    rootfs.compile_bytecode(root, tools["bwrap"], env)
    rootfs.check_no_tools(root)
    rootfs.set_times(root, epoch)
    size = du(root)
    progress(f"root filesystem: {size / 2**20:.1f} MiB; packing with umoci")
    oci = out / "oci"
    digest = layout.pack(tools["umoci"], root, oci, tag, config)
    archive = out / f"controller-{tag}.oci.tar"
    progress(f"writing {archive.relative_to(ROOT) if archive.is_relative_to(ROOT) else archive}")
    reference = f"{REPOSITORY}:{tag}"
    docker = layout.docker_manifest(oci, tag, reference)
    layout.write_archive(oci, archive, epoch, {"manifest.json": docker})
    layout.check_with_skopeo(tools["skopeo"], f"oci-archive:{archive}:{tag}", digest)
    blobs = du(oci / "blobs")
    report = {
        "reference": reference,
        "tag": tag,
        "digest": digest,
        "layout": str(oci),
        "archive": str(archive),
        "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "source_date_epoch": epoch,
        "revision": config.labels["org.opencontainers.image.revision"],
        "rootfs_bytes": size,
        "compressed_bytes": blobs,
        "debian_packages": [f"{deb.package}={deb.version}" for deb in locked],
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    progress(
        f"done in {report['seconds']} s: {size / 2**20:.1f} MiB unpacked, "
        f"{blobs / 2**20:.1f} MiB compressed; push with: "
        f"skopeo copy oci:{oci}:{tag} docker://{REPOSITORY}:{tag}"
    )
    print(f"{REPOSITORY}:{tag}@{digest}")
    return 0


def lock() -> int:
    tools = host_tools.ensure("mmdebstrap", "dpkg-deb")
    progress(f"resolving {', '.join(debs.ROOTS)} against {debs.SUITE} (mmdebstrap)")
    resolved = debs.resolve(tools["mmdebstrap"])
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    comment = (
        f"resolved {stamp} from {debs.SUITE}, {debs.SUITE}-updates, {debs.SUITE}-security; "
        f"roots: {' '.join(debs.ROOTS)}; left out: {' '.join(sorted(debs.LEFT_OUT))}"
    )
    old = {deb.package: deb.version for deb in debs.read_lock(LOCK)} if LOCK.exists() else {}
    debs.write_lock(LOCK, resolved, comment)
    for deb in resolved:
        if old.get(deb.package) != deb.version:
            progress(f"  {deb.package}: {old.get(deb.package, '(new)')} -> {deb.version}")
    progress(f"wrote {LOCK.relative_to(ROOT)} ({len(resolved)} packages)")
    return 0


def run(out: Path, args: list[str], entrypoint: str | None) -> int:
    tools = host_tools.ensure("umoci", "bwrap")
    report = json.loads((out / "build.json").read_text())
    with tempfile.TemporaryDirectory(prefix="vp-image-run-") as tmp:
        os.chmod(tmp, 0o755)  # the sandbox runs as the image's unprivileged user
        bundle = Path(tmp) / "bundle"
        config = sandbox.unpack(tools["umoci"], Path(report["layout"]), report["tag"], bundle)
        replace = None if entrypoint is None else [entrypoint]
        argv = sandbox.command(tools["bwrap"], bundle / "rootfs", config, args, replace=replace)
        return subprocess.run(argv, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build the image")
    build_cmd.add_argument("--out", type=Path, default=ROOT / "dist/image")
    sub.add_parser("lock", help="re-resolve hack/image/debian.lock")
    run_cmd = sub.add_parser("run", help="run the entrypoint from the built layout")
    run_cmd.add_argument("--out", type=Path, default=ROOT / "dist/image")
    run_cmd.add_argument(
        "--entrypoint", help="run this program instead of the image's entrypoint and arguments"
    )
    run_cmd.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    try:
        if options.command == "lock":
            return lock()
        if options.command == "run":
            args = options.args[1:] if options.args[:1] == ["--"] else options.args
            return run(options.out.resolve(), args, options.entrypoint)
        return build(options.out.resolve())
    except (
        host_tools.MissingTool,
        debs.DebError,
        rootfs.RootfsError,
        layout.LayoutError,
        sandbox.SandboxError,
    ) as error:
        print(f"image: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
