"""Example 08 end to end: ``vela up`` of a version gated by Prometheus, and of a bad version the
analysis rolls back on its own (the test world's real Prometheus and traffic simulator)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.kit import Release, eventually, timeline
from tests.e2e.traffic import DEPLOYMENT, INGRESS, SERVICE
from vela_progressive.core.status import Phase, StepState

pytestmark = [pytest.mark.e2e]

ReleaseOf = Callable[[str], Release]


def ref(kind: tuple[str, str], name: str) -> tuple[str, str, str]:
    return (kind[0], kind[1], name)


async def test_08_a_gated_release_completes_and_a_bad_version_is_rolled_back_on_its_own(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("08-analysis-auto-rollback")
    v2, v3 = rel.example.image(2), rel.example.image(3)
    await rel.deploy_v1(replicas=4)

    rel.vela_up(2)
    await rel.wait_released(2, replicas=4, within=240)
    # Read again: right after `vela up`, the Application may still name revision 1 as its
    # latest, and version 1's Healthy status would match.
    status = await rel.status()
    assert status["stableAppRevision"] == f"{rel.app}-v2", status
    states = [state for _, state, _ in timeline(status)]
    assert StepState.ANALYSIS in states, timeline(status)
    verdicts = {m["metric"]: m["verdict"] for m in status["measurements"]}
    assert verdicts == {"errors": "Passed", "latency": "Passed"}, status["measurements"]
    table = rel.cli("status", rel.app).stdout
    assert "METRIC" in table
    assert "errors" in table

    rel.vela_up(3)
    failed = await rel.wait_phase(Phase.FAILED, within=180)
    assert failed["failureReason"] == "AnalysisFailed"
    assert "metric errors" in failed["message"], failed["message"]
    await rel.wait_pods({v2: 4}, within=120)

    async def wound_up() -> bool:
        # Routes, then pods, then Services: the canary Service goes last.
        return (await rel.status()).get("endingStage") == "Done"

    await eventually(wound_up, 60, "the abort of version 3 to finish (Services restored)")
    await rel.assert_absent(
        ref(SERVICE, "web-canary"), ref(INGRESS, "web-canary"), ref(DEPLOYMENT, "web-canary")
    )
    assert v3 not in dict(await rel.pods())
    rel.expect_message("failed (AnalysisFailed)", "metric errors", within=90)
