"""hack/bench/peer_release.py: one description, our strategy and Kruise's Rollout."""

from __future__ import annotations

import pytest
from hack.bench import peer_release

from vela_progressive.core.validation.properties import validate_properties


def test_partition_for_both_controllers() -> None:
    release = peer_release.partition(namespace="b")
    assert release.plan == [2, 5, 8, 10]
    assert peer_release.ours(release) == {
        "canary": {
            "steps": [
                {"replicas": "20%", "duration": 0},
                {"replicas": "50%", "duration": 0},
                {"replicas": "80%", "duration": 0},
                {"replicas": "100%"},
            ]
        },
        "releaseMode": "batch",
    }
    kruise = peer_release.kruise(release)
    assert kruise["metadata"] == {"name": "web", "namespace": "b"}
    assert kruise["spec"]["strategy"]["canary"] == {
        "enableExtraWorkloadForCanary": False,
        "steps": [{"replicas": f"{p}%", "pause": {"duration": 0}} for p in (20, 50, 80, 100)],
    }


def test_canary_behind_nginx_for_both_controllers() -> None:
    release = peer_release.canary_nginx()
    ours = peer_release.ours(release)
    assert ours["releaseMode"] == "canary"
    assert ours["canary"]["trafficRoutings"] == [
        {"type": "ingress", "ingressName": "web", "gracePeriodSeconds": 1}
    ]
    assert [s.get("weight") for s in ours["canary"]["steps"]] == [20, 50, 100]
    canary = peer_release.kruise(release)["spec"]["strategy"]["canary"]
    assert canary["enableExtraWorkloadForCanary"] is True
    assert [s["traffic"] for s in canary["steps"]] == ["20%", "50%", "100%"]
    assert canary["trafficRoutings"][0]["ingress"] == {"name": "web", "classType": "nginx"}


def test_our_side_is_valid_trait_properties() -> None:
    for release in (peer_release.partition(), peer_release.canary_nginx()):
        validate_properties(peer_release.ours(release), component="web", workload_kind="Deployment")


def test_a_release_must_end_at_100_percent_and_canary_needs_a_route() -> None:
    with pytest.raises(ValueError, match="last step"):
        peer_release.Release("web", "b", steps=(20, 50))
    with pytest.raises(ValueError, match="canary style"):
        peer_release.Release("web", "b", steps=(50, 100), weights=(50, 100))
