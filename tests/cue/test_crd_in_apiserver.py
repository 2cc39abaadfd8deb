"""The generated CRD and the ProgressiveRollouts the trait renders, checked by a real
kube-apiserver (the test world): the CRD is accepted and established, every rendered CR from the
dry-run goldens is admitted unchanged (nothing pruned), and out-of-range values are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.cluster import Cluster

from vela_progressive.core import model

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "addon/resources/crd.yaml"
GOLDENS = sorted((REPO / "tests/golden/cue/apps").glob("*.yaml"))


def _rendered_rollouts() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for golden in GOLDENS:
        for doc in yaml.safe_load_all(golden.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == model.KIND:
                found.append((golden.stem, doc))
    return found


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> str:
    # (forced: the cluster may hold an older version of the CRD applied by another manager)
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=pytest",
        "-f",
        "-",
        input=CRD.read_text(),
    )
    name = f"{model.PLURAL}.{model.API_GROUP}"
    cluster.wait_established(f"crd/{name}")
    return name


def _server_dry_run(cluster: Cluster, obj: dict[str, Any], namespace: str) -> Any:
    obj = {**obj, "metadata": {"name": obj["metadata"]["name"], "namespace": namespace}}
    done = cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj), check=False
    )
    return json.loads(done.stdout) if done.returncode == 0 else done.stderr


def test_the_crd_is_established_with_its_printer_columns(cluster: Cluster, crd: str) -> None:
    live = cluster.get("crd", crd)
    columns = [c["name"] for c in live["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Phase", "Step", "Steps", "Weight", "State", "Revision", "Message", "Age"]
    assert live["spec"]["names"]["shortNames"] == [model.SHORT_NAME]


@pytest.mark.parametrize(
    ("app", "rollout"), _rendered_rollouts(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_rendered_rollout_is_admitted_unchanged(
    cluster: Cluster, crd: str, namespace: str, app: str, rollout: dict[str, Any]
) -> None:
    admitted = _server_dry_run(cluster, rollout, namespace)
    assert isinstance(admitted, dict), admitted
    assert admitted["spec"] == rollout["spec"]


def test_out_of_range_values_are_refused_naming_the_field(
    cluster: Cluster, crd: str, namespace: str
) -> None:
    _, rollout = _rendered_rollouts()[0]
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    bad = json.loads(json.dumps(rollout))
    bad_steps = bad["spec"]["strategy"]["canary"]["steps"]
    bad_steps[0]["replicas"] = "150%"
    bad_steps[1]["weight"] = 101
    bad_steps[len(steps) - 1]["replicas"] = -1
    error = _server_dry_run(cluster, bad, namespace)
    assert isinstance(error, str)
    assert "spec.strategy.canary.steps[0].replicas" in error
    assert "spec.strategy.canary.steps[1].weight" in error
    assert f"spec.strategy.canary.steps[{len(steps) - 1}].replicas" in error
