"""KubeVela in the test world: vela-core runs Applications; the vela CLI vets and dry-runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.golden import assert_matches_golden
from tests.support.vela_definitions import render_builtin_definitions

pytestmark = pytest.mark.cluster

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"

WEBSERVICE_APP = """
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: hello
spec:
  components:
    - name: hello
      type: webservice
      properties:
        image: registry.invalid/hello:v1
        cpu: "0.1"
        ports:
          - port: 8080
            expose: true
"""


def test_a_webservice_application_renders_a_deployment_and_reaches_running(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply_yaml(WEBSERVICE_APP, namespace=namespace)

    def app_running() -> dict[str, Any] | None:
        app: dict[str, Any] = cluster.get("application", "hello", "-n", namespace)
        return app if app.get("status", {}).get("status") == "running" else None

    app = cluster.wait_for(app_running, 120, "Application hello in phase running")
    services = app["status"]["services"]
    assert [(s["name"], s["healthy"]) for s in services] == [("hello", True)]

    deployment = cluster.get("deployment", "hello", "-n", namespace)
    labels = deployment["metadata"]["labels"]
    assert labels["app.oam.dev/name"] == "hello"
    assert labels["app.oam.dev/component"] == "hello"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.invalid/hello:v1"
    assert deployment["status"]["readyReplicas"] == 1
    service = cluster.get("service", "hello", "-n", namespace)
    assert service["spec"]["ports"][0]["port"] == 8080

    status = cluster.vela("status", "hello", "-n", namespace)
    printed = status.stdout + status.stderr  # vela prints its "About" table on stderr
    assert re.search(r"Name:\s+hello\b", printed)
    assert re.search(r"Details:\s+running\b", printed)
    assert "type: apply-component" in printed
    assert "phase: succeeded" in printed
    assert "Message: Ready:1/1" in printed


def test_vela_addon_enable_finds_the_version_of_the_locally_running_vela_core(
    cluster: Cluster,
) -> None:
    addon = FIXTURES / "addon" / "vp-world-probe"
    # No -y: it would also skip the version check (references/cli/addon.go).
    enabled = cluster.vela("addon", "enable", str(addon), input="", timeout=300)
    try:
        assert "Addon vp-world-probe enabled successfully." in enabled.stdout
        app = cluster.get("application", "addon-vp-world-probe", "-n", "vela-system")
        assert app["status"]["status"] == "running"
        probe = cluster.get("configmap", "vp-world-probe", "-n", "vela-system")
        assert probe["data"] == {"probe": "true"}
    finally:
        cluster.vela("addon", "disable", "vp-world-probe", "-y", check=False, timeout=300)


def test_vela_def_vet_accepts_the_fixture_trait_and_rejects_a_broken_one(
    cluster: Cluster,
) -> None:
    good = FIXTURES / "definitions" / "stamp-label.cue"
    vetted = cluster.vela("def", "vet", str(good))
    assert f"Validation {good} succeed." in vetted.stdout

    broken = FIXTURES / "invalid" / "stamp-label-unclosed.cue"
    refused = cluster.vela("def", "vet", str(broken), check=False)
    assert refused.returncode != 0
    assert f"failed to parse CUE: {broken}" in refused.stdout + refused.stderr


@pytest.fixture(scope="module")
def definitions_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """KubeVela's built-in definitions (rendered from the module zip) plus the fixture trait."""
    definitions = render_builtin_definitions(tmp_path_factory.mktemp("vela"))
    shutil.copy(FIXTURES / "definitions" / "stamp-label.cue", definitions)
    return definitions


def test_vela_dry_run_offline_renders_the_fixture_trait_into_the_deployment(
    cluster: Cluster, definitions_dir: Path
) -> None:
    app = FIXTURES / "app-stamp-label.yaml"
    # --offline talks to no server but still loads a kubeconfig: the cluster's is a valid file.
    rendered = cluster.vela("dry-run", "--offline", "-f", str(app), "-d", str(definitions_dir))
    assert "vela-progressive.test/stamp: blue" in rendered.stdout
    assert_matches_golden(rendered.stdout, HERE / "golden" / "dry-run-stamp-label.yaml")
