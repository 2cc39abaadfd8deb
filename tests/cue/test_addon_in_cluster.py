"""`vela addon enable --dry-run` against the test world: the version checks pass, vela's OpenAPI
encoder accepts the addon parameters and the trait's parameters (the TraitDefinition controller
runs the same encoder for the schema ConfigMap), and the addon renders. Nothing is applied."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.cluster import Cluster

from vela_progressive.core import model

REPO = Path(__file__).resolve().parents[2]
TRAIT = REPO / "definitions" / f"{model.TRAIT_TYPE}.cue"


def _enable_dry_run(cluster: Cluster, addon: Path, *args: str) -> list[dict[str, Any]]:
    done = cluster.vela("addon", "enable", str(addon), *args, "--dry-run", check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    text = done.stdout[done.stdout.index("apiVersion:") :]
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


@pytest.fixture(scope="module")
def addon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("addon")
    subprocess.run(
        [sys.executable, str(REPO / "hack/build_addon.py"), "--out", str(out)], check=True
    )
    return out / model.ADDON_NAME


def test_vela_encodes_the_trait_parameters_as_openapi(cluster: Cluster, tmp_path: Path) -> None:
    """The trait's template as the parameter.cue of a throwaway addon: vela runs
    ParsePropertiesToSchema on it, as the TraitDefinition controller does."""
    text = TRAIT.read_text()
    imports = re.search(r"^import \(.*?\)\n", text, re.S | re.M)
    body = text[text.index("\ntemplate: {") + len("\ntemplate: {") : text.rindex("}")]
    probe = tmp_path / "schema-probe"
    probe.mkdir()
    (probe / "metadata.yaml").write_text("name: schema-probe\nversion: 0.0.1\n")
    (probe / "parameter.cue").write_text((imports.group(0) if imports else "") + body)
    _enable_dry_run(cluster, probe)


def test_the_addon_renders_with_its_definition_and_resource_tree(
    cluster: Cluster, addon: Path
) -> None:
    docs = _enable_dry_run(cluster, addon)
    (app,) = [d for d in docs if d["kind"] == "Application"]
    assert app["metadata"]["name"] == f"addon-{model.ADDON_NAME}"
    assert [c["name"] for c in app["spec"]["components"]] == [
        "vela-progressive-rbac",
        "vela-progressive-controller",
        "vela-progressive-webhook",
        "vela-progressive-resources",
    ]
    (resources,) = [c for c in app["spec"]["components"] if c["name"].endswith("-resources")]
    assert [o["kind"] for o in resources["properties"]["objects"]] == ["CustomResourceDefinition"]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("TraitDefinition", model.TRAIT_TYPE) in kinds
    assert ("ConfigMap", "vela-progressive-relation") in kinds


def test_a_local_controller_addon_has_no_deployment(cluster: Cluster, addon: Path) -> None:
    docs = _enable_dry_run(
        cluster,
        addon,
        "inCluster=false",
        "webhookURL=https://127.0.0.1:9443",
        "webhookCABundle=Q0EK",
    )
    (app,) = [d for d in docs if d["kind"] == "Application"]
    names = [c["name"] for c in app["spec"]["components"]]
    assert "vela-progressive-controller" not in names
    (webhook,) = [c for c in app["spec"]["components"] if c["name"] == "vela-progressive-webhook"]
    config = webhook["properties"]["objects"][0]["webhooks"][0]["clientConfig"]
    assert config == {"url": "https://127.0.0.1:9443/hold-deployments", "caBundle": "Q0EK"}


def test_standbys_and_shards_render_through_vela_addon_enable(
    cluster: Cluster, addon: Path
) -> None:
    docs = _enable_dry_run(cluster, addon, "replicas=2", "shards=2", "takeoverSeconds=30")
    (app,) = [d for d in docs if d["kind"] == "Application"]
    components = {c["name"]: c["properties"]["objects"] for c in app["spec"]["components"]}
    deployments = [
        o for o in components["vela-progressive-controller"] if o["kind"] == "Deployment"
    ]
    assert [(d["metadata"]["name"], d["spec"]["replicas"]) for d in deployments] == [
        ("vela-progressive-controller-0", 2),
        ("vela-progressive-controller-1", 2),
    ]
    kinds = [o["kind"] for o in components["vela-progressive-peering"]]
    assert kinds == ["CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"]
