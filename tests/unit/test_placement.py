"""Sharding and the active/standby order of controller replicas (core.placement)."""

from __future__ import annotations

from collections import Counter

import pytest

from vela_progressive.core.placement import (
    DEFAULT_LIFETIME,
    Placement,
    PlacementError,
    Shard,
    parse_shard,
    placement_from_env,
    priority,
)

NAMES = [(f"team-{i % 37}", f"app-{i}") for i in range(12_000)]


def test_every_rollout_belongs_to_exactly_one_shard() -> None:
    shards = [Shard(i, 3) for i in range(3)]
    for namespace, name in NAMES[:3_000]:
        assert sum(s.owns(namespace, name) for s in shards) == 1


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_shards_get_an_even_share_of_rollouts(count: int) -> None:
    owners = Counter(
        next(i for i in range(count) if Shard(i, count).owns(ns, name)) for ns, name in NAMES
    )
    share = len(NAMES) / count
    assert set(owners) == set(range(count))
    assert all(abs(n - share) < 0.06 * share for n in owners.values()), owners


def test_a_rollouts_shard_is_the_same_in_every_process() -> None:
    # sha256 of "team-a/web", not Python's per-process string hash: a fixed answer
    assert [Shard(i, 4).owns("team-a", "web") for i in range(4)] == [False, False, False, True]


def test_without_shards_a_replica_drives_every_rollout() -> None:
    assert Placement().owns("any", "thing")
    assert placement_from_env({"VP_SHARD": "0/1"}).shard is None


def test_the_oldest_replica_has_the_highest_priority() -> None:
    assert priority(1_764_000_000_000) > priority(1_764_000_000_001)
    args = Placement(peering="vela-progressive").kopf_args(1_764_000_000_000)
    assert args == ["--peering", "vela-progressive", "--priority", str(priority(1_764_000_000_000))]


def test_a_replica_without_peering_runs_standalone() -> None:
    assert placement_from_env({}).kopf_args(0) == ["--standalone"]


def test_each_shard_stands_by_in_a_peering_of_its_own() -> None:
    placement = placement_from_env(
        {"VP_SHARD": "2/3", "VP_PEERING": "vela-progressive", "VP_PEERING_LIFETIME": "30"}
    )
    assert placement.shard == Shard(2, 3)
    assert placement.peering == "vela-progressive-shard-2"
    assert placement.lifetime == 30
    assert placement_from_env({"VP_PEERING": "p"}).lifetime == DEFAULT_LIFETIME


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"VP_SHARD": "3"}, "VP_SHARD=3: write INDEX/COUNT, e.g. 0/3"),
        ({"VP_SHARD": "3/3"}, "VP_SHARD=3/3: the index must be below the count (0/3 .. 2/3)"),
        ({"VP_SHARD": "0/0"}, "VP_SHARD=0/0: the count must be at least 1"),
        ({"VP_SHARD": "-1/2"}, "write INDEX/COUNT"),
        ({"VP_PEERING": "Vela_Progressive"}, "VP_PEERING=Vela_Progressive: a peering is a"),
        ({"VP_PEERING_LIFETIME": "5"}, "VP_PEERING_LIFETIME=5: give whole seconds from 10 to"),
        ({"VP_PEERING_LIFETIME": "1m"}, "VP_PEERING_LIFETIME=1m: give whole seconds"),
    ],
)
def test_a_bad_setting_names_the_variable_and_the_fix(env: dict[str, str], says: str) -> None:
    with pytest.raises(PlacementError) as failure:
        placement_from_env(env)
    assert says in str(failure.value)


def test_a_shard_reads_back_as_written() -> None:
    assert str(parse_shard(" 1/4 ")) == "1/4"
