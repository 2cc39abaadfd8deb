"""Kubernetes workloads really roll in the test world (KCM + scheduler + kwok fake kubelets)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.cluster import Cluster

pytestmark = pytest.mark.cluster

IMAGE_V1 = "registry.invalid/web:v1"
IMAGE_V2 = "registry.invalid/web:v2"


def _pod_spec(image: str) -> dict[str, Any]:
    return {"containers": [{"name": "web", "image": image}], "terminationGracePeriodSeconds": 0}


def _deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(image)},
        },
    }


def _statefulset(name: str, replicas: int, image: str, partition: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"partition": partition},
            },
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(image)},
        },
    }


def _daemonset(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(image)},
        },
    }


def _apply(cluster: Cluster, obj: dict[str, Any], namespace: str) -> None:
    cluster.apply_yaml(json.dumps(obj), namespace=namespace)


def _pods(cluster: Cluster, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get("pods", "-n", namespace, "-l", f"app={app}")["items"]
    return items


def _running_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return status.get("phase") == "Running" and ready and "deletionTimestamp" not in pod["metadata"]


def _image(pod: dict[str, Any]) -> str:
    image: str = pod["spec"]["containers"][0]["image"]
    return image


def test_deployment_of_four_replicas_rolls_from_v1_to_v2_onto_a_new_replicaset(
    cluster: Cluster, namespace: str
) -> None:
    _apply(cluster, _deployment("web", 4, IMAGE_V1), namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=120s")
    first_rs = cluster.get("replicasets", "-n", namespace, "-l", "app=web")["items"]
    assert len(first_rs) == 1
    old_hash = first_rs[0]["metadata"]["labels"]["pod-template-hash"]

    cluster.kubectl("set", "image", "deployment/web", f"web={IMAGE_V2}", "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=120s")

    replicasets = cluster.get("replicasets", "-n", namespace, "-l", "app=web")["items"]
    new_rs = [rs for rs in replicasets if rs["metadata"]["labels"]["pod-template-hash"] != old_hash]
    assert len(new_rs) == 1, f"expected one new ReplicaSet, got {len(new_rs)}"
    new_hash = new_rs[0]["metadata"]["labels"]["pod-template-hash"]
    assert new_rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert new_rs[0]["status"].get("readyReplicas") == 4
    old_rs = next(rs for rs in replicasets if rs is not new_rs[0])
    assert old_rs["spec"]["replicas"] == 0

    def all_pods_on_new_rs() -> list[dict[str, Any]] | None:
        pods = [
            p for p in _pods(cluster, namespace, "web") if "deletionTimestamp" not in p["metadata"]
        ]
        on_new = [
            p
            for p in pods
            if p["metadata"]["labels"]["pod-template-hash"] == new_hash and _running_ready(p)
        ]
        return pods if len(pods) == 4 and len(on_new) == 4 else None

    pods = cluster.wait_for(all_pods_on_new_rs, 60, "4 Running/Ready pods on the new ReplicaSet")
    assert {_image(p) for p in pods} == {IMAGE_V2}
    assert all(p["spec"].get("nodeName", "").startswith("kwok-node-") for p in pods)


def test_statefulset_partition_updates_only_the_pods_at_or_above_the_partition(
    cluster: Cluster, namespace: str
) -> None:
    _apply(cluster, _statefulset("db", 4, IMAGE_V1, partition=2), namespace)
    cluster.kubectl("rollout", "status", "statefulset/db", "-n", namespace, "--timeout=120s")
    current = cluster.get("statefulset", "db", "-n", namespace)["status"]["currentRevision"]

    cluster.kubectl("set", "image", "statefulset/db", f"web={IMAGE_V2}", "-n", namespace)

    def partitioned() -> dict[str, Any] | None:
        status: dict[str, Any] = cluster.get("statefulset", "db", "-n", namespace)["status"]
        done = (
            status.get("updateRevision") != current
            and status.get("updatedReplicas") == 2
            and status.get("readyReplicas") == 4
        )
        return status if done else None

    status = cluster.wait_for(partitioned, 120, "db-2 and db-3 on the update revision")
    update = status["updateRevision"]
    pods = {p["metadata"]["name"]: p for p in _pods(cluster, namespace, "db")}
    revisions = {n: p["metadata"]["labels"]["controller-revision-hash"] for n, p in pods.items()}
    assert revisions == {"db-0": current, "db-1": current, "db-2": update, "db-3": update}
    assert {n: _image(p) for n, p in pods.items()} == {
        "db-0": IMAGE_V1,
        "db-1": IMAGE_V1,
        "db-2": IMAGE_V2,
        "db-3": IMAGE_V2,
    }
    assert status["currentRevision"] == current, "pods below the partition must stay current"

    cluster.kubectl(
        "patch",
        "statefulset/db",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}',
    )
    cluster.kubectl("rollout", "status", "statefulset/db", "-n", namespace, "--timeout=120s")

    def all_updated() -> bool:
        pods = _pods(cluster, namespace, "db")
        return len(pods) == 4 and all(
            p["metadata"]["labels"]["controller-revision-hash"] == update and _running_ready(p)
            for p in pods
        )

    cluster.wait_for(all_updated, 60, "every db pod on the update revision after partition 0")


def test_daemonset_rolls_to_the_new_template_on_every_node(
    cluster: Cluster, namespace: str
) -> None:
    nodes = {n["metadata"]["name"] for n in cluster.get("nodes")["items"]}
    assert len(nodes) >= 3
    _apply(cluster, _daemonset("agent", IMAGE_V1), namespace)
    cluster.kubectl("rollout", "status", "daemonset/agent", "-n", namespace, "--timeout=120s")

    cluster.kubectl("set", "image", "daemonset/agent", f"web={IMAGE_V2}", "-n", namespace)
    cluster.kubectl("rollout", "status", "daemonset/agent", "-n", namespace, "--timeout=120s")

    def rolled() -> list[dict[str, Any]] | None:
        pods = [p for p in _pods(cluster, namespace, "agent") if _running_ready(p)]
        ok = len(pods) == len(nodes) and all(_image(p) == IMAGE_V2 for p in pods)
        return pods if ok else None

    pods = cluster.wait_for(rolled, 60, "one Ready v2 agent pod per node")
    assert {p["spec"]["nodeName"] for p in pods} == nodes
    status = cluster.get("daemonset", "agent", "-n", namespace)["status"]
    assert status["updatedNumberScheduled"] == status["desiredNumberScheduled"] == len(nodes)
