"""Safety of the release on the real cluster: what abort, a failure, a newer revision and the
trait's removal must never do to traffic or to the workload (issue 9, bugs 1, 2 and 4).

Each test samples the cluster independently of the controller (EndpointSlices, the canary
Ingress) while the release runs, and fails on the first sample that breaks the rule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.integration.release_kit import (
    CR_API,
    V1,
    V2,
    V3,
    Release,
    eventually,
    rollout,
    workload,
)
from tests.support.controller import Controller
from vela_progressive.core.model import HOLD_LABEL, KIND
from vela_progressive.core.release import ABORT_ANNOTATION, RETRY_ANNOTATION
from vela_progressive.core.workloads import APP_REVISION_LABEL
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
INGRESS = ("networking.k8s.io/v1", "Ingress")
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
UNSCHEDULABLE = {"nodeSelector": {"vela-progressive.io/no-such-node": "true"}}


async def nginx_release(
    kube: Kube, ns: str, steps: list[Obj], *, replicas: int = 10, **strategy: Any
) -> Release:
    """A canary-style Deployment behind a Service and an NGINX Ingress, released to Healthy."""
    labels = {"app.oam.dev/component": "web"}
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns, "labels": labels},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    await kube.create(
        {
            "apiVersion": INGRESS[0],
            "kind": INGRESS[1],
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [
                    {
                        "host": "shop.example.com",
                        "http": {
                            "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]
                        },
                    }
                ],
            },
        }
    )
    rel = Release(kube, ns, "Deployment")
    await kube.create(workload("Deployment", "web", ns, replicas, V1))
    cr = rollout("web", ns, "Deployment", steps, **strategy)
    cr["spec"]["strategy"]["canary"]["trafficRoutings"] = [
        {"type": "ingress", "ingressName": "web"}
    ]
    await kube.create(cr)
    await rel.wait_phase("Healthy")
    await rel.wait_pods(V1, replicas)
    return rel


async def images_behind(kube: Kube, ns: str, service: str) -> set[str]:
    """Images of the pods the Service's EndpointSlices list (what kube-proxy would route to)."""
    slices = await kube.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        ns,
        label_selector=f"kubernetes.io/service-name={service}",
    )
    names = {
        (e.get("targetRef") or {}).get("name")
        for piece in slices
        for e in piece.get("endpoints") or []
    }
    pods = {p["metadata"]["name"]: p for p in await kube.list("v1", "Pod", ns)}
    return {pods[n]["spec"]["containers"][0]["image"] for n in names if n in pods}


async def ready_behind(kube: Kube, ns: str, service: str) -> int:
    slices = await kube.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        ns,
        label_selector=f"kubernetes.io/service-name={service}",
    )
    return sum(
        1
        for piece in slices
        for e in piece.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready") is not False
    )


async def canary_weight(kube: Kube, ns: str) -> int:
    """The NGINX canary Ingress's weight (0 when there is no canary Ingress)."""
    canary = await kube.get(*INGRESS, "web-canary", ns)
    if canary is None:
        return 0
    annotations = canary["metadata"].get("annotations") or {}
    if annotations.get("nginx.ingress.kubernetes.io/canary") != "true":
        return 0
    return int(annotations.get(CANARY_WEIGHT, "0") or 0)


@contextlib.asynccontextmanager
async def watching(
    probe: Callable[[], Awaitable[str | None]], every: float = 0.1
) -> AsyncIterator[list[str]]:
    """Run ``probe`` continuously while the body runs; it returns a violation or ``None``."""
    violations: list[str] = []
    stop = asyncio.Event()
    samples = 0

    async def loop() -> None:
        nonlocal samples
        while not stop.is_set():
            found = await probe()
            samples += 1
            if found:
                violations.append(found)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield violations
    finally:
        stop.set()
        await task
        assert samples > 3, "the sampler hardly ran"


async def abort(kube: Kube, ns: str, revision: str) -> None:
    await kube.patch(
        CR_API, KIND, "web", ns, {"metadata": {"annotations": {ABORT_ANNOTATION: revision}}}
    )


async def test_during_an_abort_the_stable_service_never_selects_a_pod_of_the_aborted_revision(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    # Canary style: the canary pods carry the component's labels, so an unpinned stable Service
    # would select them.
    steps = [{"replicas": 5, "weight": 50}, {"replicas": "100%", "weight": 100}]
    rel = await nginx_release(kube, namespace, steps)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    assert await rel.count(V2, ready_only=True) == 5
    assert await canary_weight(kube, namespace) == 50

    async def stable_sees_aborted() -> str | None:
        images = await images_behind(kube, namespace, "web")
        return f"stable Service routes to {sorted(images)}" if V2 in images else None

    async with watching(stable_sees_aborted) as violations:
        await abort(kube, namespace, "app-v2")
        await rel.wait_phase("Aborted", within=90)
        await rel.wait_pods(V1, 10)
        await asyncio.sleep(1.0)  # the EndpointSlice controller catches up with the Services
    assert not violations, violations[:3]
    assert await canary_weight(kube, namespace) == 0
    assert await kube.get("v1", "Service", "web-canary", namespace) is None
    svc = await kube.get("v1", "Service", "web", namespace)
    assert svc is not None
    assert svc["spec"]["selector"] == {"app.oam.dev/component": "web"}


async def test_a_newer_revision_takes_the_weight_off_a_canary_that_has_no_ready_pod_and_a_failure_aborts(  # noqa: E501
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps = [{"replicas": 2, "weight": 50}, {"replicas": "100%", "weight": 100}]
    rel = await nginx_release(kube, namespace, steps, progressDeadlineSeconds=15)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    assert await canary_weight(kube, namespace) == 50

    async def weight_without_ready_pod() -> str | None:
        weight = await canary_weight(kube, namespace)
        if weight and not await ready_behind(kube, namespace, "web-canary"):
            return f"canary weight {weight} with no Ready canary endpoint"
        return None

    async with watching(weight_without_ready_pod) as violations:
        # v3 cannot be scheduled: its canary pods never become Ready.
        await kube.patch(CR_API, KIND, "web", namespace, {"spec": {"revision": {"name": "app-v3"}}})
        await kube.patch(
            "apps/v1",
            "Deployment",
            "web",
            namespace,
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "main", "image": V3}],
                            **UNSCHEDULABLE,
                        }
                    }
                }
            },
            patch_type="strategic",
        )
        status = await rel.wait_phase("Failed", within=90)
        # onFailure defaults to abort: back to stable, the phase stays Failed with the reason.
        await eventually(
            lambda: _ended_failed(rel), 60, "the failed release back on stable (endingStage Done)"
        )
    assert not violations, violations[:3]
    status = (await rel.cr())["status"]
    assert status["failureReason"] == "Unschedulable", status
    assert "Unschedulable" in status["message"]
    assert "kubectl progressive retry" in status["message"]
    assert await canary_weight(kube, namespace) == 0
    assert await rel.count(V1, ready_only=True) == 10
    assert await rel.count(V3) == 0
    events = await kube.list("v1", "Event", namespace)
    assert any(e.get("reason") == "Unschedulable" for e in events)


async def _ended_failed(rel: Release) -> Obj | None:
    status = (await rel.cr()).get("status") or {}
    done = status.get("phase") == "Failed" and status.get("endingStage") == "Done"
    return status if done else None


async def test_on_failure_pause_holds_everything_and_retry_runs_the_step_again(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps = [{"replicas": 2, "weight": 50}, {"replicas": "100%", "weight": 100}]
    rel = await nginx_release(
        kube, namespace, steps, replicas=4, progressDeadlineSeconds=8, onFailure="pause"
    )
    await kube.patch(CR_API, KIND, "web", namespace, {"spec": {"revision": {"name": "app-v2"}}})
    await kube.patch(
        "apps/v1",
        "Deployment",
        "web",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "main", "image": V2}], **UNSCHEDULABLE}
                }
            }
        },
        patch_type="strategic",
    )
    status = await rel.wait_phase("Failed", within=60)
    assert "kubectl progressive abort" in status["message"]
    assert "kubectl progressive retry" in status["message"]
    await asyncio.sleep(3)
    status = (await rel.cr())["status"]
    assert status["phase"] == "Failed"
    assert not status.get("ending"), "onFailure: pause must not wind the release up"
    # Held as it is: the canary Deployment keeps its pods for investigation.
    canary = await kube.get("apps/v1", "Deployment", "web-canary", namespace)
    assert canary is not None
    assert canary["spec"]["replicas"] == 2
    # Retry: the step starts again (and fails again after the deadline, once).
    await kube.patch(
        CR_API,
        KIND,
        "web",
        namespace,
        {"metadata": {"annotations": {RETRY_ANNOTATION: "app-v2/1"}}},
    )

    async def retried() -> Obj | None:
        got = (await rel.cr()).get("status") or {}
        return got if got.get("retries") == 1 else None

    status = await eventually(retried, 30, "the retry to be taken")
    status = await rel.wait_phase("Failed", within=60)
    assert status["retries"] == 1
    # Then an abort takes it back to stable.
    await abort(kube, namespace, "app-v2")
    await eventually(lambda: _ended_failed(rel), 60, "the abort of the failed release")
    assert await rel.count(V1, ready_only=True) == 4
    assert await kube.get("apps/v1", "Deployment", "web-canary", namespace) is None


async def test_removing_the_trait_mid_release_hands_the_workload_back_within_seconds(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps = [{"replicas": 2, "weight": 20}, {"replicas": "100%", "weight": 100}]
    rel = await nginx_release(kube, namespace, steps, releaseMode="batch")
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    assert (await rel.workload())["spec"]["paused"] is True
    # What KubeVela applies for a revision without the trait: the hold label is gone (the
    # three-way merge removes what the trait rendered), the workload names the new revision,
    # and the rollout stays until the workflow ends (it only ends once the workload is healthy).
    await kube.patch(
        "apps/v1",
        "Deployment",
        "web",
        namespace,
        {"metadata": {"labels": {HOLD_LABEL: None, APP_REVISION_LABEL: "app-v3"}}},
    )

    async def handed_back() -> Obj | None:
        obj = await rel.workload()
        return obj if not obj["spec"].get("paused") else None

    await eventually(handed_back, 20, "the Deployment handed back (unpaused)")
    await rel.wait_pods(V2, 10, within=90)
    obj = await rel.workload()
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not any(
        k.startswith("rollout.vela-progressive.io") for k in obj["metadata"].get("annotations", {})
    )
    assert await canary_weight(kube, namespace) == 0

    async def services_restored() -> Obj | None:
        status = (await rel.cr())["status"]
        gone = await kube.get("v1", "Service", "web-canary", namespace) is None
        return status if gone and status.get("phase") == "Healthy" else None

    status = await eventually(services_restored, 20, "the Services restored, the rollout Healthy")
    assert "Releasing" in [entry["state"] for entry in status["timeline"]]


async def test_a_release_whose_routes_cannot_be_applied_moves_no_pod(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps = [{"replicas": 2, "weight": 20}, {"replicas": "100%", "weight": 100}]
    rel = await nginx_release(kube, namespace, steps)
    # The Ingress now routes to another Service: no canary Ingress can be derived from it.
    await kube.patch(
        *INGRESS,
        "web",
        namespace,
        {
            "spec": {
                "rules": [
                    {
                        "host": "shop.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "other", "port": {"number": 80}}
                                    },
                                }
                            ]
                        },
                    }
                ]
            }
        },
    )
    await rel.set_image(V2, "app-v2")

    async def blocked() -> Obj | None:
        status = (await rel.cr()).get("status") or {}
        return status if "no pod moves" in (status.get("message") or "") else None

    status = await eventually(blocked, 60, "the release held before any pod moved")
    assert "Ingress" in status["message"], status["message"]
    await asyncio.sleep(3)
    assert await kube.get("apps/v1", "Deployment", "web-canary", namespace) is None
    assert await rel.count(V2) == 0
    assert await canary_weight(kube, namespace) == 0
