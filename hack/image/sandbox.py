"""Running the image the way a container runtime would, without one.

``umoci unpack`` turns the layout into an OCI runtime bundle (``rootfs/`` and the runtime
``config.json``: user, arguments, environment, working directory). :func:`command` is the command
line that starts that process in a bubblewrap sandbox: its own user, PID, IPC, UTS and network
namespaces (the host network when asked), the root filesystem mounted read-only, a fresh tmpfs on
``/tmp`` (what an ``emptyDir`` gives), and a really unprivileged uid: bwrap itself runs as the
image's user, so the image's root-owned files belong to nobody inside, as in a cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class SandboxError(RuntimeError):
    """The layout cannot be unpacked or the sandbox cannot start."""


def unpack(umoci: str, layout: Path, tag: str, bundle: Path) -> dict[str, Any]:
    """Unpack ``layout:tag`` into ``bundle`` (replacing it); return the runtime config."""
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [umoci, "unpack", "--image", f"{layout}:{tag}", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SandboxError(f"umoci unpack failed ({done.returncode}): {done.stderr.strip()}")
    bundle.chmod(0o711)  # umoci makes it 0700; the sandbox's user must reach rootfs/
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return config


def command(
    bwrap: str,
    rootfs: Path,
    config: Mapping[str, Any],
    args: Sequence[str] = (),
    *,
    replace: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    binds: Mapping[str, Path] | None = None,
    empty_dirs: Sequence[str] = (),
    network: bool = False,
) -> list[str]:
    """The argv that runs the image's process; creates what it mounts over in ``rootfs``.

    As in a Pod: ``args`` come after the image's entrypoint (the image has no ``cmd``),
    ``replace`` replaces the whole command line (a container's ``command``), ``env`` is added
    to the image's, ``binds`` are read-only mounts (target: source), ``empty_dirs`` fresh
    writable tmpfs directories (a Pod's ``emptyDir`` volumes), and ``network`` shares the
    host's network (and its ``/etc/resolv.conf``).
    """
    if shutil.which("setpriv") is None:
        raise SandboxError("setpriv is missing (Debian: util-linux)")
    # The unprivileged user must be able to reach the root filesystem.
    for parent in [rootfs, *rootfs.parents]:
        if parent.stat().st_mode & 0o001 == 0:
            raise SandboxError(f"{parent} is not searchable by others: unpack somewhere else")
    mounts = dict(binds or {})
    if network:
        mounts["/etc/resolv.conf"] = Path("/etc/resolv.conf")
    make_mountpoints(rootfs, mounts)
    for target in empty_dirs:
        (rootfs / target.lstrip("/")).mkdir(parents=True, exist_ok=True)
    process = config["process"]
    uid, gid = process["user"]["uid"], process["user"]["gid"]
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    argv += [bwrap, "--ro-bind", str(rootfs), "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--tmpfs", "/tmp", "--unshare-all", "--die-with-parent", "--new-session"]
    argv += ["--uid", str(uid), "--gid", str(gid), "--clearenv", "--chdir", process["cwd"]]
    if network:
        argv.append("--share-net")
    for target, source in mounts.items():
        argv += ["--ro-bind", str(source), target]
    for target in empty_dirs:
        argv += ["--tmpfs", target]
    variables = dict(item.split("=", 1) for item in process["env"])
    variables.update(env or {})
    for key, value in variables.items():
        argv += ["--setenv", key, value]
    return [*argv, "--", *(process["args"] if replace is None else replace), *args]


def make_mountpoints(rootfs: Path, targets: Mapping[str, Path]) -> None:
    """Create what is mounted over, as a runtime does before it makes the root read-only."""
    for target, source in targets.items():
        inside = rootfs / target.lstrip("/")
        if source.is_dir():
            inside.mkdir(parents=True, exist_ok=True)
        else:
            inside.parent.mkdir(parents=True, exist_ok=True)
            inside.touch()
