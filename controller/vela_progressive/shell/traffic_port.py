"""Binds the reconciler's traffic needs to the traffic providers (shell/traffic.py)."""

from __future__ import annotations

from vela_progressive.core.model import PlannedStep, TrafficRouting
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.reconciler import RouteContext, TrafficPort


class NoTraffic:
    """Steps move pods only: used until the providers are wired in."""

    async def canary_ready(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> int:
        return 1 << 30

    async def route(
        self, routings: tuple[TrafficRouting, ...], ctx: RouteContext, step: PlannedStep
    ) -> None:
        return None

    async def restore(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> None:
        return None


def traffic_port(kube: Kube) -> TrafficPort:
    return NoTraffic()
