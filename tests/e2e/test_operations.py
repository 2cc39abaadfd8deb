"""Operations around a release, through KubeVela and ``kubectl progressive``: a newer version
mid-release, invalid trait properties, and the exit codes of ``status -w``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.kit import CR_API, Obj, Release, eventually, timeline, trait_properties
from tests.e2e.traffic import DEPLOYMENT, INGRESS, SERVICE, must_get
from vela_progressive.core.model import KIND
from vela_progressive.core.status import Phase, StepState

pytestmark = [pytest.mark.e2e]

ReleaseOf = Callable[[str], Release]
APPROVAL = StepState.APPROVAL
EXIT_FAILED, EXIT_TIMEOUT = 1, 3


async def test_a_newer_version_mid_release_restarts_the_release_on_it(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("05-manual-approval")
    v1, v2, v3 = (rel.example.image(n) for n in (1, 2, 3))
    await rel.deploy_v1(replicas=4)
    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    rel.approve()
    await rel.wait_state(2, APPROVAL)
    await rel.wait_pods({v1: 2, v2: 2})
    # `status -w` gives up after its timeout while a step waits for a person.
    watched = rel.watch(timeout=2)
    assert watched.returncode == EXIT_TIMEOUT, watched.stdout + watched.stderr

    rel.vela_up(3)
    status = await rel.wait_state(1, APPROVAL)
    assert status["observedRevision"] == f"{rel.app}-v3"
    await rel.wait_pods({v1: 3, v3: 1})  # the version 2 pods are gone, the stable ones stay
    assert "new revision: restarted at step 1" in [m for _, _, m in timeline(status)]
    rel.expect_message("step 1/4", "waiting for approval")
    for step in (1, 2, 3):
        await rel.wait_state(step, APPROVAL)
        assert dict(await rel.pods()) == {v1: 4 - step, v3: step}
        rel.approve()
    await rel.wait_released(3, replicas=4)


def _edited(rel: Release, tmp_path: Path, version: int, change: Callable[[Obj], None]) -> Path:
    """app-vN.yaml with the trait's properties changed by ``change``, written to tmp_path."""
    app = rel.example.load(version)
    change(trait_properties(app))
    path = tmp_path / f"app-v{version}-edited.yaml"
    path.write_text(yaml.safe_dump(app, sort_keys=False))
    return path


async def test_trait_properties_that_cue_rejects_fail_the_workflow_naming_the_field(
    release_of: ReleaseOf, tmp_path: Path
) -> None:
    rel = release_of("01-canary-nginx")

    def weight_120(props: Obj) -> None:
        props["canary"]["steps"][0]["weight"] = 120

    # A new Application: nothing is created at all.
    rel.vela_up(_edited(rel, tmp_path, 1, weight_120))

    async def workflow_failed() -> str | None:
        status = (await rel.application()).get("status") or {}
        steps = (status.get("workflow") or {}).get("steps") or []
        failed = [s.get("message", "") for s in steps if s.get("phase") == "failed"]
        return failed[0] if failed else None

    message = await eventually(workflow_failed, 60, "the workflow step to fail")
    assert "parameter.canary.steps.0.weight: invalid value 120 (out of bound <=100)" in message
    assert "canary.steps.0.weight" in rel.vela_status()
    for api_version, kind in (DEPLOYMENT, SERVICE, INGRESS, (CR_API, KIND)):
        found = await rel.kube.list(api_version, kind, rel.ns)
        assert not found, f"{kind} created for an invalid Application: {found[0]['metadata']}"


async def test_trait_properties_rejected_on_an_update_leave_the_workload_untouched(
    release_of: ReleaseOf, tmp_path: Path
) -> None:
    rel = release_of("05-manual-approval")
    v1 = rel.example.image(1)
    await rel.deploy_v1(replicas=4)
    before = await must_get(rel, DEPLOYMENT, "billing")
    cr_before = await rel.rollout()
    assert cr_before is not None

    def duration_text(props: Obj) -> None:
        props["canary"]["steps"][1]["duration"] = "one minute"

    rel.vela_up(_edited(rel, tmp_path, 2, duration_text))

    async def render_failed() -> str | None:
        steps = ((await rel.application()).get("status") or {}).get("workflow", {}).get("steps")
        failed = [s.get("message", "") for s in steps or [] if s.get("phase") == "failed"]
        return failed[0] if failed else None

    message = await eventually(render_failed, 60, "the workflow step to fail")
    assert "canary.steps.1.duration" in message, message
    await asyncio.sleep(3)  # give anything that would (wrongly) move the time to do it
    after = await must_get(rel, DEPLOYMENT, "billing")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    cr_after = await rel.rollout()
    assert cr_after is not None
    assert cr_after["spec"] == cr_before["spec"]
    assert dict(await rel.pods()) == {v1: 4}


async def test_trait_properties_the_controller_rejects_fail_the_rollout_naming_the_field(
    release_of: ReleaseOf, tmp_path: Path
) -> None:
    """Rules that span several fields (replicas never decrease) are the controller's: the
    rollout fails with the field and the fix, and no pod moves."""
    rel = release_of("05-manual-approval")
    v1 = rel.example.image(1)
    await rel.deploy_v1(replicas=4)

    def decreasing(props: Obj) -> None:
        props["canary"]["steps"][1]["replicas"] = 1
        props["canary"]["steps"][0]["replicas"] = 2

    rel.vela_up(_edited(rel, tmp_path, 2, decreasing))

    async def failed() -> Obj | None:
        cr = await rel.rollout() or {}
        status: Obj = cr.get("status") or {}
        revision = cr["spec"]["revision"]["name"]
        current = revision == await rel.latest_revision() == f"{rel.app}-v2"
        return status if current and status.get("phase") == Phase.FAILED else None

    status = await eventually(failed, 60, "the rollout of billing-v2 to fail")
    # The trait's status in `vela status` shows the message only for the revision it belongs to.
    assert status.get("observedRevision") == f"{rel.app}-v2", (
        "status.observedRevision is not set on an invalid spec, so vela status cannot show why"
    )
    field = "spec.strategy.canary.steps[1].replicas"
    assert field in status["message"], status["message"]
    assert "raise it to at least 2" in status["message"], status["message"]
    (invalid,) = [c for c in status["conditions"] if c["type"] == "InvalidSpec"]
    assert invalid["status"] == "True"
    assert field in invalid["message"]
    rel.expect_message("invalid spec", "canary.steps[1].replicas")
    await asyncio.sleep(3)
    assert dict(await rel.pods()) == {v1: 4}, "pods moved for an invalid rollout"


async def test_removing_the_trait_mid_release_hands_the_workload_back_and_the_app_runs(
    release_of: ReleaseOf, tmp_path: Path
) -> None:
    rel = release_of("05-manual-approval")
    v2 = rel.example.image(2)
    await rel.deploy_v1(replicas=4)
    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    # Version 2 again, without the progressive-rollout trait.
    app = rel.example.load(2)
    for comp in app["spec"]["components"]:
        comp["traits"] = [t for t in comp.get("traits", []) if t["type"] != "progressive-rollout"]
    path = tmp_path / "app-v2-no-trait.yaml"
    path.write_text(yaml.safe_dump(app, sort_keys=False))
    rel.vela_up(path)

    async def handed_back() -> Obj | None:
        deploy = await rel.get(*DEPLOYMENT, rel.component)
        return deploy if deploy and not deploy["spec"].get("paused") else None

    await eventually(handed_back, 45, "the Deployment handed back after the trait was removed")
    await rel.wait_pods({v2: 4}, within=90)
    await rel.wait_app("running", within=120)

    async def rollout_gone() -> bool:
        return await rel.rollout() is None

    await eventually(rollout_gone, 120, "KubeVela to garbage-collect the rollout")
