"""The workload adapter: the *act* half of a release style.

An adapter observes a normalised :class:`~vela_progressive.core.workloads.WorkloadView` and moves
the workload so that exactly N pods run the new template. What to read and what to write is
computed by the style's pure functions (:class:`vela_progressive.core.workloads.Style`); this
module only performs the reads and applies the writes in order, each with its precondition (a
change of the spec alone is a JSON patch testing the ``uid`` and ``generation`` it was computed
from, any other patch carries the ``resourceVersion``, a delete the ``uid``), so a write computed
from a stale read is refused (409) and the reconciler retries from a fresh observation. Every
method is idempotent: calling it again after a crash or a restart changes nothing more.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from vela_progressive.core.workloads import (
    CANARY_OF_LABEL,
    Observed,
    Read,
    Style,
    WorkloadView,
    Write,
    Writes,
)
from vela_progressive.core.workloads.common import selector_string
from vela_progressive.shell.kube import Kube

Obj = dict[str, Any]
log = logging.getLogger("vela_progressive.workloads")

__all__ = ["CANARY_OF_LABEL", "Adapter", "WorkloadAdapter", "WorkloadMissing", "apply_writes"]


class WorkloadMissing(Exception):
    """The workload the rollout points at does not exist, or is being deleted."""


class WorkloadAdapter(Protocol):
    kind: str
    #: Every object the last :meth:`observe` read came from a watch-backed copy: a change of
    #: any of them wakes the rollout, so progress need not be polled for.
    watched: bool
    #: Writes applied so far: a pass that wrote, and reads from copies, decides again at once
    #: from what its writes left.
    writes: int

    async def observe(self, stable_hint: str | None) -> WorkloadView:
        """Read the workload and its pods. ``stable_hint``: the stable revision recorded earlier."""
        ...

    async def new_revision_pods(self, view: WorkloadView) -> list[Obj]:
        """Pods of the update revision (for diagnosis)."""
        ...

    async def hold(self, view: WorkloadView) -> bool:
        """Make sure the workload cannot roll by itself; ``True`` if it had to act."""
        ...

    async def scale_to(self, view: WorkloadView, new_pods: int, *, surge_ready: bool) -> None:
        """Run exactly ``new_pods`` pods of the update revision.

        ``surge_ready``: the new pods are Ready, so old pods may now be taken down.
        """
        ...

    def foresee(
        self, view: WorkloadView, new_pods: int, *, surge_ready: bool, stable_hint: str | None
    ) -> WorkloadView:
        """The view :meth:`scale_to` will leave once its writes are in the watch-backed copies,
        computed without I/O (its writes applied as the offline preview applies them)."""
        ...

    async def abort(self, view: WorkloadView) -> None:
        """All pods back to the stable revision; the workload stays held."""
        ...

    async def finalize(self, view: WorkloadView) -> bool:
        """Hand control back to the workload's own controller; ``True`` once it has finished."""
        ...

    def canary_selector(self, view: WorkloadView) -> dict[str, str]:
        """Labels selecting only the update revision's pods."""
        ...

    def stable_selector(self, view: WorkloadView) -> dict[str, str]:
        """Labels selecting only the stable revision's pods."""
        ...


async def read(kube: Kube, namespace: str, wanted: Read) -> list[Obj]:
    """One declared read: the object (or nothing) by name, else the list by labels. What is
    read goes to a style's pure compute only, which never changes it: from a watch-backed copy
    it is shared, not copied (``Kube.get``)."""
    if wanted.name is not None:
        got = await kube.get(wanted.api_version, wanted.kind, wanted.name, namespace, shared=True)
        return [got] if got is not None else []
    items = await kube.list(
        wanted.api_version,
        wanted.kind,
        namespace,
        label_selector=selector_string(wanted.selector or {}),
        shared=True,
    )
    # The items of a list carry no apiVersion/kind; the compute tells objects apart by them.
    return [{"apiVersion": wanted.api_version, "kind": wanted.kind, **item} for item in items]


async def apply_writes(kube: Kube, obs: Observed, writes: Writes) -> Observed:
    """Apply ``writes`` in order; the snapshot with the server's answers."""
    for write in writes:
        log.debug(
            "%s %s %s/%s: %s", write.verb, write.kind, write.namespace, write.name, write.reason
        )
        obs = obs.after(write, await _apply(kube, write))
    return obs


async def _apply(kube: Kube, write: Write) -> Obj | None:
    if write.verb == "create":
        assert write.body is not None
        return await kube.create(write.body)
    if write.verb == "patch":
        if write.ops:
            return await kube.patch(
                write.api_version,
                write.kind,
                write.name,
                write.namespace,
                list(write.ops),
                patch_type="json",
            )
        return await kube.patch(
            write.api_version, write.kind, write.name, write.namespace, write.body
        )
    preconditions = {"uid": write.uid} if write.uid else None
    await kube.delete(
        write.api_version, write.kind, write.name, write.namespace, preconditions=preconditions
    )
    return None


class Adapter:
    """The one adapter: any (kind, style) of the registry, with the style's compute."""

    def __init__(
        self,
        kube: Kube,
        api_version: str,
        kind: str,
        style: Style,
        namespace: str,
        name: str,
        owner: Obj | None = None,
    ) -> None:
        self.kube, self.api_version, self.kind, self.style = kube, api_version, kind, style
        self.namespace, self.name = namespace, name
        #: Owner reference of the rollout, set on the objects a release creates.
        self.owner = owner
        self._obs: Observed | None = None
        self.watched = False
        self.writes = 0

    @property
    def observed(self) -> Observed:
        assert self._obs is not None, "observe() first"
        return self._obs

    async def observe(self, stable_hint: str | None) -> WorkloadView:
        workload = await self.kube.get(
            self.api_version, self.kind, self.name, self.namespace, shared=True
        )
        if workload is None:
            raise WorkloadMissing(f"{self.kind} {self.namespace}/{self.name} not found")
        if workload["metadata"].get("deletionTimestamp"):
            # Deleted with its namespace or its application: nothing to release, and a pass
            # that moved pods would only fight the garbage collector for them.
            raise WorkloadMissing(f"{self.kind} {self.namespace}/{self.name} is being deleted")
        reads = self.style.reads(workload)
        self.watched = self.kube.watched(self.api_version, self.kind) and all(
            self.kube.watched(r.api_version, r.kind) for r in reads
        )
        found = [await read(self.kube, self.namespace, r) for r in reads]
        self._obs = self.style.observed(workload, found, self.owner)
        return self.style.view(self._obs, stable_hint)

    async def _apply(self, writes: Writes) -> None:
        self._obs = await apply_writes(self.kube, self.observed, writes)
        self.writes += len(writes)

    async def new_revision_pods(self, view: WorkloadView) -> list[Obj]:
        return self.style.new_revision_pods(self.observed, view)

    async def hold(self, view: WorkloadView) -> bool:
        writes = self.style.hold(self.observed, view)
        await self._apply(writes)
        return bool(writes) and not view.held

    async def scale_to(self, view: WorkloadView, new_pods: int, *, surge_ready: bool) -> None:
        await self._apply(
            self.style.scale_to(self.observed, view, new_pods, surge_ready=surge_ready)
        )

    def foresee(
        self, view: WorkloadView, new_pods: int, *, surge_ready: bool, stable_hint: str | None
    ) -> WorkloadView:
        obs = self.observed
        writes = self.style.scale_to(obs, view, new_pods, surge_ready=surge_ready)
        return self.style.view(obs.after_all(writes), stable_hint)

    async def abort(self, view: WorkloadView) -> None:
        await self._apply(self.style.abort(self.observed, view))

    async def finalize(self, view: WorkloadView) -> bool:
        writes, done = self.style.finalize(self.observed, view)
        await self._apply(writes)
        return done and not writes

    def canary_selector(self, view: WorkloadView) -> dict[str, str]:
        return self.style.canary_selector(self.observed, view)

    def stable_selector(self, view: WorkloadView) -> dict[str, str]:
        return self.style.stable_selector(self.observed, view)
