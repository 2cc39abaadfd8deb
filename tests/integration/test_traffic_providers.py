"""Traffic providers against the real API server (Gateway API and Istio CRDs, kwok pods).

Each test builds the user's objects (Service, Ingress, HTTPRoute, VirtualService,
DestinationRule) in a fresh namespace, drives :class:`TrafficManager` through steps and checks
what the API server stored: the exact objects at each step, and after a restore the originals'
spec, labels and annotations exactly as they were.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster
from vela_progressive.core.model import Match, TrafficRouting
from vela_progressive.core.traffic import (
    ORIGINAL_ANNOTATION,
    ObjectRef,
    RouteState,
    TrafficContext,
    provider_for,
)
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.traffic import TrafficError, TrafficManager

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
STABLE = {"pod-template-hash": "stable1"}
CANARY = {"pod-template-hash": "canary1"}
HEADER = Match.from_dict({"headers": [{"name": "x-canary", "value": "yes"}]})

INGRESS = TrafficRouting.from_dict({"type": "ingress"}, "web")
GATEWAY = TrafficRouting.from_dict({"type": "gateway"}, "web")
ISTIO_HOST = TrafficRouting.from_dict({"type": "istio"}, "web")
ISTIO_SUBSET = TrafficRouting.from_dict(
    {"type": "istio", "virtualServiceName": "web-mesh", "destinationRuleName": "web"}, "web"
)

USER_OBJECTS = """
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app.oam.dev/component: web}
  annotations: {team: checkout}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 8m}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  labels: {app.oam.dev/component: web}
spec:
  parentRefs: [{name: public}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web, port: 80}]
  - backendRefs: [{name: static, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: main
    match: [{uri: {prefix: /}}]
    route: [{destination: {host: web, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-mesh}
spec:
  hosts: [web.mesh]
  http:
  - route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
"""


def _canary_ingress(namespace: str) -> ObjectRef:
    return ObjectRef("networking.k8s.io/v1", "Ingress", namespace, "web-canary")


def _refs(namespace: str) -> list[ObjectRef]:
    return [
        ObjectRef(o["apiVersion"], o["kind"], namespace, o["metadata"]["name"])
        for o in yaml.safe_load_all(USER_OBJECTS)
    ]


def _user_part(obj: Obj) -> Obj:
    """What a restore must give back: spec, labels and annotations."""
    meta = obj["metadata"]
    return {
        "spec": obj.get("spec"),
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
    }


@pytest.fixture
def world(cluster: Cluster, namespace: str) -> TrafficContext:
    cluster.apply_yaml(USER_OBJECTS, namespace=namespace)
    return TrafficContext(namespace, "web", STABLE, CANARY)


async def _get(kube: Kube, ref: ObjectRef) -> Obj | None:
    return await kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)


async def _snapshot(kube: Kube, namespace: str) -> dict[ObjectRef, Obj]:
    out = {}
    for ref in _refs(namespace):
        found = await _get(kube, ref)
        assert found is not None, f"{ref} missing"
        out[ref] = _user_part(found)
    return out


async def _expected(
    kube: Kube, routings: tuple[TrafficRouting, ...], ctx: TrafficContext, route: RouteState
) -> dict[ObjectRef, Obj]:
    """What the pure providers say the cluster should hold, given what it holds now."""
    seen: dict[ObjectRef, Obj | None] = {}
    for routing in routings:
        for ref in provider_for(routing).refs(routing, ctx):
            seen[ref] = await _get(kube, ref)
    out: dict[ObjectRef, Obj] = {}
    for routing in routings:
        for obj in provider_for(routing).desired(routing, ctx, seen, route).apply:
            out[ObjectRef.of(obj)] = obj
    return out


async def _assert_stored(kube: Kube, expected: dict[ObjectRef, Obj]) -> None:
    for ref, obj in expected.items():
        stored = await _get(kube, ref)
        assert stored is not None, f"{ref} was not created"
        assert _user_part(stored) == _user_part(obj), f"{ref} differs from the provider's"


async def test_weights_20_50_100_then_restore_gives_back_every_original(
    kube: Kube, world: TrafficContext
) -> None:
    ns = world.namespace
    routings = (INGRESS, GATEWAY, ISTIO_HOST)
    before = await _snapshot(kube, ns)
    manager = TrafficManager(kube)
    await manager.ensure_services(routings, world)

    stable_svc = await _get(kube, ObjectRef("v1", "Service", ns, "web"))
    canary_svc = await _get(kube, ObjectRef("v1", "Service", ns, "web-canary"))
    assert stable_svc is not None
    assert canary_svc is not None
    assert stable_svc["spec"]["selector"] == {"app": "web", **STABLE}
    assert canary_svc["spec"]["selector"] == {"app": "web", **CANARY}
    assert canary_svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}
    ]

    for weight in (20, 50, 100):
        expected = await _expected(kube, routings, world, RouteState(weight))
        await manager.apply_step(routings, world, RouteState(weight))
        await _assert_stored(kube, expected)

        canary_ing = await _get(kube, _canary_ingress(ns))
        assert canary_ing is not None
        annotations = canary_ing["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
        assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == str(weight)
        assert canary_ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
            "name": "web-canary",
            "port": {"number": 80},
        }

        route = await _get(kube, ObjectRef("gateway.networking.k8s.io/v1", "HTTPRoute", ns, "web"))
        assert route is not None
        first, second = route["spec"]["rules"]
        assert [(b["name"], b["weight"]) for b in first["backendRefs"]] == [
            ("web", 100 - weight),
            ("web-canary", weight),
        ]
        assert [b["name"] for b in second["backendRefs"]] == ["static"]

        vs = await _get(kube, ObjectRef("networking.istio.io/v1", "VirtualService", ns, "web"))
        assert vs is not None
        assert [
            (d["destination"]["host"], d["weight"]) for d in vs["spec"]["http"][0]["route"]
        ] == [
            ("web", 100 - weight),
            ("web-canary", weight),
        ]

    writes = manager.writes
    await manager.apply_step(routings, world, RouteState(100))
    assert manager.writes == writes, "repeating a step wrote to the API server"

    await manager.restore(routings, world)
    await manager.restore_services(routings, world)
    assert await _snapshot(kube, ns) == before
    for name in ("web-canary",):
        assert await _get(kube, ObjectRef("v1", "Service", ns, name)) is None
        assert await _get(kube, ObjectRef("networking.k8s.io/v1", "Ingress", ns, name)) is None

    writes = manager.writes
    await manager.restore(routings, world)
    await manager.restore_services(routings, world)
    assert manager.writes == writes, "a second restore changed something"


async def test_header_matches_on_every_provider_then_restore(
    kube: Kube, world: TrafficContext
) -> None:
    ns = world.namespace
    routings = (INGRESS, GATEWAY, ISTIO_HOST)
    before = await _snapshot(kube, ns)
    manager = TrafficManager(kube)
    route = RouteState(0, (HEADER,))
    expected = await _expected(kube, routings, world, route)
    await manager.apply_step(routings, world, route)
    await _assert_stored(kube, expected)

    canary_ing = await _get(kube, _canary_ingress(ns))
    assert canary_ing is not None
    annotations = canary_ing["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header"] == "x-canary"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-value"] == "yes"
    assert "nginx.ingress.kubernetes.io/canary-weight" not in annotations

    httproute = await _get(kube, ObjectRef("gateway.networking.k8s.io/v1", "HTTPRoute", ns, "web"))
    assert httproute is not None
    canary_rule = httproute["spec"]["rules"][0]
    assert canary_rule["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "headers": [{"type": "Exact", "name": "x-canary", "value": "yes"}],
        }
    ]
    assert [b["name"] for b in canary_rule["backendRefs"]] == ["web-canary"]

    vs = await _get(kube, ObjectRef("networking.istio.io/v1", "VirtualService", ns, "web"))
    assert vs is not None
    assert [r.get("name") for r in vs["spec"]["http"]] == ["main-canary", "main"]
    assert vs["spec"]["http"][0]["match"] == [
        {"uri": {"prefix": "/"}, "headers": {"x-canary": {"exact": "yes"}}}
    ]

    await manager.restore(routings, world)
    after = await _snapshot(kube, ns)
    assert after == before
    assert all(ORIGINAL_ANNOTATION not in part["annotations"] for part in after.values())


async def test_istio_subsets_with_a_header_match_then_restore(
    kube: Kube, world: TrafficContext
) -> None:
    ns = world.namespace
    routings = (ISTIO_SUBSET,)
    before = await _snapshot(kube, ns)
    manager = TrafficManager(kube)
    await manager.ensure_services(routings, world)
    stable_svc = await _get(kube, ObjectRef("v1", "Service", ns, "web"))
    assert stable_svc is not None
    assert stable_svc["spec"]["selector"] == {"app": "web"}, "subsets need the Service unpinned"

    route = RouteState(40, (HEADER,))
    expected = await _expected(kube, routings, world, route)
    await manager.apply_step(routings, world, route)
    await _assert_stored(kube, expected)
    dr = await _get(kube, ObjectRef("networking.istio.io/v1", "DestinationRule", ns, "web"))
    assert dr is not None
    assert dr["spec"]["subsets"] == [
        {"name": "stable", "labels": STABLE},
        {"name": "canary", "labels": CANARY},
    ]
    mesh = await _get(kube, ObjectRef("networking.istio.io/v1", "VirtualService", ns, "web-mesh"))
    assert mesh is not None
    canary_route, weighted = mesh["spec"]["http"]
    assert canary_route["route"] == [{"destination": {"host": "web", "subset": "canary"}}]
    assert weighted["route"] == [
        {"destination": {"host": "web", "subset": "stable"}, "weight": 60},
        {"destination": {"host": "web", "subset": "canary"}, "weight": 40},
    ]

    await manager.restore(routings, world)
    await manager.restore_services(routings, world)
    assert await _snapshot(kube, ns) == before


async def test_a_rejected_second_routing_rolls_the_first_one_back(
    cluster: Cluster, kube: Kube, world: TrafficContext
) -> None:
    """16 rules to the stable Service: the match copies exceed the API's 16-rule limit."""
    ns = world.namespace
    full = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web-full"},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": f"/p{i}"}}],
                    "backendRefs": [{"name": "web", "port": 80}],
                }
                for i in range(16)
            ],
        },
    }
    cluster.apply_yaml(yaml.safe_dump(full), namespace=ns)
    full_ref = ObjectRef("gateway.networking.k8s.io/v1", "HTTPRoute", ns, "web-full")
    route_before = await _get(kube, full_ref)
    assert route_before is not None
    before = await _snapshot(kube, ns)
    manager = TrafficManager(kube)
    over_limit = TrafficRouting.from_dict(
        {"type": "gateway", "gatewayHTTPRouteName": "web-full"}, "web"
    )

    with pytest.raises(TrafficError) as caught:
        await manager.apply_step((INGRESS, over_limit), world, RouteState(10, (HEADER,)))
    assert caught.value.provider == "gateway"
    assert caught.value.ref == full_ref
    assert caught.value.rolled_back
    assert manager.writes >= 1, "the canary Ingress should have been created before the failure"
    assert await _get(kube, _canary_ingress(ns)) is None
    route_after = await _get(kube, full_ref)
    assert route_after is not None
    assert _user_part(route_after) == _user_part(route_before)
    assert await _snapshot(kube, ns) == before


async def test_a_missing_second_routing_object_changes_nothing(
    kube: Kube, world: TrafficContext
) -> None:
    ns = world.namespace
    missing = TrafficRouting.from_dict({"type": "gateway", "gatewayHTTPRouteName": "nope"}, "web")
    manager = TrafficManager(kube)
    with pytest.raises(TrafficError, match=r"gateway: HTTPRoute .*/nope not found"):
        await manager.apply_step((INGRESS, missing), world, RouteState(20))
    assert manager.writes == 0
    assert await _get(kube, _canary_ingress(ns)) is None


def _pod(name: str, labels: dict[str, str], *, schedulable: bool) -> Obj:
    spec: Obj = {"containers": [{"name": "app", "image": "example.com/web:v2"}]}
    if not schedulable:
        spec["nodeSelector"] = {"vela-progressive.io/no-such-node": "true"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


async def test_canary_endpoints_stay_zero_until_canary_pods_are_ready(
    cluster: Cluster, kube: Kube, world: TrafficContext
) -> None:
    ns = world.namespace
    manager = TrafficManager(kube)
    await manager.ensure_services((INGRESS,), world)
    pods = [
        _pod("web-old", {"app": "web", **STABLE}, schedulable=True),
        _pod("web-new-pending", {"app": "web", **CANARY}, schedulable=False),
    ]
    cluster.apply_yaml(yaml.safe_dump_all(pods), namespace=ns)
    # The stable pod becomes Ready and its endpoint shows up: the slice controller is working.
    cluster.wait_for(
        lambda: cluster.get("endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")[
            "items"
        ][0].get("endpoints"),
        60,
        "a ready endpoint behind the stable Service",
    )
    assert await manager.canary_endpoints_ready((INGRESS,), world) == 0

    cluster.apply_yaml(
        yaml.safe_dump(_pod("web-new", {"app": "web", **CANARY}, schedulable=True)), namespace=ns
    )
    counts = [await manager.canary_endpoints_ready((INGRESS,), world)]
    for _ in range(120):
        if counts[-1] == 1:
            break
        await asyncio.sleep(0.5)
        counts.append(await manager.canary_endpoints_ready((INGRESS,), world))
    assert counts[-1] == 1, f"ready canary endpoints over time: {counts}"
