"""Provider rules: each routing names one object of a provider that exists, and every step asks
the routings' providers only for what they can serve.

* routing-specific names (``ingressName``, ``gatewayHTTPRouteName``, ``virtualServiceName``,
  ``destinationRuleName``) go with their type only, and two routings may not change the same
  object;
* an Ingress class needs a canary template;
* every routing's provider must serve every feature a step uses (weight, header, cookie, query,
  path) and follow its rules, e.g. a canary-annotation Ingress (NGINX) routes by one header and
  one cookie per step, each in its own match entry, the cookie value ``always``.

The capability table, the routing types and the provider rules with their wording live in
:mod:`vela_progressive.core.capabilities`; this module puts them on the trait's field paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vela_progressive.core.capabilities import (
    ROUTING_TYPES,
    Provider,
    Rule,
    UnknownProviderError,
    either,
    ingress_template,
    provider_of,
    provider_table,
    route_refusals,
    type_only_fields,
)
from vela_progressive.core.model import Match, TrafficRouting
from vela_progressive.core.traffic import RouteState, provider_for
from vela_progressive.core.validation.messages import Problem, problem

#: Rules the trait's CUE checks too, keyed by id (the provider rules are
#: :data:`vela_progressive.core.capabilities.RULES`).
RULES: dict[str, Rule] = {
    "type-only-field": Rule(
        "{name} is used by type {types} only, this routing is type {type}",
        "remove {name} or set type: {first}",
    ),
    "duplicate-routing": Rule(
        "changes {kind} '{object}' like canary.trafficRoutings[{other}]",
        "remove the duplicate, or name another object",
    ),
    "unknown-class": Rule(
        "no canary Ingress template for class '{ingress_class}'",
        "use ingressClass {known}, or type gateway or istio; a platform team adds a class as "
        "templates/{template}",
    ),
}

#: What the rules above show for ``{template}``.
TEMPLATE_PATTERN = ingress_template("<class>")


def known_classes() -> str:
    """The Ingress classes a routing may name, for a fix."""
    return either([pid.split("/", 1)[1] for pid in provider_table() if "/" in pid])


def routing_problems(
    props: dict[str, Any], component: str | None
) -> Iterator[Problem | tuple[int, TrafficRouting, Provider]]:
    """Problems of each routing; yields ``(index, routing, provider)`` for the good ones."""
    routings: list[dict[str, Any]] = props["canary"].get("trafficRoutings", [])
    only = type_only_fields()
    seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(routings):
        here = f"canary.trafficRoutings[{i}]"
        rtype = raw["type"]
        for name, types in only.items():
            if name in raw and rtype not in types:
                yield problem(
                    RULES["type-only-field"],
                    f"{here}.{name}",
                    name=name,
                    types=" or ".join(types),
                    type=rtype,
                    first=types[0],
                )
        routing = TrafficRouting.from_dict(raw, component or "<component>")
        key = (ROUTING_TYPES[rtype].object_kind, routing.object_name)
        if key in seen:
            yield problem(
                RULES["duplicate-routing"], here, kind=key[0], object=key[1], other=seen[key]
            )
        else:
            seen[key] = i
        try:
            provider = provider_of(routing)
        except UnknownProviderError:
            yield problem(
                RULES["unknown-class"],
                f"{here}.ingressClass",
                ingress_class=routing.ingress_class,
                known=known_classes(),
                template=TEMPLATE_PATTERN,
            )
            continue
        yield (i, routing, provider)


def feature_problems(
    props: dict[str, Any], routings: list[tuple[int, TrafficRouting, Provider]]
) -> Iterator[Problem]:
    """What each step asks of each routing's provider that the provider refuses."""
    for i, step in enumerate(props["canary"]["steps"]):
        here = f"canary.steps[{i}]"
        matches = tuple(Match.from_dict(m) for m in step.get("matches", []))
        for r_index, routing, provider in routings:
            who = f"canary.trafficRoutings[{r_index}] ({provider.id})"
            own = [
                Problem(f"{here}.{r.field}" if r.field else here, f"{who} {r.message}", r.fix)
                for r in route_refusals(provider, step.get("weight"), matches, here)
            ]
            # Whatever else the provider refuses, asked only when the capability table found
            # nothing, so nothing is said twice; the controller refuses the step the same way.
            yield from own or _provider_check(here, who, routing, step.get("weight"), matches)


def _provider_check(
    here: str,
    who: str,
    routing: TrafficRouting,
    weight: int | None,
    matches: tuple[Match, ...],
) -> Iterator[Problem]:
    route = RouteState(weight=weight or 0, matches=matches)
    pid = provider_of(routing).id
    for reason in provider_for(routing).check(routing, route):
        if reason.startswith(f"{pid} "):
            said = f"{who} {reason.removeprefix(f'{pid} ')}"
        else:
            said = f"{who}: {reason.removeprefix(f'{pid}: ')}"
        message, _, fix = said.partition("; ")
        yield Problem(here, message, fix or "change the step, or use another routing type")
