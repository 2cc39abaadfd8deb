"""TrafficManager against the in-memory API server (tests/support/fake_kube.py): all-or-nothing
steps, idempotent restores.

The same behaviour is checked against the real cluster in tests/integration/test_traffic_*.py;
this tier runs in milliseconds and can inject failures the real server would not produce.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from tests.support.fake_kube import FakeKube

from vela_progressive.core.model import Match, TrafficRouting
from vela_progressive.core.traffic import ObjectRef, RouteState, TrafficContext
from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.traffic import TrafficError, TrafficManager

Obj = dict[str, Any]

OBJECTS: list[Obj] = list(
    yaml.safe_load_all(
        """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
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
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: public}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{group: "", kind: Service, name: web, port: 80, weight: 1}]
"""
    )
)
CTX = TrafficContext("shop", "web", {"pod-template-hash": "old"}, {"pod-template-hash": "new"})
INGRESS = TrafficRouting.from_dict({"type": "ingress"}, "web")
GATEWAY = TrafficRouting.from_dict({"type": "gateway"}, "web")
ROUTINGS = (INGRESS, GATEWAY)
HTTPROUTE = ObjectRef("gateway.networking.k8s.io/v1", "HTTPRoute", "shop", "web")
CANARY_INGRESS = ObjectRef("networking.k8s.io/v1", "Ingress", "shop", "web-canary")
HEADER = Match.from_dict({"headers": [{"name": "x-canary", "value": "yes"}]})


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube(*OBJECTS)


async def test_a_step_changes_every_routing_and_repeating_it_writes_nothing(
    kube: FakeKube,
) -> None:
    manager = TrafficManager(kube)
    await manager.ensure_services(ROUTINGS, CTX)
    await manager.apply_step(ROUTINGS, CTX, RouteState(20))
    assert CANARY_INGRESS in kube.store
    weights = [b["weight"] for b in kube.store[HTTPROUTE]["spec"]["rules"][0]["backendRefs"]]
    assert weights == [80, 20]
    writes = manager.writes
    await manager.ensure_services(ROUTINGS, CTX)
    await manager.apply_step(ROUTINGS, CTX, RouteState(20))
    assert manager.writes == writes


async def test_a_failing_routing_undoes_the_routings_already_changed(kube: FakeKube) -> None:
    manager = TrafficManager(kube)
    before = kube.view()
    kube.fail_on[("PATCH", HTTPROUTE)] = KubeError(422, "Invalid", "spec.rules: Too many")
    with pytest.raises(TrafficError) as caught:
        await manager.apply_step(ROUTINGS, CTX, RouteState(20))
    assert caught.value.provider == "gateway"
    assert caught.value.ref == HTTPROUTE
    assert caught.value.rolled_back
    assert "HTTPRoute shop/web" in str(caught.value)
    assert kube.view() == before


async def test_a_failing_step_after_a_good_one_goes_back_to_the_good_one(kube: FakeKube) -> None:
    manager = TrafficManager(kube)
    await manager.apply_step(ROUTINGS, CTX, RouteState(20))
    at_20 = kube.view()
    kube.fail_on[("PATCH", HTTPROUTE)] = KubeError(500, "InternalError", "etcd timeout")
    with pytest.raises(TrafficError):
        await manager.apply_step(ROUTINGS, CTX, RouteState(50, (HEADER,)))
    assert kube.view() == at_20


async def test_a_missing_routing_object_fails_before_anything_is_written(kube: FakeKube) -> None:
    del kube.store[HTTPROUTE]
    manager = TrafficManager(kube)
    with pytest.raises(TrafficError, match=r"gateway: HTTPRoute shop/web not found"):
        await manager.apply_step(ROUTINGS, CTX, RouteState(20))
    assert manager.writes == 0


async def test_a_concurrent_change_is_not_overwritten(kube: FakeKube) -> None:
    manager = TrafficManager(kube)
    real_get = kube.get

    async def get_then_someone_edits(api_version: str, kind: str, name: str, ns: Any = None) -> Any:
        found = await real_get(api_version, kind, name, ns)
        if kind == "HTTPRoute":
            kube._put(copy.deepcopy(kube.store[HTTPROUTE]))  # bumps resourceVersion
        return found

    kube.get = get_then_someone_edits  # type: ignore[method-assign]
    with pytest.raises(TrafficError, match="was modified"):
        await manager.apply_step(ROUTINGS, CTX, RouteState(20))
    assert CANARY_INGRESS not in kube.store


async def test_restore_gives_back_every_original_and_twice_writes_nothing(kube: FakeKube) -> None:
    before = kube.view()
    manager = TrafficManager(kube)
    await manager.ensure_services(ROUTINGS, CTX)
    for route in (RouteState(20), RouteState(50, (HEADER,)), RouteState(100)):
        await manager.apply_step(ROUTINGS, CTX, route)
    await manager.restore(ROUTINGS, CTX)
    await manager.restore_services(ROUTINGS, CTX)
    assert kube.view() == before
    writes = manager.writes
    await manager.restore(ROUTINGS, CTX)
    await manager.restore_services(ROUTINGS, CTX)
    assert manager.writes == writes


async def test_unpinning_keeps_the_canary_service(kube: FakeKube) -> None:
    manager = TrafficManager(kube)
    await manager.ensure_services(ROUTINGS, CTX)
    stable = ObjectRef("v1", "Service", "shop", "web")
    assert kube.store[stable]["spec"]["selector"] == {"app": "web", "pod-template-hash": "old"}
    await manager.unpin_services(ROUTINGS, CTX)
    assert kube.store[stable]["spec"]["selector"] == {"app": "web"}
    assert ObjectRef("v1", "Service", "shop", "web-canary") in kube.store


def _slice(name: str, *endpoints: tuple[str, bool | None]) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"kubernetes.io/service-name": "web-canary"},
        },
        "endpoints": [
            {"addresses": [ip], **({} if ready is None else {"conditions": {"ready": ready}})}
            for ip, ready in endpoints
        ],
    }


async def test_canary_endpoints_count_ready_addresses_once(kube: FakeKube) -> None:
    manager = TrafficManager(kube)
    assert await manager.canary_endpoints_ready(ROUTINGS, CTX) == 0
    kube._put(_slice("a", ("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", None)))
    kube._put(_slice("b", ("10.0.0.1", True)))
    assert await manager.canary_endpoints_ready(ROUTINGS, CTX) == 2


async def test_canary_pods_are_counted_when_there_is_no_canary_service(kube: FakeKube) -> None:
    ctx = TrafficContext("shop", "web", CTX.stable_selector, CTX.canary_selector, True)

    def pod(name: str, ready: str, labels: dict[str, str]) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }

    new = {"app": "web", "pod-template-hash": "new"}
    kube._put(pod("a", "True", new))
    kube._put(pod("b", "False", new))
    kube._put(pod("c", "True", {"app": "web", "pod-template-hash": "old"}))
    assert await TrafficManager(kube).canary_endpoints_ready(ROUTINGS, ctx) == 1


async def test_routings_that_cannot_work_together_are_refused_before_any_write(
    kube: FakeKube,
) -> None:
    subsets = TrafficRouting.from_dict({"type": "istio", "destinationRuleName": "web"}, "web")
    manager = TrafficManager(kube)
    with pytest.raises(TrafficError, match=r"trafficRoutings: .*unpinned"):
        await manager.ensure_services((INGRESS, subsets), CTX)
    assert manager.writes == 0
