"""Istio provider: VirtualService host/subset routing, DestinationRule subsets, exact restores."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.golden import assert_matches_golden

from vela_progressive.core.model import CookieMatch, Match, TrafficRouting
from vela_progressive.core.traffic import (
    Changes,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
    check_routings,
    pinned_services,
    provider_for,
)
from vela_progressive.core.traffic.istio import cookie_regex
from vela_progressive.core.traffic.original import clean

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "traffic" / "istio"
CTX = TrafficContext(
    namespace="shop",
    workload="web",
    stable_selector={"pod-template-hash": "6b8f7c9d4"},
    canary_selector={"pod-template-hash": "75c4d8b6f"},
)
HOST_ROUTING = TrafficRouting.from_dict({"type": "istio"}, "web")
SUBSET_ROUTING = TrafficRouting.from_dict({"type": "istio", "destinationRuleName": "web"}, "web")
PROVIDER = provider_for(HOST_ROUTING)

VS: dict[str, Any] = yaml.safe_load(
    """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
  namespace: shop
  resourceVersion: "17"
spec:
  hosts: [shop.example.com, web]
  gateways: [mesh, public]
  http:
  - name: admin
    match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: admin}}]
  - name: main
    match:
    - uri: {prefix: /}
      headers: {x-tenant: {exact: acme}}
    - uri: {exact: /healthz}
    timeout: 5s
    retries: {attempts: 3}
    route:
    - destination: {host: web.shop.svc.cluster.local, port: {number: 80}}
  - route:
    - destination: {host: web, port: {number: 80}}
      weight: 90
    - destination: {host: legacy}
      weight: 10
"""
)
DR: dict[str, Any] = yaml.safe_load(
    """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: web
  namespace: shop
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - name: v1
    labels: {version: v1}
"""
)

HEADER = {"headers": [{"name": "x-canary", "value": "yes"}]}
CASES: dict[str, tuple[TrafficRouting, dict[str, Any]]] = {
    "host-weight-20": (HOST_ROUTING, {"weight": 20}),
    "host-weight-50": (HOST_ROUTING, {"weight": 50}),
    "host-weight-100": (HOST_ROUTING, {"weight": 100}),
    "host-header": (HOST_ROUTING, {"matches": [HEADER]}),
    "host-cookie": (HOST_ROUTING, {"matches": [{"cookies": [{"name": "beta", "value": "on"}]}]}),
    "host-query": (HOST_ROUTING, {"matches": [{"queryParams": [{"name": "v", "value": "2"}]}]}),
    "host-path-regex": (
        HOST_ROUTING,
        {"matches": [{"path": {"value": "/api/v[0-9]+", "type": "RegularExpression"}}]},
    ),
    "host-header-and-weight": (HOST_ROUTING, {"weight": 30, "matches": [HEADER]}),
    "subset-weight-20": (SUBSET_ROUTING, {"weight": 20}),
    "subset-header": (SUBSET_ROUTING, {"matches": [HEADER]}),
}


def _route(step: dict[str, Any]) -> RouteState:
    return RouteState(
        step.get("weight", 0), tuple(Match.from_dict(m) for m in step.get("matches", []))
    )


def _originals(*objects: dict[str, Any]) -> dict[ObjectRef, dict[str, Any] | None]:
    return {ObjectRef.of(o): o for o in objects}


def _dump(step: dict[str, Any], changes: Changes) -> str:
    body = {"apply": changes.objects(), "delete": [str(r) for r in changes.delete]}
    return yaml.safe_dump({"step": step}, sort_keys=True) + yaml.safe_dump(body, sort_keys=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_virtualservice_matches_golden(case: str) -> None:
    routing, step = CASES[case]
    changes = PROVIDER.desired(routing, CTX, _originals(VS, DR), _route(step))
    assert_matches_golden(_dump(step, changes), GOLDEN / f"{case}.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_desired_is_idempotent(case: str) -> None:
    routing, step = CASES[case]
    first = PROVIDER.desired(routing, CTX, _originals(VS, DR), _route(step))
    assert PROVIDER.desired(routing, CTX, _originals(VS, DR, *first.apply), _route(step)) == first


@pytest.mark.parametrize("case", sorted(CASES))
def test_restore_gives_back_the_originals_exactly(case: str) -> None:
    routing, step = CASES[case]
    applied = PROVIDER.desired(routing, CTX, _originals(VS, DR), _route(step))
    restored = PROVIDER.restore(routing, CTX, _originals(VS, DR, *applied.apply))
    expected = (clean(VS), clean(DR)) if routing.destination_rule_name else (clean(VS),)
    assert restored == Changes(patched=expected)


def test_restore_golden() -> None:
    applied = PROVIDER.desired(SUBSET_ROUTING, CTX, _originals(VS, DR), _route({"weight": 20}))
    restored = PROVIDER.restore(SUBSET_ROUTING, CTX, _originals(*applied.apply))
    assert_matches_golden(_dump({"weight": 0}, restored), GOLDEN / "restore.yaml")


def test_weights_keep_summing_to_100_with_other_destinations() -> None:
    (vs,) = PROVIDER.desired(HOST_ROUTING, CTX, _originals(VS), _route({"weight": 33})).patched
    last = vs["spec"]["http"][-1]["route"]
    assert [(d["destination"]["host"], d["weight"]) for d in last] == [
        ("web", 60),
        ("web-canary", 30),
        ("legacy", 10),
    ]


def test_canary_host_keeps_the_spelling_of_the_stable_host() -> None:
    (vs,) = PROVIDER.desired(HOST_ROUTING, CTX, _originals(VS), _route({"weight": 20})).patched
    main = next(r for r in vs["spec"]["http"] if r.get("name") == "main")
    assert [d["destination"]["host"] for d in main["route"]] == [
        "web.shop.svc.cluster.local",
        "web-canary.shop.svc.cluster.local",
    ]


def test_match_routes_go_right_before_their_source_route() -> None:
    (vs,) = PROVIDER.desired(
        HOST_ROUTING, CTX, _originals(VS), _route({"matches": [HEADER]})
    ).patched
    assert [r.get("name") for r in vs["spec"]["http"]] == [
        "admin",
        "main-canary",
        "main",
        None,
        None,
    ]


def test_subset_routing_adds_subsets_selected_by_revision() -> None:
    vs, dr = PROVIDER.desired(
        SUBSET_ROUTING, CTX, _originals(VS, DR), _route({"weight": 20})
    ).patched
    assert dr["spec"]["subsets"][1:] == [
        {"name": "stable", "labels": {"pod-template-hash": "6b8f7c9d4"}},
        {"name": "canary", "labels": {"pod-template-hash": "75c4d8b6f"}},
    ]
    main = next(r for r in vs["spec"]["http"] if r.get("name") == "main")
    assert [d["destination"] for d in main["route"]] == [
        {"host": "web.shop.svc.cluster.local", "port": {"number": 80}, "subset": "stable"},
        {"host": "web.shop.svc.cluster.local", "port": {"number": 80}, "subset": "canary"},
    ]


def test_subset_routing_sends_unmatched_requests_to_the_stable_subset() -> None:
    (vs, _) = PROVIDER.desired(
        SUBSET_ROUTING, CTX, _originals(VS, DR), _route({"matches": [HEADER]})
    ).patched
    main = next(r for r in vs["spec"]["http"] if r.get("name") == "main")
    assert [d["destination"].get("subset") for d in main["route"]] == ["stable"]


def test_subset_routing_does_not_pin_its_service_and_cannot_share_it() -> None:
    ingress = TrafficRouting.from_dict({"type": "ingress"}, "web")
    assert pinned_services([SUBSET_ROUTING]) == ()
    assert pinned_services([HOST_ROUTING]) == ("web",)
    (problem,) = check_routings([SUBSET_ROUTING, ingress])
    assert "trafficRoutings[1]" in problem
    assert "unpinned" in problem


@pytest.mark.parametrize(
    ("name", "value", "header", "selected"),
    [
        ("beta", "on", "beta=on", True),
        ("beta", "on", "a=1; beta=on; b=2", True),
        ("beta", "on", "a=1;beta=on", True),
        ("beta", "on", "xbeta=on", False),
        ("beta", "on", "beta=onion", False),
        ("b.t", "1", "bxt=1", False),
    ],
)
def test_cookie_regex_matches_one_cookie_exactly(
    name: str, value: str, header: str, selected: bool
) -> None:
    pattern = cookie_regex(CookieMatch(name, value))
    assert bool(re.fullmatch(pattern, header)) is selected


def test_two_cookies_in_one_match_entry_are_rejected() -> None:
    route = _route({"matches": [{"cookies": [{"name": "a"}, {"name": "b"}]}]})
    with pytest.raises(TrafficConfigError, match="one cookie per match entry"):
        PROVIDER.desired(HOST_ROUTING, CTX, _originals(VS), route)


def test_destination_rule_for_another_host_is_rejected() -> None:
    other = copy.deepcopy(DR)
    other["spec"]["host"] = "cart"
    with pytest.raises(TrafficConfigError, match="not the stable Service"):
        PROVIDER.desired(SUBSET_ROUTING, CTX, _originals(VS, other), RouteState(20))


def test_existing_subset_named_canary_is_not_overwritten() -> None:
    taken = copy.deepcopy(DR)
    taken["spec"]["subsets"].append({"name": "canary", "labels": {"version": "v2"}})
    with pytest.raises(TrafficConfigError, match=r"already has subsets \['canary'\]"):
        PROVIDER.desired(SUBSET_ROUTING, CTX, _originals(VS, taken), RouteState(20))


def test_host_routing_needs_the_canary_service() -> None:
    ctx = TrafficContext("shop", "web", CTX.stable_selector, CTX.canary_selector, True)
    with pytest.raises(TrafficConfigError, match="destinationRuleName"):
        PROVIDER.desired(HOST_ROUTING, ctx, _originals(VS), RouteState(20))
    assert PROVIDER.desired(SUBSET_ROUTING, ctx, _originals(VS, DR), RouteState(20)).patched


def test_missing_objects_name_their_fields() -> None:
    with pytest.raises(TrafficConfigError, match=r"VirtualService shop/web not found"):
        PROVIDER.desired(HOST_ROUTING, CTX, {}, RouteState(20))
    with pytest.raises(TrafficConfigError, match=r"destinationRuleName"):
        PROVIDER.desired(SUBSET_ROUTING, CTX, _originals(VS), RouteState(20))


def test_virtualservice_without_a_route_to_the_service_is_rejected() -> None:
    other = TrafficRouting.from_dict({"type": "istio", "service": "cart"}, "web")
    with pytest.raises(TrafficConfigError, match=r"no http route to host 'cart'"):
        PROVIDER.desired(other, CTX, _originals(VS), RouteState(20))
