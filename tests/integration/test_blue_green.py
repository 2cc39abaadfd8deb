"""Blue-green releases of a real Deployment (10 pods, kwok) behind an NGINX Ingress, an HTTPRoute
and an Istio VirtualService at once: a full new set beside the old one, a preview by header,
the switch, the old set kept for the scale-down delay, and abort/rollback that move traffic back
without creating a pod."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.release_kit import CR_API, V1, V2, V3, Release, eventually, rollout, workload
from tests.integration.test_kruise_workloads import kubevela_applies
from tests.integration.test_release_safety import canary_weight, nginx_release
from tests.integration.test_release_traffic import INGRESS, ROUTE, ROUTINGS, VS, originals, snapshot
from tests.support.controller import Controller
from vela_progressive.core.model import KIND
from vela_progressive.core.release import ABORT_ANNOTATION
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
PODS = 10
HEADER = {"headers": [{"name": "x-preview", "value": "green"}]}
DELAY = 15


#: The kinds with a blue-green style: (apiVersion, kind, the user's update strategy).
KINDS = {
    "Deployment": ("apps/v1", "Deployment", None),
    "CloneSet": ("apps.kruise.io/v1alpha1", "CloneSet", {"type": "ReCreate", "maxUnavailable": 2}),
}


async def setup(
    kube: Kube, ns: str, delay: int = DELAY, kind: str = "Deployment"
) -> tuple[Release, list[Obj | None]]:
    api_version, name, strategy = KINDS[kind]
    for obj in originals(ns):
        await kube.create(obj)
    before = await snapshot(kube, ns)
    rel = Release(kube, ns, name, api_version=api_version)
    obj = workload(name, "web", ns, PODS, V1, api_version=api_version)
    if strategy is not None:
        obj["spec"]["updateStrategy"] = strategy
    await kube.create(obj)
    cr = rollout(
        "web",
        ns,
        name,
        [{"replicas": "100%", "matches": [HEADER]}],
        api_version=api_version,
        releaseMode="blueGreen",
        blueGreen={"scaleDownDelaySeconds": delay},
    )
    cr["spec"]["strategy"]["canary"]["trafficRoutings"] = ROUTINGS
    await kube.create(cr)
    await rel.wait_phase("Healthy")
    await rel.wait_pods(V1, PODS)
    return rel, before


async def green_weights(kube: Kube, ns: str) -> tuple[int, int, int]:
    """The share of the new set on the Ingress, the HTTPRoute and the VirtualService."""
    canary = await kube.get(*INGRESS, "web-canary", ns)
    annotations = (canary or {}).get("metadata", {}).get("annotations") or {}
    ingress = int(annotations.get("nginx.ingress.kubernetes.io/canary-weight", 0) or 0)
    route = await kube.get(*ROUTE, "web", ns)
    vs = await kube.get(*VS, "web", ns)
    assert route is not None
    assert vs is not None
    backends = route["spec"]["rules"][-1]["backendRefs"]
    http = (
        next(w.get("weight", 0) for w in backends if w["name"] == "web-canary")
        if len(backends) > 1
        else 0
    )
    dests = vs["spec"]["http"][-1]["route"]
    mesh = (
        next(d.get("weight", 0) for d in dests if d["destination"]["host"] == "web-canary")
        if len(dests) > 1
        else 0
    )
    return ingress, int(http), int(mesh)


@contextlib.asynccontextmanager
async def sampling(rel: Release) -> AsyncIterator[list[tuple[int, int, tuple[int, int, int]]]]:
    """(old Ready pods, new Ready pods, green weights) every ~100 ms while the body runs."""
    samples: list[tuple[int, int, tuple[int, int, int]]] = []
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            old = await rel.count(V1, ready_only=True)
            new = await rel.count(V2, ready_only=True)
            samples.append((old, new, await green_weights(rel.kube, rel.ns)))
            await asyncio.sleep(0.1)

    task = asyncio.create_task(loop())
    try:
        yield samples
    finally:
        stop.set()
        await task


def handed_back_fields(obj: Obj) -> Obj:
    """The fields a blue-green hold changes, as the user had them."""
    spec = obj["spec"]
    keys = ("paused", "strategy", "updateStrategy", "minReadySeconds", "progressDeadlineSeconds")
    return {k: spec.get(k) for k in keys}


async def release_image(rel: Release, image: str, revision: str) -> None:
    """What KubeVela does on a new revision (a merge patch: CloneSets take no strategic one)."""
    if rel.kind == "Deployment":
        await rel.set_image(image, revision)
    else:
        await kubevela_applies(rel, image, revision)


async def pod_names(rel: Release) -> set[str]:
    return {p["metadata"]["name"] for p in await rel.pods()}


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_the_new_set_runs_beside_the_old_one_then_takes_every_request_and_the_old_set_goes(
    controller: Controller, kube: Kube, namespace: str, kind: str
) -> None:
    rel, before = await setup(kube, namespace, kind=kind)
    own = handed_back_fields(await rel.workload())
    async with sampling(rel) as samples:
        await release_image(rel, V2, "app-v2")
        status = await rel.wait_step(1)
        assert status["message"].startswith("blue (old) serves"), status["message"]
        assert await rel.count(V1, ready_only=True) == PODS
        assert await rel.count(V2, ready_only=True) == PODS
        assert await green_weights(kube, namespace) == (0, 0, 0), "preview: matches only"
        canary = await kube.get(*INGRESS, "web-canary", namespace)
        assert canary is not None
        annotations = canary["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary-by-header"] == "x-preview"
        await rel.approve(1)
        status = await rel.wait_step(2, "Waiting")
        assert status["message"].startswith("green (new) serves"), status["message"]
        assert await green_weights(kube, namespace) == (100, 100, 100)
        assert await rel.count(V1, ready_only=True) == PODS, "the old set stays for the delay"
        await rel.wait_phase("Healthy", within=DELAY + 90)
    await rel.assert_consistent(V2, PODS)
    assert handed_back_fields(await rel.workload()) == own, "not handed back exactly"
    assert await snapshot(kube, namespace) == before
    assert await kube.get(*INGRESS, "web-canary", namespace) is None
    switched = [i for i, (_, _, w) in enumerate(samples) if w == (100, 100, 100)]
    assert switched, "the sampler never saw the switch"
    first = switched[0]
    # Before the switch: the old set whole; no weight on the new set before its pods were Ready.
    assert all(old == PODS for old, _, _ in samples[:first]), samples[:first]
    assert all(w == (0, 0, 0) or new == PODS for _, new, w in samples), "weight before Ready"


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_abort_before_the_switch_moves_nothing_back_but_the_routes_and_removes_the_new_set(
    controller: Controller, kube: Kube, namespace: str, kind: str
) -> None:
    rel, before = await setup(kube, namespace, kind=kind)
    await release_image(rel, V2, "app-v2")
    await rel.wait_step(1)
    old_pods = await pod_names(rel)
    await kube.patch(
        CR_API, KIND, "web", namespace, {"metadata": {"annotations": {ABORT_ANNOTATION: "app-v2"}}}
    )
    await rel.wait_phase("Aborted")
    await rel.wait_pods(V1, PODS)

    async def green_gone() -> bool:
        return await rel.count(V2) == 0

    await eventually(green_gone, 60, "the new set removed")
    assert await snapshot(kube, namespace) == before
    v1_now = {p["metadata"]["name"] for p in await rel.pods()}
    assert v1_now <= old_pods, "an old pod was recreated"


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_rollback_during_the_scale_down_delay_switches_back_without_creating_a_pod(
    controller: Controller, kube: Kube, namespace: str, kind: str
) -> None:
    rel, before = await setup(kube, namespace, delay=120, kind=kind)
    await release_image(rel, V2, "app-v2")
    await rel.wait_step(1)
    await rel.approve(1)
    await rel.wait_step(2, "Waiting")
    assert await green_weights(kube, namespace) == (100, 100, 100)
    existing = await pod_names(rel)
    # What `kubectl progressive rollback` makes KubeVela do: the stable template, a new revision.
    await release_image(rel, V1, "app-v3")

    async def back() -> bool:
        return (
            await kube.get(*INGRESS, "web-canary", namespace) is None
            and (await snapshot(kube, namespace))[2:] == before[2:]
        )

    await eventually(back, 30, "every route back on the old set")
    status = await rel.wait_phase("Healthy")
    assert "rolled back" in status["message"], status["message"]
    await rel.wait_pods(V1, PODS)
    assert await snapshot(kube, namespace) == before
    created = await pod_names(rel) - existing
    assert not created, f"the rollback created pods: {created}"


async def test_an_hpa_keeps_sizing_the_deployment_and_both_sets_follow_it(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    # The HPA keeps control of spec.replicas during a blue-green release: the old set follows
    # it (every pod kept) and the new set is re-planned on it; the HPA object is never changed.
    rel, before = await setup(kube, namespace)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    hpa: Obj = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            # minReplicas above the current size: the HPA controller scales without metrics
            "minReplicas": 12,
            "maxReplicas": 12,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    await kube.create(hpa)
    created = await kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "web", namespace)
    assert created is not None

    async def resized() -> bool:
        return int((await rel.workload())["spec"]["replicas"]) == 12

    await eventually(resized, 60, "the HPA to scale the Deployment to 12")
    await rel.wait_pods(V1, 12)
    await rel.wait_pods(V2, 12)
    await rel.wait_step(1)
    await rel.approve(1)
    await rel.wait_phase("Healthy", within=DELAY + 90)
    await rel.wait_pods(V2, 12)
    assert await rel.count(V1) == 0
    after = await kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "web", namespace)
    assert after is not None
    assert after["spec"] == created["spec"], "the HPA was changed"
    assert await snapshot(kube, namespace) == before


async def test_a_failed_gate_during_the_preview_sends_traffic_back_and_removes_the_new_set(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    # The preview takes 20% of the requests and is gated by the error rate (the test world's
    # traffic simulator makes a "-bad" image fail 30% of them): onFailure abort.
    errors = {
        "name": "errors",
        "template": "request-error-rate",
        "thresholdRange": {"max": 5},
        "interval": 5,
        "count": 2,
    }
    steps = [{"replicas": "100%", "weight": 20, "duration": 0, "analysis": {"metrics": [errors]}}]
    rel = await nginx_release(
        kube,
        namespace,
        steps,
        replicas=4,
        releaseMode="blueGreen",
        blueGreen={"scaleDownDelaySeconds": 5},
    )
    blue = await pod_names(rel)
    await rel.set_image("registry.invalid/web:v2-bad", "app-v2")
    status = await rel.wait_phase("Failed", within=120)
    assert status["failureReason"] == "AnalysisFailed", status["message"]

    async def traffic_on_blue() -> bool:
        return await canary_weight(kube, namespace) == 0

    await eventually(traffic_on_blue, 15, "every request back on the old set")
    await rel.wait_pods(V1, 4)

    async def green_gone() -> bool:
        return await rel.count("registry.invalid/web:v2-bad") == 0

    await eventually(green_gone, 60, "the new set removed")
    assert await pod_names(rel) == blue, "the old set was touched"
    assert (await rel.cr())["status"]["currentStep"] == 1, "the switch never ran"


async def test_a_newer_revision_after_the_switch_moves_traffic_back_to_the_old_set_first(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    # v2 took every request; v3 arrives during the scale-down delay. The old set (v1) is still
    # whole: traffic goes back to it before v3's pods start, v2's set goes, v3 is previewed.
    rel, _ = await setup(kube, namespace, delay=120)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    await rel.approve(1)
    await rel.wait_step(2, "Waiting")
    assert await green_weights(kube, namespace) == (100, 100, 100)
    await rel.set_image(V3, "app-v3")
    status = await rel.wait_step(1)
    assert status["message"].startswith("blue (old) serves"), status["message"]
    assert await green_weights(kube, namespace) == (0, 0, 0)
    await rel.wait_pods(V3, PODS)
    assert await rel.count(V2) == 0
    assert await rel.count(V1, ready_only=True) == PODS
    await rel.approve(1)
    await rel.wait_step(2, "Waiting")
    assert await green_weights(kube, namespace) == (100, 100, 100)
