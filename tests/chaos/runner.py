"""The chaos runner: releases in flight on several Applications, faults from a seeded schedule,
the sampler checking invariants all along, and checks at the end of every release.

A *slot* is one Application (in its own namespace) that releases one revision after another;
``concurrency`` slots run at once until ``releases`` releases have finished. Faults come from
:class:`~tests.chaos.schedule.Schedule` one after another while releases run.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tests.chaos.apps import SHAPES, STEPS, Shape, image
from tests.chaos.ledger import Ledger, Release
from tests.chaos.observe import Observer, Unreachable, rollouts_path
from tests.chaos.sampler import Sampler, image_of, live
from tests.chaos.schedule import KINDS, Fault, Schedule
from tests.support.cluster import WORLD, Cluster
from tests.support.controller import Controller
from vela_progressive.cli.approve import approval

Obj = dict[str, Any]
T = TypeVar("T")


PREFIX = "chaos-"
#: A release that has not finished after this long is stuck: a violation.
RELEASE_TIMEOUT = 300.0
#: What a user does between seeing a step wait and approving it.
APPROVAL_DELAY = (0.2, 1.5)
POLL = 0.3
#: The longest a controller stays stopped (SIGSTOP) waiting for a change to pass its webhook.
FREEZE_CAP = 90.0
#: Metadata KubeVela and the API server change on every revision: never compared.
VOLATILE_PREFIXES = (
    "app.oam.dev/",
    "oam.dev/",
    "kubectl.kubernetes.io/",
    "deployment.kubernetes.io/",  # the Deployment controller's revision counter
    "chaos.vela-progressive.io/",  # the re-apply storm's poke, copied by KubeVela
)
#: Workload spec fields a release legitimately changes (the new template, a user's scaling).
RELEASED_FIELDS = ("template", "replicas")
GROUP = "rollout.vela-progressive.io"
APPROVE = f"{GROUP}/approve"
ABORT = f"{GROUP}/abort"
POKE = "chaos.vela-progressive.io/poke"


async def retrying(what: str, call: Callable[[], Awaitable[T]], within: float = 120.0) -> T:
    """``call`` until it answers: the API server may be down on purpose for a few seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except (Unreachable, subprocess.CalledProcessError, OSError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: no answer for {within:.0f}s ({exc})") from exc
            await asyncio.sleep(0.5)


def handback_view(obj: Obj) -> Obj:
    """What must be exactly as before after a release: spec (less the new template and the
    replicas) and our labels and annotations (less KubeVela's per-revision bookkeeping)."""
    meta = obj.get("metadata") or {}

    def own(values: dict[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (values or {}).items() if not k.startswith(VOLATILE_PREFIXES)}

    spec = {k: v for k, v in (obj.get("spec") or {}).items() if k not in RELEASED_FIELDS}
    return {
        "labels": own(meta.get("labels")),
        "annotations": own(meta.get("annotations")),
        "spec": spec,
    }


def diff(before: Obj, after: Obj) -> str:
    keys = sorted(set(before) | set(after))
    changed = [k for k in keys if before.get(k) != after.get(k)]
    return "; ".join(
        f"{k}: {json.dumps(before.get(k), sort_keys=True)[:300]} -> "
        f"{json.dumps(after.get(k), sort_keys=True)[:300]}"
        for k in changed
    )


@dataclass
class Slot:
    index: int
    shape: Shape
    replicas: int
    version: int = 1
    image: str = ""
    #: Requests from the fault injector for the release in flight ("newer-revision", ...).
    inbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    #: Snapshots after the first revision settled: workload, Service and Ingress.
    baseline: dict[str, Obj] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    @property
    def namespace(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def app(self) -> str:
        return "web"

    def next_image(self) -> str:
        self.version += 1
        return image(self.version)


@dataclass
class FaultRecord:
    fault: Fault
    #: Monotonic time the fault ended (process back, controller resumed, storm over).
    ended: float = 0.0
    #: Seconds from the end of the fault until every release in flight moved again.
    recovery: float | None = None
    detail: str = ""


@dataclass
class Report:
    seed: int
    releases: int
    concurrency: int
    faults: list[FaultRecord]
    ledger: Ledger
    samples: int
    gaps: int
    wall: float
    release_seconds: list[float]

    def lines(self) -> list[str]:
        by_kind: dict[str, list[FaultRecord]] = defaultdict(list)
        for record in self.faults:
            by_kind[record.fault.kind].append(record)
        out = [
            f"chaos: seed {self.seed}, {self.releases} releases ({self.concurrency} at once), "
            f"{len(self.faults)} faults, {self.wall:.0f} s",
            f"chaos: sampler took {self.samples} samples ({self.gaps} while the API server was "
            f"unreachable); invariant violations: {len(self.ledger.violations)} "
            f"(in {self.ledger.samples_violating} samples)",
        ]
        if self.release_seconds:
            out.append(
                f"chaos: release wall time median {statistics.median(self.release_seconds):.1f} s,"
                f" worst {max(self.release_seconds):.1f} s"
            )
        out.append(f"  {'fault':<20} {'runs':>4} {'recovery median':>16} {'worst':>8}")
        for kind in sorted(by_kind):
            times = [r.recovery for r in by_kind[kind] if r.recovery is not None]
            median = f"{statistics.median(times):.1f} s" if times else "-"
            worst = f"{max(times):.1f} s" if times else "-"
            out.append(f"  {kind:<20} {len(by_kind[kind]):>4} {median:>16} {worst:>8}")
        for record in self.faults:
            if record.detail:
                out.append(f"  {record.fault.kind}: {record.detail}")
        for v in self.ledger.violations:
            out.append(f"VIOLATION {v.invariant} {v.release}: {v.detail}")
        return out


class Runner:
    def __init__(
        self,
        cluster: Cluster,
        controller: Controller,
        observer: Observer,
        *,
        seed: int,
        releases: int,
        concurrency: int,
    ) -> None:
        assert cluster.name, "the chaos tier needs a world.py cluster (it kills its processes)"
        self.cluster = cluster
        self.world = cluster.name
        self.controller = controller
        self.observer = observer
        self.seed = seed
        self.total = releases
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.sampler = Sampler(observer, self.ledger, PREFIX)
        self.started = 0
        self.controller_down = False
        self.faults: list[FaultRecord] = []
        self.release_seconds: list[float] = []
        self.slots = [
            Slot(i, shape, shape.replicas)
            for i, shape in zip(
                range(concurrency), (SHAPES * concurrency)[:concurrency], strict=True
            )
        ]

    def say(self, message: str) -> None:
        print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ cluster actions
    async def kubectl(self, *args: str, input: str | None = None) -> str:
        done = await asyncio.to_thread(self.cluster.kubectl, *args, input=input, check=False)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
        return done.stdout

    async def apply(self, slot: Slot, target: str, replicas: int) -> None:
        text = slot.shape.yaml(slot.app, target, replicas)
        await retrying(
            f"apply {slot.namespace}/{slot.app}",
            lambda: self.kubectl("apply", "-n", slot.namespace, "-f", "-", input=text),
        )

    async def world_cmd(self, *args: str) -> None:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(WORLD), *args, "--name", self.world],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"world.py {' '.join(args)} failed: {done.stderr}")

    async def rollout(self, slot: Slot) -> Obj | None:
        items = await self.observer.items(rollouts_path(slot.namespace))
        if not items and slot.baseline:
            # Every slot has its rollout once set up: an empty list is an API server that has
            # just restarted and not yet filled its cache, not an answer.
            raise Unreachable(f"{slot.namespace}: no rollout listed (API server warming up)")
        return items[0] if items else None

    async def pods(self, slot: Slot) -> list[Obj]:
        got = await self.observer.items(f"/api/v1/namespaces/{slot.namespace}/pods")
        return [p for p in got if live(p)]

    def workload_path(self, slot: Slot) -> str:
        plural = "deployments" if slot.shape.kind == "Deployment" else "statefulsets"
        return f"/apis/apps/v1/namespaces/{slot.namespace}/{plural}/{slot.app}"

    async def names(self, slot: Slot) -> set[str]:
        ns = slot.namespace
        found: set[str] = set()
        for kind, path in (
            ("deployment", f"/apis/apps/v1/namespaces/{ns}/deployments"),
            ("statefulset", f"/apis/apps/v1/namespaces/{ns}/statefulsets"),
            ("service", f"/api/v1/namespaces/{ns}/services"),
            ("ingress", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
        ):
            found |= {f"{kind}/{o['metadata']['name']}" for o in await self.observer.items(path)}
        return found

    async def snapshot(self, slot: Slot) -> dict[str, Obj]:
        ns = slot.namespace
        out: dict[str, Obj] = {}
        workload = await self.observer.get(self.workload_path(slot))
        assert workload is not None, f"{ns}: no workload {slot.app}"
        out["workload"] = handback_view(workload)
        service = await self.observer.get(f"/api/v1/namespaces/{ns}/services/{slot.app}")
        if service is not None:
            out["service"] = handback_view(service) | {"template": None}
        if slot.shape.traffic:
            ingress = await self.observer.get(
                f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{slot.app}"
            )
            assert ingress is not None, f"{ns}: no Ingress {slot.app}"
            out["ingress"] = handback_view(ingress)
        return out

    # ------------------------------------------------------------------ the whole run
    async def run(self) -> Report:
        began = time.monotonic()
        self.say(
            f"seed {self.seed}: {self.total} releases, {self.concurrency} at once "
            f"(replay: make test-chaos SEED={self.seed} RELEASES={self.total})"
        )
        await asyncio.gather(*(self.set_up(slot) for slot in self.slots))
        self.say(f"{len(self.slots)} Applications on their first revision; releases start")
        stop = asyncio.Event()
        sampler = asyncio.create_task(self.sampler.run(stop))
        injector = asyncio.create_task(self.inject(stop))
        try:
            await asyncio.gather(*(self.drive(slot) for slot in self.slots))
        finally:
            stop.set()
            await injector
            await sampler
        return Report(
            seed=self.seed,
            releases=len(self.ledger.releases),
            concurrency=self.concurrency,
            faults=self.faults,
            ledger=self.ledger,
            samples=self.sampler.samples,
            gaps=self.sampler.gaps,
            wall=time.monotonic() - began,
            release_seconds=self.release_seconds,
        )

    async def set_up(self, slot: Slot) -> None:
        await self.kubectl("create", "namespace", slot.namespace)
        slot.image = image(slot.version)
        await self.apply(slot, slot.image, slot.replicas)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            cr = await self.rollout(slot)
            pods = await self.pods(slot)
            if (
                cr is not None
                and (cr.get("status") or {}).get("phase") == "Healthy"
                and len(pods) == slot.replicas
                and all(ready(p) and image_of(p) == slot.image for p in pods)
            ):
                slot.baseline = await self.snapshot(slot)
                slot.names = await self.names(slot)
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"{slot.namespace}: the first revision did not settle in 120 s")

    async def drive(self, slot: Slot) -> None:
        """Release after release until ``total`` have started and every fault kind has hit
        releases in flight at least once."""
        while self.started < self.total or len({f.fault.kind for f in self.faults}) < len(KINDS):
            self.started += 1
            await self.release(slot, self.started)

    # ------------------------------------------------------------------ one release
    async def release(self, slot: Slot, number: int) -> None:
        while not slot.inbox.empty():  # meant for the release before, which ended first
            slot.inbox.get_nowait()
        target = slot.next_image()
        r = Release(
            namespace=slot.namespace,
            app=slot.app,
            shape=slot.shape,
            number=number,
            target=target,
            stable=slot.image,
            replicas=slot.replicas,
            replicas_max=slot.replicas,
            intended=target,
        )
        self.ledger.releases.append(r)
        r.note(f"apply {target}")
        await self.apply(slot, target, slot.replicas)
        approved: set[str] = set()  # approve values sent: one per revision and step
        rolled_back = False
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while True:
            if time.monotonic() > deadline:
                cr = await retrying("read rollout", lambda: self.rollout(slot))
                st = (cr or {}).get("status") or {}
                self.ledger.violate(
                    "release-finishes",
                    r,
                    f"not done after {RELEASE_TIMEOUT} s; the rollout says: phase "
                    f"{st.get('phase')}, step {st.get('currentStep')} {st.get('stepState')}, "
                    f"observed {st.get('observedRevision')}: {st.get('message')}",
                )
                # What a replay needs: the operations the rollout carries and its last entries.
                annotations = ((cr or {}).get("metadata") or {}).get("annotations") or {}
                r.note(f"rollout annotations: {annotations}")
                for entry in (st.get("timeline") or [])[-8:]:
                    r.note(f"timeline: {entry}")
                break
            for _ in range(slot.inbox.qsize()):  # one look each: an abort may wait its turn
                await self.intervene(slot, r, slot.inbox.get_nowait())
            try:
                cr = await self.rollout(slot)
                pods = await self.pods(slot)
                workload = await self.observer.get(self.workload_path(slot))
            except Unreachable:
                await asyncio.sleep(POLL)
                continue
            status = (cr or {}).get("status") or {}
            spec_revision = ((cr or {}).get("spec") or {}).get("revision", {}).get("name")
            if (
                r.template_seen
                and status.get("phase") == "Progressing"
                and status.get("canaryRevision")
                and status.get("observedRevision") == spec_revision
            ):
                r.revision = spec_revision
            if r.aborted and not rolled_back and status.get("phase") == "Aborted":
                r.note("aborted; rolling back to the stable revision")
                await self.apply(slot, r.stable, slot.replicas)
                rolled_back = True
            if settled(r, cr, pods, workload, rolled_back):
                break
            # What `kubectl progressive approve` would send: nothing while the step that waits is
            # an older revision's (the controller was down when the spec moved on).
            value = approval(cr, slot.app)[0] if cr is not None else None
            if (
                value is not None
                and not r.aborted
                and value not in approved
                and status.get("canaryRevision")
            ):
                approved.add(value)
                step = int(status.get("currentStep") or 0)
                await asyncio.sleep(self.rng.uniform(*APPROVAL_DELAY))
                r.approvals = max(r.approvals, step)
                r.note(f"approve step {step} of {value.split('/')[0]}")
                path = f"{rollouts_path(slot.namespace)}/{cr['metadata']['name']}"
                body = {"metadata": {"annotations": {APPROVE: value}}}
                await retrying("approve", lambda p=path, b=body: self.observer.merge_patch(p, b))
            await asyncio.sleep(POLL)
        r.finished = time.monotonic()
        self.release_seconds.append(r.finished - r.started)
        slot.image = r.intended
        await self.check_end(slot, r)
        self.say(
            f"{r.label} done in {r.finished - r.started:.1f} s"
            f"{' (aborted, rolled back)' if r.aborted else ''}"
        )

    async def intervene(self, slot: Slot, r: Release, what: str) -> None:
        if r.aborted:
            return
        if what == "newer-revision":
            r.target = r.intended = slot.next_image()
            r.approvals = 0
            r.template_seen, r.revision = False, None
            r.note(
                f"newer revision {r.target}{' (controller down)' if self.controller_down else ''}"
            )
            await self.apply(slot, r.target, slot.replicas)
        elif what == "user-scale":
            slot.replicas = (
                slot.shape.replicas + 1
                if slot.replicas == slot.shape.replicas
                else (slot.shape.replicas)
            )
            r.replicas = slot.replicas
            r.replicas_max = max(r.replicas_max, slot.replicas)
            r.note(f"user scales to {slot.replicas}")
            await self.apply(slot, r.target, slot.replicas)
        elif what == "abort":
            if r.revision is None:
                # The rollout does not report releasing this revision yet: a user aborts what
                # `kubectl progressive status` shows, so wait (an abort naming the revision
                # before would be ignored, rightly).
                await slot.inbox.put(what)
                return
            if r.approvals >= len(STEPS):
                # The last step is approved: the release is finishing, which an abort no
                # longer stops (docs/reliability.md). A user would roll back instead.
                r.note("abort skipped: the last step was already approved")
                return
            cr = await retrying("read rollout", lambda: self.rollout(slot))
            assert cr is not None
            revision = r.revision
            r.aborted = True
            r.intended = r.stable
            r.note(f"abort {revision}")
            await retrying(
                "abort",
                lambda: self.observer.merge_patch(
                    f"{rollouts_path(slot.namespace)}/{cr['metadata']['name']}",
                    {"metadata": {"annotations": {ABORT: revision}}},
                ),
            )

    async def check_end(self, slot: Slot, r: Release) -> None:
        """The release left nothing behind: the workload, the Service and the Ingress exactly
        as before (less the new template and the replicas), no canary objects, and a timeline
        and Events in which no step is skipped or repeated."""
        after = await retrying("snapshot", lambda: self.snapshot(slot))
        for what, before in slot.baseline.items():
            if after.get(what) != before:
                self.ledger.violate(
                    "handed-back-exactly", r, f"{what}: {diff(before, after.get(what) or {})}"
                )
        names = await retrying("names", lambda: self.names(slot))
        if names != slot.names:
            self.ledger.violate(
                "no-leftovers",
                r,
                f"objects now {sorted(names - slot.names)} more, {sorted(slot.names - names)} "
                "fewer than before the release",
            )
        cr = await retrying("read rollout", lambda: self.rollout(slot))
        assert cr is not None
        problem = steps_problem(timeline_since((cr.get("status") or {}), r.started_wall))
        if problem:
            self.ledger.violate("steps-in-order", r, f"timeline: {problem}")
        events = await retrying(
            "events", lambda: self.observer.items(f"/api/v1/namespaces/{slot.namespace}/events")
        )
        problem = event_repeats(events, r.started_wall)
        if problem:
            self.ledger.violate("steps-in-order", r, f"events: {problem}")

    # ------------------------------------------------------------------ faults
    async def inject(self, stop: asyncio.Event) -> None:
        schedule = Schedule(self.seed)
        while not stop.is_set():
            fault = next(schedule)
            try:
                await asyncio.wait_for(stop.wait(), timeout=fault.gap)
                return
            except TimeoutError:
                pass
            record = FaultRecord(fault)
            self.faults.append(record)
            self.say(f"fault {len(self.faults)}: {fault.kind} ({fault.duration:.1f} s)")
            await self.fault(record)
            record.ended = time.monotonic()
            await self.recovery(record, stop)

    def going_down(self) -> None:
        """The controller stops serving its webhook (the sampler marks what passes unheld)."""
        self.controller_down = True
        self.ledger.went_down()

    def coming_up(self) -> None:
        self.controller_down = False
        self.ledger.came_up()

    def pick(self, fault: Fault) -> Release | None:
        candidates = [
            r
            for r in self.ledger.in_flight()
            if not r.aborted and (fault.kind != "abort" or r.approvals < len(STEPS))
        ]
        if not candidates:
            return None
        return candidates[int(fault.pick * len(candidates))]

    async def fault(self, record: FaultRecord) -> None:
        fault = record.fault
        kind = fault.kind
        if kind in ("newer-revision", "user-scale", "abort"):
            target = self.pick(fault)
            if target is None:
                record.detail = "no release in flight to target; skipped"
                return
            slot = next(s for s in self.slots if s.namespace == target.namespace)
            await slot.inbox.put(kind)
            record.detail = f"on {target.label}"
        elif kind == "controller-kill":
            await asyncio.to_thread(self.controller.kill)
            self.going_down()
            try:
                await asyncio.sleep(fault.duration)
                began = time.monotonic()
                await asyncio.to_thread(self.controller.start)
                record.detail = f"serving again {time.monotonic() - began:.1f} s after its start"
            finally:
                self.coming_up()
        elif kind == "controller-freeze":
            await self.freeze(record)
        elif kind in ("apiserver-restart", "etcd-restart", "vela-core-restart"):
            process = kind.removesuffix("-restart").replace("apiserver", "kube-apiserver")
            await self.world_cmd("kill", process)
            await asyncio.sleep(fault.duration)
            await self.world_cmd("respawn", process)
            await retrying("the API server after a restart", self.api_ready)
        elif kind == "reapply-storm":
            end = time.monotonic() + fault.duration
            n = 0
            while time.monotonic() < end:
                n += 1
                for slot in self.slots:
                    path = (
                        f"/apis/core.oam.dev/v1beta1/namespaces/{slot.namespace}/applications/web"
                    )
                    body = {"metadata": {"annotations": {POKE: str(n)}}}
                    await retrying("poke", lambda p=path, b=body: self.observer.merge_patch(p, b))
                await asyncio.sleep(2)
            record.detail = f"{n} rounds of re-applies"

    async def api_ready(self) -> bool:
        got = await self.observer.get("/api/v1/namespaces/default")
        if got is None:
            raise Unreachable("no default namespace yet")
        return True

    async def freeze(self, record: FaultRecord) -> None:
        """SIGSTOP the controller past the webhook timeout while a newer revision is applied:
        the fail-open webhook must let it through; once resumed the watch holds the workload."""
        pid = self.controller.proc.pid if self.controller.proc else None
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        self.going_down()
        stopped = time.monotonic()
        try:
            await asyncio.sleep(2)
            target = self.pick(record.fault)
            if target is None:
                record.detail = "no release in flight; the controller was stopped only"
                await asyncio.sleep(max(record.fault.duration - 2, 0))
                return
            slot = next(s for s in self.slots if s.namespace == target.namespace)
            await slot.inbox.put("newer-revision")
            # Stopped for the scheduled time at least, and until the change got through (the
            # webhook timeout is 5 s, and KubeVela retries an apply that failed).
            passed = None
            while time.monotonic() - stopped < FREEZE_CAP:
                if passed is not None and time.monotonic() - stopped >= record.fault.duration:
                    break
                workload = await self.observer.get(self.workload_path(slot))
                template_image = (
                    workload["spec"]["template"]["spec"]["containers"][0]["image"]
                    if workload
                    else ""
                )
                if passed is None and template_image == target.target and target.unheld:
                    passed = time.monotonic() - stopped
                await asyncio.sleep(0.5)
            if passed is None:
                self.ledger.violate(
                    "fail-open",
                    target,
                    f"the newer revision did not reach the workload in {FREEZE_CAP:.0f} s while "
                    "the controller was stopped",
                )
            stop_took = time.monotonic() - stopped
            record.detail = (
                f"on {target.label}: the template change passed the stopped webhook "
                f"{passed or 0:.1f} s into the stop; resumed after {stop_took:.1f} s"
            )
        finally:
            os.kill(pid, signal.SIGCONT)
            self.coming_up()

    async def recovery(self, record: FaultRecord, stop: asyncio.Event) -> None:
        """Seconds from the end of a fault until every release then in flight moved again."""
        waiting = {r.namespace for r in self.ledger.in_flight()}
        if not waiting:
            return
        end = record.ended
        deadline = end + 120
        while not stop.is_set() and time.monotonic() < deadline:
            moved = {
                ns
                for ns in waiting
                if self.sampler.moved.get(ns, 0) > end
                or all(r.finished is not None for r in self.ledger.releases if r.namespace == ns)
            }
            if moved == waiting:
                record.recovery = time.monotonic() - end
                return
            await asyncio.sleep(0.2)


def ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def settled(
    r: Release, cr: Obj | None, pods: list[Obj], workload: Obj | None, rolled_back: bool
) -> bool:
    """The release is over: the rollout says Healthy about its current spec (not a Healthy
    left from the release before, while the controller is down), and the pods and template
    agree."""
    if (r.aborted and not rolled_back) or cr is None or workload is None:
        return False
    status = cr.get("status") or {}
    revision = ((cr.get("spec") or {}).get("revision") or {}).get("name")
    if (
        status.get("phase") != "Healthy"
        or status.get("observedRevision") != revision
        or status.get("observedGeneration") != cr["metadata"].get("generation")
    ):
        return False
    template = workload["spec"]["template"]["spec"]["containers"][0]["image"]
    return (
        template == r.intended
        and len(pods) == r.replicas
        and all(image_of(p) == r.intended and ready(p) for p in pods)
    )


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an API timestamp (0 for none).

    >>> _epoch("1970-01-01T00:01:00Z"), _epoch("")
    (60.0, 0.0)
    """
    if not stamp:
        return 0.0
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def timeline_since(status: Obj, since: float) -> list[Obj]:
    """Timeline entries that started during this release (the clock has 1 s resolution)."""
    return [
        t
        for t in status.get("timeline") or []
        if isinstance(t, dict) and _epoch(str(t.get("startedAt"))) >= int(since)
    ]


#: Timeline messages of a step 1 that begins an attempt at a revision.
ATTEMPT_STARTS = ("release started", "new revision")


def steps_problem(entries: list[Obj]) -> str:
    """Steps of each attempt at a revision run 1, 2, 3... in order, none jumped, none repeated.

    An attempt begins with a step-1 entry saying so (a release start or a newer revision);
    within it a step never comes back after a later one.

    >>> def e(step, message="step started"):
    ...     return {"step": step, "message": message}
    >>> steps_problem([e(1, "release started"), e(1, "pods ready"), e(2), e(3)])
    ''
    >>> steps_problem([e(1, "release started"), e(2), e(1, "new revision: restarted"), e(2)])
    ''
    >>> steps_problem([e(1, "release started"), e(3)])
    'step 3 after step 1'
    >>> steps_problem([e(1, "release started"), e(2), e(3), e(2)])
    'step 2 after step 3'
    """
    last: int | None = None
    for entry in entries:
        step = int(entry.get("step") or 0)
        if step == 1 and str(entry.get("message", "")).startswith(ATTEMPT_STARTS):
            last = 1
        elif step and last is not None and step not in (last, last + 1):
            return f"step {step} after step {last}"
        elif step:
            last = step
    return ""


def event_repeats(events: list[Obj], since: float) -> str:
    """``StepStarted`` Events of one attempt never name the same step twice."""
    ordered = sorted(
        (e for e in events if _epoch(str(e.get("firstTimestamp") or "")) >= int(since)),
        key=lambda e: int(e["metadata"]["resourceVersion"]),
    )
    seen: set[str] = set()
    for event in ordered:
        reason = event.get("reason")
        if reason in ("ReleaseStarted", "Restarted"):
            seen = set()
        elif reason == "StepStarted":
            step = str(event.get("message"))
            if step in seen:
                return f"{step} started twice"
            seen.add(step)
    return ""


__all__ = ["STEPS", "Report", "Runner"]
