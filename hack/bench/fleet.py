"""Many releases at once, under our controller or Kruise Rollout, seen through watches.

`make bench` (hack/bench/bench.py) drives releases with this module: `Fleet.prepare` creates
each release's Deployment v1 (and, canary style, its Service and NGINX Ingress) and the
controller's object (our ProgressiveRollout or Kruise's Rollout, both rendered from one
`peer_release.Release`), `Fleet.trigger` changes the template to v2 as each controller expects,
and an `Observer` follows pods, ReplicaSets and both rollout kinds in every benchmark namespace
with one watch each (the admin's, not audited). Each event is stamped on arrival, so the step
latency of a release is: the first event in which `plan[k]` new pods are Ready, to the first
event in which a ReplicaSet of the new template is scaled so that `plan[k+1]` new pods are
allowed. That is the same observable for both controllers: ours scales the ReplicaSets itself;
Kruise Rollout (AdvancedDeployment, partition style) patches the Deployment's
`rollouts.kruise.io/deployment-strategy` annotation (`partition`) and its own Deployment
controller, in the same process, scales the new ReplicaSet to `partition`; canary style, both
scale a canary Deployment. Polling, as controller_bench.py does for one release, would not
scale to a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import bench_stats
import peer_release
from controller_bench import ready

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.release_kit import CR_API, V1, V2, rollout, workload  # noqa: E402

from vela_progressive.core.model import KIND, PLURAL  # noqa: E402
from vela_progressive.shell.kube import Kube, KubeError  # noqa: E402

Obj = dict[str, Any]
Key = tuple[str, str]  # namespace, release name
OURS, KRUISE = "ours", "kruise"
COMPONENT = "app.oam.dev/component"
KRUISE_ROLLOUTS = "/apis/rollouts.kruise.io/v1beta1/rollouts"
KRUISE_WORKLOAD_LABEL = "rollouts.kruise.io/workload-type"
#: Requests the bench makes at once (creates, patches): enough to keep the API server busy, few
#: enough that its own client is not what is measured.
CONCURRENCY = 16


def say(message: str) -> None:
    """Progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Track:
    """What the watches saw of one release."""

    plan: list[int]
    #: pod uid -> (image, Ready)
    pods: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: ReplicaSet uid -> replicas allowed, for ReplicaSets of the new template
    new_sets: dict[str, int] = field(default_factory=dict)
    ready_samples: list[tuple[float, int]] = field(default_factory=list)
    moved_samples: list[tuple[float, int]] = field(default_factory=list)
    #: The rollout object's status as last seen, and every (time, step, state) it went through.
    status: Obj = field(default_factory=dict)
    steps: list[tuple[float, int, str]] = field(default_factory=list)
    progressing: bool = False
    triggered: float | None = None
    triggered_wall: datetime.datetime | None = None
    done: float | None = None
    done_wall: datetime.datetime | None = None

    def ready_count(self, image: str) -> int:
        return sum(1 for img, ok in self.pods.values() if ok and img == image)

    def timings(self, origin: float) -> Obj:
        """Seconds from ``origin``: the trigger, the first time each step's new pods were Ready
        and were allowed, and the end (``None``: not seen)."""

        def since(at: float | None) -> float | None:
            return None if at is None else round(at - origin, 4)

        ready = bench_stats.first_reached(self.ready_samples, self.plan)
        moved = bench_stats.first_reached(self.moved_samples, self.plan)
        return {
            "triggered": since(self.triggered),
            "ready": {n: since(ready.get(n)) for n in self.plan},
            "allowed": {n: since(moved.get(n)) for n in self.plan},
            "done": since(self.done),
            "latencies": [round(x, 4) for x in self.latencies()],
        }

    def latencies(self) -> list[float]:
        targets = self.plan
        return bench_stats.step_latencies(
            self.plan,
            bench_stats.first_reached(self.ready_samples, targets),
            bench_stats.first_reached(self.moved_samples, targets),
        )


def _image(pod_spec: Obj) -> str:
    return str(pod_spec.get("containers", [{}])[0].get("image", ""))


class Observer:
    """One watch per kind over every namespace whose name starts with ``prefix``."""

    def __init__(self, kube: Kube, prefix: str) -> None:
        self.kube = kube
        self.prefix = prefix
        self.tracks: dict[Key, Track] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.events = 0

    def track(self, key: Key, plan: list[int]) -> Track:
        self.tracks[key] = Track(plan)
        return self.tracks[key]

    def start(self) -> None:
        paths = {
            "/api/v1/pods": self.on_pod,
            "/apis/apps/v1/replicasets": self.on_replicaset,
            f"/apis/{CR_API}/{PLURAL}": self.on_ours,
            KRUISE_ROLLOUTS: self.on_kruise,
        }
        self.tasks = [asyncio.create_task(self.watch(p, f)) for p, f in paths.items()]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def watch(self, path: str, handle: Callable[[str, Obj, float], None]) -> None:
        """Watch ``path`` for ever (again after the server ends a watch)."""
        while True:
            try:
                response = await self.kube.api.call_api(
                    path,
                    "GET",
                    query_params=[("watch", "true"), ("timeoutSeconds", "3600")],
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _return_http_data_only=True,
                    _request_timeout=aiohttp.ClientTimeout(),
                )
                async for line in response.content:
                    at = time.monotonic()
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    ns = str(obj.get("metadata", {}).get("namespace", ""))
                    if ns.startswith(self.prefix):
                        self.events += 1
                        handle(str(event.get("type")), obj, at)
                response.release()
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                say(f"watch {path} ended ({exc!r}); watching again")
                await asyncio.sleep(1)

    def _find(self, ns: str, name: str | None) -> Track | None:
        return self.tracks.get((ns, name)) if name else None

    def on_pod(self, kind: str, pod: Obj, at: float) -> None:
        meta = pod["metadata"]
        track = self._find(meta["namespace"], (meta.get("labels") or {}).get(COMPONENT))
        if track is None:
            return
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            track.pods.pop(meta["uid"], None)
        else:
            track.pods[meta["uid"]] = (_image(pod["spec"]), ready(pod))
        track.ready_samples.append((at, track.ready_count(V2)))

    def on_replicaset(self, kind: str, rs: Obj, at: float) -> None:
        meta, template = rs["metadata"], rs["spec"]["template"]
        labels = template.get("metadata", {}).get("labels") or {}
        track = self._find(meta["namespace"], labels.get(COMPONENT))
        if track is None or _image(template["spec"]) != V2:
            return
        if kind == "DELETED":
            track.new_sets.pop(meta["uid"], None)
        else:
            track.new_sets[meta["uid"]] = int(rs["spec"].get("replicas") or 0)
        track.moved_samples.append((at, sum(track.new_sets.values())))

    def _status(self, track: Track, status: Obj, at: float) -> None:
        track.status = status
        step = int(
            status.get("currentStep") or status.get("canaryStatus", {}).get("currentStepIndex") or 0
        )
        state = str(
            status.get("stepState") or status.get("canaryStatus", {}).get("currentStepState") or ""
        )
        if not track.steps or track.steps[-1][1:] != (step, state):
            track.steps.append((at, step, state))

    def _rollout(self, kind: str, obj: Obj, at: float, finished: Callable[[Obj], bool]) -> None:
        """A rollout object (ours or Kruise's) seen: its step, and whether the release is done.

        Done: seen Progressing after the template changed, then ``finished``. (Ours: the
        revision is changed before the template, as KubeVela does; between the two the rollout
        may read Healthy at the new revision with nothing to release yet.)
        """
        meta = obj["metadata"]
        track = self._find(meta["namespace"], meta["name"])
        if track is None or kind == "DELETED":
            return
        status = obj.get("status") or {}
        self._status(track, status, at)
        if track.triggered is None or track.done is not None:
            return
        track.progressing = track.progressing or status.get("phase") == "Progressing"
        if track.progressing and status.get("phase") == "Healthy" and finished(obj):
            track.done, track.done_wall = at, now_utc()

    def on_ours(self, kind: str, cr: Obj, at: float) -> None:
        def finished(cr: Obj) -> bool:
            observed = (cr.get("status") or {}).get("observedRevision")
            return bool(observed == cr["spec"]["revision"]["name"])

        self._rollout(kind, cr, at, finished)

    def on_kruise(self, kind: str, obj: Obj, at: float) -> None:
        def finished(obj: Obj) -> bool:
            return any(
                c.get("type") == "Succeeded" and c.get("status") == "True"
                for c in (obj.get("status") or {}).get("conditions") or []
            )

        self._rollout(kind, obj, at, finished)


def service_and_ingress(release: peer_release.Release) -> list[Obj]:
    """The Service and NGINX Ingress a canary-style release moves traffic on."""
    ns = release.namespace
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": release.service, "namespace": ns},
        "spec": {"selector": {COMPONENT: release.name}, "ports": [{"port": 80}]},
    }
    backend = {"service": {"name": release.service, "port": {"number": 80}}}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": release.ingress, "namespace": ns},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": f"{release.name}.{ns}.example",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }
    return [service, ingress]


async def bounded(
    jobs: Iterable[Callable[[], Awaitable[object]]], limit: int = CONCURRENCY
) -> None:
    """Run the jobs, ``limit`` at a time; the first failure is raised."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def create_namespaces(kube: Kube, names: Iterable[str]) -> None:
    async def make(name: str) -> None:
        with contextlib.suppress(KubeError):
            await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    await bounded([lambda n=n: make(n) for n in names])  # type: ignore[misc]


async def delete_namespaces(kube: Kube, names: Iterable[str], within: float = 900) -> None:
    """Delete and wait until they are gone (our rollouts' finalizers need our controller)."""
    names = list(names)
    for name in names:
        with contextlib.suppress(KubeError):
            await kube.delete("v1", "Namespace", name)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = {n["metadata"]["name"] for n in await kube.list("v1", "Namespace")} & set(names)
        if not left:
            return
        await asyncio.sleep(2)
    say(f"namespaces not gone after {within:.0f}s: {sorted(left)[:5]}...")


@dataclass
class Fleet:
    """Releases of one controller (``side``: ours or kruise) in namespaces of ``observer``."""

    kube: Kube
    observer: Observer
    side: str
    releases: list[peer_release.Release]
    #: Our strategy, when not the description's own (e.g. a step with a duration).
    strategy: Obj | None = None

    def key(self, release: peer_release.Release) -> Key:
        return (release.namespace, release.name)

    async def prepare(self, within: float = 900) -> tuple[float, int]:
        """Create every release's objects; seconds until all are ready for a release (or
        ``within`` has passed), and how many are not."""
        started = time.monotonic()
        for release in self.releases:
            self.observer.track(self.key(release), release.plan)
        await create_namespaces(self.kube, sorted({r.namespace for r in self.releases}))
        await bounded([lambda r=r: self._create(r) for r in self.releases])  # type: ignore[misc]
        waiting = list(self.releases)
        deadline, last = time.monotonic() + within, time.monotonic()
        while waiting and time.monotonic() < deadline:
            waiting = [r for r in waiting if not await self._ready(r)]
            if waiting:
                await asyncio.sleep(1)
            if waiting and time.monotonic() - last > 30:
                last = time.monotonic()
                n = len(self.releases)
                say(f"{self.side}: {n - len(waiting)}/{n} ready for a release")
        if waiting:
            say(f"{self.side}: {len(waiting)} releases not ready in {within:.0f} s")
        return time.monotonic() - started, len(waiting)

    async def _create(self, release: peer_release.Release) -> None:
        ns, name = release.namespace, release.name
        governed = self.side == OURS
        for obj in [
            workload("Deployment", name, ns, release.replicas, V1, governed=governed),
            *(service_and_ingress(release) if release.canary else []),
        ]:
            await self.kube.create(obj)
        if self.side == OURS:
            strategy = self.strategy or peer_release.ours(release)
            await self.kube.create(rollout(name, ns, "Deployment", [], **strategy))
        else:
            await self.kube.create(peer_release.kruise(release))

    async def _ready(self, release: peer_release.Release) -> bool:
        track = self.observer.tracks[self.key(release)]
        if track.status.get("phase") != "Healthy" or track.ready_count(V1) < release.replicas:
            return False
        if self.side == OURS:
            return True
        deploy = await self.kube.get("apps/v1", "Deployment", release.name, release.namespace)
        return KRUISE_WORKLOAD_LABEL in ((deploy or {}).get("metadata", {}).get("labels") or {})

    async def trigger(self) -> None:
        """The template of every release to v2 (ours: the revision first, as KubeVela does)."""

        async def one(release: peer_release.Release) -> None:
            ns, name = release.namespace, release.name
            track = self.observer.tracks[self.key(release)]
            track.triggered, track.triggered_wall = time.monotonic(), now_utc()
            if self.side == OURS:
                await self.kube.patch(
                    CR_API, KIND, name, ns, {"spec": {"revision": {"name": "app-v2"}}}
                )
            await self.kube.patch(
                "apps/v1",
                "Deployment",
                name,
                ns,
                {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": V2}]}}}},
                patch_type="strategic",
            )

        await bounded([lambda r=r: one(r) for r in self.releases])  # type: ignore[misc]

    def tracks(self) -> list[Track]:
        return [self.observer.tracks[self.key(r)] for r in self.releases]

    async def wait_done(
        self, within: float, every: float = 10, what: str = "releases"
    ) -> list[Track]:
        """Until every release is done (or ``within`` has passed); the ones not done."""
        deadline = time.monotonic() + within
        last = 0.0
        while True:
            left = [t for t in self.tracks() if t.done is None]
            if not left or time.monotonic() > deadline:
                return left
            if time.monotonic() - last > every:
                last = time.monotonic()
                n = len(self.releases)
                say(f"{self.side}: {n - len(left)}/{n} {what} done")
            await asyncio.sleep(0.2)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (every thread), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_kib(pid: int, field_name: str) -> int:
    """A line of /proc/<pid>/status in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return 0
