"""What every routing provider (Ingress, HTTPRoute, VirtualService) does the same way.

``desired`` is one rule for all of them: a route that sends nothing to the new pods is the
original objects, and a route the provider cannot serve is refused before anything is computed.
Each provider implements only ``split`` (a real split), ``check``, ``refs`` and ``restore``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from vela_progressive.core.model import TrafficRouting
from vela_progressive.core.traffic.objects import (
    Changes,
    Obj,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
)


class RoutingProvider(ABC):
    @abstractmethod
    def refs(self, routing: TrafficRouting, ctx: TrafficContext) -> list[ObjectRef]:
        """Objects to read before acting (the user's objects and the ones we create)."""

    @abstractmethod
    def check(self, routing: TrafficRouting, route: RouteState) -> tuple[str, ...]:
        """Why ``route`` cannot be served by this routing (empty when it can)."""

    @abstractmethod
    def restore(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
    ) -> Changes:
        """Everything back to exactly what it was before the release."""

    @abstractmethod
    def split(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
        route: RouteState,
    ) -> Changes:
        """The objects for a route that sends something to the new pods (already checked)."""

    def desired(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
        route: RouteState,
    ) -> Changes:
        """The objects for ``route``; ``originals`` maps each ref to the object read (or None)."""
        if route.all_stable:
            return self.restore(routing, ctx, originals)
        problems = self.check(routing, route)
        if problems:
            raise TrafficConfigError("; ".join(problems))
        return self.split(routing, ctx, originals, route)
