"""The release logic of the reconciler, with a fake workload and fake traffic (pure unit tier).

The real-cluster behaviour is covered by tests/integration; these tests pin the ordering rules
that are hard to provoke on a cluster: traffic waits for canary endpoints, abort and finalize move
traffic before pods, and revision-scoped operations.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from vela_progressive.core.model import API_GROUP, API_VERSION, KIND, PlannedStep, TrafficRouting
from vela_progressive.core.release import ABORT_ANNOTATION, APPROVE_ANNOTATION, PAUSE_ANNOTATION
from vela_progressive.core.traffic import TrafficContext
from vela_progressive.core.workloads import WorkloadView
from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.reconciler import Reconciler

Obj = dict[str, Any]
T0 = datetime(2026, 11, 26, 12, 0, 0)


@dataclass
class Journal:
    calls: list[str] = field(default_factory=list)


@dataclass
class FakeWorkload:
    """A workload whose pods become Ready as soon as they are asked for."""

    journal: Journal
    view: WorkloadView
    watched: bool = False
    writes: int = 0

    async def observe(self, stable_hint: str | None) -> WorkloadView:
        return self.view

    async def new_revision_pods(self, view: WorkloadView) -> list[Obj]:
        return []

    async def hold(self, view: WorkloadView) -> bool:
        self.view = replace(self.view, held=True)
        return True

    async def scale_to(self, view: WorkloadView, new_pods: int, *, surge_ready: bool) -> None:
        self.journal.calls.append(f"scale {new_pods}")
        before = self.view
        self.view = self.foresee(self.view, new_pods, surge_ready=surge_ready, stable_hint=None)
        self.writes += self.view != before

    def foresee(
        self, view: WorkloadView, new_pods: int, *, surge_ready: bool, stable_hint: str | None
    ) -> WorkloadView:
        old = view.replicas - new_pods if surge_ready else view.old_pods
        return replace(view, new_pods=new_pods, new_ready=new_pods, old_pods=old)

    async def abort(self, view: WorkloadView) -> None:
        self.journal.calls.append("pods back to stable")
        self.view = replace(self.view, new_pods=0, new_ready=0, old_pods=self.view.replicas)

    async def finalize(self, view: WorkloadView) -> bool:
        self.journal.calls.append("hand back")
        self.view = replace(
            self.view,
            new_pods=self.view.replicas,
            new_ready=self.view.replicas,
            old_pods=0,
            held=False,
        )
        return True

    def canary_selector(self, view: WorkloadView) -> dict[str, str]:
        return {"pod-template-hash": view.update_revision}

    def stable_selector(self, view: WorkloadView) -> dict[str, str]:
        return {"pod-template-hash": view.stable_revision or ""}


@dataclass
class FakeTraffic:
    journal: Journal
    ready_endpoints: int = 0
    problem: str | None = None

    async def prepare(self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext) -> None:
        pass

    async def check(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext, steps: object
    ) -> str | None:
        return self.problem

    async def canary_ready(self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext) -> int:
        return self.ready_endpoints

    async def route(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext, step: PlannedStep
    ) -> None:
        self.journal.calls.append(f"route {step.weight}")

    async def restore_routes(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext
    ) -> None:
        self.journal.calls.append("traffic back to stable")

    async def unpin_services(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext
    ) -> None:
        self.journal.calls.append("services unpinned")

    async def restore_services(
        self, routings: tuple[TrafficRouting, ...], ctx: TrafficContext
    ) -> None:
        self.journal.calls.append("services restored")


@dataclass
class FakeStatusWriter:
    """The reconciler's status writes (status before action), kept for the assertions."""

    written: list[Obj] = field(default_factory=list)
    #: Patches of the CR's metadata (operations spent at the end of a release).
    metadata: list[Obj] = field(default_factory=list)
    #: The API server is down: every write fails.
    down: bool = False
    #: The rollout's annotations as the API server holds them (``World`` shares the CR's).
    annotations: Obj = field(default_factory=dict)
    #: The rollout's resourceVersion on the API server: every write moves it.
    resource_version: int = 41
    #: The rollout's namespace is being deleted.
    namespace_ending: bool = False

    async def get(self, api_version: str, kind: str, name: str, *args: object) -> Obj | None:
        assert (api_version, kind) == ("v1", "Namespace"), "the fakes read nothing else"
        ending = "2026-11-26T12:00:00Z" if self.namespace_ending else None
        return {"metadata": {"name": name, "deletionTimestamp": ending}}

    async def patch(self, *args: object, **kwargs: object) -> Obj:
        if self.down:
            raise KubeError(0, "Unreachable", "the API server is restarting")
        body = args[4]
        assert isinstance(body, dict)
        answer: Obj = {}
        if "metadata" in body:
            self.metadata.append(body["metadata"])
        else:
            self.written.append(body["status"])
            answer["status"] = body["status"]  # as the API server answers: the whole object
        self.resource_version += 1
        return {
            **answer,
            "metadata": {
                "resourceVersion": str(self.resource_version),
                "annotations": dict(self.annotations),
            },
        }


@dataclass
class FakeEvents:
    posted: list[str] = field(default_factory=list)

    async def post(self, cr: Obj, kind: str, reason: str, message: str) -> None:
        self.posted.append(reason)


class World:
    """A reconciler wired to fakes, and the CR it reconciles."""

    def __init__(
        self, steps: list[Obj], ready_endpoints: int = 1, grace: int = 0, routed: bool = True
    ) -> None:
        self.journal = Journal()
        self.now = T0
        self.workload = FakeWorkload(
            self.journal,
            WorkloadView(
                kind="Deployment",
                name="web",
                namespace="ns",
                replicas=10,
                update_revision="new",
                stable_revision="old",
                new_pods=0,
                new_ready=0,
                old_pods=10,
                held=True,
                settled=True,
            ),
        )
        self.traffic = FakeTraffic(self.journal, ready_endpoints)
        self.writer = FakeStatusWriter()
        self.events = FakeEvents()
        self.reconciler = Reconciler(
            kube=self.writer,  # type: ignore[arg-type]
            traffic=self.traffic,  # type: ignore[arg-type]
            events=self.events,  # type: ignore[arg-type]
            clock=lambda: self.now,
            adapters=lambda *_: self.workload,
        )
        self.cr: Obj = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": "web", "namespace": "ns", "generation": 1, "annotations": {}},
            "spec": {
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "application": {"name": "app", "component": "web"},
                "revision": {"name": "app-v2", "number": 2},
                "strategy": {
                    "releaseMode": "batch",
                    "canary": {
                        "steps": steps,
                        "trafficRoutings": [
                            {
                                "type": "gateway",
                                "gatewayHTTPRouteName": "web",
                                "gracePeriodSeconds": grace,
                            }
                        ],
                    },
                },
            },
        }
        if not routed:
            del self.cr["spec"]["strategy"]["canary"]["trafficRoutings"]
        self.writer.annotations = self.cr["metadata"]["annotations"]

    async def tick(self, times: int = 1, advance: float = 0.0) -> Obj:
        status: Obj = {}
        for _ in range(times):
            outcome = await self.reconciler.reconcile(self.cr)
            self.cr["status"] = status = outcome.status
            await self.reconciler.announce(self.cr, outcome.events)  # as the handler does
            self.now += timedelta(seconds=advance)
        return status


async def test_traffic_never_moves_while_the_canary_service_has_no_ready_endpoints() -> None:
    world = World([{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}], 0)
    status = await world.tick(10, advance=1)
    assert status["stepState"] == "TrafficRouting"
    assert "waiting for canary endpoints" in status["message"]
    assert not [c for c in world.journal.calls if c.startswith("route")]
    world.traffic.ready_endpoints = 1
    status = await world.tick()
    assert "route 20" in world.journal.calls
    assert status["stepState"] == "WaitingApproval"


async def test_a_step_moves_pods_before_traffic() -> None:
    world = World([{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}])
    await world.tick(3)
    assert world.journal.calls.index("scale 2") < world.journal.calls.index("route 20")


async def test_a_pass_whose_writes_finish_a_step_goes_on_from_them_when_its_reads_are_watched() -> (
    None
):
    steps = [{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}]
    polled = World(steps)
    status = await polled.tick()
    assert (status["stepState"], polled.journal.calls) == ("Upgrading", ["scale 2"])
    watched = World(steps)
    watched.workload.watched = True
    status = await watched.tick()
    # New pods, then the stable ones down, then traffic: one pass, not one per write.
    assert watched.journal.calls == ["scale 2", "scale 2", "route 20"]
    assert status["stepState"] == "WaitingApproval"


def journal_status_writes(world: World, fail_step: int | None = None) -> None:
    """Each status write shows in the journal as it begins and ends (it yields in between);
    the first write of step ``fail_step`` fails."""
    writer = world.writer

    async def journaled(*args: object, **kwargs: object) -> Obj:
        body = args[4]
        assert isinstance(body, dict)
        step = (body.get("status") or {}).get("currentStep")
        if step is None:
            return await FakeStatusWriter.patch(writer, *args, **kwargs)
        world.journal.calls.append(f"status step {step} begins")
        await asyncio.sleep(0)
        if step == fail_step:
            world.journal.calls.append(f"status step {step} fails")
            raise KubeError(500, "InternalError", "etcdserver: request timed out")
        answer = await FakeStatusWriter.patch(writer, *args, **kwargs)
        world.journal.calls.append(f"status step {step} ends")
        return answer

    world.writer.patch = journaled  # type: ignore[method-assign]


NO_WAITS = [{"replicas": "20%", "duration": 0}, {"replicas": "50%", "duration": 0}]


async def test_the_next_steps_status_is_written_while_this_steps_old_pods_go_when_watched() -> None:
    world = World([*NO_WAITS, {"replicas": "100%"}], routed=False)
    world.workload.watched = True
    journal_status_writes(world)
    status = await world.tick()
    # The pass ends on the status it wrote last: none is written ahead of what it comes to.
    assert status == world.writer.written[-1]
    calls = world.journal.calls
    # Step 1's old pods go (the second "scale 2") while step 2's status is being written, and
    # step 2's pods move only once it is.
    assert calls[: calls.index("scale 5") + 1] == [
        "status step 1 begins",
        "status step 1 ends",
        "scale 2",
        "status step 2 begins",
        "scale 2",
        "status step 2 ends",
        "scale 5",
    ]


async def test_the_next_steps_status_waits_for_this_steps_pods_when_reads_are_polled() -> None:
    world = World([*NO_WAITS, {"replicas": "100%"}], routed=False)
    journal_status_writes(world)
    await world.tick(3)
    calls = world.journal.calls
    assert calls.index("status step 2 begins") > calls.index("scale 2", calls.index("scale 2") + 1)


async def test_a_status_written_ahead_that_fails_moves_no_pod_of_the_next_step() -> None:
    world = World([*NO_WAITS, {"replicas": "100%"}], routed=False)
    world.workload.watched = True
    journal_status_writes(world, fail_step=2)
    with pytest.raises(KubeError):
        await world.tick()
    assert "scale 5" not in world.journal.calls
    assert world.workload.view.old_pods == 8  # step 1's writes were made
    journal_status_writes(world)  # the API server answers again
    status = await world.tick()
    # Step 1 is not made again: the next pass starts step 2 from the pods as they are.
    assert world.journal.calls.count("scale 2") == 2
    assert "scale 5" in world.journal.calls
    assert status["currentStep"] == 3


async def test_a_steps_events_are_posted_once_its_pods_have_moved() -> None:
    world = World([{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}])
    journal = world.journal

    async def post(cr: Obj, kind: str, reason: str, message: str) -> None:
        journal.calls.append(f"event {reason}")

    world.reconciler.events.post = post  # type: ignore[method-assign]
    await world.tick()
    assert journal.calls[:2] == ["scale 2", "event ReleaseStarted"], journal.calls


@pytest.mark.parametrize("namespace_ending", [False, True])
async def test_a_rollout_deleted_with_its_namespace_lets_go_without_a_hand_back(
    namespace_ending: bool,
) -> None:
    world = World([{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}])
    await world.tick(3)
    world.writer.namespace_ending = namespace_ending
    world.journal.calls.clear()
    assert await world.reconciler.release(world.cr)
    if namespace_ending:
        assert world.journal.calls == []
    else:
        assert "hand back" in world.journal.calls


async def test_abort_moves_routes_then_pods_then_services() -> None:
    world = World([{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}])
    await world.tick(3)
    world.cr["metadata"]["annotations"][ABORT_ANNOTATION] = "app-v2"
    world.journal.calls.clear()
    status = await world.tick(2)
    assert status["phase"] == "Aborted"
    assert world.journal.calls == [
        "traffic back to stable",
        "pods back to stable",
        "services restored",
    ]


async def test_finalizing_unpins_then_restores_routes_before_handing_the_workload_back() -> None:
    world = World([{"replicas": "50%", "weight": 50, "duration": 0}, {"replicas": "100%"}])
    status = await world.tick(8)
    assert status["phase"] == "Healthy"
    calls = world.journal.calls
    ending = calls[calls.index("services unpinned") :]
    assert ending == [
        "services unpinned",
        "traffic back to stable",
        "hand back",
        "services restored",
    ]


async def test_an_approval_for_an_older_revision_approves_nothing() -> None:
    world = World([{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}])
    status = await world.tick(3)
    assert (status["currentStep"], status["stepState"]) == (1, "WaitingApproval")
    world.cr["metadata"]["annotations"][APPROVE_ANNOTATION] = "app-v1/1"
    status = await world.tick(3)
    assert (status["currentStep"], status["stepState"]) == (1, "WaitingApproval")
    world.cr["metadata"]["annotations"][APPROVE_ANNOTATION] = "app-v2/1"
    status = await world.tick(3)
    assert (status["currentStep"], status["stepState"]) == (2, "WaitingApproval")


async def test_a_finished_release_spends_its_operations_for_a_reused_revision_name() -> None:
    # KubeVela names the revision after a rollback from the one it went back to: a standing
    # "app-v2" abort or approval would act on the next, unrelated "app-v2".
    world = World([{"replicas": "50%"}, {"replicas": "100%"}])
    world.cr["metadata"]["resourceVersion"] = "41"
    status = await world.tick(3)
    assert (status["currentStep"], status["stepState"]) == (1, "WaitingApproval")
    world.cr["metadata"]["annotations"][APPROVE_ANNOTATION] = "app-v2/1"
    world.cr["metadata"]["annotations"]["team"] = "payments"
    status = await world.tick(8)
    assert status["phase"] == "Healthy"
    # Only the operation, and only if nobody wrote one since it was read: guarded by the
    # resourceVersion of the pass' own status write (the annotations were still the same).
    assert world.writer.metadata == [
        {
            "annotations": {APPROVE_ANNOTATION: None},
            "resourceVersion": str(world.writer.resource_version - 1),
        }
    ]


async def test_an_operation_written_after_the_read_keeps_the_clear_guarded_by_the_read() -> None:
    world = World([{"replicas": "50%"}, {"replicas": "100%"}])
    world.cr["metadata"]["resourceVersion"] = "41"
    world.cr["metadata"]["annotations"][APPROVE_ANNOTATION] = "app-v2/1"
    # On the server, someone has paused the rollout since this controller read it.
    world.writer.annotations = {**world.cr["metadata"]["annotations"], PAUSE_ANNOTATION: "true"}
    status = await world.tick(8)
    assert status["phase"] == "Healthy"
    assert world.writer.metadata == [
        {"annotations": {APPROVE_ANNOTATION: None}, "resourceVersion": "41"}
    ], "the API server refuses this clear (409): the pause is not lost"


async def test_a_pass_that_fails_before_its_status_is_written_posts_no_event() -> None:
    # Found by the chaos tier: a pass that lost the API server half-way was made again, and
    # "StepStarted: step 3/3" was posted twice though the timeline has step 3 once.
    world = World([{"replicas": "50%"}, {"replicas": "100%"}])
    world.writer.down = True
    with pytest.raises(KubeError):
        await world.reconciler.reconcile(world.cr)
    assert world.events.posted == []
    world.writer.down = False
    await world.tick()
    assert world.events.posted.count("ReleaseStarted") == 1
    assert world.events.posted.count("StepStarted") <= 1


async def test_a_timed_step_waits_its_duration_and_no_longer() -> None:
    world = World([{"replicas": "20%", "duration": 30}, {"replicas": "100%"}])
    status = await world.tick(3)
    assert status["stepState"] == "Waiting"
    world.now += timedelta(seconds=29)
    status = await world.tick()
    assert status["currentStep"] == 1
    world.now += timedelta(seconds=2)
    status = await world.tick()
    assert status["currentStep"] == 2


@pytest.mark.parametrize("steps_done", [1, 2])
async def test_reconciling_the_same_status_again_repeats_the_step_and_skips_nothing(
    steps_done: int,
) -> None:
    world = World(
        [{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "80%"}, {"replicas": "100%"}]
    )
    for step in range(1, steps_done + 1):
        await world.tick(3)
        world.cr["metadata"]["annotations"][APPROVE_ANNOTATION] = f"app-v2/{step}"
    status = await world.tick(3)
    # A restarted controller starts from the stored status: same step, same state.
    again = await world.tick()
    assert again["currentStep"] == status["currentStep"] == steps_done + 1
    assert again["stepState"] == status["stepState"] == "WaitingApproval"


async def test_scaling_the_workload_while_a_step_waits_keeps_the_step_and_its_approval_gate() -> (
    None
):
    world = World([{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}])
    await world.tick(3)
    world.cr["metadata"]["annotations"][APPROVE_ANNOTATION] = "app-v2/1"
    status = await world.tick(3)
    assert (status["currentStep"], status["stepState"]) == (2, "WaitingApproval")
    world.workload.view = replace(world.workload.view, replicas=20)
    status = await world.tick(5)
    assert (status["currentStep"], status["stepState"]) == (2, "WaitingApproval")
    assert world.workload.view.new_pods == 10
    assert world.workload.view.old_pods == 10


async def test_a_timed_wait_starts_once_the_traffic_change_has_settled() -> None:
    world = World(
        [{"replicas": "20%", "weight": 20, "duration": 10}, {"replicas": "100%"}], grace=5
    )
    status = await world.tick(3)
    assert "traffic settling" in status["message"]
    world.now += timedelta(seconds=14)  # 5 s grace + 9 s of the 10 s wait
    status = await world.tick()
    assert status["currentStep"] == 1
    world.now += timedelta(seconds=2)
    status = await world.tick()
    assert status["currentStep"] == 2


async def test_abort_waits_the_grace_period_between_traffic_and_pods() -> None:
    world = World([{"replicas": "20%", "weight": 20}, {"replicas": "100%"}], grace=5)
    await world.tick(3)
    world.now += timedelta(seconds=6)
    await world.tick()
    world.cr["metadata"]["annotations"][ABORT_ANNOTATION] = "app-v2"
    world.journal.calls.clear()
    status = await world.tick()
    assert world.journal.calls == ["traffic back to stable"]
    assert status["phase"] != "Aborted"
    world.now += timedelta(seconds=6)
    status = await world.tick(2)
    assert world.journal.calls[1:] == ["pods back to stable", "services restored"]
    assert status["phase"] == "Aborted"


async def test_no_pod_moves_while_a_route_of_the_release_could_not_be_applied() -> None:
    world = World([{"replicas": "20%", "weight": 20}, {"replicas": "100%", "weight": 100}])
    world.traffic.problem = "gateway: HTTPRoute ns/web not found"
    status = await world.tick(3)
    assert not [c for c in world.journal.calls if c.startswith("scale")]
    assert "HTTPRoute ns/web not found" in status["message"]
    assert [c["status"] for c in status["conditions"] if c["type"] == "TrafficReady"] == ["False"]
    world.traffic.problem = None
    status = await world.tick(3)
    assert "scale 2" in world.journal.calls
    assert [c["status"] for c in status["conditions"] if c["type"] == "TrafficReady"] == ["True"]


async def test_the_status_shows_a_new_step_before_its_pods_move() -> None:
    world = World([{"replicas": "20%", "duration": 0}, {"replicas": "100%"}])
    await world.tick(4)
    steps = [(w["currentStep"], w["stepState"]) for w in world.writer.written]
    assert (2, "Upgrading") in steps, steps


async def test_a_step_whose_status_was_written_before_its_pods_moved_is_not_written_again() -> None:
    world = World([{"replicas": "20%", "duration": 0}, {"replicas": "100%"}])
    last_word = 0  # passes whose status written before acting was their last word
    for _ in range(6):
        before = len(world.writer.written)
        outcome = await world.reconciler.reconcile(world.cr)
        during = world.writer.written[before:]
        if during:
            assert outcome.written[-1]["status"] == during[-1], "the answer is handed on"
            last_word += outcome.status == during[-1]
        if outcome.changed:  # as the release loop does
            await world.writer.patch("", "", "", "", {"status": outcome.status})
        world.cr["status"] = outcome.status
    assert last_word >= 2, "each step start writes its status once, before its pods move"
    written = world.writer.written
    assert all(a != b for a, b in itertools.pairwise(written)), "nothing written twice"
