"""Which controller replica drives which rollout: sharding and the active/standby order (pure).

One controller process drives every rollout by default. Two settings spread the work:

* **Shards** (``VP_SHARD=i/N``): the rollouts are split by a hash of their namespace and name,
  stable across restarts and Python versions; shard ``i`` drives only the rollouts whose hash
  falls on it. Every shard still serves the hold webhook for every workload (a pure function of
  the request), so any replica can answer the API server.
* **Standby replicas** (``VP_PEERING=<name>``): replicas of one shard join the Kopf peering
  ``<name>``; only the one with the highest priority drives rollouts, the others pause until its
  keep-alive lapses (``VP_PEERING_LIFETIME`` seconds, default 15). The priority is derived from
  the process' start time so that the **oldest** replica leads: a new replica (a rolling upgrade,
  a rescheduled pod) never takes over from a healthy leader, only from a dead or gone one.

>>> p = placement_from_env({"VP_SHARD": "1/3", "VP_PEERING": "vela-progressive"})
>>> p.shard, p.peering, p.lifetime
(Shard(index=1, count=3), 'vela-progressive-shard-1', 15)
>>> sum(Shard(i, 3).owns("team-a", "web") for i in range(3))
1
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

SHARD_ENV = "VP_SHARD"
PEERING_ENV = "VP_PEERING"
LIFETIME_ENV = "VP_PEERING_LIFETIME"
DEFAULT_LIFETIME = 15
#: Kopf's keep-alive is sent ``lifetime - 5..10`` s apart (at least 1 s): below 10 s a replica
#: would re-announce itself every second; above 300 s a dead leader blocks releases for minutes.
LIFETIME_RANGE = (10, 300)
#: Priorities count down from here by the start time in milliseconds (year 2286 fits).
_PRIORITY_BASE = 10**13
_SHARD = re.compile(r"^(\d+)/(\d+)$")


class PlacementError(ValueError):
    """A setting that cannot be used; the message names the variable and the fix."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, namespace: str, name: str) -> bool:
        """Whether the rollout ``namespace/name`` is this shard's (a stable hash, not Python's
        per-process ``hash``)."""
        digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Placement:
    #: None: this replica drives every rollout.
    shard: Shard | None = None
    #: The Kopf peering this replica joins (None: it runs alone, ``--standalone``).
    peering: str | None = None
    lifetime: int = DEFAULT_LIFETIME

    def owns(self, namespace: str, name: str) -> bool:
        return self.shard is None or self.shard.owns(namespace, name)

    def kopf_args(self, started_ms: int) -> list[str]:
        """``kopf run`` arguments: the peering and this replica's priority, or standalone."""
        if self.peering is None:
            return ["--standalone"]
        return ["--peering", self.peering, "--priority", str(priority(started_ms))]

    def describe(self) -> str:
        shard = f"shard {self.shard}" if self.shard else "every rollout"
        peers = (
            f"peering {self.peering} (standby until the leader's keep-alive lapses, "
            f"{self.lifetime} s)"
            if self.peering
            else "no standby"
        )
        return f"{shard}, {peers}"


def priority(started_ms: int) -> int:
    """The earlier a replica started, the higher its priority: the oldest live replica leads.

    >>> priority(1_000) > priority(2_000)
    True
    """
    if not 0 <= started_ms < _PRIORITY_BASE:
        raise PlacementError(f"start time {started_ms} ms is outside 0..{_PRIORITY_BASE}")
    return _PRIORITY_BASE - started_ms


def parse_shard(text: str) -> Shard:
    """``i/N`` with ``0 <= i < N``.

    >>> parse_shard("0/2")
    Shard(index=0, count=2)
    >>> parse_shard("2/2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    vela_progressive.core.placement.PlacementError: VP_SHARD=2/2: the index must be below ...
    """
    match = _SHARD.match(text.strip())
    if not match:
        raise PlacementError(
            f"{SHARD_ENV}={text}: write INDEX/COUNT, e.g. 0/3 for the first of three shards"
        )
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise PlacementError(f"{SHARD_ENV}={text}: the count must be at least 1")
    if index >= count:
        raise PlacementError(
            f"{SHARD_ENV}={text}: the index must be below the count "
            f"(0/{count} .. {count - 1}/{count})"
        )
    return Shard(index, count)


def placement_from_env(env: Mapping[str, str]) -> Placement:
    """The placement the environment asks for. A shard of a peering gets its own peering
    (``<name>-shard-<i>``): the replicas of one shard stand by for each other, not for another
    shard's."""
    shard_text = env.get(SHARD_ENV, "").strip()
    shard = parse_shard(shard_text) if shard_text else None
    if shard is not None and shard.count == 1:
        shard = None
    peering = env.get(PEERING_ENV, "").strip() or None
    if peering is not None:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,200}[a-z0-9])?", peering):
            raise PlacementError(
                f"{PEERING_ENV}={peering}: a peering is a Kubernetes object name "
                "(lowercase letters, digits, '-', '.')"
            )
        if shard is not None:
            peering = f"{peering}-shard-{shard.index}"
    lifetime_text = env.get(LIFETIME_ENV, "").strip()
    lifetime = DEFAULT_LIFETIME
    if lifetime_text:
        low, high = LIFETIME_RANGE
        if not lifetime_text.isdigit() or not low <= int(lifetime_text) <= high:
            raise PlacementError(
                f"{LIFETIME_ENV}={lifetime_text}: give whole seconds from {low} to {high} "
                f"(default {DEFAULT_LIFETIME})"
            )
        lifetime = int(lifetime_text)
    return Placement(shard, peering, lifetime)
