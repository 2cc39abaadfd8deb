"""The reconciler's traffic port: what the release's traffic actions do, backed by the providers.

Each method is one action of the decision function (``core.decide``): all routings together or
none (the :class:`~vela_progressive.shell.traffic.manager.TrafficManager` undoes a half-done
change), and no writes when the cluster already matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vela_progressive.core.model import PlannedStep, TrafficRouting
from vela_progressive.core.traffic import RouteState, TrafficContext
from vela_progressive.shell.traffic.manager import TrafficManager

Obj = dict[str, Any]


@dataclass(frozen=True)
class RouteContext:
    """Everything a traffic provider needs to know about the release in progress."""

    namespace: str
    workload: str
    canary_selector: Mapping[str, str]
    stable_selector: Mapping[str, str]
    disable_canary_service: bool
    owner_references: tuple[Mapping[str, Any], ...] = ()

    def traffic(self) -> TrafficContext:
        return TrafficContext(
            namespace=self.namespace,
            workload=self.workload,
            stable_selector=dict(self.stable_selector),
            canary_selector=dict(self.canary_selector),
            disable_canary_service=self.disable_canary_service,
            owner_references=self.owner_references,
        )


def route_state(step: PlannedStep) -> RouteState:
    """A step's route; a step without a weight sends no weighted share to the new pods."""
    return RouteState(weight=step.weight or 0, matches=step.matches)


@dataclass
class TrafficPort:
    manager: TrafficManager

    async def prepare(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> None:
        """Canary Service(s) present, stable one(s) pinned, so readiness can be checked."""
        await self.manager.ensure_services(routings, ctx.traffic())

    async def check(
        self,
        routings: tuple[TrafficRouting, ...],
        ctx: RouteContext,
        steps: tuple[PlannedStep, ...],
    ) -> str | None:
        """Why some step's route could not be applied (read-only), or ``None``."""
        routes = [route_state(s) for s in steps if s.weight or s.matches]
        return await self.manager.check(routings, ctx.traffic(), routes)

    async def canary_ready(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> int:
        """Ready endpoints behind the canary Service(s) (the smallest count)."""
        return await self.manager.canary_endpoints_ready(routings, ctx.traffic())

    async def route(
        self, routings: tuple[TrafficRouting, ...], ctx: RouteContext, step: PlannedStep
    ) -> None:
        """Services first (idempotent, no writes once done), then the step's route."""
        tctx = ctx.traffic()
        await self.manager.ensure_services(routings, tctx)
        await self.manager.apply_step(routings, tctx, route_state(step))

    async def restore_routes(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> None:
        """Every routing object exactly as before the release (Services untouched)."""
        await self.manager.restore(routings, ctx.traffic())

    async def unpin_services(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> None:
        """Stable Service(s) select every pod again; the canary Service(s) stay."""
        await self.manager.unpin_services(routings, ctx.traffic())

    async def restore_services(
        self, routings: tuple[TrafficRouting, ...], ctx: RouteContext
    ) -> None:
        """Stable Service(s) exactly as before, canary Service(s) deleted."""
        await self.manager.restore_services(routings, ctx.traffic())
