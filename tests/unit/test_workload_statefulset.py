"""StatefulSet, partition style: the adapter (pure compute + act) against the in-memory API
server. The test plays the StatefulSet controller where a step needs it; the real one is
exercised in tests/integration/test_release.py and test_workload_bugs.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.support.fake_kube import FakeKube

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.traffic import ObjectRef
from vela_progressive.core.workloads import (
    CONTROLLER_REVISION_HASH,
    ORIGINAL_ANNOTATION,
    hold_patch,
    registry,
)
from vela_progressive.core.workloads.deployment_partition import pod
from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.workloads import WorkloadAdapter, adapter_for

Obj = dict[str, Any]
NS, NAME = "data", "db"
STYLE = registry.style_for("StatefulSet", ReleaseMode.BATCH)
TEMPLATE = {"metadata": {"labels": {"app": NAME}}, "spec": {"containers": [{"image": "v2"}]}}


def world(replicas: int = 5, new: int = 0) -> FakeKube:
    obs = STYLE.example(NS, NAME, replicas, TEMPLATE, new, replicas - new)
    return FakeKube(obs.workload, *obs.objects, *obs.pods)


def adapter(kube: FakeKube) -> WorkloadAdapter:
    return adapter_for(kube, "StatefulSet", NS, NAME, ReleaseMode.BATCH)


def sts(kube: FakeKube) -> Obj:
    return kube.obj("apps/v1", "StatefulSet", NS, NAME)


def partition(kube: FakeKube) -> int:
    return int(sts(kube)["spec"]["updateStrategy"]["rollingUpdate"]["partition"])


def revisions(kube: FakeKube) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["metadata"]["labels"][CONTROLLER_REVISION_HASH]
        for p in kube.objects("Pod", NS)
    }


def seen(kube: FakeKube) -> None:
    """The StatefulSet controller has observed the latest spec (the API server moved the
    generation when the spec changed)."""
    obj = sts(kube)
    obj["status"]["observedGeneration"] = obj["metadata"]["generation"]
    kube.put(obj)


def set_pod(kube: FakeKube, ordinal: int, revision: str, ready: bool = True) -> None:
    """The StatefulSet controller (re)creates pod ``ordinal`` on ``revision``."""
    owner = sts(kube)
    labels = {"app": NAME, CONTROLLER_REVISION_HASH: revision}
    name = f"{NAME}-{ordinal}"
    kube.store.pop(ObjectRef("v1", "Pod", NS, name), None)
    created = pod(NS, name, labels, owner, ready=ready)
    created["metadata"]["uid"] = f"{name}-{revision}-{len(kube.writes)}-{kube.version}"
    kube.put(created)


async def test_hold_sets_the_partition_to_the_replicas_and_saves_the_strategy() -> None:
    kube = world(5)
    a = adapter(kube)
    view = await a.observe(None)
    assert not view.held
    assert await a.hold(view) is True
    assert partition(kube) == 5
    saved = json.loads(sts(kube)["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    assert saved["updateStrategy"]["rollingUpdate"]["partition"] == 0
    writes = len(kube.writes)
    assert await a.hold(await a.observe(None)) is False
    assert len(kube.writes) == writes


async def test_each_step_lowers_the_partition_to_the_steps_pods() -> None:
    kube = world(5, new=0)
    a = adapter(kube)
    await a.hold(await a.observe(None))
    for n in (1, 3, 5):
        view = await a.observe(None)
        await a.scale_to(view, n, surge_ready=False)
        assert partition(kube) == 5 - n
        writes = len(kube.writes)
        await a.scale_to(await a.observe(None), n, surge_ready=True)
        assert len(kube.writes) == writes, "idempotent"


async def test_abort_sets_the_partition_back_and_deletes_every_pod_not_on_stable() -> None:
    kube = world(5, new=2)
    a = adapter(kube)
    view = await a.observe(None)
    stable, update = view.stable_revision, view.update_revision
    set_pod(kube, 0, f"{NAME}-superseded")  # a pod of an earlier release below the partition
    view = await a.observe(stable)
    await a.abort(view)
    assert partition(kube) == 5
    assert sorted(revisions(kube)) == [f"{NAME}-1", f"{NAME}-2"]
    assert set(revisions(kube).values()) == {stable}
    assert update != stable


async def test_finalize_restores_the_strategy_then_deletes_stuck_superseded_pods() -> None:
    # Bug 5 of issue 9: v2's first pod cannot be scheduled, then a rollback to the stable
    # template: under OrderedReady the StatefulSet controller never replaces that pod.
    kube = world(3, new=1)
    a = adapter(kube)
    view = await a.observe(None)
    stable, v2 = view.stable_revision, view.update_revision
    assert stable is not None
    set_pod(kube, 2, v2, ready=False)
    rolled_back = sts(kube)
    rolled_back["status"]["updateRevision"] = stable  # the template is the stable one again
    kube.put(rolled_back)
    view = await a.observe(stable)
    assert view.update_revision == stable
    assert await a.finalize(view) is False
    assert partition(kube) == 0
    assert ORIGINAL_ANNOTATION not in (sts(kube)["metadata"].get("annotations") or {})
    assert f"{NAME}-2" in revisions(kube)
    seen(kube)
    assert await a.finalize(await a.observe(stable)) is False
    assert f"{NAME}-2" not in revisions(kube), "the pod that cannot start was deleted"
    set_pod(kube, 2, stable)  # the StatefulSet controller recreates it from the stable revision
    done = sts(kube)
    done["status"].update(
        updatedReplicas=3, readyReplicas=3, currentRevision=stable, updateRevision=stable
    )
    kube.put(done)
    assert await a.finalize(await a.observe(stable)) is True


async def test_a_newer_revision_deletes_superseded_pods_below_the_partition_or_not_ready() -> None:
    kube = world(5, new=2)  # v2 on ordinals 3 and 4
    a = adapter(kube)
    view = await a.observe(None)
    stable, v2 = view.stable_revision, view.update_revision
    set_pod(kube, 4, v2, ready=False)
    v3 = sts(kube)
    v3["status"]["updateRevision"] = f"{NAME}-v3"
    kube.put(v3)
    view = await a.observe(stable)
    await a.scale_to(view, 1, surge_ready=False)  # step 1 again: partition 4
    assert partition(kube) == 4
    left = revisions(kube)
    assert f"{NAME}-3" not in left, "below the partition: never updated by the controller"
    assert f"{NAME}-4" not in left, "not Ready: would block an OrderedReady StatefulSet"
    assert set(left.values()) == {stable}


async def test_pods_moved_unheld_ahead_of_the_step_come_back_on_the_current_revision() -> None:
    # Found by the chaos tier: at step 2 of v2 a newer revision reached the StatefulSet while
    # the webhook was down, and the StatefulSet controller moved ordinals 3 and 4 to it. The
    # release restarts at step 1 (partition 4): ordinal 3 is below the partition on the update
    # revision, where the StatefulSet controller would leave it for good and the step would
    # never see its count.
    kube = world(5, new=2)
    a = adapter(kube)
    view = await a.observe(None)
    stable, update = view.stable_revision, view.update_revision
    await a.scale_to(view, 1, surge_ready=False)
    assert partition(kube) == 4
    left = revisions(kube)
    assert f"{NAME}-3" not in left, "ahead of the step: deleted, comes back on currentRevision"
    assert left[f"{NAME}-4"] == update, "at the partition: the step's one new pod stays"
    assert [left[f"{NAME}-{i}"] for i in range(3)] == [stable] * 3


async def test_a_rollback_in_batches_recreates_no_pod_already_on_the_update_revision() -> None:
    # Rolled back to the stable template: updateRevision and currentRevision are the same
    # again, and the pods below the partition on it are exactly where they belong.
    kube = world(5, new=0)
    a = adapter(kube)
    view = await a.observe(None)
    await a.scale_to(view, 1, surge_ready=False)
    assert len(revisions(kube)) == 5, "no pod deleted"


async def test_a_pod_recreated_under_the_same_name_is_not_deleted() -> None:
    kube = world(3, new=1)
    a = adapter(kube)
    view = await a.observe(None)
    set_pod(kube, 2, view.update_revision)  # recreated since we read it: another uid
    with pytest.raises(KubeError) as err:
        await a.abort(view)
    assert err.value.conflict
    assert f"{NAME}-2" in revisions(kube)


async def test_a_scale_up_in_a_release_runs_no_more_new_pods_than_the_step_allows() -> None:
    # Found by the chaos tier: 3 replicas at step 1 (ordinals 1 and 2 on v2, partition 1),
    # scaled to 4. Unheld, the StatefulSet controller creates ordinal 3 on v2 at once: three
    # new pods where the step allows two.
    kube = world(3, new=2)
    a = adapter(kube)
    view = await a.observe(None)
    stable, update = view.stable_revision, view.update_revision
    assert stable is not None
    before = sts(kube)
    scaled = json.loads(json.dumps(before))
    scaled["spec"]["replicas"] = 4
    change = hold_patch("StatefulSet", before, scaled)
    assert change == {
        "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 4}}}
    }
    scaled["spec"]["updateStrategy"] = change["spec"]["updateStrategy"]
    kube.put(scaled)
    seen(kube)
    set_pod(kube, 3, stable)  # the new ordinal is below the partition: the current revision

    def new_pods() -> int:
        return sum(1 for r in revisions(kube).values() if r == update)

    await a.scale_to(await a.observe(stable), 2, surge_ready=False)
    assert partition(kube) == 4, "not lowered while ordinal 1 is ahead of the step"
    assert f"{NAME}-1" not in revisions(kube), "ahead of the step: deleted"
    assert new_pods() == 1
    set_pod(kube, 1, stable)  # the StatefulSet controller recreates it on its current revision
    await a.scale_to(await a.observe(stable), 2, surge_ready=False)
    assert partition(kube) == 2, "ordinals 2 and 3 run the new revision"
    assert len(revisions(kube)) == 4


def test_a_scale_up_outside_a_release_or_at_its_last_step_is_not_held() -> None:
    plain = {"metadata": {}, "spec": {"replicas": 3}}
    assert hold_patch("StatefulSet", plain, {**plain, "spec": {"replicas": 4}}) is None
    mid: Obj = {
        "metadata": {"annotations": {ORIGINAL_ANNOTATION: "{}"}},
        "spec": {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 0}}},
    }
    assert hold_patch("StatefulSet", mid, {**mid, "spec": {**mid["spec"], "replicas": 4}}) is None
    held = {**mid, "spec": {**mid["spec"], "updateStrategy": {"rollingUpdate": {"partition": 3}}}}
    scaled = {**held, "spec": {**held["spec"], "replicas": 5}}
    assert hold_patch("StatefulSet.apps.kruise.io", held, scaled) == {
        "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 5}}}
    }, "held with no new pod yet: the new ordinals stay on the current revision too"
