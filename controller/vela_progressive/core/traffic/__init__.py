"""Traffic providers: pure functions from (routing, context, objects read, route) to changes.

One module per provider behind :class:`TrafficProvider`; :func:`provider_for` picks it. The
shell (``vela_progressive.shell.traffic``) reads :meth:`TrafficProvider.refs`, calls
:meth:`~TrafficProvider.desired` or :meth:`~TrafficProvider.restore` and applies the result.
The canary/stable Services are handled by :mod:`.services` (keyed by Service, not by routing),
and :mod:`.order` says in which order the controller moves pods, Services and routes.
"""

from __future__ import annotations

from collections.abc import Sequence

from vela_progressive.core.model import TrafficRouting
from vela_progressive.core.traffic.gateway import GatewayProvider
from vela_progressive.core.traffic.ingress import IngressProvider
from vela_progressive.core.traffic.istio import IstioProvider
from vela_progressive.core.traffic.objects import (
    ORIGINAL_ANNOTATION,
    Changes,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
)
from vela_progressive.core.traffic.routing import RoutingProvider

__all__ = [
    "ORIGINAL_ANNOTATION",
    "Changes",
    "ObjectRef",
    "RouteState",
    "TrafficConfigError",
    "TrafficContext",
    "TrafficProvider",
    "check_routings",
    "pinned_services",
    "provider_for",
    "stable_services",
]


#: The contract of a routing provider (the one base class every provider derives from).
TrafficProvider = RoutingProvider


PROVIDERS: dict[str, TrafficProvider] = {
    "ingress": IngressProvider(),
    "gateway": GatewayProvider(),
    "istio": IstioProvider(),
}


def provider_for(routing: TrafficRouting) -> TrafficProvider:
    try:
        return PROVIDERS[routing.type]
    except KeyError:
        raise TrafficConfigError(
            f"trafficRoutings[].type: unknown type {routing.type!r}; "
            f"use one of {', '.join(sorted(PROVIDERS))}"
        ) from None


def pinned_services(routings: Sequence[TrafficRouting]) -> tuple[str, ...]:
    """Services to pin to the stable revision: all, except those routed by Istio subsets."""
    subset = {r.service for r in routings if r.type == "istio" and r.destination_rule_name}
    return tuple(dict.fromkeys(r.service for r in routings if r.service not in subset))


def stable_services(routings: Sequence[TrafficRouting]) -> tuple[str, ...]:
    """The stable Services behind ``routings``, each once, in order."""
    return tuple(dict.fromkeys(r.service for r in routings))


def check_routings(routings: Sequence[TrafficRouting]) -> tuple[str, ...]:
    """Problems with the routings taken together (empty when they work together)."""
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for index, routing in enumerate(routings):
        key = (routing.type, routing.object_name)
        if key in seen:
            problems.append(
                f"trafficRoutings[{index}] changes the same {routing.type} object "
                f"{routing.object_name!r} as trafficRoutings[{seen[key]}]; list it once"
            )
        seen.setdefault(key, index)
    subset = {r.service for r in routings if r.type == "istio" and r.destination_rule_name}
    for index, routing in enumerate(routings):
        if routing.service in subset and not (
            routing.type == "istio" and routing.destination_rule_name
        ):
            problems.append(
                f"trafficRoutings[{index}]: Service {routing.service!r} is also routed by Istio "
                "subsets (destinationRuleName), which need it unpinned; use subsets for every "
                "routing of that Service, or drop destinationRuleName"
            )
    return tuple(problems)
