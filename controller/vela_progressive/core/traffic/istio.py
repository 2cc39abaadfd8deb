"""Istio provider: weights and matches on the user's VirtualService (and DestinationRule).

Host style (no ``destinationRuleName``): every HTTP route with a destination whose host is the
stable Service gets a second destination, the canary Service's host (same spelling: ``web``,
``web.ns``, ``web.ns.svc.cluster.local``), and the stable share ``W`` is split into
``W - round(W*w/100)`` stable and ``round(W*w/100)`` canary (weights still sum to 100).

Subset style (``destinationRuleName`` set): the DestinationRule gets subsets ``stable`` and
``canary`` (selected by the revision label) and the route's destinations use them; the host
stays the stable Service, which is then *not* pinned to the stable revision (a subset can only
select pods the Service selects).

For a step with matches, a copy of each such route is inserted right before it, sending 100% to
the canary, matching the route's matches ANDed with the step's: headers and query parameters
(``exact``/``regex``), ``uri`` (``exact``/``prefix``/``regex``), and a cookie as a regex on the
``cookie`` header.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from vela_progressive.core.capabilities import capabilities, provider_id
from vela_progressive.core.model import CookieMatch, HeaderMatch, Match, TrafficRouting
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

API_VERSION = "networking.istio.io/v1"
VS_KIND = "VirtualService"
DR_KIND = "DestinationRule"
STABLE_SUBSET = "stable"
CANARY_SUBSET = "canary"
_STRING_MATCH = {"Exact": "exact", "RegularExpression": "regex", "PathPrefix": "prefix"}


def hosts(service: str, namespace: str) -> tuple[str, ...]:
    """The spellings of a Service's host that Istio resolves in ``namespace``."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def cookie_regex(cookie: CookieMatch) -> str:
    """A regex on the ``cookie`` header matching ``name=value`` as one cookie."""
    pair = f"{re.escape(cookie.name)}={re.escape(cookie.value)}"
    return rf"^(.*?;\s*)?({pair})(;.*)?$"


def _string_match(kind: str, value: str) -> dict[str, str]:
    return {_STRING_MATCH[kind]: value}


def _conditions(items: tuple[HeaderMatch, ...]) -> dict[str, dict[str, str]]:
    return {c.name: _string_match(c.type, c.value) for c in items}


def combine(original: Mapping[str, Any], step: Match) -> Obj:
    """An HTTPMatchRequest that is ``original`` AND ``step`` (the step wins on equal names)."""
    new = copy.deepcopy(dict(original))
    headers = _conditions(step.headers)
    if step.cookies:
        (cookie,) = step.cookies  # check() allows one cookie per match entry
        headers["cookie"] = {"regex": cookie_regex(cookie)}
    if headers:
        new["headers"] = {**(new.get("headers") or {}), **headers}
    if step.query_params:
        new["queryParams"] = {**(new.get("queryParams") or {}), **_conditions(step.query_params)}
    if step.path is not None:
        new["uri"] = _string_match(step.path.type, step.path.value)
    return new


class IstioProvider(RoutingProvider):
    """VirtualService destinations (host or subset style) and DestinationRule subsets."""

    def refs(self, routing: TrafficRouting, ctx: TrafficContext) -> list[ObjectRef]:
        out = [ObjectRef(API_VERSION, VS_KIND, ctx.namespace, routing.object_name)]
        if routing.destination_rule_name:
            out.append(
                ObjectRef(API_VERSION, DR_KIND, ctx.namespace, routing.destination_rule_name)
            )
        return out

    def check(self, routing: TrafficRouting, route: RouteState) -> tuple[str, ...]:
        pid = provider_id(routing)
        needed = set().union(*(m.features() for m in route.matches))
        if route.weight:
            needed.add("weight")
        problems = [
            f"{pid} cannot route by {feature}" for feature in sorted(needed - capabilities(routing))
        ]
        for match in route.matches:
            if len(match.cookies) > 1:
                problems.append(
                    f"{pid} matches one cookie per match entry (a regex on the cookie header); "
                    "split the cookies into separate match entries"
                )
            if match.cookies and any(h.name.lower() == "cookie" for h in match.headers):
                problems.append(
                    f"{pid}: a match entry cannot have both a cookie and a 'cookie' header; "
                    "drop the 'cookie' header condition"
                )
        return tuple(problems)

    def split(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
        route: RouteState,
    ) -> Changes:
        subsets = routing.destination_rule_name is not None
        if ctx.disable_canary_service and not subsets:
            raise TrafficConfigError(
                "istio host routing sends the canary share to the canary Service; remove "
                "disableGenerateCanaryService or set destinationRuleName (subset routing)"
            )
        refs = self.refs(routing, ctx)
        vs = require(originals, refs[0], "trafficRoutings[].virtualServiceName")
        stable_hosts = hosts(routing.service, ctx.namespace)
        canary_service = ctx.canary_service(routing.service)

        def stable_dest(dest: Mapping[str, Any]) -> bool:
            return (dest.get("destination") or {}).get("host") in stable_hosts

        def to_stable(dest: Obj) -> Obj:
            if subsets:
                dest["destination"]["subset"] = STABLE_SUBSET
            return dest

        def to_canary(dest: Obj) -> Obj:
            target = dest["destination"]
            if subsets:
                target["subset"] = CANARY_SUBSET
            else:
                target["host"] = canary_service + target["host"][len(routing.service) :]
            return dest

        def change_vs(obj: Obj) -> None:
            http: list[Obj] = (obj.get("spec") or {}).get("http") or []
            if not any(stable_dest(d) for r in http for d in r.get("route") or []):
                raise TrafficConfigError(
                    f"{refs[0]} has no http route to host {routing.service!r}; set "
                    "trafficRoutings[].service to the Service the VirtualService routes to"
                )
            new_http: list[Obj] = []
            for rt in http:
                dests: list[Obj] = rt.get("route") or []
                if not any(stable_dest(d) for d in dests):
                    new_http.append(rt)
                    continue
                if route.matches:
                    new_http.append(_match_route(rt, route.matches, stable_dest, to_canary))
                new_http.append(
                    _weighted_route(rt, route.weight, stable_dest, to_stable, to_canary)
                )
            obj["spec"]["http"] = new_http

        changed = [patched(vs, change_vs)]
        if subsets:
            dr = require(originals, refs[1], "trafficRoutings[].destinationRuleName")
            changed.append(patched(dr, lambda obj: _add_subsets(obj, refs[1], stable_hosts, ctx)))
        return Changes(patched=tuple(changed))

    def restore(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
    ) -> Changes:
        found = [originals.get(ref) for ref in self.refs(routing, ctx)]
        return Changes(patched=tuple(original_of(obj) for obj in found if obj is not None))


def _match_route(rt: Obj, matches: tuple[Match, ...], stable_dest: Any, to_canary: Any) -> Obj:
    new = copy.deepcopy(rt)
    if new.get("name"):
        new["name"] = f"{new['name']}-canary"
    new["match"] = [combine(o, m) for o in rt.get("match") or [{}] for m in matches]
    canary = [to_canary(copy.deepcopy(d)) for d in rt.get("route") or [] if stable_dest(d)]
    if len(canary) == 1:
        canary[0].pop("weight", None)
    else:  # several stable destinations (e.g. ports): keep their proportions, summing to 100
        shares = [d.get("weight", 0) for d in canary]
        if not sum(shares):
            shares = [1] * len(canary)
        scaled = [s * 100 // sum(shares) for s in shares]
        scaled[0] += 100 - sum(scaled)
        for dest, share in zip(canary, scaled, strict=True):
            dest["weight"] = share
    new["route"] = canary
    return new


def _weighted_route(rt: Obj, weight: int, stable_dest: Any, to_stable: Any, to_canary: Any) -> Obj:
    dests: list[Obj] = rt.get("route") or []
    out: list[Obj] = []
    for dest in dests:
        if not stable_dest(dest):
            out.append(dest)
            continue
        if weight == 0:  # matches only: the rest still goes to the stable pods
            out.append(to_stable(copy.deepcopy(dest)))
            continue
        share = dest.get("weight", 100 if len(dests) == 1 else 0)
        canary_share = (share * weight + 50) // 100
        out.append(to_stable({**copy.deepcopy(dest), "weight": share - canary_share}))
        out.append(to_canary({**copy.deepcopy(dest), "weight": canary_share}))
    return {**rt, "route": out}


def _add_subsets(
    obj: Obj, ref: ObjectRef, stable_hosts: tuple[str, ...], ctx: TrafficContext
) -> None:
    spec = obj.setdefault("spec", {})
    if spec.get("host") not in stable_hosts:
        raise TrafficConfigError(
            f"{ref} is for host {spec.get('host')!r}, not the stable Service "
            f"({stable_hosts[0]}); set trafficRoutings[].destinationRuleName to its rule"
        )
    ctx.check_split()
    subsets: list[Obj] = spec.get("subsets") or []
    taken = {str(s.get("name")) for s in subsets} & {STABLE_SUBSET, CANARY_SUBSET}
    if taken:
        raise TrafficConfigError(
            f"{ref} already has subsets {sorted(taken)}; the release adds subsets "
            f"{STABLE_SUBSET!r} and {CANARY_SUBSET!r}, rename yours"
        )
    spec["subsets"] = [
        *subsets,
        {"name": STABLE_SUBSET, "labels": dict(ctx.stable_selector)},
        {"name": CANARY_SUBSET, "labels": dict(ctx.canary_selector)},
    ]
