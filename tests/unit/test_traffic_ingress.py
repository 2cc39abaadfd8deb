"""Ingress provider: canary Ingress per class template, what each class can express, restore."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.golden import assert_matches_golden

from vela_progressive.core.capabilities import (
    PROVIDER_FEATURES,
    UnknownProviderError,
    capabilities,
    template_features,
)
from vela_progressive.core.model import Match, TrafficRouting
from vela_progressive.core.traffic import (
    Changes,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
    provider_for,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "traffic" / "ingress"
CTX = TrafficContext(
    namespace="shop",
    workload="web",
    stable_selector={"pod-template-hash": "6b8f7c9d4"},
    canary_selector={"pod-template-hash": "75c4d8b6f"},
)
CANARY_REF = ObjectRef("networking.k8s.io/v1", "Ingress", "shop", "web-canary")

STABLE: dict[str, Any] = yaml.safe_load(
    """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  resourceVersion: "812"
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: nginx
  tls:
  - hosts: [shop.example.com]
    secretName: shop-tls
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
      - path: /static
        pathType: Prefix
        backend: {service: {name: static, port: {number: 80}}}
  - host: api.example.com
    http:
      paths:
      - path: /v1
        pathType: Prefix
        backend: {service: {name: web, port: {name: http}}}
  - host: docs.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: docs, port: {number: 80}}}
"""
)


def _routing(ingress_class: str = "nginx") -> TrafficRouting:
    return TrafficRouting.from_dict({"type": "ingress", "ingressClass": ingress_class}, "web")


def _match(**raw: Any) -> Match:
    return Match.from_dict(raw)


def _originals(*objects: dict[str, Any]) -> dict[ObjectRef, dict[str, Any] | None]:
    return {ObjectRef.of(o): o for o in objects}


def _trait_match(match: Match) -> dict[str, Any]:
    """``match`` as written in the trait."""
    raw: dict[str, Any] = {
        "headers": [h.__dict__ for h in match.headers],
        "cookies": [c.__dict__ for c in match.cookies],
        "queryParams": [q.__dict__ for q in match.query_params],
        "path": match.path.__dict__ if match.path else None,
    }
    return {k: v for k, v in raw.items() if v}


def _dump(route: RouteState, changes: Changes) -> str:
    step = {"weight": route.weight, "matches": [_trait_match(m) for m in route.matches]}
    body = {"apply": changes.objects(), "delete": [str(r) for r in changes.delete]}
    return yaml.safe_dump({"step": step}, sort_keys=True) + yaml.safe_dump(body, sort_keys=True)


def _stable(ingress_class: str) -> dict[str, Any]:
    stable = copy.deepcopy(STABLE)
    stable["spec"]["ingressClassName"] = ingress_class
    return stable


HEADER = _match(headers=[{"name": "x-canary", "value": "yes"}])
HEADER_RE = _match(
    headers=[{"name": "x-user", "value": "^(alice|bob)$", "type": "RegularExpression"}]
)
COOKIE = _match(cookies=[{"name": "beta"}])

CASES: dict[str, tuple[str, RouteState]] = {
    "nginx-weight-20": ("nginx", RouteState(20)),
    "nginx-weight-50": ("nginx", RouteState(50)),
    "nginx-weight-100": ("nginx", RouteState(100)),
    "nginx-header": ("nginx", RouteState(0, (HEADER,))),
    "nginx-header-regex": ("nginx", RouteState(0, (HEADER_RE,))),
    "nginx-cookie": ("nginx", RouteState(0, (COOKIE,))),
    "nginx-header-or-cookie-and-weight": ("nginx", RouteState(10, (HEADER, COOKIE))),
    "alb-weight-20": ("aliyun-alb", RouteState(20)),
    "alb-header": ("aliyun-alb", RouteState(0, (HEADER,))),
    "alb-cookie": ("aliyun-alb", RouteState(0, (COOKIE,))),
    "higress-header-and-weight": ("higress", RouteState(30, (HEADER,))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_canary_ingress_matches_golden(case: str) -> None:
    ingress_class, route = CASES[case]
    routing = _routing(ingress_class)
    changes = provider_for(routing).desired(routing, CTX, _originals(_stable(ingress_class)), route)
    assert_matches_golden(_dump(route, changes), GOLDEN / f"{case}.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_desired_is_idempotent(case: str) -> None:
    ingress_class, route = CASES[case]
    routing = _routing(ingress_class)
    provider = provider_for(routing)
    first = provider.desired(routing, CTX, _originals(STABLE), route)
    again = provider.desired(routing, CTX, _originals(STABLE, *first.apply), route)
    assert again == first


def test_canary_copies_only_paths_to_the_stable_service_and_points_them_at_the_canary() -> None:
    routing = _routing()
    (canary,) = (
        provider_for(routing).desired(routing, CTX, _originals(STABLE), RouteState(20)).owned
    )
    backends = [
        (rule["host"], p["path"], p["backend"]["service"])
        for rule in canary["spec"]["rules"]
        for p in rule["http"]["paths"]
    ]
    assert backends == [
        ("shop.example.com", "/", {"name": "web-canary", "port": {"number": 80}}),
        ("api.example.com", "/v1", {"name": "web-canary", "port": {"name": "http"}}),
    ]
    assert "nginx.ingress.kubernetes.io/rewrite-target" not in canary["metadata"]["annotations"]
    assert canary["spec"]["ingressClassName"] == "nginx"


def test_stable_ingress_is_never_changed() -> None:
    routing = _routing()
    changes = provider_for(routing).desired(routing, CTX, _originals(STABLE), RouteState(50))
    assert changes.patched == ()
    assert [ObjectRef.of(o) for o in changes.apply] == [CANARY_REF]


def test_legacy_class_annotation_is_copied_to_the_canary() -> None:
    legacy = copy.deepcopy(STABLE)
    del legacy["spec"]["ingressClassName"]
    legacy["metadata"]["annotations"]["kubernetes.io/ingress.class"] = "nginx"
    routing = _routing()
    (canary,) = provider_for(routing).desired(routing, CTX, _originals(legacy), RouteState(5)).owned
    assert canary["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "nginx"
    assert "ingressClassName" not in canary["spec"]


def test_all_traffic_on_stable_deletes_the_canary_ingress() -> None:
    routing = _routing()
    provider = provider_for(routing)
    applied = provider.desired(routing, CTX, _originals(STABLE), RouteState(20))
    assert provider.desired(routing, CTX, _originals(STABLE, *applied.apply), RouteState()) == (
        Changes(delete=(CANARY_REF,))
    )


def test_restore_deletes_the_canary_and_leaves_the_original_untouched() -> None:
    routing = _routing()
    provider = provider_for(routing)
    applied = provider.desired(routing, CTX, _originals(STABLE), RouteState(20))
    restored = provider.restore(routing, CTX, _originals(STABLE, *applied.apply))
    assert restored == Changes(delete=(CANARY_REF,))
    assert_matches_golden(_dump(RouteState(), restored), GOLDEN / "restore.yaml")
    assert provider.restore(routing, CTX, _originals(STABLE)) == Changes()


REJECTED: dict[str, tuple[str, RouteState, str]] = {
    "nginx query": (
        "nginx",
        RouteState(0, (_match(queryParams=[{"name": "a", "value": "1"}]),)),
        "cannot route by query",
    ),
    "nginx path": (
        "nginx",
        RouteState(0, (_match(path={"value": "/beta"}),)),
        "cannot route by path",
    ),
    "two headers": (
        "nginx",
        RouteState(0, (HEADER, _match(headers=[{"name": "x-b", "value": "1"}]))),
        "one header per step, got 2",
    ),
    "header AND cookie": (
        "nginx",
        RouteState(0, (_match(headers=[{"name": "x", "value": "1"}], cookies=[{"name": "c"}]),)),
        "its own match entry",
    ),
    "cookie value": (
        "nginx",
        RouteState(0, (_match(cookies=[{"name": "c", "value": "v2"}]),)),
        '"always"',
    ),
    "alb regex": ("aliyun-alb", RouteState(0, (HEADER_RE,)), "use type Exact"),
    "alb weight and match": ("aliyun-alb", RouteState(20, (HEADER,)), "cannot combine a weight"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_routes_a_class_cannot_express_are_rejected(name: str) -> None:
    ingress_class, route, message = REJECTED[name]
    routing = _routing(ingress_class)
    assert any(message in p for p in provider_for(routing).check(routing, route))
    with pytest.raises(TrafficConfigError, match=message.replace("(", r"\(")):
        provider_for(routing).desired(routing, CTX, _originals(STABLE), route)


def test_unknown_ingress_class_names_the_field_and_how_to_add_one() -> None:
    routing = _routing("traefik")
    with pytest.raises(
        UnknownProviderError, match=r"ingressClass.*templates/traffic/ingress/<class>"
    ):
        provider_for(routing).desired(routing, CTX, _originals(STABLE), RouteState(20))


def test_ingress_without_a_rule_to_the_service_is_rejected() -> None:
    routing = TrafficRouting.from_dict({"type": "ingress", "service": "cart"}, "web")
    with pytest.raises(TrafficConfigError, match=r"no rule whose backend is Service 'cart'"):
        provider_for(routing).desired(routing, CTX, _originals(STABLE), RouteState(20))


def test_missing_stable_ingress_names_the_field() -> None:
    routing = _routing()
    with pytest.raises(TrafficConfigError, match=r"Ingress shop/web not found.*ingressName"):
        provider_for(routing).desired(routing, CTX, {}, RouteState(20))


def test_a_foreign_ingress_named_like_the_canary_is_not_taken_over() -> None:
    foreign = copy.deepcopy(STABLE)
    foreign["metadata"] = {"name": "web-canary", "namespace": "shop"}
    routing = _routing()
    with pytest.raises(TrafficConfigError, match="not created by vela-progressive"):
        provider_for(routing).desired(routing, CTX, _originals(STABLE, foreign), RouteState(20))


def test_disabled_canary_service_cannot_carry_a_weight() -> None:
    ctx = TrafficContext("shop", "web", CTX.stable_selector, CTX.canary_selector, True)
    routing = _routing()
    with pytest.raises(TrafficConfigError, match="disableGenerateCanaryService"):
        provider_for(routing).desired(routing, ctx, _originals(STABLE), RouteState(20))


@pytest.mark.parametrize("ingress_class", ["nginx", "aliyun-alb"])
def test_builtin_class_templates_declare_the_builtin_capabilities(ingress_class: str) -> None:
    assert template_features(ingress_class) == PROVIDER_FEATURES[f"ingress/{ingress_class}"]


def test_a_class_added_by_template_gets_the_capabilities_it_declares() -> None:
    assert capabilities(_routing("higress")) == frozenset({"weight", "header", "cookie"})


def test_a_template_without_a_features_line_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "traffic" / "ingress"
    folder.mkdir(parents=True)
    (folder / "bare.yaml.j2").write_text("apiVersion: networking.k8s.io/v1\n")
    (folder / "odd.yaml.j2").write_text("{# features: weight teleport #}\n")
    with pytest.raises(UnknownProviderError, match="must start with a line declaring"):
        template_features("bare", str(tmp_path))
    with pytest.raises(UnknownProviderError, match=r"unknown features \['teleport'\]"):
        template_features("odd", str(tmp_path))
