"""The controller releasing a real DaemonSet (10 kwok nodes, one pod each), step by step.

Held, the DaemonSet's update strategy is OnDelete; each step deletes old pods (within the user's
maxUnavailable) and the DaemonSet controller recreates them on the new template
(docs/workloads/daemonset.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator

import pytest

from tests.integration.release_kit import (
    CR_API,
    V1,
    V2,
    V3,
    Release,
    eventually,
    rollout,
    workload,
)
from tests.support.controller import Controller
from vela_progressive.core.model import API_GROUP, KIND
from vela_progressive.core.release import ABORT_ANNOTATION
from vela_progressive.core.workloads import APP_REVISION_LABEL
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

Obj = dict[str, object]
NODES = 10
STEPS = [{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}]
EXPECTED_NEW = {1: 2, 2: 5, 3: 10}
#: The user's own strategy: 2 of the 10 nodes may be without a Ready pod at a time.
STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "20%", "maxSurge": 0}}


async def create(rel: Release, strategy: dict[str, object] | None = None, **extra: object) -> None:
    """The DaemonSet (every pod on v1) and its rollout, labelled as KubeVela labels it."""
    ds = workload("DaemonSet", rel.name, rel.ns, NODES, V1)
    ds["spec"]["updateStrategy"] = copy.deepcopy(strategy or STRATEGY)
    ds["metadata"]["labels"][APP_REVISION_LABEL] = "app-v1"
    await rel.kube.create(ds)
    await rel.kube.create(rollout(rel.name, rel.ns, "DaemonSet", STEPS, **extra))
    await rel.wait_phase("Healthy")
    await rel.wait_pods(V1, NODES)


async def kubevela_applies(rel: Release, image: str, revision: str) -> None:
    """What KubeVela does on an Application revision: the rollout's revision first (PreDispatch),
    then the workload's template and its ``app.oam.dev/appRevision`` label."""
    await rel.kube.patch(CR_API, KIND, rel.name, rel.ns, {"spec": {"revision": {"name": revision}}})
    await rel.kube.patch(
        "apps/v1",
        "DaemonSet",
        rel.name,
        rel.ns,
        {
            "metadata": {"labels": {APP_REVISION_LABEL: revision}},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}},
        },
        patch_type="strategic",
    )


@contextlib.asynccontextmanager
async def least_ready(rel: Release) -> AsyncIterator[list[int]]:
    """Sample how many nodes have a Ready pod, the whole time the body runs."""
    samples: list[int] = []
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            samples.append(await rel.count(V1, ready_only=True) + await rel.count(V2, True))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    try:
        yield samples
    finally:
        stop.set()
        await task


async def assert_handed_back(rel: Release, image: str, strategy: dict[str, object]) -> None:
    """Every pod Ready on ``image``, the user's strategy exactly, nothing of ours left."""
    await rel.wait_pods(image, NODES)
    ds = await rel.workload()
    assert ds["spec"]["updateStrategy"] == strategy
    annotations = ds["metadata"].get("annotations") or {}
    assert not any(k.startswith(API_GROUP) for k in annotations), annotations
    assert len(await rel.pods()) == NODES
    assert await rel.count(image) == NODES


async def test_each_pause_runs_exactly_the_planned_pods_within_max_unavailable(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "DaemonSet")
    await create(rel)
    async with rel.sampling(V2), least_ready(rel) as ready:
        await kubevela_applies(rel, V2, "app-v2")
        held = await rel.workload()
        assert held["spec"]["updateStrategy"] == {"type": "OnDelete"}, "held by the webhook"
        for step in (1, 2):
            status = await rel.wait_step(step)
            assert await rel.count(V2, ready_only=True) == EXPECTED_NEW[step]
            assert await rel.count(V1, ready_only=True) == NODES - EXPECTED_NEW[step]
            assert status["plan"][step - 1]["newPods"] == EXPECTED_NEW[step]
            await rel.approve(step)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    # maxUnavailable 20% of 10: never more than 2 nodes without a Ready pod (the hand-back's
    # rolling update is the DaemonSet controller's, with the same limit).
    assert min(ready) >= NODES - 2, f"{NODES - min(ready)} nodes without a Ready pod at once"
    await assert_handed_back(rel, V2, STRATEGY)


async def test_abort_puts_every_pod_back_and_only_a_rollback_ends_it(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "DaemonSet")
    await create(rel)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.approve_until(2)
    await rel.annotate(ABORT_ANNOTATION, "app-v2")
    await rel.wait_phase("Aborted")
    await rel.wait_pods(V1, NODES)
    assert await rel.count(V2) == 0
    ds = await rel.workload()
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}, "still held"
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == V1
    # KubeVela applies the same revision again (its periodic re-apply): the new template is back
    # in the spec, held: no pod moves and the release stays aborted.
    await kubevela_applies(rel, V2, "app-v2")
    await asyncio.sleep(3)
    assert (await rel.cr())["status"]["phase"] == "Aborted"
    assert await rel.count(V2) == 0
    # Roll back: KubeVela applies the stable template as a new revision; nothing moves in steps.
    await kubevela_applies(rel, V1, "app-v3")
    status = await rel.wait_phase("Healthy")
    assert "rolled back" in status["message"]
    await assert_handed_back(rel, V1, STRATEGY)


async def test_a_fast_rollback_mid_release_hands_back_and_the_daemonset_rolls_back(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "DaemonSet")
    await create(rel)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.approve_until(2)
    await kubevela_applies(rel, V1, "app-v3")
    status = await rel.wait_phase("Healthy")
    assert "rolled back" in status["message"]
    assert max(entry["step"] for entry in status["timeline"]) == 2, "a step ran after step 2"
    await assert_handed_back(rel, V1, STRATEGY)


async def test_a_daemonset_of_its_own_on_delete_is_rolled_back_by_the_hand_back(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    # OnDelete: its own controller would never replace a pod, so the hand-back deletes them.
    rel = Release(kube, namespace, "DaemonSet")
    await create(rel, {"type": "OnDelete"})
    await kubevela_applies(rel, V2, "app-v2")
    await rel.approve_until(2)
    assert await rel.count(V2, ready_only=True) == 5
    await kubevela_applies(rel, V1, "app-v3")
    await rel.wait_phase("Healthy")
    await assert_handed_back(rel, V1, {"type": "OnDelete"})


async def test_a_new_revision_mid_release_replaces_the_superseded_pods_first(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "DaemonSet")
    await create(rel)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.approve_until(2)
    async with rel.sampling(V3):
        await kubevela_applies(rel, V3, "app-v3")
        await rel.wait_step(1)
        # A deleted v2 pod can only come back on v3: v2's pods are the first replaced.
        assert await rel.count(V3, ready_only=True) == 2
        assert await rel.count(V2) == 3
        await rel.approve(1)
        await rel.wait_step(2)
        assert await rel.count(V3, ready_only=True) == 5
        assert await rel.count(V2) == 0
        assert await rel.count(V1) == 5
        await rel.approve(2)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    await assert_handed_back(rel, V3, STRATEGY)


async def test_deleting_the_rollout_mid_release_hands_the_daemonset_back(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "DaemonSet")
    await create(rel)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.wait_step(1)
    await kube.delete(CR_API, KIND, rel.name, namespace)

    async def gone() -> bool:
        return await kube.get(CR_API, KIND, rel.name, namespace) is None

    await eventually(gone, 90, "the rollout to be deleted (finalizer released)")
    await assert_handed_back(rel, V2, STRATEGY)


async def test_a_controller_killed_mid_step_resumes_without_repeating_or_skipping(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "DaemonSet")
    await create(rel)
    async with rel.sampling(V2):
        await kubevela_applies(rel, V2, "app-v2")
        await rel.wait_step(1)
        await rel.approve(1)  # the controller dies while step 2 deletes its pods
        await asyncio.sleep(0.3)
        controller.kill()
        controller.start()
        status = await rel.wait_step(2)
        assert await rel.count(V2, ready_only=True) == 5
        steps = [e["step"] for e in status["timeline"] if e["state"] == "WaitingApproval"]
        assert steps == [1, 2], f"a step was repeated or skipped: {status['timeline']}"
        await rel.approve(2)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    await assert_handed_back(rel, V2, STRATEGY)
