"""OpenKruise workloads really roll in the test world: the real kruise-manager and its webhooks.

kwok has no real kubelet, so in-place updates never finish: these workloads use the ReCreate
update types (CloneSet ``ReCreate``, Advanced StatefulSet ``podUpdatePolicy: ReCreate``,
Advanced DaemonSet ``rollingUpdateType: Standard``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cluster import Cluster

pytestmark = pytest.mark.cluster

IMAGE_V1 = "registry.invalid/web:v1"
IMAGE_V2 = "registry.invalid/web:v2"
CLONESET = "clonesets.apps.kruise.io"
ASTS = "statefulsets.apps.kruise.io"
ADS = "daemonsets.apps.kruise.io"


def _template(app: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [{"name": "web", "image": image}],
            "terminationGracePeriodSeconds": 0,
        },
    }


def _cloneset(name: str, replicas: int, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": _template(name, image),
            "updateStrategy": {"type": "ReCreate"},
        },
    }


def _advanced_statefulset(name: str, replicas: int, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": _template(name, image),
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"podUpdatePolicy": "ReCreate"},
            },
        },
    }


def _advanced_daemonset(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": _template(name, image),
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"rollingUpdateType": "Standard"},
            },
        },
    }


def _apply(cluster: Cluster, obj: dict[str, Any], namespace: str) -> None:
    cluster.apply_yaml(json.dumps(obj), namespace=namespace)


def _patch(cluster: Cluster, resource: str, namespace: str, patch: dict[str, Any]) -> None:
    cluster.kubectl("patch", resource, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


@pytest.fixture
def deleted_after(cluster: Cluster, namespace: str) -> Iterator[list[str]]:
    """Resources (``kind/name``) the test created: deleted (and waited for) after it."""
    created: list[str] = []
    yield created
    for resource in created:
        cluster.kubectl(
            "delete", resource, "-n", namespace, "--wait=true", "--timeout=60s", check=False
        )


def _pods(cluster: Cluster, namespace: str, app: str) -> list[dict[str, Any]]:
    items = cluster.get("pods", "-n", namespace, "-l", f"app={app}")["items"]
    return [p for p in items if "deletionTimestamp" not in p["metadata"]]


def _running_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return status.get("phase") == "Running" and ready


def _image(pod: dict[str, Any]) -> str:
    image: str = pod["spec"]["containers"][0]["image"]
    return image


def _revision(pod: dict[str, Any]) -> str:
    revision: str = pod["metadata"]["labels"]["controller-revision-hash"]
    return revision


def _owned_ready_pods(
    cluster: Cluster, namespace: str, app: str, kind: str, count: int
) -> list[dict[str, Any]] | None:
    pods = _pods(cluster, namespace, app)
    ready = [
        p
        for p in pods
        if _running_ready(p)
        and [o["kind"] for o in p["metadata"].get("ownerReferences", [])] == [kind]
    ]
    return pods if len(pods) == count and len(ready) == count else None


def test_cloneset_of_ten_pods_becomes_ready_and_a_partition_keeps_the_old_revision(
    cluster: Cluster, namespace: str, deleted_after: list[str]
) -> None:
    deleted_after.append(f"{CLONESET}/web")
    _apply(cluster, _cloneset("web", 10, IMAGE_V1), namespace)
    pods = cluster.wait_for(
        lambda: _owned_ready_pods(cluster, namespace, "web", "CloneSet", 10),
        120,
        "10 Running/Ready CloneSet pods (kruise-manager's cloneset-controller)",
    )
    status = cluster.get(CLONESET, "web", "-n", namespace)["status"]
    old = status["updateRevision"]
    assert status["currentRevision"] == old
    assert old.startswith("web-")
    assert {_revision(p) for p in pods} == {old}
    # CloneSet pods carry both hashes: the revision's name and the bare hash.
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {
        old.removeprefix("web-")
    }

    # partition = pods kept on the old revision: 10 - 6 = 4 move to v2.
    spec = {"updateStrategy": {"partition": 6}, "template": _template("web", IMAGE_V2)}
    _patch(cluster, f"{CLONESET}/web", namespace, {"spec": spec})

    def partially_updated() -> dict[str, Any] | None:
        status: dict[str, Any] = cluster.get(CLONESET, "web", "-n", namespace)["status"]
        done = (
            status["updateRevision"] != old
            and status.get("updatedReadyReplicas") == 4
            and status.get("readyReplicas") == 10
        )
        return status if done else None

    status = cluster.wait_for(partially_updated, 120, "4 of 10 CloneSet pods on v2")
    new = status["updateRevision"]
    assert status["currentRevision"] == old
    pods = _pods(cluster, namespace, "web")
    assert sorted((_revision(p), _image(p)) for p in pods) == sorted(
        [(old, IMAGE_V1)] * 6 + [(new, IMAGE_V2)] * 4
    )


def test_advanced_statefulset_of_ten_pods_updates_the_ordinals_at_or_above_the_partition(
    cluster: Cluster, namespace: str, deleted_after: list[str]
) -> None:
    deleted_after.append(f"{ASTS}/db")
    _apply(cluster, _advanced_statefulset("db", 10, IMAGE_V1), namespace)
    pods = cluster.wait_for(
        lambda: _owned_ready_pods(cluster, namespace, "db", "StatefulSet", 10),
        120,
        "10 Running/Ready Advanced StatefulSet pods (kruise-manager's statefulset-controller)",
    )
    assert {p["metadata"]["name"] for p in pods} == {f"db-{i}" for i in range(10)}
    old = cluster.get(ASTS, "db", "-n", namespace)["status"]["updateRevision"]
    assert {_revision(p) for p in pods} == {old}
    assert all("pod-template-hash" not in p["metadata"]["labels"] for p in pods)

    rolling = {"rollingUpdate": {"partition": 6}}
    spec = {"updateStrategy": rolling, "template": _template("db", IMAGE_V2)}
    _patch(cluster, f"{ASTS}/db", namespace, {"spec": spec})

    def partially_updated() -> dict[str, Any] | None:
        status: dict[str, Any] = cluster.get(ASTS, "db", "-n", namespace)["status"]
        done = (
            status["updateRevision"] != old
            and status.get("updatedReadyReplicas") == 4
            and status.get("readyReplicas") == 10
        )
        return status if done else None

    status = cluster.wait_for(partially_updated, 120, "db-6..db-9 on v2")
    new = status["updateRevision"]
    pods = _pods(cluster, namespace, "db")
    assert {p["metadata"]["name"]: (_revision(p), _image(p)) for p in pods} == {
        f"db-{i}": (old, IMAGE_V1) if i < 6 else (new, IMAGE_V2) for i in range(10)
    }


def test_advanced_daemonset_runs_one_pod_per_kwok_node_and_a_partition_keeps_old_pods(
    cluster: Cluster, namespace: str, deleted_after: list[str]
) -> None:
    nodes = {n["metadata"]["name"] for n in cluster.get("nodes")["items"]}
    assert len(nodes) == 10
    deleted_after.append(f"{ADS}/agent")
    _apply(cluster, _advanced_daemonset("agent", IMAGE_V1), namespace)
    pods = cluster.wait_for(
        lambda: _owned_ready_pods(cluster, namespace, "agent", "DaemonSet", len(nodes)),
        120,
        "one Running/Ready Advanced DaemonSet pod per node (kruise-manager's daemonset-controller)",
    )
    assert {p["spec"]["nodeName"] for p in pods} == nodes
    # No status.updateRevision: status.daemonSetHash is the bare hash, as on the pods' label.
    old = cluster.get(ADS, "agent", "-n", namespace)["status"]["daemonSetHash"]
    assert {_revision(p) for p in pods} == {old}

    rolling = {"rollingUpdate": {"partition": 6}}
    spec = {"updateStrategy": rolling, "template": _template("agent", IMAGE_V2)}
    _patch(cluster, f"{ADS}/agent", namespace, {"spec": spec})

    def partially_updated() -> list[dict[str, Any]] | None:
        status = cluster.get(ADS, "agent", "-n", namespace)["status"]
        pods = [p for p in _pods(cluster, namespace, "agent") if _running_ready(p)]
        done = (
            status["daemonSetHash"] != old
            and status.get("updatedNumberScheduled") == 4
            and len(pods) == 10
        )
        return pods if done else None

    pods = cluster.wait_for(partially_updated, 120, "4 of 10 Advanced DaemonSet pods on v2")
    assert sorted(_image(p) for p in pods) == [IMAGE_V1] * 6 + [IMAGE_V2] * 4


def test_kruise_webhooks_default_and_validate_a_cloneset(cluster: Cluster, namespace: str) -> None:
    obj = _cloneset("hooked", 1, IMAGE_V1)
    del obj["spec"]["updateStrategy"]
    # Server-side dry run: admission webhooks run, nothing is stored. The CRD has no defaults,
    # so these come from kruise-manager's mutating webhook.
    done = cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-n", namespace, "-f", "-",
        input=json.dumps(obj),
    )  # fmt: skip
    spec = json.loads(done.stdout)["spec"]
    assert spec["updateStrategy"] == {
        "type": "ReCreate",
        "partition": 0,
        "maxUnavailable": "20%",
        "maxSurge": 0,
    }
    assert spec["revisionHistoryLimit"] == 10

    obj["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    rejected = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-",
        input=json.dumps(obj), check=False,
    )  # fmt: skip
    assert rejected.returncode != 0
    assert 'admission webhook "vcloneset.kb.io" denied the request' in rejected.stderr
    assert "`selector` does not match template `labels`" in rejected.stderr
