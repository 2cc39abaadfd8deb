"""Reading a rollout for a pass without asking the API server when the watch already has it.

Kopf hands each release loop a live view of its rollout, kept current by the watch. A pass
needs the rollout exactly as the server has it, so the loop remembers the last copy the server
returned (read, or answered to the status write) and reuses it while the watch shows that same
``resourceVersion``, or a version the loop knows is older than its copy (the watch has not yet
delivered the loop's own status write): any change made by anyone else after that copy is still
to come on the watch, and its event wakes the loop again. Anything else (another writer, a write
of the pass itself) reads it again. Most passes of a release are woken by its workload's status,
not by the rollout, so this saves one GET in most passes; at 1,000 releases in flight the watch
trails the loop's own writes, which used to cost about 7 GETs per release. A settled rollout
(waiting for a watch event only) keeps no copy: its next pass takes the watch's view when that is
the loop's own last status write (the server's answer, as it was), and reads it otherwise.

Versions are only ever compared for equality (the API does not promise they are ordered): the
loop records which versions it saw its copy replace. Generations are ordered (each change of the
spec adds one): a live view whose generation is above that of every version the loop read or
wrote was written after all of them, so it holds the loop's own status writes too, and the pass
reads it from memory. That is the read a release's start used to cost, even of a settled rollout
(the new revision is a change of the spec): 1,000 reads when 1,000 releases start at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vela_progressive.core.model import API_GROUP, API_VERSION, KIND
from vela_progressive.core.watched import copied
from vela_progressive.shell.kube import Kube

Obj = dict[str, Any]

#: Versions remembered as older than the kept copy: a watch trails by a few writes at most.
BEHIND = 8


def _version(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return str(version) if version else None


@dataclass
class RolloutReader:
    kube: Kube
    namespace: str
    name: str
    #: The rollout as the server last returned it (never handed out: passes get copies).
    _known: Obj | None = field(default=None, repr=False)
    #: ``intent`` of the rollout the current pass read.
    _read_intent: tuple[Any, ...] | None = field(default=None, repr=False)
    #: resourceVersion of the loop's last status write, when it changed nothing but the status.
    _own_version: str | None = None
    #: Versions the kept copy is known to be newer than (newest last, at most ``BEHIND``).
    _behind: tuple[str, ...] = ()
    #: The highest generation of the versions the loop read or wrote (kept while settled);
    #: ``None`` after a write it has no answer for.
    _floor: int | None = None
    #: Settled while the watch had not yet shown the loop's own last status write: the copy
    #: is kept until it does (:meth:`caught_up`).
    _lingering: bool = False

    async def read(self, live: Mapping[str, Any] | None) -> Obj | None:
        """The rollout for a pass; ``live`` is the watch's current view of it (or None)."""
        self._lingering = False
        version = _version(live) if live is not None else None
        known = _version(self._known) if self._known is not None else None
        if (
            known is not None
            and version is not None
            and (version == known or version in self._behind)
        ):
            got: Obj | None = copied(self._known)
        elif live is not None and self.is_own_write(live):
            # The watch shows the loop's own last status write, kept through a settle: the
            # server's answer itself (a settled rollout woken by its workload, as when KubeVela
            # applies the workload of a revision the rollout already names).
            self._known = _kept(live)
            self._behind = ()
            got = copied(self._known)
        elif live is not None and self._floor is not None and _generation(live) > self._floor:
            # The spec changed after every version the loop read or wrote: the watch's view
            # was written after them all (a settled rollout given a new revision).
            self._known = _kept(live)
            self._behind = ()
            got = copied(self._known)
        else:
            got = await self.kube.get(f"{API_GROUP}/{API_VERSION}", KIND, self.name, self.namespace)
            self._known = _kept(got) if got is not None else None
            fresh = _version(got) if got is not None else None
            # The server already had something newer than the watch shows: what the watch
            # shows now is behind the copy.
            self._behind = (version,) if version and fresh and version != fresh else ()
        self._read_intent = intent(got) if got is not None else None
        self._raise_floor(got)
        return got

    def _raise_floor(self, seen: Mapping[str, Any] | None) -> None:
        if seen is not None and _generation(seen) >= 0:
            self._floor = max(self._floor or 0, _generation(seen))

    def wrote_status(self, answer: Obj) -> None:
        """The server's answer to the pass' status write: what the next pass starts from, and,
        when nothing but the status changed since the pass read the rollout, a watch event that
        brings the loop nothing new (:meth:`is_own_write`)."""
        replaced = _version(self._known) if self._known is not None else None
        if replaced is not None and replaced != _version(answer):
            self._behind = (*self._behind, replaced)[-BEHIND:]
        self._known = _kept(answer)
        self._own_version = _version(answer) if intent(answer) == self._read_intent else None
        self._raise_floor(answer)

    def is_own_write(self, live: Mapping[str, Any]) -> bool:
        """Whether a watch event shows exactly the loop's own status write (no need to wake)."""
        return self._own_version is not None and _version(live) == self._own_version

    def settled(self, live: Mapping[str, Any] | None = None) -> None:
        """The rollout waits for a watch event only (a step's pods to become Ready, released,
        or failed until its spec changes): keep no copy of it through what may be days. The
        own-write check stays: its event must not wake the loop, and when woken with the watch
        still showing it, the pass takes that view (:meth:`read`).

        While the watch (``live``) has not yet shown the loop's own last status write, the copy
        stays until it does (:meth:`caught_up`): a pass woken before (a pod turning Ready) would
        otherwise find a view older than that write and read the rollout from the server."""
        trailing = (
            live is not None and self._own_version is not None and not self.is_own_write(live)
        )
        if trailing and self._known is not None:
            self._lingering = True
            return
        self._drop()

    def caught_up(self) -> None:
        """The watch shows the loop's own last status write: a settled loop's copy may go."""
        if self._lingering:
            self._drop()

    def _drop(self) -> None:
        self._lingering = False
        self._known = None
        self._behind = ()
        self._read_intent = None  # a pass' own; it holds parts of what that pass read

    def forget(self) -> None:
        """After a pass that may have written the rollout itself: read it next time."""
        self._known = None
        self._behind = ()
        self._own_version = None
        self._floor = None


def _generation(obj: Mapping[str, Any]) -> int:
    """``metadata.generation``, or -1 where there is none."""
    meta = obj.get("metadata")
    generation = meta.get("generation") if isinstance(meta, Mapping) else None
    return generation if isinstance(generation, int) else -1


def _kept(obj: Mapping[str, Any]) -> Obj:
    """The copy kept between passes, without ``managedFields`` (no pass reads them; they are
    a third of a rollout's size)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    kept: Obj = copied({**obj, "metadata": meta})
    return kept


def intent(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """What people and KubeVela change on a rollout (its generation counts spec changes), as
    opposed to the status its release loop writes. When the answer to a status write has the
    intent the pass read, the watch event of that write brings the loop nothing new and need not
    wake it; a change by anyone else in between (an approval, a new revision) shows in the
    answer, and its event wakes the loop even if the watch delivers only the newest version."""
    meta = obj.get("metadata") or {}
    return (
        meta.get("generation"),
        meta.get("annotations") or {},
        meta.get("labels") or {},
        meta.get("deletionTimestamp"),
        tuple(meta.get("finalizers") or ()),
    )
