"""More than one controller replica on the real cluster: a standby that takes over a release
when the leader is killed, and shards that each drive only their own rollouts."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.release_kit import V1, V2, Release, eventually
from tests.support.cluster import REPO, Cluster
from tests.support.controller import Controller, controller_kubeconfig, rendered_objects
from vela_progressive.core.placement import Shard
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

#: The addon rendered with replicas=2 and shards=2 (a CUE tier golden): Kopf's peering CRD and
#: the controller's role for it, exactly as `vela addon enable` installs them.
STANDBY_ADDON = REPO / "tests" / "golden" / "cue" / "addon" / "standby-and-shards.yaml"
PEERING_CRD = "clusterkopfpeerings.kopf.dev"
PEERING_ROLE = "vela-progressive-controller-peering"
APPROVAL_STEPS = [{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}]
EXPECTED_NEW = {1: 2, 2: 5, 3: 10}
LIFETIME = 10
#: Kopf's words when a replica of a peering starts driving (every replica starts paused).
RESUMED = "Resuming operations after the pause"

Start = Callable[[dict[str, str]], Controller]


@pytest.fixture
def replicas(cluster: Cluster, controller: Controller) -> Iterator[Start]:
    """Start controller replicas with the given settings; the session's controller (which
    drives every rollout) is stopped meanwhile and started again afterwards."""
    access = rendered_objects(
        {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"},
        {PEERING_CRD, PEERING_ROLE},
        STANDBY_ADDON,
    )
    assert sorted(o["kind"] for o in access) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ]
    cluster.apply_yaml("\n---\n".join(yaml.safe_dump(o) for o in access))
    cluster.wait_established(f"crd/{PEERING_CRD}")
    controller.stop()
    started: list[Controller] = []

    def start(env: dict[str, str]) -> Controller:
        state = Path(tempfile.mkdtemp(prefix="vela-progressive-replica-"))
        replica = Controller(cluster, state, controller_kubeconfig(cluster, state), env)
        replica.start()
        started.append(replica)
        return replica

    try:
        yield start
    finally:
        for replica in started:
            replica.stop()
        cluster.kubectl(
            "delete", "clusterrolebinding,clusterrole", PEERING_ROLE, "--ignore-not-found"
        )
        controller.start()


async def _peers(kube: Kube, peering: str) -> dict[str, Any]:
    obj = await kube.get("kopf.dev/v1", "ClusterKopfPeering", peering)
    return dict((obj or {}).get("status") or {})


async def test_a_standby_takes_over_a_release_when_the_leader_is_killed(
    replicas: Start, kube: Kube, namespace: str, record_property: Callable[[str, Any], None]
) -> None:
    peering = f"vp-test-{uuid.uuid4().hex[:8]}"
    env = {"VP_PEERING": peering, "VP_PEERING_LIFETIME": str(LIFETIME)}
    leader = replicas(env)
    standby = replicas(env)

    async def both_announced() -> dict[str, Any] | None:
        peers = await _peers(kube, peering)
        return peers if len(peers) == 2 else None

    peers = await eventually(both_announced, 30, "both replicas in the peering")
    priorities = sorted((p["priority"] for p in peers.values()), reverse=True)
    assert priorities[0] > priorities[1], peers

    rel = Release(kube, namespace, "Deployment")
    await rel.create(10, APPROVAL_STEPS, releaseMode="batch")
    async with rel.sampling(V2):
        await rel.set_image(V2, "app-v2")
        await rel.wait_step(1)
        # Both start paused by the peering; the older resumed, the younger stood by since
        assert leader.logged(RESUMED), leader.tail(20)
        assert not standby.logged(RESUMED), standby.tail(20)
        leader.kill()
        killed = time.monotonic()
        await rel.approve(1)
        await rel.wait_step(2, within=LIFETIME + 60)
        takeover = time.monotonic() - killed
        record_property("takeover_seconds", round(takeover, 1))
        print(f"takeover: step 2 reached {takeover:.1f} s after the leader was killed")
        await rel.approve(2)
        status = await rel.wait_phase("Healthy")
    waits = [e["step"] for e in status["timeline"] if e["state"] == "WaitingApproval"]
    assert waits == [1, 2], f"a step was repeated or skipped: {status['timeline']}"
    rel.assert_never_above_plan(EXPECTED_NEW)
    await rel.assert_consistent(V2, 10)
    assert standby.logged(RESUMED), standby.tail(20)


async def _released(rel: Release, revision: str) -> None:
    async def done() -> bool:
        status = (await rel.cr()).get("status") or {}
        return status.get("phase") == "Healthy" and status.get("observedRevision") == revision

    await eventually(done, 90, f"{rel.name} released to {revision}")


async def test_each_shard_drives_only_its_own_rollouts(
    replicas: Start, kube: Kube, namespace: str
) -> None:
    names = [
        next(f"web-{i}" for i in range(100) if Shard(index, 2).owns(namespace, f"web-{i}"))
        for index in range(2)
    ]
    # Shard 0 starts last, so the hold webhook (local mode: each registers its own URL) is its:
    # in a cluster every pod serves it behind one Service.
    shard_1 = replicas({"VP_SHARD": "1/2"})
    replicas({"VP_SHARD": "0/2"})
    releases = [Release(kube, namespace, "Deployment", name) for name in names]
    for rel in releases:
        await rel.create(
            4, [{"replicas": "50%", "duration": 0}, {"replicas": "100%"}], releaseMode="batch"
        )
    # SIGKILL: a Kopf that exits gracefully empties the webhook configuration it registered,
    # shard 0's entries included (local mode only; in a cluster it is the addon's)
    shard_1.kill()
    for rel in releases:
        await rel.set_image(V2, "app-v2")
    await _released(releases[0], "app-v2")
    await releases[0].assert_consistent(V2, 4)
    # shard 1 is down: its workload was held by the webhook and nobody released it
    held = await releases[1].workload()
    assert held["spec"].get("paused") is True, held["spec"]
    assert await releases[1].count(V1) == 4
    assert await releases[1].count(V2) == 0
    untouched = (await releases[1].cr()).get("status") or {}
    assert untouched.get("observedRevision") != "app-v2", untouched
    shard_1.start()
    await _released(releases[1], "app-v2")
    await releases[1].assert_consistent(V2, 4)


async def test_a_standby_resumes_at_once_when_the_leader_stops_gracefully(
    replicas: Start, kube: Kube, record_property: Callable[[str, Any], None]
) -> None:
    peering = f"vp-test-{uuid.uuid4().hex[:8]}"
    # A long lifetime: only the leader's goodbye can explain a quick takeover.
    env = {"VP_PEERING": peering, "VP_PEERING_LIFETIME": "120"}
    leader = replicas(env)
    standby = replicas(env)

    async def leading() -> bool:
        return leader.logged(RESUMED)

    await eventually(leading, 30, "the older replica to lead")
    stopped = time.monotonic()
    leader.stop()  # SIGTERM: Kopf removes itself from the peering as it exits

    async def resumed() -> bool:
        return standby.logged(RESUMED)

    # well within the 120 s lifetime: only the leader's goodbye can explain it
    await eventually(resumed, 60, "the standby to resume")
    handover = time.monotonic() - stopped
    record_property("handover_seconds", round(handover, 1))
    print(f"handover: the standby resumed {handover:.1f} s after the leader was stopped")
