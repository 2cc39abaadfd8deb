"""Deployment, partition style: the adapter (pure compute + act) against the in-memory API server.

The test plays the ReplicaSet controller (:func:`sync_pods`); the real one is exercised in
tests/integration/test_release.py and test_workload_bugs.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from tests.support.fake_kube import FakeKube

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.traffic import ObjectRef
from vela_progressive.core.workloads import ORIGINAL_ANNOTATION, POD_TEMPLATE_HASH, registry
from vela_progressive.core.workloads.common import Observed
from vela_progressive.core.workloads.deployment_partition import deployment, pod, replicaset
from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.workloads import WorkloadAdapter, adapter_for

Obj = dict[str, Any]
NS, NAME = "shop", "web"
STYLE = registry.style_for("Deployment", ReleaseMode.BATCH)


def template(image: str) -> Obj:
    return {
        "metadata": {"labels": {"app": NAME}},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


def world(replicas: int = 10, new: int = 0, old: int | None = None) -> FakeKube:
    obs = STYLE.example(NS, NAME, replicas, template("v2"), new, replicas if old is None else old)
    return FakeKube(obs.workload, *obs.objects, *obs.pods)


def adapter(kube: FakeKube) -> WorkloadAdapter:
    return adapter_for(kube, "Deployment", NS, NAME, ReleaseMode.BATCH)


def sync_pods(kube: FakeKube) -> None:
    """The ReplicaSet controller: each ReplicaSet runs exactly its replicas (Ready)."""
    for rs in kube.objects("ReplicaSet", NS):
        name = rs["metadata"]["name"]
        mine = [p for p in kube.objects("Pod", NS) if p["metadata"]["name"].startswith(name)]
        for extra in mine[rs["spec"]["replicas"] :]:
            del kube.store[ObjectRef.of(extra)]
        for n in range(len(mine), rs["spec"]["replicas"]):
            labels = rs["spec"]["template"]["metadata"]["labels"]
            kube.put(pod(NS, f"{name}-{n}", labels, rs))


def replicas_by_hash(kube: FakeKube) -> dict[str, int]:
    return {
        rs["metadata"]["labels"][POD_TEMPLATE_HASH]: rs["spec"]["replicas"]
        for rs in kube.objects("ReplicaSet", NS)
    }


async def test_hold_pauses_saves_the_strategy_and_holding_again_writes_nothing() -> None:
    kube = world()
    a = adapter(kube)
    view = await a.observe(None)
    assert not view.held
    assert await a.hold(view) is True
    deploy = kube.obj("apps/v1", "Deployment", NS, NAME)
    assert deploy["spec"]["paused"] is True
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    saved = json.loads(deploy["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    assert saved["strategy"]["type"] == "RollingUpdate"
    writes = len(kube.writes)
    view = await a.observe(None)
    assert await a.hold(view) is False
    assert len(kube.writes) == writes


async def test_each_step_adds_new_pods_first_and_takes_stable_pods_down_once_they_are_ready() -> (
    None
):
    kube = world(10)
    a = adapter(kube)
    view = await a.observe(None)
    stable = view.stable_revision
    assert stable is not None
    previous = 0
    for n in (2, 5, 10):
        view = await a.observe(stable)
        await a.scale_to(view, n, surge_ready=False)
        counts = replicas_by_hash(kube)
        assert counts[view.update_revision] == n
        assert counts[stable] == 10 - previous, "stable pods stay until the new ones are Ready"
        sync_pods(kube)
        view = await a.observe(stable)
        assert (view.new_pods, view.new_ready) == (n, n)
        await a.scale_to(view, n, surge_ready=True)
        assert replicas_by_hash(kube)[stable] == 10 - n
        writes = len(kube.writes)
        await a.scale_to(await a.observe(stable), n, surge_ready=True)
        assert len(kube.writes) == writes, "scale_to is idempotent"
        previous = n


async def test_a_scale_is_made_though_the_replicasets_status_changed_since_it_was_read() -> None:
    # The ReplicaSet controller writes a ReplicaSet's status as each of its pods becomes Ready:
    # the step's own pods, between the read that sees them Ready and the scale that follows.
    kube = world(10)
    a = adapter(kube)
    stable = (await a.observe(None)).stable_revision
    await a.scale_to(await a.observe(stable), 2, surge_ready=False)
    sync_pods(kube)
    view = await a.observe(stable)
    for rs in kube.objects("ReplicaSet", NS):
        kube.put({**rs, "status": {"replicas": rs["spec"]["replicas"], "readyReplicas": 2}})
    await a.scale_to(view, 2, surge_ready=True)
    assert replicas_by_hash(kube)[stable] == 8
    # A change of its spec since the read is a conflict: the scale is computed again.
    view = await a.observe(stable)
    rs = next(r for r in kube.objects("ReplicaSet", NS) if r["spec"]["replicas"] == 2)
    kube.put({**rs, "spec": {**rs["spec"], "replicas": 3}})  # the new one, scaled by someone
    with pytest.raises(KubeError) as err:
        await a.scale_to(view, 5, surge_ready=False)
    assert err.value.conflict, err.value
    assert replicas_by_hash(kube)[view.update_revision] == 3, "nothing written over it"


def pods_of(kube: FakeKube, revision: str) -> list[Obj]:
    return [
        p for p in kube.objects("Pod", NS) if p["metadata"]["labels"][POD_TEMPLATE_HASH] == revision
    ]


async def test_an_old_pod_its_replicaset_no_longer_wants_counts_as_gone_at_once() -> None:
    kube = world(10)
    a = adapter(kube)
    stable = (await a.observe(None)).stable_revision
    assert stable is not None
    await a.scale_to(await a.observe(stable), 2, surge_ready=False)
    sync_pods(kube)
    view = await a.observe(stable)
    assert (view.new_ready, view.old_pods) == (2, 10), "Ready new pods take no old pod down"
    await a.scale_to(view, 2, surge_ready=True)
    # The ReplicaSet controller has not deleted the two old pods yet: they still run, but the
    # stable ReplicaSet wants 8, so the step's count is reached without waiting for it.
    assert len(pods_of(kube, stable)) == 10
    assert (await a.observe(stable)).old_pods == 8
    sync_pods(kube)
    # Fewer live old pods than wanted (one deleted, not replaced yet) still count as fewer.
    del kube.store[ObjectRef.of(pods_of(kube, stable)[0])]
    assert (await a.observe(stable)).old_pods == 7


def test_a_held_deployment_is_judged_before_its_controller_has_observed_the_hold() -> None:
    held = STYLE.example(NS, NAME, 4, template("v2"), 1, 4)
    assert held.workload["spec"]["paused"]
    behind = copy.deepcopy(held.workload)
    behind["metadata"]["generation"] = 2  # the hold's patch; observedGeneration still 1
    assert STYLE.view(Observed(behind, held.objects, held.pods), None).settled
    handed_back = copy.deepcopy(behind)
    handed_back["spec"]["paused"] = False  # its controller acts now: wait until it observed it
    assert not STYLE.view(Observed(handed_back, held.objects, held.pods), None).settled


def test_a_template_change_the_webhook_paused_is_judged_before_its_controller_observes_it() -> None:
    changed = STYLE.example(NS, NAME, 4, template("v2"), 0, 4)
    paused = copy.deepcopy(changed.workload)
    paused["spec"]["paused"] = True  # the hold webhook's patch: the strategy is still its own
    paused["metadata"]["generation"] = 2  # observedGeneration still 1
    view = STYLE.view(Observed(paused, changed.objects, changed.pods), None)
    assert view.settled
    assert (view.new_pods, view.old_pods, view.replicas) == (0, 4, 4)
    # Scaled as well: the controller has a ReplicaSet to scale once it observes that.
    scaled = copy.deepcopy(paused)
    scaled["spec"]["replicas"] = 6
    assert not STYLE.view(Observed(scaled, changed.objects, changed.pods), None).settled
    # Not paused: it rolls the template as soon as it observes it.
    rolling = copy.deepcopy(paused)
    rolling["spec"]["paused"] = False
    assert not STYLE.view(Observed(rolling, changed.objects, changed.pods), None).settled


async def test_abort_puts_every_pod_back_on_stable_and_keeps_the_hold() -> None:
    kube = world(10, new=5, old=5)
    a = adapter(kube)
    view = await a.observe(None)
    await a.abort(view)
    assert replicas_by_hash(kube) == {view.stable_revision: 10, view.update_revision: 0}
    assert kube.obj("apps/v1", "Deployment", NS, NAME)["spec"]["paused"] is True


async def test_finalize_restores_the_strategy_then_waits_for_the_deployment_controller() -> None:
    kube = world(4, new=4, old=0)
    a = adapter(kube)
    view = await a.observe(None)
    assert await a.finalize(view) is False
    deploy = kube.obj("apps/v1", "Deployment", NS, NAME)
    assert deploy["spec"]["paused"] is False
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    assert ORIGINAL_ANNOTATION not in (deploy["metadata"].get("annotations") or {})
    view = await a.observe(None)
    assert await a.finalize(view) is False  # its controller has not rolled yet
    deploy["status"] = {
        "observedGeneration": deploy["metadata"]["generation"],
        "updatedReplicas": 4,
        "availableReplicas": 4,
    }
    kube.put(deploy)
    view = await a.observe(None)
    assert view.old_pods == 0
    assert await a.finalize(view) is True


async def test_a_newer_revision_removes_the_superseded_pods_at_once_and_keeps_capacity() -> None:
    kube = world(10, new=2, old=8)  # v2 at step 1: 2 Ready pods, stable at 8
    a = adapter(kube)
    stable = (await a.observe(None)).stable_revision
    v2 = (await a.observe(stable)).update_revision
    deploy = kube.obj("apps/v1", "Deployment", NS, NAME)
    deploy["spec"]["template"] = template("v3")
    kube.put(deploy)
    view = await a.observe(stable)
    assert view.update_revision not in (v2, stable)
    await a.scale_to(view, 2, surge_ready=False)  # step 1 again, v3 not Ready yet
    counts = replicas_by_hash(kube)
    assert counts[v2] == 0, "the superseded revision's pods go at once"
    assert counts[stable] == 10, "the stable side takes their place"
    assert counts[view.update_revision] == 2
    sync_pods(kube)
    view = await a.observe(stable)
    await a.scale_to(view, 2, surge_ready=True)
    assert replicas_by_hash(kube) == {stable: 8, v2: 0, view.update_revision: 2}


async def test_a_write_computed_from_a_stale_read_is_refused() -> None:
    kube = world()
    a = adapter(kube)
    view = await a.observe(None)
    someone = kube.obj("apps/v1", "Deployment", NS, NAME)
    someone["metadata"].setdefault("labels", {})["touched"] = "yes"
    kube.put(someone)  # a new resourceVersion after our read
    with pytest.raises(KubeError) as err:
        await a.hold(view)
    assert err.value.conflict
    assert kube.obj("apps/v1", "Deployment", NS, NAME)["spec"].get("paused") is False


def test_the_style_is_pure_and_computes_the_same_writes_twice() -> None:
    obs = STYLE.example(NS, NAME, 10, template("v2"), 2, 8)
    before = copy.deepcopy(obs)
    view = STYLE.view(obs, None)
    first = STYLE.scale_to(obs, view, 5, surge_ready=False)
    assert first == STYLE.scale_to(obs, view, 5, surge_ready=False)
    assert obs == before
    assert [w.verb for w in first] == ["patch"]
    assert first[0].body == {"spec": {"replicas": 5}}
    new_rs = obs.named("ReplicaSet", first[0].name)
    assert new_rs is not None
    assert first[0].ops == (
        {"op": "test", "path": "/metadata/uid", "value": new_rs["metadata"]["uid"]},
        {"op": "test", "path": "/metadata/generation", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
    )


@pytest.mark.parametrize("mode", [ReleaseMode.BATCH, ReleaseMode.CANARY])
def test_a_replicaset_scaled_to_zero_is_history_not_a_stable_revision(mode: ReleaseMode) -> None:
    # After a release: the old ReplicaSet is kept at zero (revisionHistoryLimit). Pods of the
    # current one going missing (deleted, evicted, the namespace being emptied) start nothing.
    style = registry.style_for("Deployment", mode)
    deploy = deployment(NS, NAME, 10, template("v2"), paused=False)
    old = replicaset(deploy, template("v1"), 0, 1)
    new = replicaset(deploy, template("v2"), 10, 2)
    labels = new["spec"]["template"]["metadata"]["labels"]
    pods = tuple(pod(NS, f"{new['metadata']['name']}-{n}", labels, new) for n in range(7))
    view = style.view(Observed(deploy, (old, new), pods), None)
    assert view.stable_revision is None
    assert (view.new_pods, view.old_pods) == (7, 0)
    # the same ReplicaSet still wanting pods is the revision a release protects
    old["spec"]["replicas"] = 3
    assert style.view(Observed(deploy, (old, new), pods), None).stable_revision is not None
