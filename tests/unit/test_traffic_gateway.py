"""Gateway API provider: HTTPRoute weights, match rules, and byte-exact restores."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.golden import assert_matches_golden

from vela_progressive.core.model import Match, TrafficRouting
from vela_progressive.core.traffic import (
    ORIGINAL_ANNOTATION,
    Changes,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
    provider_for,
)
from vela_progressive.core.traffic.original import clean

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "traffic" / "gateway"
CTX = TrafficContext(
    namespace="shop",
    workload="web",
    stable_selector={"pod-template-hash": "6b8f7c9d4"},
    canary_selector={"pod-template-hash": "75c4d8b6f"},
)
ROUTING = TrafficRouting.from_dict({"type": "gateway"}, "web")
PROVIDER = provider_for(ROUTING)

# As read from the API server: defaults (group, kind, weight, path) are filled in.
ORIGINAL: dict[str, Any] = yaml.safe_load(
    """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
  resourceVersion: "99"
  generation: 3
  labels: {app.oam.dev/component: web}
spec:
  parentRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: public}
  hostnames: [shop.example.com]
  rules:
  - name: api
    matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{type: Exact, name: x-tenant, value: acme}]
    - path: {type: Exact, value: /healthz}
    timeouts: {request: 10s}
    backendRefs:
    - {group: "", kind: Service, name: web, port: 80, weight: 1}
  - matches:
    - path: {type: PathPrefix, value: /static}
    backendRefs:
    - {group: "", kind: Service, name: static, port: 80, weight: 1}
  - matches:
    - path: {type: PathPrefix, value: /}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add: [{name: x-via, value: gateway}]
    backendRefs:
    - {group: "", kind: Service, name: web, port: 80, weight: 3}
    - {group: "", kind: Service, name: legacy, port: 80, weight: 1}
status:
  parents: []
"""
)


def _match(**raw: Any) -> Match:
    return Match.from_dict(raw)


HEADER = {"headers": [{"name": "x-canary", "value": "yes"}]}
CASES: dict[str, dict[str, Any]] = {
    "weight-20": {"weight": 20},
    "weight-50": {"weight": 50},
    "weight-100": {"weight": 100},
    "header": {"matches": [HEADER]},
    "header-regex-and-weight": {
        "weight": 10,
        "matches": [
            {"headers": [{"name": "x-user", "value": "^a.*", "type": "RegularExpression"}]}
        ],
    },
    "header-overrides-the-rules-header": {
        "matches": [{"headers": [{"name": "X-Tenant", "value": "beta-tenant"}]}]
    },
    "query": {"matches": [{"queryParams": [{"name": "canary", "value": "1"}]}]},
    "path": {"matches": [{"path": {"value": "/api/v2"}}]},
    "header-or-query": {
        "matches": [HEADER, {"queryParams": [{"name": "canary", "value": "1"}]}],
    },
}


def _route(step: dict[str, Any]) -> RouteState:
    return RouteState(
        step.get("weight", 0), tuple(Match.from_dict(m) for m in step.get("matches", []))
    )


def _changed(step: dict[str, Any]) -> dict[str, Any]:
    """The HTTPRoute at ``step``, from the original."""
    (changed,) = PROVIDER.desired(ROUTING, CTX, _originals(ORIGINAL), _route(step)).patched
    return changed


def _originals(*objects: dict[str, Any]) -> dict[ObjectRef, dict[str, Any] | None]:
    return {ObjectRef.of(o): o for o in objects}


def _dump(step: dict[str, Any], changes: Changes) -> str:
    body = {"apply": changes.objects(), "delete": [str(r) for r in changes.delete]}
    return yaml.safe_dump({"step": step}, sort_keys=True) + yaml.safe_dump(body, sort_keys=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_httproute_matches_golden(case: str) -> None:
    changes = PROVIDER.desired(ROUTING, CTX, _originals(ORIGINAL), _route(CASES[case]))
    assert_matches_golden(_dump(CASES[case], changes), GOLDEN / f"{case}.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_desired_is_idempotent(case: str) -> None:
    route = _route(CASES[case])
    first = PROVIDER.desired(ROUTING, CTX, _originals(ORIGINAL), route)
    assert PROVIDER.desired(ROUTING, CTX, _originals(*first.apply), route) == first


@pytest.mark.parametrize("case", sorted(CASES))
def test_restore_gives_back_the_original_exactly(case: str) -> None:
    (changed,) = PROVIDER.desired(ROUTING, CTX, _originals(ORIGINAL), _route(CASES[case])).patched
    assert PROVIDER.restore(ROUTING, CTX, _originals(changed)) == Changes(
        patched=(clean(ORIGINAL),)
    )


def test_restore_golden_and_twice_is_a_no_op() -> None:
    (changed,) = PROVIDER.desired(
        ROUTING, CTX, _originals(ORIGINAL), _route({"weight": 20})
    ).patched
    restored = PROVIDER.restore(ROUTING, CTX, _originals(changed))
    assert_matches_golden(_dump({"weight": 0}, restored), GOLDEN / "restore.yaml")
    (again,) = PROVIDER.restore(ROUTING, CTX, _originals(*restored.apply)).patched
    assert again == clean(ORIGINAL)
    assert ORIGINAL_ANNOTATION not in again["metadata"].get("annotations", {})


def test_steps_never_compound_each_step_starts_from_the_saved_original() -> None:
    at_20 = _changed({"weight": 20})
    (at_50,) = PROVIDER.desired(ROUTING, CTX, _originals(at_20), _route({"weight": 50})).patched
    direct = PROVIDER.desired(ROUTING, CTX, _originals(ORIGINAL), _route({"weight": 50}))
    assert (at_50,) == direct.patched


def test_weights_split_the_stable_share_and_keep_other_backends_share() -> None:
    (changed,) = PROVIDER.desired(
        ROUTING, CTX, _originals(ORIGINAL), _route({"weight": 20})
    ).patched
    last = changed["spec"]["rules"][-1]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in last] == [
        ("web", 240),
        ("web-canary", 60),
        ("legacy", 100),
    ]


def test_saved_original_is_the_spec_before_the_release() -> None:
    (changed,) = PROVIDER.desired(
        ROUTING, CTX, _originals(ORIGINAL), _route({"weight": 20})
    ).patched
    saved = json.loads(changed["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    assert saved["spec"] == ORIGINAL["spec"]


def test_all_traffic_on_stable_is_the_original() -> None:
    (changed,) = PROVIDER.desired(
        ROUTING, CTX, _originals(ORIGINAL), _route({"weight": 20})
    ).patched
    assert PROVIDER.desired(ROUTING, CTX, _originals(changed), RouteState()) == Changes(
        patched=(clean(ORIGINAL),)
    )


def test_cookie_matches_are_rejected_because_gateway_api_has_none() -> None:
    route = RouteState(0, (_match(cookies=[{"name": "beta"}]),))
    assert PROVIDER.check(ROUTING, route) == ("gateway cannot route by cookie",)
    with pytest.raises(TrafficConfigError, match="gateway cannot route by cookie"):
        PROVIDER.desired(ROUTING, CTX, _originals(ORIGINAL), route)


def test_route_without_a_backend_to_the_service_is_rejected() -> None:
    other = TrafficRouting.from_dict({"type": "gateway", "service": "cart"}, "web")
    with pytest.raises(TrafficConfigError, match=r"no rule with a backendRef to Service 'cart'"):
        PROVIDER.desired(other, CTX, _originals(ORIGINAL), RouteState(20))


def test_missing_httproute_names_the_field() -> None:
    with pytest.raises(
        TrafficConfigError, match=r"HTTPRoute shop/web not found.*gatewayHTTPRouteName"
    ):
        PROVIDER.desired(ROUTING, CTX, {}, RouteState(20))


def test_backend_in_another_namespace_is_not_the_stable_service() -> None:
    foreign = copy.deepcopy(ORIGINAL)
    for rule in foreign["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            ref["namespace"] = "elsewhere"
    with pytest.raises(TrafficConfigError, match="no rule with a backendRef"):
        PROVIDER.desired(ROUTING, CTX, _originals(foreign), RouteState(20))
