"""Workload adapters on the real cluster: the bugs 3, 5 and 8 of issue 9, each reproduced as a
user met it (every test failed on the code before its fix).

- bug 3: the ``<name>-canary`` template was merged onto the old one (strategic patch), so a field
  a newer version removed stayed in the canary;
- bug 5: a StatefulSet (OrderedReady) rolled back from a first new pod that cannot start hung:
  its controller never replaces a pod that is not Ready;
- bug 8: a second bad version replacing a first one mid-release left the first's pods running
  beside the second's. Pods of a superseded revision go at once (docs/workloads/deployment.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.release_kit import V1, V2, V3, Release, eventually, workload
from tests.support.controller import Controller
from vela_progressive.core.workloads import CANARY_OF_LABEL
from vela_progressive.core.workloads.deployment_canary import TEMPLATE_HASH_LABEL
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
#: More CPU than any (kwok) node has: the pod stays Pending, Unschedulable.
CPU_HOG = {"requests": {"cpu": "100000"}}
NOWHERE = {"no-such-node": "true"}


def image(value: str) -> Obj:
    return {"op": "replace", "path": "/spec/containers/0/image", "value": value}


def without_our_labels(template: Obj) -> Obj:
    labels = {
        k: v
        for k, v in template["metadata"]["labels"].items()
        if k not in (CANARY_OF_LABEL, TEMPLATE_HASH_LABEL)
    }
    return {**template, "metadata": {**template["metadata"], "labels": labels}}


async def test_the_canary_runs_the_workloads_template_field_for_field(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "Deployment")
    await rel.create(4, [{"replicas": 1}, {"replicas": "100%"}], releaseMode="canary")
    hog = {"op": "add", "path": "/spec/containers/0/resources", "value": CPU_HOG}
    await rel.set_template([image(V2), hog], "app-v2")

    async def v2_pending() -> bool:
        canary = await kube.get("apps/v1", "Deployment", "web-canary", namespace)
        return canary is not None and await rel.count(V2) == 1

    await eventually(v2_pending, 60, "v2's canary pod (it cannot be scheduled)")
    # v3 drops the request, as vela's three-way apply of a component without it does.
    drop = {"op": "remove", "path": "/spec/containers/0/resources"}
    await rel.set_template([image(V3), drop], "app-v3")
    await rel.wait_step(1, within=60)
    assert await rel.count(V3, ready_only=True) == 1
    assert await rel.count(V2) == 0
    canary = await kube.get("apps/v1", "Deployment", "web-canary", namespace)
    assert canary is not None
    target = (await rel.workload())["spec"]["template"]
    assert without_our_labels(canary["spec"]["template"]) == target
    # Equal templates are left alone: no write on later passes.
    generation = canary["metadata"]["generation"]
    await asyncio.sleep(3)
    again = await kube.get("apps/v1", "Deployment", "web-canary", namespace)
    assert again is not None
    assert again["metadata"]["generation"] == generation


@pytest.mark.parametrize("mode", ["canary", "batch"])
async def test_a_superseded_revisions_pods_are_removed_at_once(
    controller: Controller, kube: Kube, namespace: str, mode: str
) -> None:
    rel = Release(kube, namespace, "Deployment")
    await rel.create(4, [{"replicas": "50%"}, {"replicas": "100%"}], releaseMode=mode)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    assert await rel.count(V2, ready_only=True) == 2
    # v3 cannot start: its pods stay Pending; v2's serve no traffic and must not linger.
    nowhere = {"op": "add", "path": "/spec/nodeSelector", "value": NOWHERE}
    await rel.set_template([image(V3), nowhere], "app-v3")

    async def superseded_gone() -> tuple[int, int] | None:
        v2, v3 = await rel.count(V2), await rel.count(V3)
        return (v2, v3) if v2 == 0 and v3 == 2 else None

    await eventually(superseded_gone, 30, "v2's pods gone while v3's two pods are Pending")
    # The stable side never shrank: every v1 pod serves (partition style: v2's place taken).
    await rel.wait_pods(V1, 4, within=30)
    assert await rel.count(V3, ready_only=True) == 0
    status = (await rel.cr())["status"]
    assert status["currentStep"] == 1


async def test_a_statefulset_rolls_back_from_a_first_pod_that_cannot_start(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "StatefulSet")
    obj = workload("StatefulSet", "web", namespace, 3, V1)
    obj["spec"]["podManagementPolicy"] = "OrderedReady"
    await rel.create_from(obj, [{"replicas": 1}, {"replicas": "100%"}])
    nowhere = {"op": "add", "path": "/spec/nodeSelector", "value": NOWHERE}
    await rel.set_template([image(V2), nowhere], "app-v2")

    async def first_pod_stuck() -> bool:
        return await rel.count(V2) == 1 and await rel.count(V2, ready_only=True) == 0

    await eventually(first_pod_stuck, 60, "v2's first pod, Pending (unschedulable)")
    # Roll back: the template equals the stable one again.
    back = {"op": "remove", "path": "/spec/nodeSelector"}
    await rel.set_template([image(V1), back], "app-v3")
    status = await rel.wait_phase("Healthy", within=60)
    assert "rolled back" in status["message"]
    await rel.assert_consistent(V1, 3)
