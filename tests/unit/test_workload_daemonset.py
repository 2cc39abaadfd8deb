"""DaemonSet, partition style (OnDelete + deleting old pods): the adapter (pure compute + act)
against the in-memory API server, and whole releases through the reconciler (decide unchanged).

The test plays the API server's generation and the DaemonSet controller (:class:`Controller`):
ControllerRevisions per template, one pod per node from the newest one, the status. The real
controller is exercised in tests/integration/test_daemonset.py.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from tests.support.fake_kube import FakeKube

from vela_progressive.cli.plan import build_previews, workload_preview
from vela_progressive.core.model import API_GROUP, API_VERSION, HOLD_LABEL, KIND, ReleaseMode
from vela_progressive.core.release import ABORT_ANNOTATION, APPROVE_ANNOTATION, RETRY_ANNOTATION
from vela_progressive.core.traffic import ObjectRef
from vela_progressive.core.traffic.patch import apply_merge_patch
from vela_progressive.core.workloads import (
    APP_REVISION_LABEL,
    CONTROLLER_REVISION_HASH,
    ORIGINAL_ANNOTATION,
    hold_patch,
    registry,
    template_hash,
)
from vela_progressive.core.workloads.common import is_ready, templates_equal
from vela_progressive.core.workloads.daemonset import (
    ABORTED_ANNOTATION,
    controller_revision,
    max_unavailable,
)
from vela_progressive.core.workloads.deployment_partition import pod
from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.reconciler import Reconciler
from vela_progressive.shell.workloads import WorkloadAdapter, adapter_for

Obj = dict[str, Any]
NS, NAME = "agents", "node-agent"
STYLE = registry.style_for("DaemonSet", ReleaseMode.BATCH)
LABELS = {"app": NAME}
DS_REF = ObjectRef("apps/v1", "DaemonSet", NS, NAME)


def template(image: str) -> Obj:
    return {"metadata": {"labels": dict(LABELS)}, "spec": {"containers": [{"image": image}]}}


V1, V2, V3 = template("v1"), template("v2"), template("v3")
R1, R2, R3 = template_hash(V1), template_hash(V2), template_hash(V3)
USERS = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "20%", "maxSurge": 0}}


class ApiServer(FakeKube):
    """The fake API server (which, as the real one, moves the generation on a spec change)."""


class Controller:
    """The DaemonSet controller, as far as a release relies on it."""

    def __init__(self, kube: ApiServer, nodes: int) -> None:
        self.kube, self.nodes = kube, nodes
        #: Revisions whose new pods never become Ready.
        self.unready: set[str] = set()

    def ds(self) -> Obj:
        return self.kube.obj("apps/v1", "DaemonSet", NS, NAME)

    def history(self) -> list[Obj]:
        return self.kube.objects("ControllerRevision", NS)

    def current(self) -> str:
        """Keep a ControllerRevision for the current template, the newest one."""
        ds = self.ds()
        history = self.history()
        newest = max((int(cr["revision"]) for cr in history), default=0)
        for cr in history:
            saved = {k: v for k, v in cr["data"]["spec"]["template"].items() if k != "$patch"}
            if templates_equal(saved, ds["spec"]["template"]):
                if int(cr["revision"]) != newest:
                    cr["revision"] = newest + 1
                    self.kube.put(cr)
                return str(cr["metadata"]["labels"][CONTROLLER_REVISION_HASH])
        made = controller_revision(ds, ds["spec"]["template"], newest + 1)
        made["metadata"].pop("uid")
        self.kube.put(made)
        return str(made["metadata"]["labels"][CONTROLLER_REVISION_HASH])

    def pods(self) -> dict[str, Obj]:
        return {p["spec"]["nodeName"]: p for p in self.kube.objects("Pod", NS)}

    def sync(self) -> None:
        """One pass: history, a pod on every node without one (current template), a rolling
        update when the strategy says so, the status."""
        revision = self.current()
        ds = self.ds()
        pods = self.pods()
        if ds["spec"]["updateStrategy"].get("type") == "RollingUpdate":
            for old in pods.values():  # at once: the unit tests only check the outcome
                if old["metadata"]["labels"][CONTROLLER_REVISION_HASH] != revision:
                    del self.kube.store[ObjectRef("v1", "Pod", NS, old["metadata"]["name"])]
            pods = self.pods()
        for n in range(self.nodes):
            node = f"node-{n}"
            if node not in pods:
                self.make_pod(node, revision, revision not in self.unready)
        pods = self.pods()
        on = [
            p
            for p in pods.values()
            if p["metadata"]["labels"][CONTROLLER_REVISION_HASH] == revision
        ]
        ds["status"] = {
            "observedGeneration": ds["metadata"]["generation"],
            "desiredNumberScheduled": self.nodes,
            "currentNumberScheduled": len(pods),
            "numberReady": sum(1 for p in pods.values() if is_ready(p)),
            "numberAvailable": sum(1 for p in pods.values() if is_ready(p)),
            "updatedNumberScheduled": len(on),
        }
        self.kube.put(ds)

    def make_pod(self, node: str, revision: str, ready: bool = True) -> None:
        made = pod(
            NS,
            f"{NAME}-{node}-{revision}",
            {**LABELS, CONTROLLER_REVISION_HASH: revision},
            self.ds(),
            ready=ready,
        )
        made["metadata"]["uid"] = f"{node}-{revision}-{self.kube.version}"
        made["spec"] = {"nodeName": node}
        self.kube.put(made)

    def set_template(self, tpl: Obj, app_revision: str | None = None) -> None:
        """A user (or KubeVela) changes the template: the API server bumps the generation."""
        ds = self.ds()
        ds["spec"]["template"] = copy.deepcopy(tpl)
        ds["metadata"]["generation"] += 1
        if app_revision is not None:
            ds["metadata"].setdefault("labels", {})[APP_REVISION_LABEL] = app_revision
        self.kube.put(ds)

    def revisions(self) -> dict[str, str]:
        return {
            node: p["metadata"]["labels"][CONTROLLER_REVISION_HASH]
            for node, p in sorted(self.pods().items())
        }

    def count(self, revision: str) -> int:
        return sum(1 for r in self.revisions().values() if r == revision)


def world(nodes: int = 10, strategy: Obj | None = None) -> tuple[ApiServer, Controller]:
    """A DaemonSet on ``nodes`` nodes, every pod on v1, its strategy ``strategy``."""
    ds: Obj = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "generation": 1,
            "labels": {HOLD_LABEL: "true"},
        },
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "template": copy.deepcopy(V1),
            "updateStrategy": copy.deepcopy(strategy or USERS),
        },
    }
    kube = ApiServer(ds)
    ctl = Controller(kube, nodes)
    ctl.sync()
    return kube, ctl


def adapter(kube: FakeKube) -> WorkloadAdapter:
    return adapter_for(kube, "DaemonSet", NS, NAME, ReleaseMode.BATCH)


def held_at_v2(kube: ApiServer, ctl: Controller) -> None:
    """The webhook holds the UPDATE to v2; the controller observes it."""
    old = ctl.ds()
    new = copy.deepcopy(old)
    new["spec"]["template"] = copy.deepcopy(V2)
    change = hold_patch("DaemonSet", old, new)
    assert change is not None
    ctl.set_template(V2)
    kube.store[DS_REF] = _merge(kube.store[DS_REF], change)
    ctl.sync()


def _merge(obj: Obj, patch: Obj) -> Obj:
    merged: Obj = apply_merge_patch(obj, patch)
    return merged


def saved_strategy(kube: FakeKube) -> Obj:
    ds = kube.obj("apps/v1", "DaemonSet", NS, NAME)
    strategy: Obj = json.loads(ds["metadata"]["annotations"][ORIGINAL_ANNOTATION])["updateStrategy"]
    return strategy


# ------------------------------------------------------------------------------------ hold
async def test_the_webhook_holds_a_template_change_with_on_delete_and_saves_the_strategy() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    ds = ctl.ds()
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert saved_strategy(kube) == USERS
    view = await adapter(kube).observe(None)
    assert view.held
    assert view.settled
    assert (view.replicas, view.update_revision, view.stable_revision) == (10, R2, R1)
    assert (view.new_pods, view.old_pods) == (0, 10)
    assert ctl.count(R1) == 10, "no pod moved"


def test_the_webhook_leaves_other_updates_alone_and_keeps_a_held_daemonset_held() -> None:
    kube, ctl = world()
    ds = ctl.ds()
    scaled = copy.deepcopy(ds)
    scaled["metadata"]["labels"]["team"] = "infra"
    assert hold_patch("DaemonSet", ds, scaled) is None
    held_at_v2(kube, ctl)
    held = ctl.ds()
    # KubeVela's three-way re-apply mid-release sets the strategy its component renders.
    reapplied = copy.deepcopy(held)
    reapplied["spec"]["updateStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 3, "maxSurge": 0},
    }
    change = hold_patch("DaemonSet", held, reapplied)
    assert change is not None
    assert change["spec"]["updateStrategy"]["type"] == "OnDelete"
    saved = json.loads(change["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    assert saved["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 3, "its newest wish"
    assert hold_patch("DaemonSet", held, copy.deepcopy(held)) is None


async def test_hold_by_the_controller_is_idempotent() -> None:
    kube, ctl = world()
    ctl.set_template(V2)  # the webhook missed it
    ctl.sync()
    a = adapter(kube)
    view = await a.observe(None)
    assert not view.held
    assert await a.hold(view) is True
    assert ctl.ds()["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert saved_strategy(kube) == USERS
    writes = len(kube.writes)
    assert await a.hold(await a.observe(None)) is False
    assert len(kube.writes) == writes


def test_max_unavailable_rounds_up_against_the_scheduled_pods() -> None:
    assert max_unavailable(USERS, 10) == 2
    assert max_unavailable(USERS, 3) == 1
    assert (
        max_unavailable({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 4}}, 10) == 4
    )


# ------------------------------------------------------------------------------------ steps
async def step_to(kube: ApiServer, ctl: Controller, new: int, passes: int = 30) -> list[int]:
    """Drive one step as the reconciler does (scale_to each pass, the controller between);
    the number of pods deleted by each pass."""
    a = adapter(kube)
    deleted = []
    for _ in range(passes):
        view = await a.observe(R1)
        if view.new_pods == new and view.new_ready == new and view.old_pods == 10 - new:
            return deleted
        before = len([w for w in kube.writes if w[0] == "DELETE"])
        await a.scale_to(view, new, surge_ready=False)
        deleted.append(len([w for w in kube.writes if w[0] == "DELETE"]) - before)
        assert ctl.count(R2) + (10 - len(ctl.pods())) <= new, "more pods moving than the step"
        ctl.sync()
    pytest.fail(f"step to {new} pods never finished: {ctl.revisions()}")


async def test_each_step_deletes_only_what_it_needs_within_max_unavailable() -> None:
    kube, ctl = world()  # maxUnavailable 20%: 2 of 10 nodes at a time
    held_at_v2(kube, ctl)
    assert await step_to(kube, ctl, 2) == [2]
    assert ctl.count(R2) == 2
    assert await step_to(kube, ctl, 5) == [2, 1]
    assert await step_to(kube, ctl, 10) == [2, 2, 1]
    assert ctl.count(R2) == 10
    writes = len(kube.writes)
    a = adapter(kube)
    await a.scale_to(await a.observe(R1), 10, surge_ready=True)
    assert len(kube.writes) == writes, "idempotent once the step runs"


async def test_pods_on_their_way_count_and_unready_pods_go_first() -> None:
    kube, ctl = world(strategy={"type": "OnDelete"})  # OnDelete: one pod at a time
    held_at_v2(kube, ctl)
    # node-9's v1 pod is not Ready: it goes first and costs no availability.
    kube.store.pop(ObjectRef("v1", "Pod", NS, f"{NAME}-node-9-{R1}"))
    ctl.make_pod("node-9", R1, ready=False)
    a = adapter(kube)
    await a.scale_to(await a.observe(R1), 3, surge_ready=False)
    deleted = [w[1].name for w in kube.writes if w[0] == "DELETE"]
    assert deleted == [f"{NAME}-node-9-{R1}"], "only the pod that is not Ready: 0 quota left"
    # Its node is now empty: that pod is on its way to v2, so the next pass deletes 1, not 3.
    await a.scale_to(await a.observe(R1), 3, surge_ready=False)
    assert len([w for w in kube.writes if w[0] == "DELETE"]) == 1, "quota: 1 unavailable (the gap)"
    ctl.sync()
    await a.scale_to(await a.observe(R1), 3, surge_ready=False)
    assert len([w for w in kube.writes if w[0] == "DELETE"]) == 2


async def test_the_view_follows_the_newest_controller_revision_once_observed() -> None:
    kube, ctl = world(strategy={"type": "OnDelete"})
    ctl.set_template(V2)  # the API server has it, the controller not yet
    a = adapter(kube)
    view = await a.observe(None)
    assert not view.settled
    assert view.update_revision == ""
    ctl.sync()
    view = await a.observe(None)
    assert view.settled
    assert view.update_revision == R2
    assert view.replicas == 10 == ctl.ds()["status"]["desiredNumberScheduled"]
    assert a.canary_selector(view) == {CONTROLLER_REVISION_HASH: R2}
    assert a.stable_selector(view) == {CONTROLLER_REVISION_HASH: R1}


# ------------------------------------------------------------------------------------ newer
async def test_a_newer_revision_mid_release_replaces_the_superseded_pods_first() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    await step_to(kube, ctl, 5)
    ctl.set_template(V3)
    ctl.sync()
    a = adapter(kube)
    view = await a.observe(R1)
    assert (view.update_revision, view.new_pods, view.old_pods) == (R3, 0, 10)
    assert ctl.count(R2) == 5, "a deleted v2 pod could only come back on v3"
    for _ in range(10):
        view = await a.observe(R1)
        await a.scale_to(view, 2, surge_ready=False)
        assert ctl.count(R3) + (10 - len(ctl.pods())) <= 2
        ctl.sync()
    assert (ctl.count(R3), ctl.count(R2), ctl.count(R1)) == (2, 3, 5), "v2 pods went first"


# ------------------------------------------------------------------------------------ abort
async def test_abort_puts_the_stable_template_back_then_every_pod_and_stays_aborted() -> None:
    kube, ctl = world()
    ctl.set_template(V1, app_revision="app-v1")
    ctl.sync()
    held_at_v2(kube, ctl)
    ctl.set_template(V2, app_revision="app-v2")
    ctl.sync()
    await step_to(kube, ctl, 5)
    a = adapter(kube)
    view = await a.observe(R1)
    await a.abort(view)
    ds = ctl.ds()
    assert templates_equal(ds["spec"]["template"], V1), "the stable template is back"
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}, "still held"
    marker = json.loads(ds["metadata"]["annotations"][ABORTED_ANNOTATION])
    assert marker == {
        "revision": R2,
        "generation": ds["metadata"]["generation"],
        "appRevision": "app-v2",
    }
    assert not [w for w in kube.writes if w[0] == "DELETE" and R2 in w[1].name], (
        "no pod deleted before the controller has observed the stable template"
    )
    for _ in range(10):
        ctl.sync()
        view = await a.observe(R1)
        assert view.update_revision == R2, "the release target is still the aborted revision"
        if view.new_pods == 0 and view.old_pods == 10:
            break
        await a.abort(view)
    assert ctl.count(R1) == 10
    # KubeVela re-applies the same revision: the new template is back, held, no pod moves.
    ctl.set_template(V2)
    ctl.sync()
    view = await a.observe(R1)
    assert (view.update_revision, view.new_pods, view.old_pods, view.held) == (R2, 0, 10, True)
    # A rollback: KubeVela applies the stable revision (a new Application revision).
    ctl.set_template(V1, app_revision="app-v3")
    ctl.sync()
    view = await a.observe(R1)
    assert view.update_revision == R1 == view.stable_revision


async def test_after_an_abort_a_template_change_without_kubevela_ends_the_aborted_target() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    await step_to(kube, ctl, 2)
    a = adapter(kube)
    await a.abort(await a.observe(R1))
    ctl.sync()
    assert (await a.observe(R1)).update_revision == R2
    ctl.set_template(V3)
    ctl.sync()
    assert (await a.observe(R1)).update_revision == R3


async def test_a_stale_read_is_refused() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    a = adapter(kube)
    view = await a.observe(R1)
    ctl.sync()  # the pods are the same; the DaemonSet was written since
    ds = ctl.ds()
    ds["metadata"].setdefault("annotations", {})["someone"] = "else"
    kube.put(ds)
    with pytest.raises(KubeError) as err:
        await a.abort(view)
    assert err.value.conflict


# ------------------------------------------------------------------------------------ hand back
async def test_finalize_restores_the_strategy_exactly_and_waits_for_the_controller() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    await step_to(kube, ctl, 5)
    a = adapter(kube)
    assert await a.finalize(await a.observe(R1)) is False
    ds = ctl.ds()
    assert ds["spec"]["updateStrategy"] == USERS
    assert not any(k.startswith(API_GROUP) for k in ds["metadata"].get("annotations") or {})
    assert await a.finalize(await a.observe(R1)) is False, "5 pods still on v1"
    ctl.sync()  # RollingUpdate: the DaemonSet controller rolls the rest
    assert await a.finalize(await a.observe(R1)) is True
    assert ctl.count(R2) == 10


async def test_finalize_with_the_users_on_delete_moves_the_rest_itself() -> None:
    kube, ctl = world(strategy={"type": "OnDelete"})
    held_at_v2(kube, ctl)
    await step_to(kube, ctl, 2)
    a = adapter(kube)
    for _ in range(30):
        if await a.finalize(await a.observe(R1)):
            break
        assert 10 - len(ctl.pods()) <= 1, "one pod at a time"
        ctl.sync()
    else:
        pytest.fail(f"never handed back: {ctl.revisions()}")
    assert ctl.ds()["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert ctl.count(R2) == 10


# ------------------------------------------------------------------------------------ decide
class NoTraffic:
    """No routings: the reconciler never calls the traffic port."""


class Release:
    """The reconciler (decide unchanged) releasing the fake DaemonSet."""

    def __init__(self, kube: ApiServer, ctl: Controller, steps: list[Obj]) -> None:
        self.kube, self.ctl = kube, ctl
        self.now = datetime(2026, 1, 1)
        self.events: list[str] = []
        outer = self

        class Events:
            async def post(self, cr: Obj, kind: str, reason: str, message: str) -> None:
                outer.events.append(reason)

        self.reconciler = Reconciler(
            kube=kube,
            traffic=NoTraffic(),  # type: ignore[arg-type]
            events=Events(),  # type: ignore[arg-type]
            clock=lambda: self.now,
        )
        self.cr: Obj = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": NAME, "namespace": NS, "uid": "cr", "generation": 1},
            "spec": {
                "workloadRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": NAME},
                "application": {"name": "app", "component": NAME},
                "revision": {"name": "app-v2", "number": 2},
                "strategy": {"canary": {"steps": steps}},
            },
        }

    async def until(self, what: str, done: Any, passes: int = 60) -> Obj:
        if await self.kube.get(self.cr["apiVersion"], KIND, NAME, NS) is None:
            await self.kube.create(copy.deepcopy(self.cr))  # the status is written before acting
        status: Obj = {}
        for _ in range(passes):
            await self.read()
            outcome = await self.reconciler.reconcile(self.cr)
            self.cr["status"] = status = outcome.status
            assert self.ctl.count(R2) <= self.allowed(status), (status, self.ctl.revisions())
            if done(status):
                return status
            self.ctl.sync()
            self.now += timedelta(seconds=1)
        pytest.fail(f"never {what}: {status.get('message')} {self.ctl.revisions()}")

    def allowed(self, status: Obj) -> int:
        if status.get("stepState") == "Completed" or status.get("phase") == "Healthy":
            return 10
        plan = {p["step"]: p["newPods"] for p in status.get("plan") or []}
        return plan.get(status.get("currentStep") or 0, 10)

    async def read(self) -> None:
        """Each pass reads the rollout: its operations and resourceVersion as stored."""
        stored = await self.kube.get(self.cr["apiVersion"], KIND, NAME, NS)
        assert stored is not None
        for key in ("annotations", "resourceVersion"):
            if key in stored["metadata"]:
                self.cr["metadata"][key] = copy.deepcopy(stored["metadata"][key])

    def annotate(self, key: str, value: str) -> None:
        """A user's operation, written to the stored rollout."""
        ref = ObjectRef(self.cr["apiVersion"], KIND, NS, NAME)
        stored = self.kube.store[ref]
        stored["metadata"].setdefault("annotations", {})[key] = value


def waiting(step: int) -> Any:
    return lambda s: s.get("currentStep") == step and s.get("stepState") == "WaitingApproval"


async def test_a_release_with_approvals_through_the_decision_function() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    rel = Release(kube, ctl, [{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}])
    for step, new in ((1, 2), (2, 5)):
        status = await rel.until(f"step {step}", waiting(step))
        assert ctl.count(R2) == new == status["plan"][step - 1]["newPods"]
        rel.annotate(APPROVE_ANNOTATION, f"app-v2/{step}")
    status = await rel.until("healthy", lambda s: s.get("phase") == "Healthy")
    assert ctl.count(R2) == 10
    ds = ctl.ds()
    assert ds["spec"]["updateStrategy"] == USERS
    assert not any(k.startswith(API_GROUP) for k in ds["metadata"].get("annotations") or {})


async def test_abort_through_the_decision_function_stays_aborted() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    rel = Release(kube, ctl, [{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}])
    await rel.until("step 1", waiting(1))
    rel.annotate(APPROVE_ANNOTATION, "app-v2/1")
    await rel.until("step 2", waiting(2))
    rel.annotate(ABORT_ANNOTATION, "app-v2")
    status = await rel.until("aborted", lambda s: s.get("phase") == "Aborted")
    assert ctl.count(R1) == 10
    assert status["canaryRevision"] == R2
    for _ in range(3):
        ctl.sync()
        await rel.read()
        outcome = await rel.reconciler.reconcile(rel.cr)
        assert outcome.status["phase"] == "Aborted", "no release starts again by itself"
    assert ctl.count(R1) == 10


async def test_a_failed_step_aborts_and_retry_puts_the_releases_template_back() -> None:
    kube, ctl = world()
    held_at_v2(kube, ctl)
    rel = Release(kube, ctl, [{"replicas": "20%"}, {"replicas": "50%"}, {"replicas": "100%"}])
    rel.cr["spec"]["strategy"]["progressDeadlineSeconds"] = 5
    await rel.until("step 1", waiting(1))
    ctl.unready = {R2}  # v2's next pods never become Ready
    rel.annotate(APPROVE_ANNOTATION, "app-v2/1")
    status = await rel.until(
        "failed and aborted",
        lambda s: s.get("phase") == "Failed" and s.get("endingStage") == "Done",
    )
    assert ctl.count(R1) == 10
    assert templates_equal(ctl.ds()["spec"]["template"], V1)
    assert status["canaryRevision"] == R2
    ctl.unready = set()  # v2 fixed in place (say, a node problem went away)
    rel.annotate(RETRY_ANNOTATION, "app-v2/1")
    await rel.until("step 2 again", waiting(2))
    assert templates_equal(ctl.ds()["spec"]["template"], V2)
    assert ctl.count(R2) == 5


# ------------------------------------------------------------------------------------ preview
def test_the_plan_preview_shows_the_hold_the_deletions_and_the_hand_back() -> None:
    app = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "agents"},
        "spec": {
            "components": [
                {
                    "name": NAME,
                    "type": "daemon",
                    "properties": {"image": "v2"},
                    "traits": [
                        {
                            "type": "progressive-rollout",
                            "properties": {
                                "canary": {"steps": [{"replicas": "20%"}, {"replicas": "100%"}]}
                            },
                        }
                    ],
                }
            ]
        },
    }
    (preview,) = build_previews([app], component=None, replicas=10, namespace=None)
    shown = workload_preview(preview)
    assert shown.hold is not None
    assert shown.hold[1]["spec"]["updateStrategy"]["type"] == "OnDelete"
    first = [doc for _, doc in shown.steps[0]]
    assert [d["kind"] for d in first] == ["Pod"], "step 1: one pod deleted (maxUnavailable 1)"
    assert "recreates it from its template" in shown.steps[0][0][0]
    ((_, back),) = shown.hand_back
    assert back["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
