"""The controller releasing real Deployments and StatefulSets (kwok pods), step by step."""

from __future__ import annotations

import asyncio
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
from tests.support.controller import Controller
from vela_progressive.core.model import KIND
from vela_progressive.core.release import ABORT_ANNOTATION
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

APPROVAL_STEPS = [
    {"replicas": "20%"},
    {"replicas": "50%"},
    {"replicas": "100%"},
]
EXPECTED_NEW = {1: 2, 2: 5, 3: 10}
#: Steps that wait for approval: a last step at 100% finalises at once (as in Kruise).
APPROVAL_PAUSES = (1, 2)
KINDS = [
    pytest.param("Deployment", {"releaseMode": "batch"}, id="deployment-partition"),
    pytest.param("Deployment", {"releaseMode": "canary"}, id="deployment-canary"),
    pytest.param("StatefulSet", {}, id="statefulset-partition"),
]


@pytest.mark.parametrize(("kind", "mode"), KINDS)
async def test_each_pause_runs_exactly_the_planned_pods_and_never_more(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    rel = Release(kube, namespace, kind)
    await rel.create(10, APPROVAL_STEPS, **mode)
    async with rel.sampling(V2):
        await rel.set_image(V2, "app-v2")
        canary_style = mode.get("releaseMode") == "canary"
        for step in APPROVAL_PAUSES:
            await rel.wait_step(step)
            assert await rel.count(V2, ready_only=True) == EXPECTED_NEW[step]
            assert await rel.count(V1) == (10 if canary_style else 10 - EXPECTED_NEW[step])
            if canary_style:
                canary = await kube.get("apps/v1", "Deployment", "web-canary", namespace)
                assert canary is not None
                owners = canary["metadata"].get("ownerReferences") or []
                assert [o["kind"] for o in owners] == [KIND]
            await rel.approve(step)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    await rel.assert_consistent(V2, 10)


async def test_the_webhook_holds_every_template_update_before_any_pod_changes(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    # No rollout for this workload: only the webhook acts, so any new pod would be a miss.
    await kube.create(workload("Deployment", "held", namespace, 3, V1))
    rel = Release(kube, namespace, "Deployment", name="held")
    await rel.wait_pods(V1, 3)
    for attempt in range(20):
        image = f"registry.invalid/web:attempt-{attempt}"
        updated = await kube.patch(
            "apps/v1",
            "Deployment",
            "held",
            namespace,
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
            patch_type="strategic",
        )
        assert updated["spec"].get("paused") is True, f"attempt {attempt}: not held"
        await asyncio.sleep(0.3)
        assert await rel.count(image) == 0, f"attempt {attempt}: a pod of the new template ran"
        replicasets = await kube.list("apps/v1", "ReplicaSet", namespace)
        assert len(replicasets) == 1, f"attempt {attempt}: a ReplicaSet was created"
    assert await rel.count(V1, ready_only=True) == 3


async def test_an_ungoverned_workload_is_never_touched(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    await kube.create(workload("Deployment", "free", namespace, 2, V1, governed=False))
    rel = Release(kube, namespace, "Deployment", name="free")
    await rel.wait_pods(V1, 2)
    updated = await kube.patch(
        "apps/v1",
        "Deployment",
        "free",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": V2}]}}}},
        patch_type="strategic",
    )
    assert not updated["spec"].get("paused")
    await rel.wait_pods(V2, 2)


async def test_pause_stops_the_release_and_resume_continues_it(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "Deployment")
    steps = [{"replicas": 1, "duration": 5}, {"replicas": 2, "duration": 1}, {"replicas": "100%"}]
    await rel.create(4, steps, releaseMode="batch", auto=False)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1, "Waiting")
    await rel.pause(True)
    status = await rel.wait_phase("Paused")
    paused_at = status["currentStep"]
    await asyncio.sleep(3)  # longer than every duration: a running release would have moved
    assert (await rel.cr())["status"]["currentStep"] == paused_at
    await rel.pause(False)
    await rel.wait_phase("Healthy")
    await rel.assert_consistent(V2, 4)


@pytest.mark.parametrize(("kind", "mode"), KINDS)
async def test_abort_puts_every_pod_back_on_stable_and_rollback_ends_consistent(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    rel = Release(kube, namespace, kind)
    await rel.create(4, APPROVAL_STEPS, **mode)
    await rel.set_image(V2, "app-v2")
    await rel.approve_until(2)
    await rel.annotate(ABORT_ANNOTATION, "app-v2")
    await rel.wait_phase("Aborted")
    await rel.wait_pods(V1, 4)
    assert await rel.count(V2) == 0
    # Roll back: a new revision whose template equals the stable one, released at once.
    await rel.set_image(V1, "app-v3")
    await rel.wait_phase("Healthy")
    await rel.assert_consistent(V1, 4)


async def test_rollback_to_the_stable_revision_skips_the_steps(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "Deployment")
    await rel.create(6, APPROVAL_STEPS, releaseMode="batch")
    await rel.set_image(V2, "app-v2")
    await rel.approve_until(2)
    await rel.set_image(V1, "app-v3")
    status = await rel.wait_phase("Healthy")
    assert "rolled back" in status["message"]
    assert max(entry["step"] for entry in status["timeline"]) == 2, "a step ran after step 2"
    await rel.assert_consistent(V1, 6)


@pytest.mark.parametrize(("kind", "mode"), KINDS)
async def test_a_new_revision_mid_release_restarts_at_step_one_on_the_newest_template(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    rel = Release(kube, namespace, kind)
    await rel.create(10, APPROVAL_STEPS, **mode)
    await rel.set_image(V2, "app-v2")
    await rel.approve_until(2)
    await rel.set_image(V3, "app-v3")
    await rel.wait_step(1)
    await rel.wait_pods(V3, 2)
    assert await rel.count(V2) == 0
    for step in APPROVAL_PAUSES:
        await rel.wait_step(step)
        await rel.approve(step)
    await rel.wait_phase("Healthy")
    await rel.assert_consistent(V3, 10)


@pytest.mark.parametrize(("kind", "mode"), KINDS)
async def test_deleting_the_rollout_mid_release_hands_the_workload_back(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    rel = Release(kube, namespace, kind)
    await rel.create(4, APPROVAL_STEPS, **mode)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    await kube.delete(CR_API, KIND, rel.name, namespace)

    async def gone() -> bool:
        return await kube.get(CR_API, KIND, rel.name, namespace) is None

    await eventually(gone, 60, "the rollout to be deleted (finalizer released)")
    await rel.assert_consistent(V2, 4)


ADMISSION = "admissionregistration.k8s.io/v1"
Obj = dict[str, Any]


def _refuse_deleting_deployments(namespace: str) -> list[Obj]:
    """A ValidatingAdmissionPolicy (and its binding) refusing every Deployment deletion in
    ``namespace``: the namespace controller, 30 s and more behind with 1,000 rollouts, has
    not come to the Deployments yet."""
    name = f"keep-deployments-{namespace}"[:63]
    return [
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["DELETE"],
                            "resources": ["deployments"],
                        }
                    ],
                },
                "validations": [{"expression": "false", "message": "kept by the test"}],
            },
        },
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]


async def test_a_rollout_deleted_with_its_namespace_lets_go_without_a_hand_back(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    """The namespace controller deletes the ReplicaSets and pods, and nothing may be created in
    the namespace any more: a hand-back waits for a Deployment controller that cannot create
    the pods it would roll to, until the namespace controller comes to the Deployment (minutes
    at 1,000 rollouts). The rollout's finalizer must go at once. Here the Deployment's deletion
    is refused until the rollout is gone."""
    rel = Release(kube, namespace, "Deployment")
    await rel.create(4, APPROVAL_STEPS, releaseMode="batch")
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    policy = _refuse_deleting_deployments(namespace)
    for obj in policy:
        await kube.create(obj)
    try:
        await asyncio.sleep(2)  # the policy takes effect once the API server has loaded it
        await kube.delete("v1", "Namespace", namespace)

        async def rollout_gone() -> bool:
            return await kube.get(CR_API, KIND, rel.name, namespace) is None

        await eventually(rollout_gone, 30, "the rollout to go with its namespace")
        deploy = await rel.workload()
        assert not deploy["metadata"].get("deletionTimestamp"), "the Deployment was kept"
    finally:
        for obj in reversed(policy):
            await kube.delete(ADMISSION, obj["kind"], obj["metadata"]["name"])

    async def namespace_gone() -> bool:
        return await kube.get("v1", "Namespace", namespace) is None

    await eventually(namespace_gone, 120, "the namespace to be deleted")


async def test_scaling_mid_release_keeps_the_step_percentage(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "Deployment")
    await rel.create(10, APPROVAL_STEPS, releaseMode="batch")
    await rel.set_image(V2, "app-v2")
    await rel.approve_until(2)
    assert await rel.count(V2, ready_only=True) == 5
    await kube.patch("apps/v1", "Deployment", rel.name, namespace, {"spec": {"replicas": 20}})
    await rel.wait_pods(V2, 10)
    await rel.wait_pods(V1, 10)
    await rel.approve(2)
    await rel.wait_phase("Healthy")
    await rel.assert_consistent(V2, 20)


@pytest.mark.parametrize(("kind", "mode"), KINDS)
async def test_a_controller_killed_mid_step_resumes_without_repeating_or_skipping(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    rel = Release(kube, namespace, kind)
    await rel.create(10, APPROVAL_STEPS, **mode)
    async with rel.sampling(V2):
        await rel.set_image(V2, "app-v2")
        await rel.wait_step(1)
        await rel.approve(1)  # the controller dies while step 2 moves its pods
        controller.kill()
        controller.start()
        status = await rel.wait_step(2)
        assert await rel.count(V2, ready_only=True) == 5
        steps = [e["step"] for e in status["timeline"] if e["state"] == "WaitingApproval"]
        assert steps == [1, 2], f"a step was repeated or skipped: {status['timeline']}"
        await rel.approve(2)
        await rel.wait_phase("Healthy")
    rel.assert_never_above_plan(EXPECTED_NEW)
    await rel.assert_consistent(V2, 10)


@pytest.mark.parametrize(
    ("name", "patch", "message"),
    [
        ("unsupported-kind", {"workloadRef": {"kind": "CronJob"}}, "CronJob is not supported"),
        (
            "steps-out-of-order",
            {"strategy": {"canary": {"steps": [{"replicas": "50%"}, {"replicas": "20%"}]}}},
            "never decrease",
        ),
    ],
)
async def test_an_invalid_spec_fails_with_a_clear_message_and_patches_nothing(
    controller: Controller,
    kube: Kube,
    namespace: str,
    name: str,
    patch: dict[str, object],
    message: str,
) -> None:
    await kube.create(workload("Deployment", "web", namespace, 2, V1))
    rel = Release(kube, namespace, "Deployment")
    await rel.wait_pods(V1, 2)
    before = await rel.workload()
    cr = rollout("web", namespace, "Deployment", APPROVAL_STEPS)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(cr["spec"].get(key), dict):
            cr["spec"][key].update(value)
        else:
            cr["spec"][key] = value
    await kube.create(cr)
    status = await rel.wait_phase("Failed")
    assert message in status["message"]
    invalid = [c for c in status["conditions"] if c["type"] == "InvalidSpec"]
    assert invalid, status["conditions"]
    assert invalid[0]["status"] == "True"
    await asyncio.sleep(2)  # a few reconciles later, still nothing
    after = await rel.workload()
    # Status may move (the Deployment controller), the spec and our metadata may not.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")


async def test_a_missing_workload_is_reported_and_nothing_is_created(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    await kube.create(rollout("ghost", namespace, "Deployment", APPROVAL_STEPS))
    rel = Release(kube, namespace, "Deployment", name="ghost")
    status = await rel.wait_phase("Initializing")
    assert "not found" in status["message"]
    assert await kube.list("apps/v1", "ReplicaSet", namespace) == []


@pytest.mark.parametrize(("kind", "mode"), KINDS[:2])
async def test_a_workload_being_deleted_is_left_to_the_garbage_collector(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    # A namespace or an application being deleted: the rollout's next pass must not move pods
    # (it used to start the release again and patch ReplicaSets the collector was deleting).
    rel = Release(kube, namespace, kind)
    await rel.create(4, APPROVAL_STEPS, **mode)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    keep = {"metadata": {"finalizers": ["example.com/keep"]}}
    await kube.patch("apps/v1", kind, rel.name, namespace, keep)
    await kube.delete("apps/v1", kind, rel.name, namespace)
    try:

        async def reported() -> bool:
            return "is being deleted" in ((await rel.cr()).get("status") or {}).get("message", "")

        async def pods() -> list[tuple[str, str]]:
            return sorted(
                (p["metadata"]["name"], p["spec"]["containers"][0]["image"])
                for p in await rel.pods()
            )

        await eventually(reported, 30, "the rollout to report its workload being deleted")
        before = await pods()
        await rel.approve(1)  # would move pods to step 2 of a live workload
        await asyncio.sleep(3)
        assert await pods() == before
        assert (await rel.cr())["status"]["currentStep"] == 1
    finally:
        await kube.patch("apps/v1", kind, rel.name, namespace, {"metadata": {"finalizers": None}})


@pytest.mark.parametrize(("kind", "mode"), KINDS[:2])
async def test_pods_going_missing_after_a_release_start_no_release(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    # After a release the old ReplicaSet is kept at zero replicas (history). Pods of the released
    # revision going missing (deleted, evicted, a namespace being emptied) are the Deployment
    # healing itself. The rollout used to take the empty ReplicaSet for a stable revision, start
    # a release ("the hold webhook missed a template change") and pause the Deployment.
    rel = Release(kube, namespace, kind)
    await rel.create(4, [{"replicas": "50%"}, {"replicas": "100%"}], **mode)
    await rel.set_image(V2, "app-v2")
    await rel.approve_until(1)
    await rel.approve(1)
    await rel.wait_phase("Healthy")
    await rel.assert_consistent(V2, 4)

    async def told(reason: str) -> int:
        events = await kube.list("v1", "Event", namespace)
        return sum(e.get("count") or 1 for e in events if e.get("reason") == reason)

    started = await told("ReleaseStarted")
    for pod in (await rel.pods())[:3]:
        await kube.delete("v1", "Pod", pod["metadata"]["name"], namespace)
    await rel.wait_pods(V2, 4)  # replaced by the Deployment's own controller
    await asyncio.sleep(2)
    status = (await rel.cr())["status"]
    assert status["phase"] == "Healthy", status["message"]
    assert not [c for c in status.get("conditions") or [] if c["type"] == "HoldMissed"]
    assert not (await rel.workload())["spec"].get("paused")
    assert await told("HoldMissed") == 0
    assert await told("ReleaseStarted") == started


async def test_a_step_that_cannot_become_ready_fails_with_the_reason(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "Deployment")
    await rel.create(4, APPROVAL_STEPS, releaseMode="batch", progressDeadlineSeconds=5)
    await kube.patch(
        CR_API,
        KIND,
        rel.name,
        namespace,
        {"spec": {"revision": {"name": "app-v2"}}},
    )
    await kube.patch(
        "apps/v1",
        "Deployment",
        rel.name,
        namespace,
        {"spec": {"template": {"spec": {"nodeSelector": {"no-such-node": "true"}}}}},
        patch_type="strategic",
    )
    status = await rel.wait_phase("Failed", within=60)
    assert "Unschedulable" in status["message"]
    # The stable pods keep serving.
    assert await rel.count(V1, ready_only=True) == 4


async def test_a_change_the_webhook_missed_is_held_by_the_watch_and_reported(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = Release(kube, namespace, "Deployment")
    await rel.create(10, APPROVAL_STEPS, releaseMode="batch")
    # A slow native rollout (each new pod must stay Ready 60 s before the next one starts), so
    # the controller comes back while the Deployment controller is still rolling.
    await kube.patch(
        "apps/v1",
        "Deployment",
        rel.name,
        namespace,
        {
            "spec": {
                "minReadySeconds": 60,
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            }
        },
    )
    controller.kill()  # the webhook is down: failurePolicy Ignore lets the update through
    try:
        updated = await rel.set_image(V2, "app-v2")
        assert not updated["spec"].get("paused"), "the webhook should have been unreachable"
        await rel.wait_pods(V2, 1)
    finally:
        controller.start()
    status = await rel.wait_step(1)
    held = [c for c in status["conditions"] if c["type"] == "HoldMissed"]
    assert held, status["conditions"]
    assert held[0]["status"] == "True"
    assert (await rel.workload())["spec"]["paused"] is True
    assert await rel.count(V2) == EXPECTED_NEW[1]
    events = await kube.list("v1", "Event", namespace)
    assert any(e.get("reason") == "HoldMissed" for e in events)


@pytest.mark.parametrize(("kind", "mode"), KINDS)
async def test_a_scale_up_mid_release_runs_no_more_new_pods_than_the_step_allows(
    controller: Controller, kube: Kube, namespace: str, kind: str, mode: dict[str, str]
) -> None:
    rel = Release(kube, namespace, kind)
    await rel.create(10, APPROVAL_STEPS, **mode)
    await rel.set_image(V2, "app-v2")
    await rel.scale_up_at_the_first_pause(V2)
    await rel.assert_consistent(V2, 12)
