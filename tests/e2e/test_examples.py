"""Every example under examples/, released as its README says, checked at every pause.

Each test: ``vela up`` version 1 (not a release), snapshot the Services and traffic objects,
``vela up`` version 2, then at every step that waits: pods (new/old), the traffic objects, the
trait's message in ``vela status``; approvals through ``kubectl progressive``; at the end the
Application runs, every pod is on version 2 and every object is back exactly as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.e2e.kit import Release, seconds_in, timeline
from tests.e2e.traffic import (
    DEPLOYMENT,
    DESTINATIONRULE,
    HTTPROUTE,
    INGRESS,
    SERVICE,
    STATEFULSET,
    VIRTUALSERVICE,
    assert_canary_ingress,
    assert_services_split,
    backend,
    istio_route,
    must_get,
    nginx_canary,
    ref,
    selected_images,
)
from vela_progressive.core.status import Ending, Phase, StepState

pytestmark = [pytest.mark.e2e]

ReleaseOf = Callable[[str], Release]
APPROVAL, WAITING = StepState.APPROVAL, StepState.WAITING


async def test_01_canary_nginx_moves_weights_20_50_100_with_one_approval(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("01-canary-nginx")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    await rel.deploy_v1(replicas=10)
    objects = (ref(SERVICE, "web"), ref(INGRESS, "web"))
    before = await rel.snapshot(*objects)
    service, ingress = await must_get(rel, SERVICE, "web"), await must_get(rel, INGRESS, "web")

    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    await rel.assert_workflow_waits()
    # Canary style: an extra web-canary Deployment runs the new pods beside the 10 stable ones.
    await rel.wait_pods({v1: 10, v2: 2})
    await assert_services_split(rel, "web", service, stable={v1: 10}, canary={v2: 2})
    await assert_canary_ingress(rel, ingress, "web", nginx_canary(20))
    assert await rel.snapshot(ref(INGRESS, "web")) == before[1:], "the user's Ingress changed"
    rel.expect_message("step 1/3", "waiting for approval")
    table = rel.cli("status", rel.app).stdout
    assert "> 1 " in table, table
    assert "next: kubectl progressive approve shop" in table, table

    rel.approve()
    await rel.wait_state(2, WAITING)
    # Step 2 waits 15 s: read `vela status` first, while its message is still step 2's.
    rel.expect_message("step 2/3", "50% traffic")
    await rel.wait_pods({v1: 10, v2: 5})
    await assert_services_split(rel, "web", service, stable={v1: 10}, canary={v2: 5})
    await assert_canary_ingress(rel, ingress, "web", nginx_canary(50))

    # Step 3 (100%, the last) finishes at once; `status -w` follows it to the end.
    watched = rel.watch(timeout=180)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    status = await rel.wait_released(2, replicas=10)
    assert seconds_in(status, 2, WAITING) >= 15 - 1, timeline(status)
    assert await rel.snapshot(*objects) == before
    await rel.assert_absent(
        ref(SERVICE, "web-canary"), ref(INGRESS, "web-canary"), ref(DEPLOYMENT, "web-canary")
    )


async def test_02_ab_by_header_on_a_gateway_api_httproute(release_of: ReleaseOf) -> None:
    rel = release_of("02-ab-header-gateway-api")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    await rel.deploy_v1(replicas=4)
    objects = (ref(SERVICE, "api"), ref(HTTPROUTE, "api"))
    before = await rel.snapshot(*objects)
    service = await must_get(rel, SERVICE, "api")
    (rule,) = (await must_get(rel, HTTPROUTE, "api"))["spec"]["rules"]
    assert rule["backendRefs"] == [backend("api", 9898, 1)]

    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    await rel.assert_workflow_waits()
    # In place (batch): one of the Deployment's own 4 pods runs version 2.
    await rel.wait_pods({v1: 3, v2: 1})
    await assert_services_split(rel, "api", service, stable={v1: 3}, canary={v2: 1})
    route = await must_get(rel, HTTPROUTE, "api")
    header = {"type": "Exact", "name": "x-canary", "value": "beta"}
    assert route["spec"]["rules"] == [
        # Requests with the header: 100% to the new version, placed before the original rule.
        {
            "matches": [{**rule["matches"][0], "headers": [header]}],
            "backendRefs": [backend("api-canary", 9898, 1)],
        },
        rule,  # everyone else: unchanged
    ]
    rel.expect_message("step 1/3", "header x-canary=beta", "waiting for approval")

    rel.approve()
    await rel.wait_state(2, APPROVAL)
    await rel.wait_pods({v1: 2, v2: 2})
    await assert_services_split(rel, "api", service, stable={v1: 2}, canary={v2: 2})
    route = await must_get(rel, HTTPROUTE, "api")
    assert route["spec"]["rules"] == [
        {**rule, "backendRefs": [backend("api", 9898, 50), backend("api-canary", 9898, 50)]}
    ]
    rel.expect_message("step 2/3", "50% traffic", "waiting for approval")

    rel.approve()
    await rel.wait_released(2, replicas=4)
    assert await rel.snapshot(*objects) == before
    await rel.assert_absent(ref(SERVICE, "api-canary"))


async def test_03_istio_weights_through_destination_rule_subsets(release_of: ReleaseOf) -> None:
    rel = release_of("03-istio-weights")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    await rel.deploy_v1(replicas=5)
    objects = (
        ref(SERVICE, "reviews"),
        ref(VIRTUALSERVICE, "reviews"),
        ref(DESTINATIONRULE, "reviews"),
    )
    before = await rel.snapshot(*objects)

    async def subsets_select(stable: dict[str, int], canary: dict[str, int]) -> None:
        rule = await must_get(rel, DESTINATIONRULE, "reviews")
        assert rule["spec"]["host"] == "reviews"
        assert rule["spec"]["trafficPolicy"] == before[2]["spec"]["trafficPolicy"]
        subsets = {s["name"]: s["labels"] for s in rule["spec"]["subsets"]}
        assert sorted(subsets) == ["canary", "stable"], subsets
        assert await selected_images(rel, subsets["stable"]) == stable
        assert await selected_images(rel, subsets["canary"]) == canary

    async def weights(stable: int, canary: int) -> None:
        service = await must_get(rel, VIRTUALSERVICE, "reviews")
        assert service["spec"]["hosts"] == ["reviews"]
        assert service["spec"]["http"] == [
            {
                "name": "main",
                "route": [
                    istio_route("reviews", 9080, "stable", stable),
                    istio_route("reviews", 9080, "canary", canary),
                ],
            }
        ]

    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    await rel.assert_workflow_waits()
    await rel.wait_pods({v1: 5, v2: 1})  # canary style: 1 extra pod beside the 5 stable ones
    await weights(80, 20)
    await subsets_select(stable={v1: 5}, canary={v2: 1})
    # Subset routing leaves the Service alone (a subset can only pick pods the Service selects).
    assert await rel.snapshot(ref(SERVICE, "reviews")) == before[:1]
    rel.expect_message("step 1/3", "waiting for approval")

    rel.approve()
    await rel.wait_state(2, WAITING)
    await rel.wait_pods({v1: 5, v2: 3})
    await weights(40, 60)
    await subsets_select(stable={v1: 5}, canary={v2: 3})

    status = await rel.wait_released(2, replicas=5)
    assert seconds_in(status, 2, WAITING) >= 10 - 1, timeline(status)
    assert await rel.snapshot(*objects) == before
    await rel.assert_absent(ref(DEPLOYMENT, "reviews-canary"), ref(SERVICE, "reviews-canary"))


async def test_04_statefulset_batches_move_the_highest_ordinals_first(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("04-statefulset-batches")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    await rel.deploy_v1(replicas=5)
    before = await rel.snapshot(ref(SERVICE, "redis"))

    async def batch(partition: int, updated: list[str]) -> None:
        workload = await must_get(rel, STATEFULSET, "redis")
        assert workload["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == partition
        pods = await rel.kube.list(
            "v1", "Pod", rel.ns, label_selector="app.oam.dev/component=redis"
        )
        on_v2 = sorted(
            p["metadata"]["name"] for p in pods if p["spec"]["containers"][0]["image"] == v2
        )
        assert on_v2 == updated

    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    await rel.assert_workflow_waits()
    await rel.wait_pods({v1: 4, v2: 1})
    await batch(4, ["redis-4"])
    rel.expect_message("step 1/3: 1/5 pods", "waiting for approval")

    rel.approve()
    await rel.wait_state(2, WAITING)
    await rel.wait_pods({v1: 2, v2: 3})
    await batch(2, ["redis-2", "redis-3", "redis-4"])

    status = await rel.wait_released(2, replicas=5)
    assert seconds_in(status, 2, WAITING) >= 10 - 1, timeline(status)
    workload = await must_get(rel, STATEFULSET, "redis")
    assert workload["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"partition": 0},
    }
    assert await rel.snapshot(ref(SERVICE, "redis")) == before


async def test_05_every_step_without_duration_waits_for_an_approval_through_the_cli(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("05-manual-approval")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    await rel.deploy_v1(replicas=4)
    before = await rel.snapshot(ref(SERVICE, "billing"))
    idle = rel.cli("approve", rel.app, check=False)
    assert idle.returncode == 1, idle
    assert "is not waiting for approval" in idle.stdout, idle.stdout

    rel.vela_up(2)
    for step, new in ((1, 1), (2, 2), (3, 3)):
        await rel.wait_state(step, APPROVAL)
        await rel.assert_workflow_waits()
        await rel.wait_pods({v1: 4 - new, v2: new})
        rel.expect_message(f"step {step}/4", "waiting for approval")
        # Nothing moves on without the approval.
        await asyncio.sleep(2)
        assert (await rel.status())["currentStep"] == step
        assert dict(await rel.pods()) == {v1: 4 - new, v2: new}
        rel.approve()

    status = await rel.wait_released(2, replicas=4)
    waits = [s for s, state, _ in timeline(status) if state == APPROVAL]
    assert waits == [1, 2, 3], timeline(status)
    assert await rel.snapshot(ref(SERVICE, "billing")) == before


async def test_06_abort_at_step_2_then_rollback_returns_fast(release_of: ReleaseOf) -> None:
    rel = release_of("06-abort-and-rollback")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    await rel.deploy_v1(replicas=4)
    objects = (ref(SERVICE, "checkout"), ref(INGRESS, "checkout"))
    before = await rel.snapshot(*objects)
    service = await must_get(rel, SERVICE, "checkout")
    ingress = await must_get(rel, INGRESS, "checkout")

    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    await rel.assert_workflow_waits()
    rel.approve()
    await rel.wait_state(2, APPROVAL)
    await rel.wait_pods({v1: 2, v2: 2})
    await assert_services_split(rel, "checkout", service, stable={v1: 2}, canary={v2: 2})
    await assert_canary_ingress(rel, ingress, "checkout", nginx_canary(50))

    # Abort: traffic back first, then every pod; `status -w` ends with a failure exit code.
    aborted = rel.cli("abort", rel.app)
    assert "kubectl progressive rollback" in aborted.stdout, aborted.stdout
    watched = rel.watch(timeout=120)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    status = await rel.wait_phase(Phase.ABORTED)
    await rel.wait_pods({v1: 4})
    await rel.assert_absent(ref(INGRESS, "checkout-canary"), ref(SERVICE, "checkout-canary"))
    assert await rel.snapshot(*objects) == before
    rel.expect_message("aborted", "kubectl progressive rollback")
    assert timeline(status)[-1][:2] == (2, "Aborted")
    aborted_at = len(timeline(status))

    # Rollback: the stable revision again, at once (no batches, no approval).
    started = time.monotonic()
    rel.cli("rollback", rel.app)
    status = await rel.wait_phase(Phase.HEALTHY, within=60)
    took = time.monotonic() - started
    after_abort = timeline(status)[aborted_at:]
    # No step ran again: the rollback's ending (routes, pods, Services), then done.
    assert after_abort == [
        (2, Ending.ROLLING_BACK, "rolling back to the stable revision"),
        (2, StepState.COMPLETED, "rolled back to the stable revision"),
    ]
    assert took < 30, f"the rollback took {took:.0f}s"
    watched = rel.watch(timeout=60)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    await rel.wait_released(1, replicas=4)
    workload = await must_get(rel, DEPLOYMENT, "checkout")
    assert not workload["spec"].get("paused")
    assert workload["spec"]["strategy"]["type"] == "RollingUpdate"
    assert await rel.snapshot(*objects) == before


async def test_07_daemonset_batches_delete_old_pods_within_max_unavailable(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("07-daemonset-batches")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    daemonset = ("apps/v1", "DaemonSet")
    await rel.deploy_v1(replicas=10)  # one pod per kwok node
    own = (await must_get(rel, daemonset, "node-agent"))["spec"]["updateStrategy"]
    assert own == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "20%"},
    }

    rel.vela_up(2)
    for step, new in ((1, 2), (2, 5)):
        await rel.wait_state(step, APPROVAL)
        await rel.assert_workflow_waits()
        await rel.wait_pods({v1: 10 - new, v2: new})
        held = await must_get(rel, daemonset, "node-agent")
        assert held["spec"]["updateStrategy"] == {"type": "OnDelete"}
        rel.expect_message(f"step {step}/3: {new}/10 pods", "waiting for approval")
        rel.approve()

    status = await rel.wait_released(2, replicas=10)
    assert [s for s, state, _ in timeline(status) if state == APPROVAL] == [1, 2]
    workload = await must_get(rel, daemonset, "node-agent")
    assert workload["spec"]["updateStrategy"] == own, "handed back exactly"
    assert not any(
        k.startswith("rollout.vela-progressive.io/")
        for k in workload["metadata"].get("annotations") or {}
    )


async def test_09_cloneset_moves_its_partition_and_the_nginx_weights_with_each_step(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("09-cloneset-nginx")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    cloneset = ("apps.kruise.io/v1alpha1", "CloneSet")
    await rel.deploy_v1(replicas=10)
    own = (await must_get(rel, cloneset, "cart"))["spec"]["updateStrategy"]
    assert own["partition"] == 0
    objects = (ref(SERVICE, "cart"), ref(INGRESS, "cart"))
    before = await rel.snapshot(*objects)
    service, ingress = await must_get(rel, SERVICE, "cart"), await must_get(rel, INGRESS, "cart")

    rel.vela_up(2)
    for step, new in ((1, 2), (2, 5)):
        await rel.wait_state(step, APPROVAL)
        await rel.assert_workflow_waits()
        await rel.wait_pods({v1: 10 - new, v2: new})
        held = await must_get(rel, cloneset, "cart")
        assert held["spec"]["updateStrategy"]["partition"] == 10 - new
        await assert_services_split(rel, "cart", service, stable={v1: 10 - new}, canary={v2: new})
        await assert_canary_ingress(rel, ingress, "cart", nginx_canary(new * 10))
        rel.expect_message(f"step {step}/3: {new}/10 pods", "waiting for approval")
        rel.approve()

    status = await rel.wait_released(2, replicas=10)
    assert [s for s, state, _ in timeline(status) if state == APPROVAL] == [1, 2]
    workload = await must_get(rel, cloneset, "cart")
    assert workload["spec"]["updateStrategy"] == own, "handed back exactly"
    assert await rel.snapshot(*objects) == before
    await rel.assert_absent(ref(SERVICE, "cart-canary"), ref(INGRESS, "cart-canary"))


async def test_10_blue_green_previews_by_header_switches_on_approval_then_drops_the_old_set(
    release_of: ReleaseOf,
) -> None:
    rel = release_of("10-blue-green")
    v1, v2 = rel.example.image(1), rel.example.image(2)
    await rel.deploy_v1(replicas=10)
    objects = (ref(SERVICE, "pay"), ref(INGRESS, "pay"))
    before = await rel.snapshot(*objects)
    service, ingress = await must_get(rel, SERVICE, "pay"), await must_get(rel, INGRESS, "pay")

    rel.vela_up(2)
    await rel.wait_state(1, APPROVAL)
    await rel.assert_workflow_waits()
    await rel.wait_pods({v1: 10, v2: 10})  # a whole green set beside the whole blue one
    await assert_services_split(rel, "pay", service, stable={v1: 10}, canary={v2: 10})
    preview = nginx_canary(0, ("x-preview", "green"))
    del preview["nginx.ingress.kubernetes.io/canary-weight"]  # matches only, no weight
    await assert_canary_ingress(rel, ingress, "pay", preview)
    rel.expect_message("blue (old) serves, green (new) in preview", "waiting for approval")
    assert "blue (old) serves" in rel.cli("status", rel.app).stdout

    rel.approve()
    await rel.wait_state(2, WAITING)
    await assert_canary_ingress(rel, ingress, "pay", nginx_canary(100))
    await rel.wait_pods({v1: 10, v2: 10})  # blue kept for the scale-down delay
    rel.expect_message("green (new) serves, blue (old) kept for rollback")

    status = await rel.wait_released(2, replicas=10)
    assert seconds_in(status, 2, WAITING) >= 20 - 1, timeline(status)
    assert await rel.snapshot(*objects) == before
    await rel.assert_absent(ref(SERVICE, "pay-canary"), ref(INGRESS, "pay-canary"))
    workload = await must_get(rel, DEPLOYMENT, "pay")
    assert not workload["spec"].get("paused")
    assert workload["spec"]["strategy"]["type"] == "RollingUpdate"
    assert workload["spec"].get("minReadySeconds", 0) == 0, "handed back exactly"
    assert workload["spec"]["progressDeadlineSeconds"] == 600
