"""The release loop (``handlers.drive``) between passes: a settled rollout keeps no copy of
itself through what may be days, unless the next pass needs it at once: a watch event woke the
loop while the pass that settled it ran (KubeVela applying the workload of a revision it has
just named in the rollout), or the watch has not yet shown the pass' own status write (a pod
turning Ready before it does, at 1,000 releases in flight)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from vela_progressive import handlers
from vela_progressive.shell.rollouts import RolloutReader

KEY = ("shop", "web")
Obj = dict[str, Any]


def _rollout(version: str) -> Obj:
    return {"metadata": {"name": "web", "namespace": "shop", "resourceVersion": version}}


class Running:
    """``stopped`` for a daemon that is never asked to stop."""

    def __bool__(self) -> bool:
        return False


class Server:
    async def get(self, api: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        return _rollout("1")


async def _drive(
    monkeypatch: pytest.MonkeyPatch, *, woken_during_the_pass: bool, watch_shows: str
) -> list[bool]:
    """Two passes, the first writing version 2 and settling while the watch shows
    ``watch_shows``; whether each pass found a copy kept of the rollout."""
    wake = asyncio.Event()
    body = kopf.Body(_rollout(watch_shows))
    kept: list[bool] = []

    async def one_pass(
        namespace: str, name: str, live: kopf.Body, reader: RolloutReader, memo: Any
    ) -> float | None:
        kept.append(reader._known is not None)
        if len(kept) > 1:
            return None  # the rollout goes away: the loop ends
        await reader.read(_rollout("1"))
        reader.wrote_status(_rollout("2"))
        if woken_during_the_pass:
            wake.set()
        else:
            asyncio.get_running_loop().call_later(0.01, wake.set)
        return math.inf  # settled: only a watch event wakes it

    monkeypatch.setattr(handlers, "_one_pass", one_pass)
    memo = SimpleNamespace(
        wakeups={KEY: wake},
        readers={},
        kube=Server(),
        metrics=SimpleNamespace(release_loop=lambda namespace, name: contextlib.nullcontext()),
    )
    await handlers.drive(name="web", namespace="shop", body=body, stopped=Running(), memo=memo)
    return kept


async def test_a_settled_loop_keeps_no_copy_of_its_rollout_while_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = await _drive(monkeypatch, woken_during_the_pass=False, watch_shows="2")
    assert kept == [False, False]


async def test_a_loop_woken_while_its_pass_settled_it_keeps_the_rollout_for_the_next_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = await _drive(monkeypatch, woken_during_the_pass=True, watch_shows="2")
    assert kept == [False, True]


async def test_a_loop_settled_before_the_watch_shows_its_own_write_keeps_the_rollout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = await _drive(monkeypatch, woken_during_the_pass=False, watch_shows="1")
    assert kept == [False, True]


def test_the_watch_showing_a_loops_own_write_lets_its_copy_go() -> None:
    reader = RolloutReader(Server(), "shop", "web")  # type: ignore[arg-type]
    asyncio.run(reader.read(_rollout("1")))
    reader.wrote_status(_rollout("2"))
    reader.settled(_rollout("1"))
    memo = SimpleNamespace(readers={KEY: reader}, wakeups={})
    asyncio.run(
        handlers.rollout_changed(
            namespace="shop", name="web", body=kopf.Body(_rollout("2")), memo=memo
        )
    )
    assert reader._known is None
