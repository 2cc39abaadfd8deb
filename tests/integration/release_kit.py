"""Builders and observers for release tests on the real cluster (kwok pods)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from vela_progressive.core.model import API_GROUP, API_VERSION, HOLD_LABEL, KIND
from vela_progressive.core.release import APPROVE_ANNOTATION, PAUSE_ANNOTATION
from vela_progressive.shell.kube import Kube

Obj = dict[str, Any]
T = TypeVar("T")
CR_API = f"{API_GROUP}/{API_VERSION}"
V1, V2, V3 = "registry.invalid/web:v1", "registry.invalid/web:v2", "registry.invalid/web:v3"


def workload(
    kind: str,
    name: str,
    ns: str,
    replicas: int,
    image: str,
    governed: bool = True,
    api_version: str = "apps/v1",
) -> Obj:
    labels = {"app.oam.dev/component": name}
    obj: Obj = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {HOLD_LABEL: "true"} if governed else {},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = name
        obj["spec"]["podManagementPolicy"] = "Parallel"
    if kind == "DaemonSet":
        del obj["spec"]["replicas"]  # one pod per (kwok) node: ``replicas`` is the node count
    return obj


def rollout(
    name: str,
    ns: str,
    kind: str,
    steps: list[Obj],
    revision: str = "app-v1",
    api_version: str = "apps/v1",
    **strategy: Any,
) -> Obj:
    return {
        "apiVersion": CR_API,
        "kind": KIND,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "workloadRef": {"apiVersion": api_version, "kind": kind, "name": name},
            "application": {"name": "app", "component": name},
            "revision": {"name": revision, "number": int(revision.rsplit("v", 1)[-1])},
            "strategy": {"canary": {"steps": steps}, **strategy},
        },
    }


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float, what: str, interval: float = 0.3
) -> T:
    deadline = time.monotonic() + within
    last: object = None
    while True:
        last = await probe()
        if last:
            return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


@dataclass
class Release:
    """One workload + its ProgressiveRollout in a test namespace."""

    kube: Kube
    ns: str
    kind: str
    name: str = "web"
    api_version: str = "apps/v1"
    samples: list[tuple[int | None, str | None, int]] = field(default_factory=list)

    async def create(self, replicas: int, steps: list[Obj], **strategy: Any) -> None:
        await self.kube.create(workload(self.kind, self.name, self.ns, replicas, V1))
        await self.kube.create(rollout(self.name, self.ns, self.kind, steps, **strategy))
        await self.wait_phase("Healthy")
        await self.wait_pods(V1, replicas)

    async def create_from(self, obj: Obj, steps: list[Obj], **strategy: Any) -> None:
        """Like :meth:`create`, with a workload built by the test (e.g. ``workload(...)`` with
        ``podManagementPolicy: OrderedReady``)."""
        await self.kube.create(obj)
        await self.kube.create(rollout(self.name, self.ns, self.kind, steps, **strategy))
        await self.wait_phase("Healthy")
        await self.wait_pods(V1, int(obj["spec"]["replicas"]))

    async def set_template(self, ops: list[Obj], revision: str) -> Obj:
        """A new revision as JSON patch operations on the pod template (``path`` relative to
        ``/spec/template``), so a field can be removed as a three-way apply would."""
        await self.kube.patch(
            CR_API, KIND, self.name, self.ns, {"spec": {"revision": {"name": revision}}}
        )
        return await self.kube.patch(
            self.api_version,
            self.kind,
            self.name,
            self.ns,
            [{**op, "path": "/spec/template" + op["path"]} for op in ops],
            patch_type="json",
        )

    async def cr(self) -> Obj:
        got = await self.kube.get(CR_API, KIND, self.name, self.ns)
        assert got is not None
        return got

    async def workload(self) -> Obj:
        got = await self.kube.get(self.api_version, self.kind, self.name, self.ns)
        assert got is not None
        return got

    async def set_image(self, image: str, revision: str) -> Obj:
        """What vela does on a new revision: the CR's revision first (PreDispatch), then the
        workload's template."""
        await self.kube.patch(
            CR_API, KIND, self.name, self.ns, {"spec": {"revision": {"name": revision}}}
        )
        return await self.kube.patch(
            self.api_version,
            self.kind,
            self.name,
            self.ns,
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
            patch_type="strategic",
        )

    async def scale(self, replicas: int) -> None:
        """What the scaler trait does: ``spec.replicas`` on the workload itself (not ``/scale``)."""
        await self.kube.patch(
            self.api_version, self.kind, self.name, self.ns, {"spec": {"replicas": replicas}}
        )

    async def scale_up_at_the_first_pause(self, image: str) -> None:
        """From 10 to 12 pods while step 1 (20%) waits, then on to the end: no sample may see
        more pods on ``image`` than the step allows of the replicas it runs with (2 of 10, 3 of
        12). Unheld, a partition kind starts the added pods on ``image`` at once (4 of 12)."""
        await self.wait_step(1)
        async with self.sampling(image):
            await self.scale(12)

            async def step_one_of_twelve() -> bool:
                # 12 pods in place; the canary style runs its 3 beside 12 old ones.
                return len(await self.pods()) >= 12 and await self.count(image, True) == 3

            await eventually(step_one_of_twelve, 90, f"12 pods or more, 3 Ready on {image}")
            await self.approve(1)
            await self.wait_step(2)
            assert await self.count(image, ready_only=True) == 6
            await self.approve(2)
            await self.wait_phase("Healthy")
        self.assert_never_above_plan({1: 3, 2: 6, 3: 12})
        await self.wait_pods(image, 12)

    async def pods(self) -> list[Obj]:
        pods = await self.kube.list(
            "v1", "Pod", self.ns, label_selector=f"app.oam.dev/component={self.name}"
        )
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    async def count(self, image: str, ready_only: bool = False) -> int:
        n = 0
        for pod in await self.pods():
            if pod["spec"]["containers"][0]["image"] != image:
                continue
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod.get("status", {}).get("conditions", [])
            )
            n += 1 if ready or not ready_only else 0
        return n

    async def wait_pods(self, image: str, n: int, within: float = 90) -> None:
        async def probe() -> bool:
            return await self.count(image, ready_only=True) == n and len(await self.pods()) >= n

        await eventually(probe, within, f"{n} Ready pods on {image}")

    async def wait_phase(self, phase: str, state: str | None = None, within: float = 90) -> Obj:
        async def probe() -> Obj | None:
            status = (await self.cr()).get("status") or {}
            if status.get("phase") == phase and (state is None or status.get("stepState") == state):
                return status
            return None

        return await eventually(probe, within, f"phase {phase} {state or ''}")

    async def wait_step(self, step: int, state: str = "WaitingApproval", within: float = 90) -> Obj:
        async def probe() -> Obj | None:
            status = (await self.cr()).get("status") or {}
            if status.get("currentStep") == step and status.get("stepState") == state:
                return status
            return None

        return await eventually(probe, within, f"step {step} in {state}")

    async def annotate(self, key: str, value: str | None) -> None:
        await self.kube.patch(
            CR_API, KIND, self.name, self.ns, {"metadata": {"annotations": {key: value}}}
        )

    async def approve(self, step: int) -> None:
        rev = (await self.cr())["spec"]["revision"]["name"]
        await self.annotate(APPROVE_ANNOTATION, f"{rev}/{step}")

    async def approve_until(self, step: int) -> Obj:
        """Approve every step before ``step`` as it comes; the status once ``step`` waits."""
        for earlier in range(1, step):
            await self.wait_step(earlier)
            await self.approve(earlier)
        return await self.wait_step(step)

    async def pause(self, on: bool) -> None:
        rev = (await self.cr())["spec"]["revision"]["name"]
        await self.annotate(PAUSE_ANNOTATION, rev if on else None)

    # ---------------------------------------------------------------- continuous sampling
    @contextlib.asynccontextmanager
    async def sampling(self, image: str):  # type: ignore[no-untyped-def]
        """Sample (step, state, pods on ``image``) continuously while the body runs.

        The CR is read *after* the pods: a step only ever grows, so a pod count is always
        compared with a step at least as late as the one that created those pods.
        """
        stop = asyncio.Event()

        async def loop() -> None:
            while not stop.is_set():
                n = await self.count(image)
                status = (await self.cr()).get("status") or {}
                self.samples.append((status.get("currentStep"), status.get("stepState"), n))
                await asyncio.sleep(0.05)

        task = asyncio.create_task(loop())
        try:
            yield self.samples
        finally:
            stop.set()
            await task

    def assert_never_above_plan(self, allowed: dict[int, int]) -> None:
        """No sample saw more new pods than its step allows (Finalizing/Completed excluded)."""
        assert self.samples, "the sampler took no sample"
        over = [
            (step, state, n)
            for step, state, n in self.samples
            if step is not None
            and state not in ("Finalizing", "Completed")
            and n > allowed.get(step, 0)
        ]
        assert not over, f"more new pods than the step allows: {over[:5]}"

    async def assert_consistent(self, image: str, replicas: int) -> None:
        """Not held, nothing of ours left on the workload, every pod Ready on ``image``."""
        await self.wait_pods(image, replicas)
        obj = await self.workload()
        spec, annotations = obj["spec"], obj["metadata"].get("annotations") or {}
        assert not any(k.startswith(API_GROUP) for k in annotations), annotations
        if self.kind == "Deployment":
            assert not spec.get("paused")
            assert spec["strategy"]["type"] == "RollingUpdate"
            canary = await self.kube.get("apps/v1", "Deployment", f"{self.name}-canary", self.ns)
            assert canary is None, "the canary Deployment was left behind"
        else:
            assert spec["updateStrategy"].get("rollingUpdate", {}).get("partition", 0) == 0
        assert len(await self.pods()) == replicas
        assert await self.count(image) == replicas
