"""The reconciler's traffic port (``shell.reconciler.TrafficPort``) backed by the providers.

``shell.traffic_port.traffic_port`` can return ``ProviderTraffic(TrafficManager(kube))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vela_progressive.core.model import PlannedStep, TrafficRouting
from vela_progressive.core.traffic import RouteState, TrafficContext
from vela_progressive.shell.traffic.manager import TrafficManager

#: What ``canary_ready`` reports when there is no canary Service to wait for.
NO_SERVICE = 1 << 30


class ReleaseContext(Protocol):
    """The reconciler's ``RouteContext`` (read-only attributes)."""

    @property
    def namespace(self) -> str: ...
    @property
    def workload(self) -> str: ...
    @property
    def stable_selector(self) -> Mapping[str, str]: ...
    @property
    def canary_selector(self) -> Mapping[str, str]: ...
    @property
    def disable_canary_service(self) -> bool: ...
    @property
    def owner_references(self) -> tuple[Mapping[str, Any], ...]: ...


def traffic_context(ctx: ReleaseContext) -> TrafficContext:
    return TrafficContext(
        namespace=ctx.namespace,
        workload=ctx.workload,
        stable_selector=dict(ctx.stable_selector),
        canary_selector=dict(ctx.canary_selector),
        disable_canary_service=ctx.disable_canary_service,
        owner_references=ctx.owner_references,
    )


def route_state(step: PlannedStep) -> RouteState:
    """A step's route; a step without a weight sends no weighted share to the new pods."""
    return RouteState(weight=step.weight or 0, matches=step.matches)


@dataclass
class ProviderTraffic:
    manager: TrafficManager

    async def canary_ready(self, routings: tuple[TrafficRouting, ...], ctx: ReleaseContext) -> int:
        if not routings:
            return NO_SERVICE
        return await self.manager.canary_endpoints_ready(routings, traffic_context(ctx))

    async def route(
        self, routings: tuple[TrafficRouting, ...], ctx: ReleaseContext, step: PlannedStep
    ) -> None:
        """Services first (idempotent, no writes once done), then the step's route."""
        if not routings:
            return
        tctx = traffic_context(ctx)
        await self.manager.ensure_services(routings, tctx)
        await self.manager.apply_step(routings, tctx, route_state(step))

    async def restore(self, routings: tuple[TrafficRouting, ...], ctx: ReleaseContext) -> None:
        """Routes first (while the stable Service is still pinned), then the Services."""
        if not routings:
            return
        tctx = traffic_context(ctx)
        await self.manager.restore(routings, tctx)
        await self.manager.restore_services(routings, tctx)
