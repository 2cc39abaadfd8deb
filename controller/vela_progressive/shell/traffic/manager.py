"""Apply traffic changes to the cluster, all routings together or none.

Every operation reads the objects its providers need, computes the desired objects with the
pure providers (``vela_progressive.core.traffic``), then writes them one by one: a create for an
object we own that does not exist yet, a JSON merge patch (carrying the ``resourceVersion``
read, so a concurrent change fails instead of being overwritten) for everything else, a delete
for what must go. Nothing is written when nothing differs, so repeating an operation makes no
API writes. When a write fails, every write already made by the operation is undone before
:class:`TrafficError` is raised, so no routing is left half-changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from vela_progressive.core.capabilities import UnknownProviderError, provider_id
from vela_progressive.core.model import TrafficRouting
from vela_progressive.core.rendering import RenderError
from vela_progressive.core.traffic import (
    Changes,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
    check_routings,
    pinned_services,
    provider_for,
    stable_services,
)
from vela_progressive.core.traffic import services as service_provider
from vela_progressive.core.traffic.original import clean, is_owned
from vela_progressive.core.traffic.patch import update_patch
from vela_progressive.shell.kube import Kube, KubeError, Obj

log = logging.getLogger(__name__)

#: Provider name used in errors about the canary/stable Services.
SERVICES = "services"
#: Provider name used in errors about the routings taken together.
ROUTINGS = "trafficRoutings"
_CONFIG_ERRORS = (TrafficConfigError, UnknownProviderError, RenderError)


class TrafficError(Exception):
    """A traffic change failed; ``provider`` and ``ref`` name what failed.

    ``rolled_back`` tells whether every earlier write of the same operation was undone.
    """

    def __init__(
        self, provider: str, ref: ObjectRef | None, message: str, *, rolled_back: bool = True
    ) -> None:
        where = f"{provider}: {ref}: " if ref else f"{provider}: "
        tail = "" if rolled_back else " (undoing earlier changes failed too; see the log)"
        super().__init__(f"{where}{message}{tail}")
        self.provider = provider
        self.ref = ref
        self.rolled_back = rolled_back


@dataclass(frozen=True)
class _Write:
    """A write made by the current operation, and the object as it was before it."""

    ref: ObjectRef
    before: Obj | None


@dataclass
class TrafficManager:
    kube: Kube
    writes: int = field(default=0, init=False)

    # ------------------------------------------------------------------ operations
    async def apply_step(
        self, routings: Sequence[TrafficRouting], ctx: TrafficContext, route: RouteState
    ) -> None:
        """Route ``route`` (weight + matches) through every routing, or change nothing."""
        _check_together(routings)
        seen = await self._read(r for routing in routings for r in _refs(routing, ctx))
        plans = []
        for routing in routings:
            with _config_errors(provider_id(routing)):
                plans.append(
                    (provider_id(routing), provider_for(routing).desired(routing, ctx, seen, route))
                )
        await self._transaction(plans, seen, ctx.owner_references)

    async def check(
        self,
        routings: Sequence[TrafficRouting],
        ctx: TrafficContext,
        routes: Sequence[RouteState],
    ) -> str | None:
        """What would make a later step's traffic change fail, found before any pod moves.

        Reads the routing objects and renders every route of the release with the pure
        providers, writing nothing; ``None`` when every route can be applied.
        """
        try:
            _check_together(routings)
            seen = await self._read(r for routing in routings for r in _refs(routing, ctx))
            for route in routes:
                for routing in routings:
                    with _config_errors(provider_id(routing)):
                        provider_for(routing).desired(routing, ctx, seen, route)
        except TrafficError as exc:
            return str(exc)
        return None

    async def restore(self, routings: Sequence[TrafficRouting], ctx: TrafficContext) -> None:
        """Every routing object exactly as before the release; no canary routing objects."""
        seen = await self._read(r for routing in routings for r in _refs(routing, ctx))
        plans = []
        for routing in routings:
            with _config_errors(provider_id(routing)):
                plans.append(
                    (provider_id(routing), provider_for(routing).restore(routing, ctx, seen))
                )
        await self._transaction(plans, seen, ctx.owner_references)

    async def ensure_services(
        self, routings: Sequence[TrafficRouting], ctx: TrafficContext
    ) -> None:
        """Canary Services present, stable Services pinned to the stable revision."""
        _check_together(routings)
        pinned = set(pinned_services(routings))
        await self._services(
            routings,
            ctx,
            lambda svc, seen: service_provider.desired(svc, ctx, seen, pin=svc in pinned),
        )

    async def unpin_services(self, routings: Sequence[TrafficRouting], ctx: TrafficContext) -> None:
        """Stable Services select every pod again (canary Services stay)."""
        await self._services(
            routings, ctx, lambda svc, seen: service_provider.unpinned(svc, ctx, seen)
        )

    async def restore_services(
        self, routings: Sequence[TrafficRouting], ctx: TrafficContext
    ) -> None:
        """Stable Services exactly as before the release, canary Services deleted."""
        await self._services(
            routings, ctx, lambda svc, seen: service_provider.restore(svc, ctx, seen)
        )

    async def canary_endpoints_ready(
        self, routings: Sequence[TrafficRouting], ctx: TrafficContext
    ) -> int:
        """Ready endpoints behind the canary Service(s); the smallest count over Services.

        Read from the EndpointSlices labelled ``kubernetes.io/service-name=<service>-canary``.
        With ``disableGenerateCanaryService`` it counts the Ready pods the canary Service would
        select (stable selector + canary revision label) instead. No routings: 0.
        """
        counts = [await self._ready(svc, ctx) for svc in stable_services(routings)]
        return min(counts, default=0)

    # ------------------------------------------------------------------ reading
    async def _read(self, refs: Iterable[ObjectRef]) -> dict[ObjectRef, Obj | None]:
        seen: dict[ObjectRef, Obj | None] = {}
        for ref in refs:
            if ref not in seen:
                seen[ref] = await self.kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
        return seen

    async def _ready(self, service: str, ctx: TrafficContext) -> int:
        if ctx.disable_canary_service:
            stable = await self.kube.get("v1", "Service", service, ctx.namespace)
            selector = ((stable or {}).get("spec") or {}).get("selector") or {}
            if not selector:
                return 0
            pin = {**selector, **ctx.canary_selector}
            pods = await self.kube.list(
                "v1",
                "Pod",
                ctx.namespace,
                label_selector=",".join(f"{k}={v}" for k, v in pin.items()),
            )
            return sum(1 for pod in pods if _pod_ready(pod))
        slices = await self.kube.list(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            ctx.namespace,
            label_selector=f"kubernetes.io/service-name={ctx.canary_service(service)}",
        )
        ready = {
            _endpoint_key(endpoint)
            for piece in slices
            for endpoint in piece.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready", True) is not False
        }
        return len(ready)

    # ------------------------------------------------------------------ writing
    async def _services(
        self,
        routings: Sequence[TrafficRouting],
        ctx: TrafficContext,
        make: Callable[[str, Mapping[ObjectRef, Obj | None]], Changes],
    ) -> None:
        names = stable_services(routings)
        seen = await self._read(r for svc in names for r in service_provider.refs(svc, ctx))
        plans = []
        for svc in names:
            with _config_errors(SERVICES):
                plans.append((SERVICES, make(svc, seen)))
        await self._transaction(plans, seen, ctx.owner_references)

    async def _transaction(
        self,
        plans: Sequence[tuple[str, Changes]],
        seen: dict[ObjectRef, Obj | None],
        owners: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        done: list[_Write] = []
        for provider, changes in plans:
            owned = {ObjectRef.of(o) for o in changes.owned}
            steps: list[tuple[ObjectRef, Obj | None]] = [
                (ObjectRef.of(o), o) for o in changes.apply
            ] + [(ref, None) for ref in changes.delete]
            for ref, desired in steps:
                try:
                    write = await self._write(ref, desired, seen, owned=ref in owned, owners=owners)
                except KubeError as exc:
                    rolled_back = await self._undo(done)
                    raise TrafficError(
                        provider, ref, exc.message or str(exc), rolled_back=rolled_back
                    ) from exc
                if write is not None:
                    done.append(write)

    async def _write(
        self,
        ref: ObjectRef,
        desired: Obj | None,
        seen: dict[ObjectRef, Obj | None],
        *,
        owned: bool,
        owners: Sequence[Mapping[str, Any]] = (),
    ) -> _Write | None:
        """One create/patch/delete; ``None`` when the cluster already matched."""
        current = seen.get(ref)
        if desired is None:
            if current is None or not is_owned(current):
                return None
            await self.kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            self.writes += 1
            seen[ref] = None
            log.info("deleted %s", ref)
            return _Write(ref, current)
        if current is None:
            if owners:
                meta = {**desired["metadata"], "ownerReferences": [dict(o) for o in owners]}
                desired = {**desired, "metadata": meta}
            seen[ref] = await self.kube.create(desired)
            self.writes += 1
            log.info("created %s", ref)
            return _Write(ref, None)
        patch = update_patch(current, desired, owned=owned)
        if not patch:
            return None
        seen[ref] = await self.kube.patch(
            ref.api_version, ref.kind, ref.name, ref.namespace, patch, patch_type="merge"
        )
        self.writes += 1
        log.info("patched %s", ref)
        return _Write(ref, current)

    async def _undo(self, done: Sequence[_Write]) -> bool:
        """Put back every object written, newest first; ``False`` if some could not be."""
        ok = True
        for write in reversed(done):
            ref = write.ref
            try:
                now = await self.kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                if write.before is None:
                    if now is not None:
                        await self.kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
                elif now is None:
                    await self.kube.create(clean(write.before))
                else:
                    patch = update_patch(now, clean(write.before), owned=False)
                    if patch:
                        await self.kube.patch(
                            ref.api_version, ref.kind, ref.name, ref.namespace, patch
                        )
                log.info("undid the change to %s", ref)
            except KubeError as exc:
                ok = False
                log.error("could not undo the change to %s: %s", ref, exc)
        return ok


def _check_together(routings: Sequence[TrafficRouting]) -> None:
    problems = check_routings(routings)
    if problems:
        raise TrafficError(ROUTINGS, None, "; ".join(problems))


def _refs(routing: TrafficRouting, ctx: TrafficContext) -> list[ObjectRef]:
    with _config_errors(provider_id(routing)):
        return provider_for(routing).refs(routing, ctx)


@contextmanager
def _config_errors(provider: str) -> Iterator[None]:
    """A pure provider's configuration error becomes a :class:`TrafficError` (nothing written)."""
    try:
        yield
    except _CONFIG_ERRORS as exc:
        raise TrafficError(provider, None, str(exc)) from exc


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _endpoint_key(endpoint: Mapping[str, Any]) -> str:
    target = endpoint.get("targetRef") or {}
    if target.get("uid"):
        return str(target["uid"])
    return ",".join(endpoint.get("addresses") or [])
