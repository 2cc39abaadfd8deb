"""Run the real ``vela`` CLI offline: ``vela def vet`` and ``vela dry-run --offline``.

KubeVela's built-in definitions (webservice, statefulset, scaler, ...) come from the KubeVela
module zip in the Go module cache (``charts/vela-core/templates/defwithtemplate/<name>.yaml``,
the same version as the ``vela`` binary), with the Helm include of the definition namespace
replaced by ``vela-system``.
"""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VELA_GO_MOD = REPO / "hack/cluster/vela/go.mod"
DEFINITION_NS_INCLUDE = re.compile(r"\{\{\s*include\s+\"systemDefinitionNamespace\"\s+\.\s*\}\}")

#: Enough for `vela dry-run --offline`: it loads the config but never connects.
DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: offline
    cluster: {server: "https://127.0.0.1:1"}
contexts:
  - name: offline
    context: {cluster: offline, user: offline, namespace: default}
current-context: offline
users:
  - name: offline
    user: {token: offline}
"""


class VelaError(AssertionError):
    """vela exited non-zero; the message carries its output."""

    def __init__(self, argv: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.stdout = result.stdout
        self.stderr = result.stderr
        super().__init__(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )


@dataclass(frozen=True)
class Vela:
    binary: Path
    home: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = str(self.home)
        env["KUBECONFIG"] = str(self.home / "kubeconfig")
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), *args]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def check(self, *args: str, timeout: float = 120) -> str:
        result = self.run(*args, timeout=timeout)
        if result.returncode != 0:
            raise VelaError([str(self.binary), *args], result)
        return result.stdout

    def dry_run(self, app: Path, definitions: Path) -> list[dict[str, Any]]:
        """The objects vela renders for ``app`` (Application first), offline."""
        out = self.check("dry-run", "--offline", "-d", str(definitions), "-f", str(app))
        return [doc for doc in yaml.safe_load_all(out) if isinstance(doc, dict)]


def make_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "kubeconfig").write_text(DUMMY_KUBECONFIG)
    return home


def vela_version() -> str:
    """The KubeVela version the test world builds (hack/cluster/vela/go.mod)."""
    found = re.search(r"^\s*github\.com/oam-dev/kubevela (v\S+)", VELA_GO_MOD.read_text(), re.M)
    if not found:
        raise AssertionError(f"{VELA_GO_MOD} does not pin github.com/oam-dev/kubevela")
    return found.group(1)


def module_zip(version: str) -> Path:
    """The KubeVela module zip in the Go module cache (downloaded by hack/cluster/build.sh)."""
    cache = os.environ.get("GOMODCACHE")
    if not cache:
        try:
            cache = subprocess.run(
                ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            cache = str(Path.home() / "go" / "pkg" / "mod")
    path = Path(cache) / "cache/download/github.com/oam-dev/kubevela/@v" / f"{version}.zip"
    if not path.is_file():
        raise AssertionError(
            f"{path} is missing: run `bash hack/cluster/build.sh vela` (it downloads the module)"
        )
    return path


def builtin_definitions(names: Iterable[str], target: Path) -> list[Path]:
    """Write KubeVela's built-in definitions ``names`` into ``target`` (namespace vela-system)."""
    version = vela_version()
    prefix = f"github.com/oam-dev/kubevela@{version}/charts/vela-core/templates/defwithtemplate/"
    written = []
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(module_zip(version)) as archive:
        for name in sorted(set(names)):
            try:
                text = archive.read(f"{prefix}{name}.yaml").decode()
            except KeyError:
                raise AssertionError(
                    f"KubeVela {version} has no built-in definition {name!r}"
                ) from None
            path = target / f"{name}.yaml"
            path.write_text(DEFINITION_NS_INCLUDE.sub("vela-system", text))
            written.append(path)
    return written


def types_used(app: dict[str, Any]) -> set[str]:
    """Component and trait types of an Application (excluding our own trait)."""
    found: set[str] = set()
    for comp in app.get("spec", {}).get("components", []):
        found.add(comp["type"])
        found.update(t["type"] for t in comp.get("traits", []) or [])
    return found
