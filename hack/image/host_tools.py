"""The Debian tools the image build runs, and installing them when they are missing.

The build runs on Debian (12, bookworm: the image's own release). A missing tool is installed
with ``apt-get`` when the build runs as root (CI on a fresh machine); otherwise the error names
the tool and the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: command -> the Debian package that provides it
PACKAGES: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",  # resolves the Debian package set (make image-lock only)
    "umoci": "umoci",  # packs the root filesystem into an OCI layout
    "skopeo": "skopeo",  # checks the layout the way a registry client reads it; pushes it
    "bwrap": "bubblewrap",  # runs the image's python while building, and the image's check
    "dpkg-deb": "dpkg",  # reads the .deb files of make image-lock
}


class MissingTool(RuntimeError):
    """A tool is missing and could not be installed; the message says how to install it."""


def install_command(packages: list[str]) -> str:
    return "apt-get install -y --no-install-recommends " + " ".join(packages)


def ensure(*tools: str) -> dict[str, str]:
    """Return ``{tool: path}``, installing the Debian packages of missing tools when root."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({PACKAGES[tool] for tool in missing})
        command = install_command(packages)
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise MissingTool(
                f"missing {', '.join(missing)} (Debian: {', '.join(packages)}); "
                f"install with: sudo {command}"
            )
        print(f"image: installing {' '.join(packages)} ({command})", file=sys.stderr, flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-q"], command.split()):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-10:])
                raise MissingTool(f"'{' '.join(argv)}' failed ({done.returncode}):\n{tail}")
        still = [tool for tool in missing if shutil.which(tool) is None]
        if still:
            raise MissingTool(f"{', '.join(still)} still missing after: {command}")
    return {tool: str(shutil.which(tool)) for tool in tools}
