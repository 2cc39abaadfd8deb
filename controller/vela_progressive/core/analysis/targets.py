"""The variables of a release's queries (:class:`~vela_progressive.core.analysis.queries.Targets`)
from what the shell observed: the workload, its selectors and the step."""

from __future__ import annotations

from collections.abc import Mapping

from vela_progressive.core.analysis.queries import Targets, pod_regex
from vela_progressive.core.model import ReleaseMode, Strategy
from vela_progressive.core.workloads import WorkloadView, registry


def targets_for(
    strategy: Strategy,
    view: WorkloadView,
    *,
    canary_selector: Mapping[str, str],
    stable_selector: Mapping[str, str],
    new_pods: int,
) -> Targets:
    """Targets of a release whose current step runs ``new_pods`` pods of the new revision."""
    routing = strategy.routings[0] if strategy.routings else None
    service = routing.service if routing else view.name
    ingress = next((r.ingress_name for r in strategy.routings if r.ingress_name), "") or ""
    route = next(
        (r.gateway_httproute_name for r in strategy.routings if r.gateway_httproute_name), ""
    )
    vs = next((r.virtual_service_name for r in strategy.routings if r.virtual_service_name), "")
    canary_style = strategy.mode_for(view.kind) is ReleaseMode.CANARY
    entry = registry.find(view.kind)
    ordinals = entry is not None and entry.ordinal_pods
    split = max(view.replicas - new_pods, 0)
    return Targets(
        namespace=view.namespace,
        workload=view.name,
        service=service,
        canary_service=f"{service}-canary",
        stable_service=service,
        canary_pods=pod_regex(
            view.name,
            canary_style=canary_style,
            canary=True,
            selector=canary_selector,
            ordinals=range(split, view.replicas) if ordinals else None,
        ),
        stable_pods=pod_regex(
            view.name,
            canary_style=canary_style,
            canary=False,
            selector=stable_selector,
            ordinals=range(0, split) if ordinals else None,
        ),
        canary_revision=view.update_revision,
        stable_revision=view.stable_revision or "",
        ingress=ingress,
        canary_ingress=f"{ingress}-canary" if ingress else "",
        httproute=route or "",
        virtual_service=vs or "",
        routing=routing.type if routing else "",
    )
