"""The controller releasing OpenKruise workloads on the real kruise-manager (kwok pods):
CloneSet, Advanced StatefulSet and Advanced DaemonSet, 10 pods each, steps 20% / 50% / 100%.

kwok has no kubelet, so in-place updates never finish here: every workload uses a recreating
update type (``ReCreate``, ``podUpdatePolicy: ReCreate``, ``rollingUpdateType: Standard``); see
docs/workloads/ for what is and is not exercised.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import Any

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
from tests.integration.test_release_traffic import INGRESS, essence
from tests.support.controller import Controller
from vela_progressive.core.model import API_GROUP, KIND
from vela_progressive.core.release import ABORT_ANNOTATION
from vela_progressive.core.workloads import APP_REVISION_LABEL
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
PODS = 10  # replicas, or kwok nodes for a DaemonSet
STEPS = [{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}]
EXPECTED_NEW = {1: 2, 2: 5, 3: 10}


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    #: The user's own update strategy (recreating: kwok runs no in-place update).
    strategy: Obj
    #: The partition the hold webhook writes, where it can be read.
    held: Any

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.api_version.split('/')[1]}"


CLONESET = Kind(
    "apps.kruise.io/v1alpha1",
    "CloneSet",
    {"type": "ReCreate", "maxUnavailable": 2},
    "100%",
)
ADVANCED_STATEFULSET = Kind(
    "apps.kruise.io/v1beta1",
    "StatefulSet",
    {
        "type": "RollingUpdate",
        "rollingUpdate": {"podUpdatePolicy": "ReCreate", "maxUnavailable": 2},
    },
    PODS,
)
ADVANCED_DAEMONSET = Kind(
    "apps.kruise.io/v1alpha1",
    "DaemonSet",
    {
        "type": "RollingUpdate",
        "rollingUpdate": {"rollingUpdateType": "Standard", "maxUnavailable": 2},
    },
    2**31 - 1,
)
KINDS = [CLONESET, ADVANCED_STATEFULSET, ADVANCED_DAEMONSET]


def partition(kind: Kind, obj: Obj) -> Any:
    strategy = obj["spec"]["updateStrategy"]
    if kind.kind == "CloneSet":
        return strategy.get("partition")
    return (strategy.get("rollingUpdate") or {}).get("partition")


async def create(kube: Kube, ns: str, kind: Kind, **extra: Any) -> tuple[Release, Obj]:
    """The workload (every pod on v1, labelled as KubeVela labels it) and its rollout; the
    update strategy as the API server stored it (webhook defaults included)."""
    rel = Release(kube, ns, kind.kind, api_version=kind.api_version)
    obj = workload(kind.kind, rel.name, ns, PODS, V1, api_version=kind.api_version)
    obj["spec"]["updateStrategy"] = copy.deepcopy(kind.strategy)
    obj["metadata"]["labels"][APP_REVISION_LABEL] = "app-v1"
    await kube.create(obj)
    cr = rollout(rel.name, ns, kind.kind, STEPS, api_version=kind.api_version, **extra)
    await kube.create(cr)
    await rel.wait_phase("Healthy")
    await rel.wait_pods(V1, PODS)
    stored = (await rel.workload())["spec"]["updateStrategy"]
    return rel, stored


async def kubevela_applies(rel: Release, image: str, revision: str) -> None:
    """What KubeVela does on an Application revision: the rollout's revision first (PreDispatch),
    then the workload's template and its ``app.oam.dev/appRevision`` label (a merge patch: the
    Kruise kinds take no strategic merge patch)."""
    await rel.kube.patch(CR_API, KIND, rel.name, rel.ns, {"spec": {"revision": {"name": revision}}})
    obj = await rel.workload()
    template = copy.deepcopy(obj["spec"]["template"])
    template["spec"]["containers"][0]["image"] = image
    await rel.kube.patch(
        rel.api_version,
        rel.kind,
        rel.name,
        rel.ns,
        {
            "metadata": {"labels": {APP_REVISION_LABEL: revision}},
            "spec": {"template": template},
        },
    )


async def assert_handed_back(rel: Release, image: str, strategy: Obj) -> None:
    """Every pod Ready on ``image``, the user's strategy exactly, nothing of ours left."""
    await rel.wait_pods(image, PODS)

    async def handed_back() -> Obj | None:
        obj = await rel.workload()
        return obj if obj["spec"]["updateStrategy"] == strategy else None

    obj = await eventually(handed_back, 30, f"the update strategy back to {strategy}")
    annotations = obj["metadata"].get("annotations") or {}
    assert not any(k.startswith(API_GROUP) for k in annotations), annotations
    assert len(await rel.pods()) == PODS
    assert await rel.count(image) == PODS


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
async def test_each_pause_runs_exactly_the_planned_pods_and_the_workload_is_handed_back(
    controller: Controller, kube: Kube, namespace: str, kind: Kind
) -> None:
    rel, strategy = await create(kube, namespace, kind)
    async with rel.sampling(V2):
        await kubevela_applies(rel, V2, "app-v2")
        held = await rel.workload()
        assert partition(kind, held) == kind.held, "held by the webhook"
        for step in (1, 2):
            status = await rel.wait_step(step)
            assert await rel.count(V2, ready_only=True) == EXPECTED_NEW[step]
            assert await rel.count(V1, ready_only=True) == PODS - EXPECTED_NEW[step]
            assert status["plan"][step - 1]["newPods"] == EXPECTED_NEW[step]
            await rel.approve(step)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    await assert_handed_back(rel, V2, strategy)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
async def test_abort_puts_every_pod_back_and_a_rollback_hands_the_workload_back(
    controller: Controller, kube: Kube, namespace: str, kind: Kind
) -> None:
    rel, strategy = await create(kube, namespace, kind)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.approve_until(2)
    await rel.annotate(ABORT_ANNOTATION, "app-v2")
    await rel.wait_phase("Aborted")
    await rel.wait_pods(V1, PODS)
    assert await rel.count(V2) == 0
    # KubeVela applies the same revision again: held, no pod moves, the release stays aborted.
    await kubevela_applies(rel, V2, "app-v2")
    await asyncio.sleep(3)
    assert (await rel.cr())["status"]["phase"] == "Aborted"
    assert await rel.count(V2) == 0
    # Roll back: KubeVela applies the stable template as a new revision.
    await kubevela_applies(rel, V1, "app-v3")
    status = await rel.wait_phase("Healthy")
    assert "rolled back" in status["message"]
    await assert_handed_back(rel, V1, strategy)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
async def test_a_newer_revision_mid_release_restarts_the_steps_on_it(
    controller: Controller, kube: Kube, namespace: str, kind: Kind
) -> None:
    rel, strategy = await create(kube, namespace, kind)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.approve_until(2)
    async with rel.sampling(V3):
        await kubevela_applies(rel, V3, "app-v3")
        for step in (1, 2):
            await rel.wait_step(step)
            assert await rel.count(V3, ready_only=True) == EXPECTED_NEW[step]
            assert len(await rel.pods()) == PODS
            await rel.approve(step)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    await assert_handed_back(rel, V3, strategy)


@pytest.mark.parametrize("kind", [CLONESET, ADVANCED_STATEFULSET], ids=lambda k: k.id)
async def test_a_scale_up_mid_release_runs_no_more_new_pods_than_the_step_allows(
    controller: Controller, kube: Kube, namespace: str, kind: Kind
) -> None:
    rel, strategy = await create(kube, namespace, kind)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.scale_up_at_the_first_pause(V2)

    async def handed_back() -> bool:
        return bool((await rel.workload())["spec"]["updateStrategy"] == strategy)

    await eventually(handed_back, 30, f"the update strategy back to {strategy}")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
async def test_deleting_the_rollout_mid_release_hands_the_workload_back(
    controller: Controller, kube: Kube, namespace: str, kind: Kind
) -> None:
    rel, strategy = await create(kube, namespace, kind)
    await kubevela_applies(rel, V2, "app-v2")
    await rel.wait_step(1)
    await kube.delete(CR_API, KIND, rel.name, namespace)

    async def gone() -> bool:
        return await kube.get(CR_API, KIND, rel.name, namespace) is None

    await eventually(gone, 90, "the rollout to be deleted (finalizer released)")
    await assert_handed_back(rel, V2, strategy)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
async def test_a_controller_killed_mid_step_resumes_without_repeating_or_skipping(
    controller: Controller, kube: Kube, namespace: str, kind: Kind
) -> None:
    rel, strategy = await create(kube, namespace, kind)
    async with rel.sampling(V2):
        await kubevela_applies(rel, V2, "app-v2")
        await rel.wait_step(1)
        await rel.approve(1)  # the controller dies while step 2 moves its pods
        await asyncio.sleep(0.3)
        controller.kill()
        controller.start()
        status = await rel.wait_step(2)
        assert await rel.count(V2, ready_only=True) == EXPECTED_NEW[2]
        steps = [e["step"] for e in status["timeline"] if e["state"] == "WaitingApproval"]
        assert steps == [1, 2], f"a step was repeated or skipped: {status['timeline']}"
        await rel.approve(2)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    await assert_handed_back(rel, V2, strategy)


async def test_a_cloneset_behind_an_nginx_ingress_moves_the_weight_with_its_steps(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    meta = {"name": "web", "namespace": namespace}
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": {"app.oam.dev/component": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    ingress: Obj = {
        "apiVersion": INGRESS[0],
        "kind": INGRESS[1],
        "metadata": meta,
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "shop.example.com",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }
    await kube.create(service)
    await kube.create(ingress)
    before = [essence(await kube.get("v1", "Service", "web", namespace))]
    before.append(essence(await kube.get(*INGRESS, "web", namespace)))
    steps = [
        {"replicas": "20%", "weight": 20},
        {"replicas": "50%", "weight": 50},
        {"replicas": "100%", "weight": 100},
    ]
    rel = Release(kube, namespace, "CloneSet", api_version=CLONESET.api_version)
    obj = workload("CloneSet", "web", namespace, PODS, V1, api_version=CLONESET.api_version)
    obj["spec"]["updateStrategy"] = copy.deepcopy(CLONESET.strategy)
    await kube.create(obj)
    cr = rollout("web", namespace, "CloneSet", steps, api_version=CLONESET.api_version)
    cr["spec"]["strategy"]["canary"]["trafficRoutings"] = [
        {"type": "ingress", "ingressName": "web"}
    ]
    await kube.create(cr)
    await rel.wait_phase("Healthy")
    await rel.wait_pods(V1, PODS)
    await kubevela_applies(rel, V2, "app-v2")
    for step, weight in ((1, 20), (2, 50)):
        await rel.wait_step(step)
        canary = await kube.get(*INGRESS, "web-canary", namespace)
        assert canary is not None, "the canary Ingress was not created"
        annotations = canary["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == str(weight)
        # The canary Service selects exactly the new pods, by pod-template-hash.
        canary_svc = await kube.get("v1", "Service", "web-canary", namespace)
        assert canary_svc is not None
        selector = canary_svc["spec"]["selector"]
        selected = await kube.list(
            "v1", "Pod", namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items())
        )
        images = {p["spec"]["containers"][0]["image"] for p in selected}
        assert images == {V2}, selector
        assert len(selected) == EXPECTED_NEW[step]
        await rel.approve(step)
    await rel.wait_phase("Healthy")
    await rel.wait_pods(V2, PODS)
    after = [essence(await kube.get("v1", "Service", "web", namespace))]
    after.append(essence(await kube.get(*INGRESS, "web", namespace)))
    assert after == before
    assert await kube.get(*INGRESS, "web-canary", namespace) is None
    assert await kube.get("v1", "Service", "web-canary", namespace) is None


async def test_a_cloneset_change_the_webhook_missed_is_held_by_the_watch(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    # A slow rollout of its own (one surge pod at a time, available after 20 s), so the
    # controller comes back while the CloneSet is still rolling. (kwok's pods count as available
    # at once for an Advanced StatefulSet or DaemonSet: they would finish rolling first.)
    kind = CLONESET
    rel, _ = await create(kube, namespace, kind)
    slow = {**kind.strategy, "maxUnavailable": 0, "maxSurge": 1}
    spec: Obj = {"minReadySeconds": 20, "updateStrategy": slow}
    await kube.patch(kind.api_version, kind.kind, rel.name, namespace, {"spec": spec})
    strategy = (await rel.workload())["spec"]["updateStrategy"]
    controller.kill()  # the hold webhook is down: failurePolicy Ignore lets the update through
    try:
        await kubevela_applies(rel, V2, "app-v2")
        assert partition(kind, await rel.workload()) in (None, 0), "the webhook was reachable"
        await rel.wait_pods(V2, 1)
    finally:
        controller.start()
    status = await rel.wait_step(1, within=120)
    held = [c for c in status["conditions"] if c["type"] == "HoldMissed"]
    assert held, status["conditions"]
    assert held[0]["status"] == "True"
    assert await rel.count(V2) == EXPECTED_NEW[1]
    # The user drops the slow-down again, so the rest of the release runs at kwok speed.
    await kube.patch(
        kind.api_version, kind.kind, rel.name, namespace, {"spec": {"minReadySeconds": 0}}
    )
    await rel.approve(1)
    await rel.wait_step(2, within=180)
    await rel.approve(2)
    await rel.wait_phase("Healthy", within=180)
    await assert_handed_back(rel, V2, strategy)
