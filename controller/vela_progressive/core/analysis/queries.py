"""The PromQL a metric sends: built-in templates per data plane, or the user's own query.

Every query is a Jinja2 template rendered in the sandbox with ``StrictUndefined`` (an unknown
variable is an error naming it). The same template is rendered once per *target*, the canary and
(for ``compareWithStable``) the stable version, in the same window, so one query describes both:
``target_service`` and ``target_pods`` name the measured version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from vela_progressive.core.analysis.spec import SOURCE_OF_ROUTING, Metric
from vela_progressive.core.rendering import RenderError, render_text

#: A regex no pod name matches (pod names are lower-case).
NO_POD = "NO-POD"
#: Where the built-in templates live (``templates/analysis/<source>/<template>.promql.j2``).
BUILTIN_DIR = "analysis"


@dataclass(frozen=True)
class Targets:
    """The variables a query may use (documented in docs/analysis.md)."""

    namespace: str
    workload: str
    service: str
    canary_service: str
    stable_service: str
    canary_pods: str
    stable_pods: str
    canary_revision: str
    stable_revision: str
    ingress: str = ""
    canary_ingress: str = ""
    httproute: str = ""
    virtual_service: str = ""
    #: The routing type of the first routing (``""`` without routing).
    routing: str = ""

    def variables(self, target: str, interval: int) -> dict[str, str]:
        canary = target == "canary"
        return {
            "namespace": self.namespace,
            "workload": self.workload,
            "service": self.service,
            "target": target,
            "target_service": self.canary_service if canary else self.stable_service,
            "target_pods": self.canary_pods if canary else self.stable_pods,
            "canary_service": self.canary_service,
            "stable_service": self.stable_service,
            "canary_pods": self.canary_pods,
            "stable_pods": self.stable_pods,
            "canary_revision": self.canary_revision,
            "stable_revision": self.stable_revision,
            "ingress": self.ingress,
            "canary_ingress": self.canary_ingress,
            "httproute": self.httproute,
            "virtual_service": self.virtual_service,
            "interval": f"{interval}s",
        }


#: The variable names, for messages.
VARIABLES = tuple(Targets("", "", "", "", "", "", "", "", "").variables("canary", 1))


def source_of(metric: Metric, routing: str) -> str:
    """The data plane a built-in template reads: the metric's ``source``, else the first
    routing's, else the pods' own metric."""
    return metric.source or SOURCE_OF_ROUTING.get(routing, "app")


@cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def render_query(text: str, variables: dict[str, str]) -> str:
    """Render a user's query; :class:`RenderError` names what is wrong."""
    try:
        return _environment().from_string(text).render(**variables).strip()
    except TemplateError as exc:
        raise RenderError(f"{exc}; known variables: {', '.join(VARIABLES)}") from exc


def builtin(source: str, name: str, variables: dict[str, str]) -> str:
    """A built-in template rendered; ``name`` is a template name or ``samples``."""
    return render_text(f"{BUILTIN_DIR}/{source}/{name}.promql.j2", **variables).strip()


def has_builtin(source: str, name: str) -> bool:
    try:
        builtin(source, name, example_targets().variables("canary", 10))
    except RenderError:
        return False
    return True


@dataclass(frozen=True)
class Query:
    """One PromQL request: ``role`` is canary, stable, canary-samples or stable-samples."""

    metric: str
    role: str
    promql: str


def queries_for(metric: Metric, targets: Targets) -> tuple[Query, ...]:
    """Every query one measurement of ``metric`` sends (same window for canary and stable)."""
    roles = ["canary", "stable"] if metric.compares else ["canary"]
    out: list[Query] = []
    for target in roles:
        variables = targets.variables(target, metric.interval)
        if metric.query is not None:
            out.append(Query(metric.name, target, render_query(metric.query, variables)))
            continue
        assert metric.template is not None
        source = source_of(metric, targets.routing)
        out.append(Query(metric.name, target, builtin(source, metric.template, variables)))
        if metric.min_samples:
            out.append(
                Query(metric.name, f"{target}-samples", builtin(source, "samples", variables))
            )
    return tuple(out)


def example_targets(namespace: str = "default", workload: str = "web") -> Targets:
    """Targets for previews and validation (a StatefulSet-like release half-way)."""
    return Targets(
        namespace=namespace,
        workload=workload,
        service=workload,
        canary_service=f"{workload}-canary",
        stable_service=workload,
        canary_pods=f"{workload}-(3|4)",
        stable_pods=f"{workload}-(0|1|2)",
        canary_revision=f"{workload}-new",
        stable_revision=f"{workload}-old",
        ingress=workload,
        canary_ingress=f"{workload}-canary",
        httproute=workload,
        virtual_service=workload,
    )


def with_routing(targets: Targets, routing: str) -> Targets:
    return replace(targets, routing=routing)


def pod_regex(
    workload: str,
    *,
    canary_style: bool,
    canary: bool,
    selector: Mapping[str, str],
    ordinals: range | None,
) -> str:
    """A regex of the pod names of one version, for the pods' own metrics (``pod`` label).

    Canary style: ``<name>-canary-…``; a ReplicaSet's pods: ``<name>-<pod-template-hash>-…``;
    a StatefulSet's: its ordinals. ``NO-POD`` when the version has no pod.

    >>> pod_regex("web", canary_style=False, canary=True,
    ...           selector={"pod-template-hash": "7d9f"}, ordinals=None)
    'web-7d9f-.*'
    >>> pod_regex("db", canary_style=False, canary=True, selector={}, ordinals=range(3, 5))
    'db-(3|4)'
    """
    if canary_style and canary:
        return f"{workload}-canary-.*"
    pth = selector.get("pod-template-hash")
    if pth:
        return f"{workload}-{pth}-.*"
    if ordinals is not None:
        if not ordinals:
            return NO_POD
        return f"{workload}-({'|'.join(str(i) for i in ordinals)})"
    return f"{workload}-.*"
