"""The watch-backed copies of pods, ReplicaSets and workloads against the real API server: what
a pass reads from memory is what the server lists, a pod turning Ready is reported with the
workload it belongs to, a watch the server ends is resumed where it stopped, and reads fall back
to the server whenever the copy is not current. (A watch from a version the server no longer
keeps, and a role without ``watch``, are in tests/unit/test_watch_cache.py: a young test world
keeps every version.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from vela_progressive.core.watched import workload_of
from vela_progressive.shell import cache
from vela_progressive.shell.cache import WatchCache
from vela_progressive.shell.kube import Kube, KubeError

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
LABELS = {"app": "cached"}


def _deployment(namespace: str, replicas: int) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cached", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [{"name": "app", "image": "example/app:v1"}]},
            },
        },
    }


async def _eventually(probe: Callable[[], Awaitable[bool]], within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _following(copy: WatchCache) -> AsyncIterator[WatchCache]:
    task = asyncio.create_task(copy.run())
    try:
        await asyncio.wait_for(copy.listed.wait(), 30)
        yield copy
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _names_versions(items: list[Obj]) -> set[tuple[str, str]]:
    return {(o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in items}


async def test_pods_and_replicasets_read_from_memory_match_what_the_server_lists(
    kube: Kube, namespace: str
) -> None:
    replicasets = WatchCache(kube, "apps/v1", "ReplicaSet")
    pods = WatchCache(kube, "v1", "Pod")
    async with _following(replicasets), _following(pods):
        await kube.create(_deployment(namespace, 3))
        server = Kube(kube.api)  # the same connection, no copies: asks the server

        async def same() -> bool:
            listed = await server.list("v1", "Pod", namespace, label_selector="app=cached")
            ready = [p for p in listed if p.get("status", {}).get("phase") == "Running"]
            return len(ready) == 3 and _names_versions(listed) == _names_versions(
                pods.list(namespace, LABELS)
            )

        await _eventually(same)
        rs_listed = await server.list("apps/v1", "ReplicaSet", namespace, label_selector="app")
        assert _names_versions(rs_listed) == _names_versions(replicasets.list(namespace, {}))
        # a pod is kept without its spec and without managedFields
        kept = pods.list(namespace, LABELS)[0]
        assert "spec" not in kept
        assert "managedFields" not in kept["metadata"]
        assert kept["kind"] == "Pod"
        assert kept["status"]["phase"] == "Running"
        # Kube serves the kinds it has copies of from memory, and counts it
        kube.copies = {("v1", "Pod"): pods, ("apps/v1", "ReplicaSet"): replicasets}
        before = sum(kube.requests.values())
        listed = await kube.list("v1", "Pod", namespace, label_selector="app=cached")
        assert len(listed) == 3
        assert sum(kube.requests.values()) == before
        assert kube.from_memory["Pod"] == 1
        # a selector the copy cannot answer goes to the server
        await kube.list("v1", "Pod", namespace, label_selector="app!=other")
        assert sum(kube.requests.values()) == before + 1
    # a copy whose watch is not running is not current: the server answers
    assert not pods.ready()
    assert len(await kube.list("v1", "Pod", namespace, label_selector="app=cached")) == 3
    assert sum(kube.requests.values()) == before + 2


async def test_a_workload_read_from_memory_is_what_the_server_has_and_any_change_is_reported(
    kube: Kube, namespace: str
) -> None:
    reported: list[str | None] = []
    deployments = WatchCache(
        kube,
        "apps/v1",
        "Deployment",
        on_change=lambda old, new: reported.append(workload_of(new or {}, lambda name: None)),
    )
    async with _following(deployments):
        await kube.create(_deployment(namespace, 1))
        server = Kube(kube.api)  # the same connection, no copies: asks the server
        await kube.patch(
            "apps/v1", "Deployment", "cached", namespace, {"metadata": {"labels": {"tier": "a"}}}
        )

        async def same() -> bool:
            got = await server.get("apps/v1", "Deployment", "cached", namespace)
            kept = deployments.get(namespace, "cached")
            return (
                got is not None
                and kept is not None
                and got["metadata"]["resourceVersion"] == kept["metadata"]["resourceVersion"]
                and (got.get("status") or {}).get("replicas") == 1
            )

        await _eventually(same)
        got = await server.get("apps/v1", "Deployment", "cached", namespace)
        assert got is not None
        kube.copies = {("apps/v1", "Deployment"): deployments}
        before = sum(kube.requests.values())
        kept = await kube.get("apps/v1", "Deployment", "cached", namespace)
        assert sum(kube.requests.values()) == before
        assert kept is not None
        # a name the current copy does not have does not exist: no request for it either
        assert await kube.get("apps/v1", "Deployment", "absent", namespace) is None
        assert sum(kube.requests.values()) == before
        assert kept["spec"] == got["spec"]
        assert kept["metadata"]["labels"] == {"tier": "a"}
        # the label change is a change of the workload (not of counts): it was reported
        assert set(reported) == {"cached"}
        assert len(reported) >= 3  # created, relabelled, its status written


async def test_a_pod_turning_ready_is_reported_with_its_deployment(
    kube: Kube, namespace: str
) -> None:
    replicasets = WatchCache(kube, "apps/v1", "ReplicaSet")
    woken: list[str | None] = []

    def changed(old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        if obj["metadata"].get("namespace") == namespace:
            woken.append(workload_of(obj, lambda n: replicasets.peek(namespace, n)))

    pods = WatchCache(kube, "v1", "Pod", on_change=changed)
    replicasets.on_change = changed
    async with _following(replicasets), _following(pods):
        await kube.create(_deployment(namespace, 2))

        async def both_ready() -> bool:
            return (
                sum(
                    1
                    for p in pods.list(namespace, LABELS)
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in p["status"].get("conditions", [])
                    )
                )
                == 2
            )

        await _eventually(both_ready)
        await _eventually(lambda: _true(woken))
        assert set(woken) == {"cached"}, woken
        # pods appear and turn Ready: at least one report each; status writes that do not
        # change readiness or phase report nothing more than those few per pod
        assert len(woken) >= 2


async def _true(items: list[Any]) -> bool:
    return bool(items)


async def test_a_watch_the_server_ends_is_resumed_without_listing_again(
    kube: Kube, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "WATCH_SECONDS", 1)  # the server ends each watch after 1 s
    pods = WatchCache(kube, "v1", "Pod")
    async with _following(pods):
        opened = kube.requests["WATCH"]
        await kube.create(_deployment(namespace, 2))
        await _eventually(lambda: _has(pods, namespace, 2))
        await _eventually(lambda: _true([kube.requests["WATCH"] >= opened + 2]))
        await kube.create(
            {**_deployment(namespace, 1), "metadata": {"name": "later", "namespace": namespace}}
        )
        await _eventually(lambda: _has(pods, namespace, 3))
        assert pods.lists == 1


async def _has(copy: WatchCache, namespace: str, count: int) -> bool:
    return len(copy.list(namespace, LABELS)) == count


async def test_a_write_refused_as_stale_puts_the_servers_version_in_the_copy(
    kube: Kube, namespace: str
) -> None:
    replicasets = WatchCache(kube, "apps/v1", "ReplicaSet")
    async with _following(replicasets):
        await kube.create(_deployment(namespace, 1))
        await _eventually(lambda: _has(replicasets, namespace, 1))
    # The watch is stopped: the copy stays behind the server, as if an event were lost.
    replicasets._current = True
    kube.copies = {("apps/v1", "ReplicaSet"): replicasets}
    (behind,) = replicasets.list(namespace, LABELS)
    name, version = behind["metadata"]["name"], behind["metadata"]["resourceVersion"]
    server = Kube(kube.api)  # no copies: straight to the server
    await server.patch(
        "apps/v1", "ReplicaSet", name, namespace, {"metadata": {"labels": {"x": "1"}}}
    )
    with pytest.raises(KubeError) as refused:
        await kube.patch(
            "apps/v1",
            "ReplicaSet",
            name,
            namespace,
            {"metadata": {"resourceVersion": version}, "spec": {"replicas": 2}},
        )
    assert refused.value.conflict
    kept = replicasets.peek(namespace, name)
    assert kept is not None
    assert kept["metadata"]["labels"]["x"] == "1"  # the next pass computes from this
    assert kept["metadata"]["resourceVersion"] != version
