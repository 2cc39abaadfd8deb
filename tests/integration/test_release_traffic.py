"""Releases driven by the controller that move traffic on an Ingress, an HTTPRoute and a
VirtualService together, on the real API server (Gateway API and Istio CRDs installed).

At every pause the routing objects must be exactly what the step asks for; after completion and
after an abort every original object must be back, byte for byte (server-managed fields aside).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.release_kit import CR_API, V2, Release, eventually, rollout, workload
from tests.support.controller import Controller
from vela_progressive.core.model import KIND
from vela_progressive.core.release import ABORT_ANNOTATION
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
ROUTINGS = [
    {"type": "ingress", "ingressName": "web"},
    {"type": "gateway", "gatewayHTTPRouteName": "web"},
    {"type": "istio", "virtualServiceName": "web"},
]
INGRESS = ("networking.k8s.io/v1", "Ingress")
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
VS = ("networking.istio.io/v1", "VirtualService")
SVC = ("v1", "Service")


def originals(ns: str) -> list[Obj]:
    meta = {"name": "web", "namespace": ns, "labels": {"app.oam.dev/component": "web"}}
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": {"app.oam.dev/component": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        },
        {
            "apiVersion": INGRESS[0],
            "kind": INGRESS[1],
            "metadata": {**meta, "annotations": {"team": "shop"}},
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
        },
        {
            "apiVersion": ROUTE[0],
            "kind": ROUTE[1],
            "metadata": meta,
            "spec": {
                "parentRefs": [{"name": "public"}],
                "hostnames": ["shop.example.com"],
                "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
            },
        },
        {
            "apiVersion": VS[0],
            "kind": VS[1],
            "metadata": meta,
            "spec": {
                "hosts": ["web"],
                "http": [{"route": [{"destination": {"host": "web"}}]}],
            },
        },
    ]


def essence(obj: Obj | None) -> Obj | None:
    """What a user wrote: spec, labels, annotations (server-managed fields dropped)."""
    if obj is None:
        return None
    meta = obj["metadata"]
    return {
        "spec": obj.get("spec"),
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
    }


async def snapshot(kube: Kube, ns: str) -> list[Obj | None]:
    return [
        essence(await kube.get(api, kind, "web", ns)) for api, kind in (SVC, INGRESS, ROUTE, VS)
    ]


async def setup(kube: Kube, ns: str, steps: list[Obj]) -> tuple[Release, list[Obj | None]]:
    for obj in originals(ns):
        await kube.create(obj)
    before = await snapshot(kube, ns)
    rel = Release(kube, ns, "Deployment")
    await kube.create(workload("Deployment", "web", ns, 10, "registry.invalid/web:v1"))
    cr = rollout("web", ns, "Deployment", steps, releaseMode="batch")
    cr["spec"]["strategy"]["canary"]["trafficRoutings"] = ROUTINGS
    await kube.create(cr)
    await rel.wait_phase("Healthy")
    return rel, before


async def weights(kube: Kube, ns: str) -> dict[str, object]:
    canary_ingress = await kube.get(*INGRESS, "web-canary", ns)
    route = await kube.get(*ROUTE, "web", ns)
    vs = await kube.get(*VS, "web", ns)
    assert route is not None
    assert vs is not None
    annotations = (canary_ingress or {}).get("metadata", {}).get("annotations", {})
    return {
        "ingress": annotations.get("nginx.ingress.kubernetes.io/canary-weight"),
        "route": {b["name"]: b.get("weight") for b in route["spec"]["rules"][0]["backendRefs"]},
        "vs": {d["destination"]["host"]: d.get("weight") for d in vs["spec"]["http"][0]["route"]},
    }


async def test_weights_move_on_every_routing_at_each_step_and_everything_is_restored(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps = [
        {"replicas": "20%", "weight": 20},
        {"replicas": "50%", "weight": 50},
        {"replicas": "100%", "weight": 100},
    ]
    rel, before = await setup(kube, namespace, steps)
    await rel.set_image(V2, "app-v2")
    for step, weight in ((1, 20), (2, 50)):
        await rel.wait_step(step)
        assert await weights(kube, namespace) == {
            "ingress": str(weight),
            "route": {"web": 100 - weight, "web-canary": weight},
            "vs": {"web": 100 - weight, "web-canary": weight},
        }
        canary_svc = await kube.get("v1", "Service", "web-canary", namespace)
        canary_ingress = await kube.get(*INGRESS, "web-canary", namespace)
        assert canary_svc is not None, "the canary Service was not created"
        assert canary_ingress is not None, "the canary Ingress was not created"
        rollout_uid = (await rel.cr())["metadata"]["uid"]
        for created in (canary_svc, canary_ingress):  # shown under the rollout by vela --tree
            owners = created["metadata"].get("ownerReferences") or []
            assert [o["uid"] for o in owners] == [rollout_uid], created["metadata"]
        await rel.approve(step)
    await rel.wait_phase("Healthy")
    await rel.assert_consistent(V2, 10)
    assert await snapshot(kube, namespace) == before
    assert await kube.get(*INGRESS, "web-canary", namespace) is None
    assert await kube.get("v1", "Service", "web-canary", namespace) is None


async def test_header_matches_route_only_matching_requests_to_the_new_pods(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    match = {"headers": [{"name": "x-canary", "value": "always"}]}
    steps = [{"replicas": "20%", "matches": [match]}, {"replicas": "100%"}]
    rel, before = await setup(kube, namespace, steps)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    canary_ingress = await kube.get(*INGRESS, "web-canary", namespace)
    assert canary_ingress is not None
    annotations = canary_ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header"] == "x-canary"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-value"] == "always"
    route = await kube.get(*ROUTE, "web", namespace)
    assert route is not None
    header_rules = [
        r
        for r in route["spec"]["rules"]
        if any(
            h.get("name") == "x-canary" for m in r.get("matches", []) for h in m.get("headers", [])
        )
    ]
    assert header_rules, route["spec"]["rules"]
    assert [b["name"] for b in header_rules[0]["backendRefs"]] == ["web-canary"]
    vs = await kube.get(*VS, "web", namespace)
    assert vs is not None
    first = vs["spec"]["http"][0]
    assert first["match"][0]["headers"]["x-canary"] == {"exact": "always"}
    assert [d["destination"]["host"] for d in first["route"]] == ["web-canary"]
    await rel.approve(1)
    await rel.wait_phase("Healthy")
    assert await snapshot(kube, namespace) == before


async def test_abort_restores_every_route_and_service_exactly(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps = [
        {"replicas": "20%", "weight": 20},
        {"replicas": "50%", "weight": 50},
        {"replicas": "100%", "weight": 100},
    ]
    rel, before = await setup(kube, namespace, steps)
    await rel.set_image(V2, "app-v2")
    await rel.approve_until(2)
    await kube.patch(
        CR_API, KIND, "web", namespace, {"metadata": {"annotations": {ABORT_ANNOTATION: "app-v2"}}}
    )
    await rel.wait_phase("Aborted")
    await rel.wait_pods("registry.invalid/web:v1", 10)
    assert await snapshot(kube, namespace) == before
    assert await kube.get(*INGRESS, "web-canary", namespace) is None


async def test_a_missing_routing_object_is_reported_and_the_release_goes_on_once_it_exists(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps = [{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}]
    rel, _ = await setup(kube, namespace, steps)
    route = await kube.get(*ROUTE, "web", namespace)
    assert route is not None
    await kube.delete(*ROUTE, "web", namespace)
    await rel.set_image(V2, "app-v2")

    async def reported() -> Obj | None:
        status = (await rel.cr()).get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        traffic = conditions.get("TrafficReady")
        return status if traffic and traffic["status"] == "False" else None

    status = await eventually(reported, 60, "a TrafficReady=False condition")
    assert "HTTPRoute" in status["message"], status["message"]
    assert "web" in status["message"]
    # Nothing half-changed: the Ingress and VirtualService have no canary share yet.
    assert await kube.get(*INGRESS, "web-canary", namespace) is None
    vs = await kube.get(*VS, "web", namespace)
    assert vs is not None
    assert [d["destination"]["host"] for d in vs["spec"]["http"][0]["route"]] == ["web"]
    await kube.create(originals(namespace)[2])
    await rel.wait_step(1)
    assert (await weights(kube, namespace))["route"] == {"web": 80, "web-canary": 20}
