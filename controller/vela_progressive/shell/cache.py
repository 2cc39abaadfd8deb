"""A watch-backed copy of one kind, cluster-wide: a pass reads its workload, the workload's
ReplicaSets and its pods from memory.

Every pass of a release used to LIST the pods and ReplicaSets of its workload: at 1,000 releases
in flight, 68 of a release's 140 API requests, and a good part of the controller's CPU decoding
them; once those came from memory, the GET of the workload itself was most of what was left
(docs/benchmarks.md). A :class:`WatchCache` lists the kind once, then follows one watch
(bookmarks on, resumed from the last ``resourceVersion``, listed again after ``410 Gone``), and
answers ``get``/``list`` by label equality from memory, an informer's way: a name it does not
have does not exist (the canary style's GETs of a canary Deployment not yet made, or already
deleted, were 9 of its 90 requests per release).

It is only served while it is current: before the first list, and from the moment its watch
drops until a new one is established, :meth:`WatchCache.ready` is false and
:class:`~vela_progressive.shell.kube.Kube` asks the API server instead. A watch it may not open
(403: the role lacks ``watch``) turns it off for good, with one warning that says what to grant.

A copy read from memory may trail the server by the time an event takes to arrive. That is safe
here: every write of a release carries its precondition (the ``generation`` a change of the spec
was computed from, the ``resourceVersion`` of any other patch, the ``uid`` it deletes), so a write
computed from a stale copy is refused and the pass runs again; the answers of the controller's own
writes go into the copy at once; and the change a pass did not see yet wakes its rollout when it
arrives (``on_change``), so a release never waits on an event it missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vela_progressive.core.watched import copied, deleting, signature, stale, trim
from vela_progressive.shell.kube import Kube, KubeError

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
Slot = TypeVar("Slot", str, tuple[str, str, str])
log = logging.getLogger("vela_progressive.cache")

#: Seconds a watch asks the server to keep it open (a little random, so they do not all end
#: together); it is then resumed from its last resourceVersion.
WATCH_SECONDS = 290
#: Seconds between attempts while the API server cannot be reached.
RETRY_SECONDS = 1.0
#: Objects per page of a list: the first list of every pod in a large cluster is not one answer
#: held whole in memory (nor one request the API server must build whole).
PAGE = 500
#: uids of deleted objects remembered, so a write's late answer cannot bring one back.
GONE = 4096


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Forbidden(Exception):
    """The role may not list or watch this kind."""


@dataclass
class WatchCache:
    kube: Kube
    api_version: str
    kind: str
    #: Called with (old, new) when a change may move a release (``core.watched.signature``);
    #: ``new`` is ``None`` for a deletion, ``old`` for a creation.
    on_change: Callable[[Obj | None, Obj | None], None] = lambda old, new: None
    _store: dict[Key, Obj] = field(default_factory=dict, repr=False)
    _by_namespace: dict[str, dict[str, Obj]] = field(default_factory=dict, repr=False)
    #: (namespace, label, value) -> name -> object: a selector's lookup reads only the objects
    #: carrying its rarest label, not the whole namespace.
    _by_label: dict[tuple[str, str, str], dict[str, Obj]] = field(default_factory=dict, repr=False)
    _version: str = ""
    _current: bool = False
    _off: bool = False
    #: uids the controller deleted whose deletion the watch has not shown yet.
    _deleting: set[str] = field(default_factory=set, repr=False)
    #: uids whose deletion the watch (or a list) showed, oldest first, at most ``GONE``.
    _gone: dict[str, None] = field(default_factory=dict, repr=False)
    #: Set once the first list is in: for waiting in tests and benchmarks.
    listed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    #: Lists made (a watch from a forgotten version lists again; for tests).
    lists: int = 0

    # ------------------------------------------------------------------ reading
    def ready(self) -> bool:
        """Whether reads may be served from memory now."""
        return self._current and not self._off

    def get(self, namespace: str, name: str) -> Obj | None:
        """A copy of the object, or ``None`` when the cache does not have it."""
        found = self._store.get((namespace, name))
        return copied(found) if found is not None else None

    def peek(self, namespace: str, name: str) -> Obj | None:
        """The kept object itself (not to be changed): for lookups that only read a field."""
        return self._store.get((namespace, name))

    def list(self, namespace: str, labels: dict[str, str], *, shared: bool = False) -> list[Obj]:
        """Copies of the objects in ``namespace`` whose labels include ``labels`` (``shared``:
        the kept objects themselves, for a caller that never changes them)."""
        if labels:
            candidates = min(
                (self._by_label.get((namespace, k, v), {}) for k, v in labels.items()), key=len
            )
        else:
            candidates = self._by_namespace.get(namespace, {})
        found = [obj for obj in candidates.values() if _matches(obj, labels)]
        return found if shared else [copied(obj) for obj in found]

    # ------------------------------------------------------------------ the controller's writes
    def wrote(self, obj: Obj) -> None:
        """The server's answer to a create or patch of this kind (or a fresh read): kept at once,
        unless the watch already brought a newer version (under load the answer of a create can
        arrive after the events of the changes that followed it), or already showed the object
        deleted (no later event would remove it again). It wakes no rollout: the pass that wrote
        it goes on from the answer itself."""
        if _uid(obj) in self._gone:
            return
        if obj.get("metadata", {}).get("name") and not stale(self._store.get(_key(obj)), obj):
            self._put(
                trim({"apiVersion": self.api_version, "kind": self.kind, **obj}), notify=False
            )

    def deleted(self, namespace: str, name: str, uid: str | None) -> None:
        """A delete the controller made: the object shows as terminating at once (a pod with a
        grace period stays until its containers stop; the watch then removes it)."""
        kept = self._store.get((namespace, name))
        if kept is None or (uid and kept["metadata"].get("uid") != uid):
            return
        self._deleting.add(str(kept["metadata"].get("uid", "")))
        self._put(kept, notify=False)

    # ------------------------------------------------------------------ following the server
    async def run(self) -> None:
        """List, then follow the watch, forever (cancel the task to stop)."""
        path = await self.kube.path(self.api_version, self.kind, None)
        while not self._off:
            try:
                if not self._version:
                    await self._list(path)
                await self._watch(path)
            except Gone:
                log.info("%s watch: resourceVersion too old, listing again", self.kind)
                self._version = ""
            except Forbidden as exc:
                self._off = True
                self._current = False
                log.warning(
                    "not caching %ss: %s. Every pass lists them instead; grant the "
                    "controller's role list and watch on %s to read them from memory",
                    self.kind,
                    exc,
                    path.rsplit("/", 1)[-1],
                )
            except asyncio.CancelledError:
                self._current = False
                raise
            except Exception as exc:  # the API server restarting, a broken stream
                self._current = False
                log.info("%s watch: %r (resuming in %.0fs)", self.kind, exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self, path: str) -> None:
        self._current = False
        fresh: dict[Key, Obj] = {}
        token = ""
        while True:  # page by page, one consistent snapshot (an expired token is a 410: again)
            query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
            try:
                answer = await self.kube.list_raw(path, query)
            except KubeError as exc:
                raise _classify(exc) from exc
            for item in answer.get("items") or []:
                obj = trim({"apiVersion": self.api_version, "kind": self.kind, **item})
                fresh[_key(obj)] = obj
            token = str((answer.get("metadata") or {}).get("continue") or "")
            if not token:
                break
        old, self._store = self._store, {}
        self._by_namespace = {}
        self._by_label = {}
        self._deleting &= {str(o["metadata"].get("uid", "")) for o in fresh.values()}
        for obj in fresh.values():
            self._put(obj, notify=False)
        # What changed while no watch was open (a list again after 410). The first list wakes
        # nothing: every release loop's first pass reads the copy anyway.
        for key in old.keys() | fresh.keys() if self.lists else ():
            before, after = old.get(key), fresh.get(key)
            if before is not None and (after is None or _uid(after) != _uid(before)):
                self._mark_gone(_uid(before))
            if (before is None) != (after is None) or (
                before is not None and after is not None and signature(before) != signature(after)
            ):
                self._notify(before, after)
        self._version = str((answer.get("metadata") or {}).get("resourceVersion") or "")
        self.lists += 1
        self._current = True
        self.listed.set()

    async def _watch(self, path: str) -> None:
        seconds = WATCH_SECONDS + random.randint(0, WATCH_SECONDS // 10)
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self._version),
            ("timeoutSeconds", str(seconds)),
        ]
        try:
            response = await self.kube.open_watch(path, query, seconds + 30)
        except KubeError as exc:
            raise _classify(exc) from exc
        async with response:
            self._current = True
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._event(json.loads(line))
        # The server ended the watch (its timeout): resumed from the last version by run().
        self._current = False

    def _event(self, event: Obj) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone(obj.get("message", ""))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED"):
            if not stale(self._store.get(_key(obj)), obj):  # not older than a write's answer
                self._put(trim(obj))
        elif kind == "DELETED":
            self._remove(_key(obj))
        if version:
            self._version = str(version)

    # ------------------------------------------------------------------ the store
    def _put(self, obj: Obj, *, notify: bool = True) -> None:
        key = _key(obj)
        old = self._store.get(key)
        uid = str(obj["metadata"].get("uid", ""))
        if uid in self._deleting:
            if obj["metadata"].get("deletionTimestamp"):
                self._deleting.discard(uid)  # the server's own from now on
            else:
                obj = deleting(obj)
        if old is not None:
            self._unindex(key, old)
        self._store[key] = obj
        self._by_namespace.setdefault(key[0], {})[key[1]] = obj
        for label, value in _labels(obj).items():
            self._by_label.setdefault((key[0], label, value), {})[key[1]] = obj
        if notify and (old is None or signature(old) != signature(obj)):
            self._notify(old, obj)

    def _remove(self, key: Key) -> None:
        old = self._store.pop(key, None)
        if old is not None:
            self._deleting.discard(_uid(old))
            self._mark_gone(_uid(old))
            self._unindex(key, old)
            self._notify(old, None)

    def _mark_gone(self, uid: str) -> None:
        if not uid:
            return
        self._gone[uid] = None
        if len(self._gone) > GONE:
            del self._gone[next(iter(self._gone))]

    def _unindex(self, key: Key, old: Obj) -> None:
        _drop(self._by_namespace, key[0], key[1])
        for label, value in _labels(old).items():
            _drop(self._by_label, (key[0], label, value), key[1])

    def _notify(self, old: Obj | None, new: Obj | None) -> None:
        try:
            self.on_change(old, new)
        except Exception:  # a wake-up that fails must not stop the watch
            log.exception("%s cache: waking the rollouts of a change failed", self.kind)


def _classify(exc: KubeError) -> Exception:
    if exc.status == 410:
        return Gone(str(exc))
    if exc.status in (401, 403):
        return Forbidden(exc.message)
    return exc


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def _drop(table: dict[Slot, dict[str, Obj]], slot: Slot, name: str) -> None:
    names = table.get(slot)
    if names is not None:
        names.pop(name, None)
        if not names:
            del table[slot]


def _labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def _matches(obj: Obj, labels: dict[str, str]) -> bool:
    have = _labels(obj)
    return all(have.get(k) == v for k, v in labels.items())
