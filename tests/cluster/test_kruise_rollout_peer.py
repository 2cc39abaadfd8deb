"""Kruise Rollout, the benchmarks' peer, runs in a world of its own and releases a Deployment.

`world.py peer kruise-rollout` starts it (building it the first time: `build.sh rollouts`,
3 to 6 minutes cold) in a world started for this module only, so no other test sees its
webhooks. The release is the benchmark's: a 10-replica Deployment in partition style
(`enableExtraWorkloadForCanary: false`, needs `--feature-gates=AdvancedDeployment=true`), steps
20/50/80/100% with no waits (`pause: {duration: 0}`), then a new image. Watches on the Rollout
and the ReplicaSets record every step and every scale, so a skipped step shows. The world runs
with `world.py up --audit`: `hack/bench/audit_count.py` counts the release's API requests by
the peer's own user, as the benchmark will.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hack.bench import peer_release

from tests.support.cluster import REPO, WORLD, Cluster, _run_streaming, own_world

pytestmark = pytest.mark.cluster

#: The benchmark's two releases (hack/bench/peer_release.py renders ours and Kruise's).
PARTITION = peer_release.partition(namespace="peer-release")
CANARY = peer_release.canary_nginx(namespace="peer-canary")
NAMESPACE = PARTITION.namespace
REPLICAS = PARTITION.replicas
ROLLOUT_API = "rollouts.v1beta1.rollouts.kruise.io"
REVISION_LABEL = "pod-template-hash"
PEER_USER = "system:serviceaccount:kruise-rollout:kruise-rollout-controller-manager"
AUDIT_COUNT = REPO / "hack" / "bench" / "audit_count.py"


@pytest.fixture(scope="module")
def world(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    name = f"kruise-rollout-{os.getpid()}"
    with own_world(name, pytestconfig, cache, "--audit") as started:
        assert started.name is not None
        code, _, err = _run_streaming(
            [sys.executable, str(WORLD), "peer", "kruise-rollout", "--name", started.name],
            pytestconfig,
        )
        if code != 0:
            pytest.fail(f"world.py peer kruise-rollout failed (exit {code}):\n{err}", False)
        yield started


def deployment(image: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    labels = {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


class Watch:
    """`kubectl get ... --watch -o json` in the background; every object version it saw."""

    def __init__(self, cluster: Cluster, out: Path, *args: str) -> None:
        self.out = out
        self.handle = out.open("w")
        self.proc = subprocess.Popen(
            [
                str(cluster.bindir / "kubectl"),
                f"--kubeconfig={cluster.kubeconfig}",
                "get",
                *args,
                "-n",
                NAMESPACE,
                "--watch",
                "-o",
                "json",
            ],
            env=cluster.env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> list[dict[str, Any]]:
        self.proc.terminate()
        self.proc.wait(10)
        self.handle.close()
        text, objects = self.out.read_text().strip(), []
        decoder = json.JSONDecoder()
        while text:
            obj, end = decoder.raw_decode(text)
            objects.append(obj)
            text = text[end:].strip()
        return objects


def test_partition_release_goes_through_every_step(world: Cluster, tmp_path: Path) -> None:
    world.create_namespace(NAMESPACE)
    world.apply_yaml(yaml.safe_dump(deployment("demo/web:v1")))
    world.wait_for(
        lambda: world.get("deployment", "web", "-n", NAMESPACE)["status"].get("readyReplicas")
        == REPLICAS,
        90,
        "10 Ready pods of web v1",
    )
    world.apply_yaml(yaml.safe_dump(peer_release.kruise(PARTITION)))
    # The Rollout is ready for a release once it is Healthy and has labelled its workload
    # (the label its webhooks select).
    world.wait_for(
        lambda: world.get(ROLLOUT_API, "web", "-n", NAMESPACE).get("status", {}).get("phase")
        == "Healthy"
        and "rollouts.kruise.io/workload-type"
        in world.get("deployment", "web", "-n", NAMESPACE)["metadata"].get("labels", {}),
        60,
        "the Rollout to be Healthy and the Deployment labelled by kruise-rollout",
    )

    rollouts = Watch(world, tmp_path / "rollouts.json", ROLLOUT_API, "web")
    replicasets = Watch(world, tmp_path / "replicasets.json", "replicasets")
    time.sleep(1)  # both watches have listed
    started, since = time.monotonic(), datetime.datetime.now(datetime.UTC)
    world.kubectl("set", "image", "deployment/web", "web=demo/web:v2", "-n", NAMESPACE)

    def released() -> dict[str, Any] | None:
        obj: dict[str, Any] = world.get(ROLLOUT_API, "web", "-n", NAMESPACE)
        done = (
            obj.get("status", {}).get("phase") == "Healthy"
            and condition(obj, "Progressing").get("reason") == "Completed"
            and condition(obj, "Succeeded").get("status") == "True"
        )
        return obj if done else None

    final = world.wait_for(released, 90, "the release to complete", interval=0.2)
    took, until = time.monotonic() - started, datetime.datetime.now(datetime.UTC)
    seen_rollouts, seen_replicasets = rollouts.stop(), replicasets.stop()

    # Done: every pod on the new revision and Ready (kwok deletes old pods at once).
    def all_new() -> list[dict[str, Any]] | None:
        pods: list[dict[str, Any]] = world.get("pods", "-n", NAMESPACE, "-l", "app=web")["items"]
        new = [p for p in pods if p["spec"]["containers"][0]["image"] == "demo/web:v2"]
        ready = [p for p in new if condition(p, "Ready").get("status") == "True"]
        return new if len(pods) == len(ready) == REPLICAS else None

    new = world.wait_for(all_new, 30, f"{REPLICAS} pods, all on v2 and Ready")
    revision = {p["metadata"]["labels"][REVISION_LABEL] for p in new}
    assert len(revision) == 1, f"new pods of several revisions: {revision}"
    (new_hash,) = revision

    # Every step of this release, in order, and none twice. (A new Rollout's status already
    # reads "step 4 Completed" for the revision it found: count only the new revision's.)
    steps: list[int] = []
    for obj in seen_rollouts:
        canary = obj.get("status", {}).get("canaryStatus") or {}
        index = canary.get("currentStepIndex")
        if canary.get("canaryRevision") == new_hash and (not steps or steps[-1] != index):
            steps.append(index)
    assert steps == list(range(1, len(PARTITION.steps) + 1)), (
        f"step indexes seen: {steps}; final status {final['status']}"
    )

    # The new ReplicaSet grew batch by batch: 2, 5, 8, 10 of 10 (never backwards).
    sizes: list[int] = []
    for obj in seen_replicasets:
        if obj["metadata"].get("labels", {}).get(REVISION_LABEL) == new_hash:
            size = obj["spec"]["replicas"]
            if not sizes or sizes[-1] != size:
                sizes.append(size)
    wanted = PARTITION.plan
    assert sizes == sorted(sizes), f"the new ReplicaSet shrank: {sizes}"
    assert [s for s in sizes if s in wanted] == wanted, f"new ReplicaSet sizes: {sizes}"

    deploy = world.get("deployment", "web", "-n", NAMESPACE)
    assert not deploy["spec"].get("paused"), "kruise-rollout left the Deployment paused"
    assert deploy["status"].get("updatedReplicas") == REPLICAS

    # Its API requests during the release, from the API server's audit log, by its own user.
    audit_log = world.kubeconfig.parent / "audit.log"
    argv = [
        sys.executable,
        str(AUDIT_COUNT),
        str(audit_log),
        "--user",
        PEER_USER,
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
    ]
    rows = json.loads(world.run([*argv, "--json"]).stdout)
    by_verb: dict[str, int] = {}
    for row in rows:
        by_verb[row["verb"]] = by_verb.get(row["verb"], 0) + row["requests"]
    writes = {(r["verb"], r["resource"]) for r in rows if r["verb"] in ("patch", "update")}
    assert ("patch", "deployments") in writes or ("update", "deployments") in writes, rows
    assert any(resource.startswith("rollouts") for _, resource in writes), rows
    print(
        f"\nkruise-rollout released web v2 through steps {steps} (new ReplicaSet {sizes}) "
        f"in {took:.1f}s with {sum(by_verb.values())} API requests {by_verb} (audit log):\n"
        + world.run(argv).stdout,
        file=sys.stderr,
    )


CANARY_NAMESPACE = CANARY.namespace
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


def service_and_ingress() -> list[dict[str, Any]]:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": CANARY_NAMESPACE},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": CANARY_NAMESPACE},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "web.example",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    return [service, ingress]


def test_canary_release_moves_nginx_weights(world: Cluster, tmp_path: Path) -> None:
    """The canary style: an extra canary Deployment and a canary Ingress whose weight Kruise
    Rollout sets through its Lua script (lua_configuration/trafficrouting_ingress/nginx.lua,
    which world.py copies into its working directory)."""
    world.create_namespace(CANARY_NAMESPACE)
    web = deployment("demo/web:v1", CANARY_NAMESPACE)
    world.apply_yaml(yaml.safe_dump_all([web, *service_and_ingress()]))
    world.wait_for(
        lambda: world.get("deployment", "web", "-n", CANARY_NAMESPACE)["status"].get(
            "readyReplicas"
        )
        == REPLICAS,
        90,
        "10 Ready pods of web v1",
    )
    canary = peer_release.kruise(CANARY)
    world.apply_yaml(yaml.safe_dump(canary))
    world.wait_for(
        lambda: world.get(ROLLOUT_API, "web", "-n", CANARY_NAMESPACE).get("status", {}).get("phase")
        == "Healthy",
        60,
        "the Rollout to be Healthy",
    )

    handle = (tmp_path / "ingresses.json").open("w")
    watch = subprocess.Popen(
        [
            str(world.bindir / "kubectl"),
            f"--kubeconfig={world.kubeconfig}",
            "get",
            "ingresses",
            "-n",
            CANARY_NAMESPACE,
            "--watch",
            "-o",
            "json",
        ],
        env=world.env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    time.sleep(1)
    started = time.monotonic()
    world.kubectl("set", "image", "deployment/web", "web=demo/web:v2", "-n", CANARY_NAMESPACE)

    def released() -> bool:
        obj = world.get(ROLLOUT_API, "web", "-n", CANARY_NAMESPACE)
        return (
            obj.get("status", {}).get("phase") == "Healthy"
            and condition(obj, "Succeeded").get("status") == "True"
        )

    world.wait_for(released, 120, "the canary release to complete", interval=0.2)
    took = time.monotonic() - started
    watch.terminate()
    watch.wait(10)
    handle.close()

    text, weights = (tmp_path / "ingresses.json").read_text().strip(), []
    decoder = json.JSONDecoder()
    while text:
        obj, end = decoder.raw_decode(text)
        text = text[end:].strip()
        weight = (obj["metadata"].get("annotations") or {}).get(WEIGHT)
        if obj["metadata"]["name"] != "web" and weight and (not weights or weights[-1] != weight):
            weights.append(weight)
    # The canary Ingress starts at weight 0 (it may go back to 0 while finalising).
    moves = weights[1:-1] if weights[-1:] == ["0"] else weights[1:]
    assert weights[:1] == ["0"], f"canary-weight values seen: {weights}"
    assert moves == [str(w) for w in CANARY.weights or ()], f"canary-weight values seen: {weights}"

    # Done: the canary Ingress and Deployment are gone, the Deployment runs v2 everywhere.
    def cleaned_up() -> bool:
        ingresses = world.get("ingresses", "-n", CANARY_NAMESPACE)["items"]
        deployments = world.get("deployments", "-n", CANARY_NAMESPACE)["items"]
        pods = world.get("pods", "-n", CANARY_NAMESPACE)["items"]
        return (
            [i["metadata"]["name"] for i in ingresses] == ["web"]
            and [d["metadata"]["name"] for d in deployments] == ["web"]
            and len(pods) == REPLICAS
            and all(p["spec"]["containers"][0]["image"] == "demo/web:v2" for p in pods)
        )

    world.wait_for(cleaned_up, 60, "the canary objects removed and 10 pods on v2")
    print(
        f"\nkruise-rollout canary release: canary-weight {weights}, done in {took:.1f}s",
        file=sys.stderr,
    )
