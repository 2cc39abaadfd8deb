"""The watch-backed copy's own rules, against a scripted server (the real API server is in
tests/integration/test_watch_cache.py): when it may be read, what wakes a rollout, what a watch
from a forgotten version and a role without ``watch`` do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from vela_progressive.core.watched import workload_of
from vela_progressive.core.workloads.common import CANARY_OF_LABEL as CANARY
from vela_progressive.shell import cache
from vela_progressive.shell.cache import WatchCache
from vela_progressive.shell.kube import KubeError

Obj = dict[str, Any]


def _pod(name: str, version: str, *, ready: bool = False, beat: str = "") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "resourceVersion": version,
            "labels": {"app": "web"},
            "managedFields": [{"manager": "kubelet"}],
            "annotations": {"beat": beat},
        },
        "spec": {"containers": [{"name": "app", "image": "web:v1"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class _Stream:
    def __init__(self, chunks: list[bytes], then: asyncio.Event | None) -> None:
        self._chunks, self._then = chunks, then

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._then is not None:  # the script is over: a watch that stays open, quiet
            self._then.set()
            await asyncio.Event().wait()


class _Response:
    def __init__(self, events: list[Obj], then: asyncio.Event | None = None) -> None:
        # split mid-line: the copy must join chunks into lines
        data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
        self.content = _Stream([data[:7], data[7:]] if data else [], then)

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class _Server:
    """Answers each list and each watch from a script (the last list answers again); a watch
    after the script waits."""

    def __init__(self, lists: list[list[Obj]], watches: list[list[Obj] | KubeError]) -> None:
        self.lists, self.watches = lists, watches
        self.listed = 0
        self.pages: list[dict[str, str]] = []  # the query of every list request
        self.opened: list[str] = []
        self.drained = asyncio.Event()

    async def path(self, api_version: str, kind: str, namespace: str | None) -> str:
        return "/api/v1/pods"

    async def list_raw(self, path: str, query: list[tuple[str, str]] | None = None) -> Obj:
        asked = dict(query or [])
        self.pages.append(asked)
        items = self.lists[min(self.listed, len(self.lists) - 1)]
        start = int(asked.get("continue", "0"))
        end = start + int(asked.get("limit", len(items) or 1))
        meta = {"resourceVersion": str(10 * (self.listed + 1))}
        if end < len(items):
            meta["continue"] = str(end)  # the next page of the same snapshot
        else:
            self.listed += 1
        return {"metadata": meta, "items": items[start:end]}

    async def open_watch(self, path: str, query: list[tuple[str, str]], seconds: float) -> Any:
        self.opened.append(dict(query)["resourceVersion"])
        if not self.watches:
            return _Response([], then=self.drained)
        step = self.watches.pop(0)
        if isinstance(step, KubeError):
            raise step
        return _Response(step)


@contextlib.asynccontextmanager
async def _started(copy: WatchCache) -> AsyncIterator[None]:
    """The copy following the scripted server until the block ends."""
    task = asyncio.create_task(copy.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def _running(copy: WatchCache, server: _Server) -> AsyncIterator[None]:
    """Started, and through the script: its last watch open and quiet."""
    async with _started(copy):
        await asyncio.wait_for(server.drained.wait(), 5)
        yield


def _late_watches(server: _Server) -> asyncio.Event:
    """Hold every watch until the returned event is set (events arrive after a write's answer)."""
    gate = asyncio.Event()
    opened = server.open_watch

    async def late(path: str, query: list[tuple[str, str]], seconds: float) -> Any:
        await gate.wait()
        return await opened(path, query, seconds)

    server.open_watch = late  # type: ignore[method-assign]
    return gate


def _copy(server: _Server, woken: list[tuple[Obj | None, Obj | None]]) -> WatchCache:
    return WatchCache(server, "v1", "Pod", on_change=lambda old, new: woken.append((old, new)))  # type: ignore[arg-type]


async def test_only_a_change_of_readiness_phase_or_existence_wakes() -> None:
    woken: list[tuple[Obj | None, Obj | None]] = []
    server = _Server(
        [[_pod("a", "5")]],
        [
            [
                {"type": "MODIFIED", "object": _pod("a", "11", beat="1")},  # heartbeat only
                {"type": "MODIFIED", "object": _pod("a", "12", ready=True)},
                {"type": "ADDED", "object": _pod("b", "13")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "14"}}},
                {"type": "DELETED", "object": _pod("b", "15")},
            ]
        ],
    )
    copy = _copy(server, woken)
    async with _running(copy, server):
        assert [(o and o["metadata"]["name"], n and n["metadata"]["name"]) for o, n in woken] == [
            ("a", "a"),
            (None, "b"),
            ("b", None),
        ]
        # resumed from the last version the stream carried (the bookmark's, then the delete's)
        assert server.opened == ["10", "15"]
        (kept,) = copy.list("shop", {"app": "web"})
        assert kept["metadata"]["resourceVersion"] == "12"
        assert "spec" not in kept
        assert "managedFields" not in kept["metadata"]


def _deployment(name: str, version: str, **labels: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "resourceVersion": version,
            "labels": labels,
        },
        "spec": {"replicas": 2},
    }


async def test_any_change_of_a_workload_wakes_its_own_rollout() -> None:
    woken: list[tuple[Obj | None, Obj | None]] = []
    server = _Server(
        [[_deployment("web", "5")]],
        [
            [
                # an annotation, a label: not counts, still a change of the workload
                {"type": "MODIFIED", "object": _deployment("web", "11", tier="front")},
                {"type": "ADDED", "object": _deployment("web-canary", "12", **{CANARY: "web"})},
                {"type": "MODIFIED", "object": _deployment("web", "11", tier="front")},  # again
            ]
        ],
    )
    copy = WatchCache(
        server,  # type: ignore[arg-type]
        "apps/v1",
        "Deployment",
        on_change=lambda old, new: woken.append((old, new)),
    )
    async with _running(copy, server):
        assert [workload_of(n or {}, lambda name: None) for _, n in woken] == ["web", "web"]
        assert copy.get("shop", "web") is not None
        assert copy.get("shop", "web")["spec"] == {"replicas": 2}  # type: ignore[index]


def test_the_answer_to_a_write_wakes_no_rollout() -> None:
    # The pass that wrote goes on from the answer itself; waking it again would be a pass more.
    woken: list[tuple[Obj | None, Obj | None]] = []
    copy = _copy(_Server([[]], []), woken)
    copy.wrote(_pod("a", "30", ready=True))
    copy.wrote(_pod("a", "31", ready=False))
    assert woken == []
    assert copy.peek("shop", "a")["metadata"]["resourceVersion"] == "31"  # type: ignore[index]


async def test_a_watch_from_a_forgotten_version_lists_again_and_reports_what_changed() -> None:
    woken: list[tuple[Obj | None, Obj | None]] = []
    gone = {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}
    # "a" became Ready while no watch was open
    server = _Server([[_pod("a", "5")], [_pod("a", "20", ready=True)]], [[gone]])
    copy = _copy(server, woken)
    async with _running(copy, server):
        assert server.listed == 2
        assert copy.lists == 2
        assert server.opened == ["10", "20"]
    assert [n and n["metadata"]["resourceVersion"] for _, n in woken] == ["20"]
    assert copy.get("shop", "a")["metadata"]["resourceVersion"] == "20"  # type: ignore[index]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_a_role_without_watch_turns_the_copy_off_with_what_to_grant() -> None:
    server = _Server([[]], [KubeError(403, "Forbidden", 'cannot watch resource "pods"')])
    copy = _copy(server, [])
    records = _Records()
    logger = logging.getLogger("vela_progressive.cache")
    logger.addHandler(records)
    try:
        await asyncio.wait_for(copy.run(), 5)  # returns: it is off for good
    finally:
        logger.removeHandler(records)
    assert not copy.ready()
    (message,) = records.messages
    assert "grant the controller's role list and watch on pods" in message


async def test_it_is_not_read_before_its_first_list_nor_while_its_watch_is_down() -> None:
    server = _Server([[_pod("a", "5")]], [KubeError(0, "Unreachable", "connection refused")])
    copy = _copy(server, [])
    assert not copy.ready()
    async with _started(copy):
        await asyncio.wait_for(copy.listed.wait(), 5)
        await asyncio.sleep(0.05)  # the watch failed: waiting to try again
        assert not copy.ready()
        await asyncio.wait_for(server.drained.wait(), 5)  # the next watch is open
        assert copy.ready()
        assert server.listed == 1


def test_the_answer_to_a_write_is_kept_at_once() -> None:
    copy = _copy(_Server([[]], []), [])
    answer = _pod("a", "30", ready=True)
    del answer["apiVersion"], answer["kind"]  # as a PATCH answers: kind and all, or not
    copy.wrote(answer)
    kept = copy.get("shop", "a")
    assert kept is not None
    assert kept["kind"] == "Pod"
    assert kept["metadata"]["resourceVersion"] == "30"
    kept["metadata"]["name"] = "changed"  # a copy: what the cache keeps does not change
    assert copy.peek("shop", "a")["metadata"]["name"] == "a"  # type: ignore[index]


async def test_an_event_older_than_a_writes_answer_does_not_undo_it() -> None:
    server = _Server(
        [[_pod("a", "5")]],
        [[{"type": "MODIFIED", "object": _pod("a", "6", ready=True)}]],
    )
    copy = _copy(server, [])
    gate = _late_watches(server)  # the event of version 6 arrives after the answer of version 7
    async with _started(copy):
        await asyncio.wait_for(copy.listed.wait(), 5)
        copy.wrote(_pod("a", "7", beat="written"))
        gate.set()
        await asyncio.wait_for(server.drained.wait(), 5)
    kept = copy.peek("shop", "a")
    assert kept is not None
    assert kept["metadata"]["resourceVersion"] == "7"


async def test_a_pod_the_controller_deleted_is_not_live_until_the_watch_removes_it() -> None:
    a = _pod("a", "5", ready=True)
    a["metadata"]["uid"] = "uid-a"
    heartbeat = _pod("a", "6", ready=True, beat="1")  # written before the delete reached it
    heartbeat["metadata"]["uid"] = "uid-a"
    server = _Server([[a]], [[{"type": "MODIFIED", "object": heartbeat}]])
    copy = _copy(server, [])
    gate = _late_watches(server)
    async with _started(copy):
        await asyncio.wait_for(copy.listed.wait(), 5)
        copy.deleted("shop", "a", "other-uid")  # another pod of that name: not this one
        assert not copy.peek("shop", "a")["metadata"].get("deletionTimestamp")  # type: ignore[index]
        copy.deleted("shop", "a", "uid-a")
        gate.set()
        await asyncio.wait_for(server.drained.wait(), 5)
        kept = copy.peek("shop", "a")
        assert kept is not None
        assert kept["metadata"]["resourceVersion"] == "6"
        assert kept["metadata"]["deletionTimestamp"]  # still terminating, not live again


def test_a_selector_finds_exactly_the_objects_carrying_all_its_labels_after_relabelling() -> None:
    copy = _copy(_Server([[]], []), [])
    web, api = _pod("web-1", "1"), _pod("api-1", "2")
    api["metadata"]["labels"] = {"app": "api"}
    web["metadata"]["labels"] = {"app": "web", "track": "canary"}
    for pod in (web, api):
        copy.wrote(pod)

    def names(labels: dict[str, str]) -> list[str]:
        return sorted(p["metadata"]["name"] for p in copy.list("shop", labels))

    assert names({}) == ["api-1", "web-1"]
    assert names({"app": "web"}) == ["web-1"]
    assert names({"app": "web", "track": "canary"}) == ["web-1"]
    assert names({"app": "web", "track": "stable"}) == []
    relabelled = _pod("web-1", "3")
    relabelled["metadata"]["labels"] = {"app": "api"}
    copy.wrote(relabelled)
    assert names({"app": "web"}) == []
    assert names({"app": "api"}) == ["api-1", "web-1"]
    assert copy.list("other", {"app": "api"}) == []
    copy.list("shop", {"app": "api"})[0]["metadata"]["labels"]["app"] = "changed"
    assert names({"app": "api"}) == ["api-1", "web-1"]


async def test_the_answer_to_a_create_arriving_after_newer_events_is_not_kept() -> None:
    server = _Server(
        [[]],
        [
            [
                {"type": "ADDED", "object": _pod("a", "40")},
                {"type": "MODIFIED", "object": _pod("a", "41", ready=True)},
            ]
        ],
    )
    copy = _copy(server, [])
    async with _running(copy, server):
        copy.wrote(_pod("a", "40"))  # the create's answer, processed after both events
        kept = copy.peek("shop", "a")
        assert kept is not None
        assert kept["metadata"]["resourceVersion"] == "41"


async def test_a_create_answer_arriving_after_the_deletion_does_not_bring_the_object_back() -> None:
    a = _pod("a", "40")
    a["metadata"]["uid"] = "uid-a"
    server = _Server([[]], [[{"type": "ADDED", "object": a}, {"type": "DELETED", "object": a}]])
    copy = _copy(server, [])
    async with _running(copy, server):
        copy.wrote(a)  # the create's answer, processed after the deletion
        assert copy.peek("shop", "a") is None
        again = _pod("a", "45")  # created again under the same name: a new object
        again["metadata"]["uid"] = "uid-a2"
        copy.wrote(again)
        assert copy.peek("shop", "a") is not None


def test_the_deleted_objects_remembered_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(cache, "GONE", 2)
    copy = _copy(_Server([[]], []), [])
    for n in range(3):
        pod = _pod(f"p{n}", "1")
        pod["metadata"]["uid"] = f"uid-{n}"
        copy.wrote(pod)
        copy._remove(("shop", f"p{n}"))
    assert list(copy._gone) == ["uid-1", "uid-2"]


async def test_the_first_list_comes_page_by_page(monkeypatch: Any) -> None:
    monkeypatch.setattr(cache, "PAGE", 2)
    server = _Server([[_pod(f"p{n}", str(n)) for n in range(5)]], [])
    copy = _copy(server, [])
    async with _running(copy, server):
        assert sorted(p["metadata"]["name"] for p in copy.list("shop", {})) == [
            "p0",
            "p1",
            "p2",
            "p3",
            "p4",
        ]
    assert server.pages == [
        {"limit": "2"},
        {"limit": "2", "continue": "2"},
        {"limit": "2", "continue": "4"},
    ]
    assert server.opened == ["10"], "the watch starts from the snapshot the pages came from"
