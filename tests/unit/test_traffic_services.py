"""Canary and stable Services: the canary copy, the stable pin, and exact restores."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.golden import assert_matches_golden

from vela_progressive.core.traffic import Changes, ObjectRef, TrafficConfigError, TrafficContext
from vela_progressive.core.traffic import services as svc
from vela_progressive.core.traffic.objects import ORIGINAL_ANNOTATION
from vela_progressive.core.traffic.original import clean

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "traffic" / "services"
CTX = TrafficContext(
    namespace="shop",
    workload="web",
    stable_selector={"pod-template-hash": "6b8f7c9d4"},
    canary_selector={"pod-template-hash": "75c4d8b6f"},
)

# As read from the API server (defaults filled in), including fields we must not copy.
STABLE: dict[str, Any] = yaml.safe_load(
    """
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  resourceVersion: "4711"
  uid: 0b5c2f1e-0000-4000-8000-000000000001
  labels: {app.oam.dev/component: web}
  annotations: {app.oam.dev/owner: vela}
spec:
  type: NodePort
  clusterIP: 10.96.10.20
  clusterIPs: [10.96.10.20]
  sessionAffinity: None
  selector: {app.oam.dev/component: web}
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: 8080, nodePort: 30080}
  - {name: grpc, port: 9090, protocol: TCP, targetPort: grpc, appProtocol: grpc, nodePort: 30090}
status: {loadBalancer: {}}
"""
)


def _originals(*objects: dict[str, Any]) -> dict[ObjectRef, dict[str, Any] | None]:
    return {ObjectRef.of(o): o for o in objects}


def _dump(changes: Changes) -> str:
    return yaml.safe_dump(
        {"apply": changes.objects(), "delete": [str(r) for r in changes.delete]},
        sort_keys=True,
    )


def test_canary_service_copies_ports_and_selects_the_new_revision() -> None:
    changes = svc.desired("web", CTX, _originals(STABLE))
    assert_matches_golden(_dump(changes), GOLDEN / "desired.yaml")
    (canary,) = changes.owned
    assert canary["metadata"]["name"] == "web-canary"
    assert canary["spec"]["selector"] == {
        "app.oam.dev/component": "web",
        "pod-template-hash": "75c4d8b6f",
    }
    assert all("nodePort" not in p for p in canary["spec"]["ports"])
    assert canary["spec"]["type"] == "ClusterIP"


def test_stable_service_is_pinned_to_the_stable_revision_and_saves_its_spec() -> None:
    (stable,) = svc.desired("web", CTX, _originals(STABLE)).patched
    assert stable["spec"]["selector"]["pod-template-hash"] == "6b8f7c9d4"
    assert ORIGINAL_ANNOTATION in stable["metadata"]["annotations"]
    assert stable["metadata"]["annotations"]["app.oam.dev/owner"] == "vela"


def test_desired_is_idempotent() -> None:
    first = svc.desired("web", CTX, _originals(STABLE))
    again = svc.desired("web", CTX, _originals(*first.apply))
    assert again == first


def test_restore_of_the_desired_state_gives_back_the_original_exactly() -> None:
    applied = svc.desired("web", CTX, _originals(STABLE))
    restored = svc.restore("web", CTX, _originals(*applied.apply))
    assert restored.patched == (clean(STABLE),)
    assert restored.delete == (ObjectRef("v1", "Service", "shop", "web-canary"),)
    assert_matches_golden(_dump(restored), GOLDEN / "restore.yaml")


def test_restore_twice_changes_nothing() -> None:
    assert svc.restore("web", CTX, _originals(STABLE)) == Changes()


def test_unpinning_restores_the_stable_service_and_keeps_the_canary() -> None:
    applied = svc.desired("web", CTX, _originals(STABLE))
    unpinned = svc.unpinned("web", CTX, _originals(*applied.apply))
    assert unpinned == Changes(patched=(clean(STABLE),))


def test_subset_routing_leaves_the_stable_service_unpinned() -> None:
    changes = svc.desired("web", CTX, _originals(STABLE), pin=False)
    assert changes.patched == (clean(STABLE),)


def test_headless_stable_service_gets_a_headless_canary() -> None:
    headless = copy.deepcopy(STABLE)
    headless["spec"].update(type="ClusterIP", clusterIP="None", clusterIPs=["None"])
    (canary,) = svc.desired("web", CTX, _originals(headless)).owned
    assert canary["spec"]["clusterIP"] == "None"


def test_disabled_canary_service_changes_nothing() -> None:
    ctx = TrafficContext(
        "shop", "web", CTX.stable_selector, CTX.canary_selector, disable_canary_service=True
    )
    assert svc.desired("web", ctx, _originals(STABLE)) == Changes()


def test_service_without_selector_is_rejected_with_the_field_to_fix() -> None:
    external = copy.deepcopy(STABLE)
    del external["spec"]["selector"]
    with pytest.raises(TrafficConfigError, match=r"Service shop/web has no selector.*service"):
        svc.desired("web", CTX, _originals(external))


def test_missing_stable_service_names_the_field() -> None:
    with pytest.raises(TrafficConfigError, match=r"Service shop/web not found.*\.service"):
        svc.desired("web", CTX, {})


def test_someone_elses_canary_service_is_never_taken_over() -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-canary", "namespace": "shop"},
        "spec": {"selector": {"app": "other"}},
    }
    with pytest.raises(TrafficConfigError, match="not created by vela-progressive"):
        svc.desired("web", CTX, _originals(STABLE, foreign))
    with pytest.raises(TrafficConfigError, match="not created by vela-progressive"):
        svc.restore("web", CTX, _originals(STABLE, foreign))


def test_identical_revisions_cannot_be_split() -> None:
    same = TrafficContext("shop", "web", {"pod-template-hash": "a"}, {"pod-template-hash": "a"})
    with pytest.raises(TrafficConfigError, match="selectors are the same"):
        svc.desired("web", same, _originals(STABLE))
