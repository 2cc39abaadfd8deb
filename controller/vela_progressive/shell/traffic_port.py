"""Binds the reconciler's traffic needs (``TrafficPort``) to the traffic providers."""

from __future__ import annotations

from vela_progressive.core.model import TrafficRouting
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.reconciler import RouteContext, TrafficPort
from vela_progressive.shell.traffic.manager import TrafficManager
from vela_progressive.shell.traffic.port import ProviderTraffic, traffic_context


class ReleaseTraffic(ProviderTraffic):
    async def prepare(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> None:
        """Create the canary Service and pin the stable one, so readiness can be checked."""
        if routings:
            await self.manager.ensure_services(routings, traffic_context(ctx))


def traffic_port(kube: Kube) -> TrafficPort:
    return ReleaseTraffic(TrafficManager(kube))
