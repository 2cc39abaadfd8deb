"""The reconciler's traffic port: what the release's traffic actions do, backed by the providers.

Each method is one action of the decision function (``core.decide``): all routings together or
none (the :class:`~vela_progressive.shell.traffic.manager.TrafficManager` undoes a half-done
change), and no writes when the cluster already matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vela_progressive.core.model import PlannedStep, TrafficRouting
from vela_progressive.core.traffic import RouteState, TrafficContext
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.traffic.manager import TrafficManager

Obj = dict[str, Any]


def route_state(step: PlannedStep) -> RouteState:
    """A step's route; a step without a weight sends no weighted share to the new pods."""
    return RouteState(weight=step.weight or 0, matches=step.matches)


@dataclass
class TrafficPort:
    manager: TrafficManager

    async def prepare(self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext) -> None:
        """Canary Service(s) present, stable one(s) pinned, so readiness can be checked."""
        await self.manager.ensure_services(routings, ctx)

    async def check(
        self,
        routings: tuple[TrafficRouting, ...],
        ctx: TrafficContext,
        steps: tuple[PlannedStep, ...],
    ) -> str | None:
        """Why some step's route could not be applied (read-only), or ``None``."""
        routes = [route_state(s) for s in steps if s.weight or s.matches]
        return await self.manager.check(routings, ctx, routes)

    async def canary_ready(self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext) -> int:
        """Ready endpoints behind the canary Service(s) (the smallest count)."""
        return await self.manager.canary_endpoints_ready(routings, ctx)

    async def route(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext, step: PlannedStep
    ) -> None:
        """Services first (idempotent, no writes once done), then the step's route."""
        await self.manager.ensure_services(routings, ctx)
        await self.manager.apply_step(routings, ctx, route_state(step))

    async def restore_routes(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext
    ) -> None:
        """Every routing object exactly as before the release (Services untouched)."""
        await self.manager.restore(routings, ctx)

    async def unpin_services(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext
    ) -> None:
        """Stable Service(s) select every pod again; the canary Service(s) stay."""
        await self.manager.unpin_services(routings, ctx)

    async def restore_services(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext
    ) -> None:
        """Stable Service(s) exactly as before, canary Service(s) deleted."""
        await self.manager.restore_services(routings, ctx)


def traffic_port(kube: Kube) -> TrafficPort:
    """The port on the API server."""
    return TrafficPort(TrafficManager(kube))
