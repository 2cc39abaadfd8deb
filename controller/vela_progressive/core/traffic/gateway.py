"""Gateway API provider: weights and matches on the user's HTTPRoute.

Every rule with a backendRef to the stable Service gets a canary backendRef next to it: the
stable share ``W`` (its weight, default 1) becomes ``W*(100-w)`` stable and ``W*w`` canary,
other backendRefs of the rule are scaled by 100 so their share is unchanged. For a step with
matches, a copy of each such rule is inserted right before it, routing 100% to the canary
Service, whose matches are the rule's matches ANDed with the step's (headers and query
parameters added, the path replaced by the step's path when it has one).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vela_progressive.core.capabilities import capabilities, provider_id
from vela_progressive.core.model import HeaderMatch, Match, TrafficRouting
from vela_progressive.core.traffic.objects import (
    Changes,
    Obj,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
)
from vela_progressive.core.traffic.original import original_of, patched, require
from vela_progressive.core.traffic.routing import RoutingProvider

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
#: Gateway API's limit on a backendRef weight.
MAX_WEIGHT = 1_000_000
#: What the API server fills in on an HTTPRouteMatch without a path; written explicitly so the
#: object read back equals the one we wrote.
DEFAULT_PATH = {"type": "PathPrefix", "value": "/"}


def _points_at(ref: Mapping[str, Any], service: str, namespace: str) -> bool:
    return (
        ref.get("group", "") == ""
        and ref.get("kind", "Service") == "Service"
        and ref.get("name") == service
        and ref.get("namespace", namespace) == namespace
    )


def _string_matches(conditions: tuple[HeaderMatch, ...]) -> list[Obj]:
    return [{"type": c.type, "name": c.name, "value": c.value} for c in conditions]


def _merge_named(original: list[Obj], added: list[Obj]) -> list[Obj]:
    """``original`` conditions ANDed with ``added``; ``added`` wins on the same name."""
    names = {a["name"].lower() for a in added}
    return [o for o in original if o["name"].lower() not in names] + added


def combine(original: Mapping[str, Any], step: Match) -> Obj:
    """An HTTPRouteMatch that is ``original`` AND ``step``."""
    new = copy.deepcopy(dict(original))
    if step.headers:
        new["headers"] = _merge_named(new.get("headers") or [], _string_matches(step.headers))
    if step.query_params:
        new["queryParams"] = _merge_named(
            new.get("queryParams") or [], _string_matches(step.query_params)
        )
    if step.path is not None:
        new["path"] = {"type": step.path.type, "value": step.path.value}
    new.setdefault("path", dict(DEFAULT_PATH))
    return new


class GatewayProvider(RoutingProvider):
    """HTTPRoute backendRef weights and match rules."""

    def refs(self, routing: TrafficRouting, ctx: TrafficContext) -> list[ObjectRef]:
        return [ObjectRef(API_VERSION, KIND, ctx.namespace, routing.object_name)]

    def check(self, routing: TrafficRouting, route: RouteState) -> tuple[str, ...]:
        needed = set().union(*(m.features() for m in route.matches))
        if route.weight:
            needed.add("weight")
        return tuple(
            f"{provider_id(routing)} cannot route by {feature}"
            for feature in sorted(needed - capabilities(routing))
        )

    def split(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
        route: RouteState,
    ) -> Changes:
        if ctx.disable_canary_service:
            raise TrafficConfigError(
                "gateway routes to the canary Service; remove disableGenerateCanaryService"
            )
        (ref,) = self.refs(routing, ctx)
        current = require(originals, ref, "trafficRoutings[].gatewayHTTPRouteName")
        service, canary = routing.service, ctx.canary_service(routing.service)

        def change(obj: Obj) -> None:
            rules: list[Obj] = (obj.get("spec") or {}).get("rules") or []
            if not any(_rule_points_at(r, service, ctx.namespace) for r in rules):
                raise TrafficConfigError(
                    f"{ref} has no rule with a backendRef to Service {service!r}; set "
                    "trafficRoutings[].service to the Service the HTTPRoute routes to"
                )
            new_rules: list[Obj] = []
            for rule in rules:
                if not _rule_points_at(rule, service, ctx.namespace):
                    new_rules.append(rule)
                    continue
                if route.matches:
                    new_rules.append(_match_rule(rule, route.matches, service, canary, ctx))
                new_rules.append(_weighted_rule(rule, route.weight, service, canary, ctx, ref))
            obj["spec"]["rules"] = new_rules

        return Changes(patched=(patched(current, change),))

    def restore(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
    ) -> Changes:
        (ref,) = self.refs(routing, ctx)
        current = originals.get(ref)
        if current is None:
            return Changes()
        return Changes(patched=(original_of(current),))


def _rule_points_at(rule: Mapping[str, Any], service: str, namespace: str) -> bool:
    return any(_points_at(b, service, namespace) for b in rule.get("backendRefs") or [])


def _match_rule(
    rule: Obj, matches: tuple[Match, ...], service: str, canary: str, ctx: TrafficContext
) -> Obj:
    new = copy.deepcopy(rule)
    if new.get("name"):
        new["name"] = f"{new['name']}-canary"
    originals = rule.get("matches") or [{}]
    new["matches"] = [combine(o, m) for o in originals for m in matches]
    new["backendRefs"] = [
        {**copy.deepcopy(b), "name": canary, "weight": 1}
        for b in rule.get("backendRefs") or []
        if _points_at(b, service, ctx.namespace)
    ]
    return new


def _weighted_rule(
    rule: Obj, weight: int, service: str, canary: str, ctx: TrafficContext, ref: ObjectRef
) -> Obj:
    if weight == 0:
        return rule
    backends: list[Obj] = []
    for backend in rule.get("backendRefs") or []:
        share = backend.get("weight", 1)
        if _points_at(backend, service, ctx.namespace):
            backends.append({**backend, "weight": share * (100 - weight)})
            backends.append({**copy.deepcopy(backend), "name": canary, "weight": share * weight})
        else:
            backends.append({**backend, "weight": share * 100})
    if any(b["weight"] > MAX_WEIGHT for b in backends):
        raise TrafficConfigError(
            f"{ref}: backendRef weights above {MAX_WEIGHT // 100} cannot be split in percent; "
            "lower the weights in the HTTPRoute"
        )
    return {**rule, "backendRefs": backends}
