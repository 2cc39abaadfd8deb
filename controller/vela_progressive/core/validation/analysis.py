"""Rules for ``canary.analysis`` and ``canary.steps[].analysis``: each metric measures something
the controller can ask Prometheus for, and can be judged.

These are Python-only (the trait's CUE checks the schema: names, types, bounds); the controller
reports them before any pod moves, naming the metric and the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vela_progressive.core.analysis.queries import (
    example_targets,
    has_builtin,
    queries_for,
    source_of,
    with_routing,
)
from vela_progressive.core.analysis.spec import Metric
from vela_progressive.core.rendering import RenderError
from vela_progressive.core.validation.messages import Problem


def analysis_problems(props: dict[str, Any]) -> Iterator[Problem]:
    canary = props["canary"]
    routings: list[dict[str, Any]] = canary.get("trafficRoutings", [])
    background = canary.get("analysis")
    if background:
        steps = len(canary["steps"])
        if background.get("startingStep", 1) > steps:
            yield Problem(
                "canary.analysis.startingStep",
                f"{background['startingStep']} is beyond the last step ({steps})",
                f"use a step from 1 to {steps}",
            )
        yield from _metrics_problems(background["metrics"], "canary.analysis", routings)
    for i, step in enumerate(canary["steps"]):
        if step.get("analysis"):
            where = f"canary.steps[{i}].analysis"
            yield from _metrics_problems(step["analysis"]["metrics"], where, routings)


def _metrics_problems(
    metrics: list[dict[str, Any]], where: str, routings: list[dict[str, Any]]
) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for j, raw in enumerate(metrics):
        here = f"{where}.metrics[{j}]"
        name = raw["name"]
        if name in seen:
            yield Problem(
                f"{here}.name",
                f"{name!r} is also the name of metrics[{seen[name]}]",
                "give every metric of an analysis its own name",
            )
        seen.setdefault(name, j)
        yield from _metric_problems(raw, here, routings)


def _metric_problems(
    raw: dict[str, Any], here: str, routings: list[dict[str, Any]]
) -> Iterator[Problem]:
    metric = Metric.from_dict(raw)
    if (metric.template is None) == (metric.query is None):
        yield Problem(
            here,
            f"metric {metric.name!r} needs exactly one of template and query",
            "set template (request-success-rate, request-error-rate or request-duration) "
            "or write a PromQL query",
        )
        return
    if metric.min is None and metric.max is None and not metric.compares:
        yield Problem(
            here,
            f"metric {metric.name!r} has nothing to judge its value by",
            "set thresholdRange {min, max} and/or compareWithStable {maxIncrease, maxRatio}",
        )
    if metric.min is not None and metric.max is not None and metric.min > metric.max:
        yield Problem(
            f"{here}.thresholdRange",
            f"min {metric.min:g} is above max {metric.max:g}: no value can pass",
            "swap them, or drop one bound",
        )
    if metric.query is not None and metric.min_samples:
        yield Problem(
            f"{here}.minSamples",
            "applies to built-in templates only (a query cannot say how many requests it saw)",
            "remove minSamples, or use a template",
        )
    first = routings[0] if routings else {}
    routing = str(first.get("type", "")) if first else ""
    if metric.template is not None:
        source = source_of(metric, routing)
        if (
            routing == "ingress"
            and source == "nginx"
            and first.get("ingressClass", "nginx") != ("nginx")
        ):
            yield Problem(
                f"{here}.template",
                f"{metric.template} reads the NGINX Ingress controller's metrics, but the "
                f"routing's ingressClass is {first.get('ingressClass')}",
                "set source: app (the pods' http_requests_total), or write a query",
            )
        elif source == "istio" and first.get("destinationRuleName"):
            yield Problem(
                f"{here}.template",
                f"{metric.template} for istio reads the canary Service's metrics, and subset "
                "routing (destinationRuleName) sends none through it",
                "set source: app, or write a query on destination_version",
            )
        elif source == "nginx" and not any(r.get("type") == "ingress" for r in routings):
            yield Problem(
                f"{here}.source",
                f"{metric.template} from nginx reads the Ingress's metrics, and no traffic "
                "routing is an Ingress",
                "add an ingress traffic routing, or set source: app",
            )
        elif not has_builtin(source, metric.template):
            yield Problem(
                f"{here}.template",
                f"there is no built-in {metric.template} for source {source}",
                "set source to nginx, istio or app, or write a query",
            )
    if metric.query is not None:
        try:
            queries_for(metric, with_routing(example_targets(), routing))
        except RenderError as exc:
            yield Problem(
                f"{here}.query",
                f"metric {metric.name!r}: the query does not render: {exc}",
                "use only the variables listed in docs/analysis.md, with Jinja2 syntax",
            )
