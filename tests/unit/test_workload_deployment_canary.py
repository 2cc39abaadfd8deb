"""Deployment, canary style: the adapter (pure compute + act) against the in-memory API server.

The test plays the Deployment controller where a step needs pods (:func:`run_canary`); the real
one is exercised in tests/integration/test_release.py and test_workload_bugs.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.fake_kube import FakeKube

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.traffic import ObjectRef
from vela_progressive.core.workloads import CANARY_OF_LABEL, registry, template_hash
from vela_progressive.core.workloads.deployment_canary import TEMPLATE_HASH_LABEL
from vela_progressive.core.workloads.deployment_partition import pod
from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.workloads import WorkloadAdapter, adapter_for

Obj = dict[str, Any]
NS, NAME, CANARY = "shop", "web", "web-canary"
STYLE = registry.style_for("Deployment", ReleaseMode.CANARY)
OWNER = {
    "apiVersion": "rollout.vela-progressive.io/v1alpha1",
    "kind": "ProgressiveRollout",
    "name": NAME,
    "uid": "rollout-uid",
    "controller": True,
    "blockOwnerDeletion": False,
}


def template(image: str, **extra: Any) -> Obj:
    return {
        "metadata": {"labels": {"app": NAME}},
        "spec": {"containers": [{"name": "main", "image": image, **extra}]},
    }


def world(replicas: int = 10, new: int = 0, tpl: Obj | None = None) -> FakeKube:
    obs = STYLE.example(NS, NAME, replicas, tpl or template("v2"), new, replicas)
    return FakeKube(obs.workload, *obs.objects, *obs.pods)


def adapter(kube: FakeKube) -> WorkloadAdapter:
    return adapter_for(kube, "Deployment", NS, NAME, ReleaseMode.CANARY, OWNER)


def set_template(kube: FakeKube, tpl: Obj) -> None:
    deploy = kube.obj("apps/v1", "Deployment", NS, NAME)
    deploy["spec"]["template"] = tpl
    kube.put(deploy)


def canary(kube: FakeKube) -> Obj:
    return kube.obj("apps/v1", "Deployment", NS, CANARY)


def run_canary(kube: FakeKube) -> None:
    """The Deployment controller of the canary, Recreate strategy: its pods are exactly its
    replicas on its current template."""
    dep = canary(kube)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for p in kube.objects("Pod", NS):
        if p["metadata"]["labels"].get(CANARY_OF_LABEL):
            del kube.store[ObjectRef.of(p)]
    for n in range(dep["spec"]["replicas"]):
        kube.put(pod(NS, f"{CANARY}-{labels[TEMPLATE_HASH_LABEL]}-{n}", labels, dep))


def without_ours(tpl: Obj) -> Obj:
    labels = {
        k: v
        for k, v in tpl["metadata"]["labels"].items()
        if k not in (CANARY_OF_LABEL, TEMPLATE_HASH_LABEL)
    }
    return {**tpl, "metadata": {**tpl["metadata"], "labels": labels}}


async def test_hold_pauses_the_deployment_once() -> None:
    kube = world()
    a = adapter(kube)
    view = await a.observe(None)
    assert await a.hold(view) is True
    assert kube.obj("apps/v1", "Deployment", NS, NAME)["spec"]["paused"] is True
    writes = len(kube.writes)
    assert await a.hold(await a.observe(None)) is False
    assert len(kube.writes) == writes


async def test_each_step_scales_the_canary_which_runs_the_workloads_template() -> None:
    kube = world(10)
    a = adapter(kube)
    stable = (await a.observe(None)).stable_revision
    for n in (2, 5, 10):
        view = await a.observe(stable)
        await a.scale_to(view, n, surge_ready=False)
        dep = canary(kube)
        assert dep["spec"]["replicas"] == n
        assert dep["spec"]["strategy"] == {"type": "Recreate"}
        assert dep["metadata"]["ownerReferences"] == [OWNER]
        assert without_ours(dep["spec"]["template"]) == template("v2")
        run_canary(kube)
        view = await a.observe(stable)
        assert (view.new_pods, view.new_ready, view.old_pods) == (n, n, 10)
        writes = len(kube.writes)
        await a.scale_to(view, n, surge_ready=True)
        assert len(kube.writes) == writes, "the stable Deployment keeps its pods; idempotent"
    assert a.canary_selector(view) == {
        CANARY_OF_LABEL: NAME,
        TEMPLATE_HASH_LABEL: template_hash(template("v2")),
    }


async def test_a_field_a_newer_revision_removed_is_removed_from_the_canary() -> None:
    # v2 asks for more CPU than any node has; v3 drops the request (bug 3 of issue 9).
    huge = template("v2", resources={"requests": {"cpu": "1000"}})
    kube = world(4, tpl=huge)
    a = adapter(kube)
    stable = (await a.observe(None)).stable_revision
    await a.scale_to(await a.observe(stable), 1, surge_ready=False)
    assert without_ours(canary(kube)["spec"]["template"]) == huge
    set_template(kube, template("v3"))
    view = await a.observe(stable)
    await a.scale_to(view, 1, surge_ready=False)
    tpl = canary(kube)["spec"]["template"]
    assert without_ours(tpl) == template("v3"), "the canary's template equals the workload's"
    assert tpl["metadata"]["labels"][TEMPLATE_HASH_LABEL] == view.update_revision
    _, _, patch = kube.writes[-1]
    assert patch["metadata"]["resourceVersion"], "written with a resourceVersion precondition"


async def test_a_newer_revision_replaces_the_canary_pods_at_once() -> None:
    kube = world(4, new=2)
    a = adapter(kube)
    stable = (await a.observe(None)).stable_revision
    dep = canary(kube)
    dep["spec"]["strategy"] = {"type": "RollingUpdate"}  # made by an earlier controller version
    kube.put(dep)
    set_template(kube, template("v3"))
    view = await a.observe(stable)
    assert (view.new_pods, view.old_pods) == (0, 6), "the v2 canary pods are not the target's"
    await a.scale_to(view, 2, surge_ready=False)
    dep = canary(kube)
    assert dep["spec"]["strategy"] == {"type": "Recreate"}, "old pods go before new ones come"
    assert without_ours(dep["spec"]["template"]) == template("v3")


async def test_abort_deletes_the_canary_and_keeps_the_hold() -> None:
    kube = world(4, new=2)
    a = adapter(kube)
    view = await a.observe(None)
    await a.abort(view)
    assert ObjectRef("apps/v1", "Deployment", NS, CANARY) not in kube.store
    verb, _, preconditions = kube.writes[-1]
    assert verb == "DELETE"
    assert preconditions == {"uid": f"<uid of {CANARY}>"}
    assert kube.obj("apps/v1", "Deployment", NS, NAME)["spec"]["paused"] is True


async def test_finalize_unpauses_then_deletes_the_canary_once_the_deployment_has_rolled() -> None:
    kube = world(2, new=2)
    a = adapter(kube)
    assert await a.finalize(await a.observe(None)) is False
    deploy = kube.obj("apps/v1", "Deployment", NS, NAME)
    assert deploy["spec"]["paused"] is False
    assert await a.finalize(await a.observe(None)) is False, "not rolled yet"
    deploy["status"] = {
        "observedGeneration": deploy["metadata"]["generation"],
        "updatedReplicas": 2,
        "availableReplicas": 2,
    }
    kube.put(deploy)
    assert await a.finalize(await a.observe(None)) is False
    assert ObjectRef("apps/v1", "Deployment", NS, CANARY) not in kube.store
    for p in kube.objects("Pod", NS):  # garbage collection of the canary's pods
        if p["metadata"]["labels"].get(CANARY_OF_LABEL):
            del kube.store[ObjectRef.of(p)]
    assert await a.finalize(await a.observe(None)) is True


async def test_a_canary_changed_since_it_was_read_is_not_overwritten() -> None:
    kube = world(4, new=1)
    a = adapter(kube)
    view = await a.observe(None)
    kube.put(canary(kube))  # someone else wrote it: new resourceVersion
    with pytest.raises(KubeError) as err:
        await a.scale_to(view, 2, surge_ready=False)
    assert err.value.conflict
    assert canary(kube)["spec"]["replicas"] == 1
