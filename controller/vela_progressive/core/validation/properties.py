"""The entry points for trait properties: validate them, then resolve them into the CR's
``spec.strategy``."""

from __future__ import annotations

import copy
from typing import Any

from vela_progressive.core.capabilities import Provider, resolve_routing
from vela_progressive.core.model import TrafficRouting
from vela_progressive.core.trait_schema import apply_defaults
from vela_progressive.core.validation.analysis import analysis_problems
from vela_progressive.core.validation.messages import InvalidSpec, Problem, describe
from vela_progressive.core.validation.providers import feature_problems, routing_problems
from vela_progressive.core.validation.rules import mode_problems, step_problems
from vela_progressive.core.validation.schema import schema_problems


def validate_properties(
    props: object, *, component: str | None = None, workload_kind: str | None = None
) -> dict[str, Any]:
    """The trait properties with the schema's defaults applied, or :class:`InvalidSpec`.

    ``component`` resolves default object names (used to find duplicate routings);
    ``workload_kind`` (e.g. ``StatefulSet``) is the kind the component renders, when known.

    >>> validate_properties({"canary": {"steps": [{"replicas": "50%"}]}})["auto"]
    False
    >>> validate_properties({"canary": {"steps": [{"weight": 50}, {"weight": 30}]}})
    Traceback (most recent call last):
    ...
    vela_progressive.core.validation.InvalidSpec: canary.steps[1].weight: 30 is lower than \
the previous step's 50; weights never decrease — raise it to at least 50
    """
    if not isinstance(props, dict):
        raise InvalidSpec(
            [
                Problem(
                    "",
                    f"expected a mapping of properties, got {describe(props)}",
                    "write at least canary: {steps: [{replicas: '100%'}]}",
                )
            ],
            component,
        )
    problems = schema_problems(props)
    if problems:
        raise InvalidSpec(problems, component)

    full: dict[str, Any] = apply_defaults(props)
    problems = [*step_problems(full), *mode_problems(full, workload_kind)]
    good: list[tuple[int, TrafficRouting, Provider]] = []
    for item in routing_problems(full, component):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            good.append(item)
    problems.extend(feature_problems(full, good))
    problems.extend(analysis_problems(full))
    if problems:
        raise InvalidSpec(problems, component)
    return full


def resolve_strategy(props: dict[str, Any], component: str) -> dict[str, Any]:
    """Validated properties with every routing resolved, i.e. the CR's ``spec.strategy`` (what
    :meth:`Strategy.from_properties` reads), as the trait's CUE renders it (see
    :func:`vela_progressive.core.capabilities.resolve_routing`).

    >>> resolve_strategy(validate_properties({"canary": {"steps": [{"weight": 10}],
    ...     "trafficRoutings": [{"type": "gateway"}, {"type": "aliyun-alb"}]}}),
    ...     "web")["canary"]["trafficRoutings"]  # doctest: +NORMALIZE_WHITESPACE
    [{'type': 'gateway', 'service': 'web', 'gracePeriodSeconds': 5,
      'gatewayHTTPRouteName': 'web'},
     {'type': 'ingress', 'service': 'web', 'gracePeriodSeconds': 5,
      'ingressClass': 'aliyun-alb', 'ingressName': 'web'}]
    """
    out = copy.deepcopy(props)
    canary = out["canary"]
    if "trafficRoutings" in canary:
        canary["trafficRoutings"] = [
            resolve_routing(r, component) for r in canary["trafficRoutings"]
        ]
    return out
