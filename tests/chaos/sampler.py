"""The independent sampler: every ~200 ms it lists pods, Services, Ingresses, EndpointSlices
and rollouts, and checks the invariants that must hold at every moment of every release.

- ``allowance``: pods of the release's target revision never exceed what the approvals given
  allow (the step after the last approved one, plus the workload's maxSurge).
- ``no-route-without-endpoints``: an NGINX canary Ingress never carries a weight or a match
  while the Service it sends to has no Ready endpoint.
- ``stable-service-pinned``: the user's Service never selects a pod of the release's target
  before the last step is approved, nor during and after an abort.

It reads the cluster only (through :mod:`tests.chaos.observe`) and what the runner did (the
:class:`~tests.chaos.ledger.Ledger`); nothing of the controller's code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.apps import STEPS
from tests.chaos.ledger import Ledger, Release
from tests.chaos.observe import Observer, Unreachable

Obj = dict[str, Any]
INTERVAL = 0.2
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
MATCH_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/canary-by-header",
    "nginx.ingress.kubernetes.io/canary-by-cookie",
)


def live(pod: Obj) -> bool:
    """A pod that exists for traffic and counting: not being deleted, not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return not pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


def image_of(pod: Obj) -> str:
    return str(pod["spec"]["containers"][0]["image"])


def selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def ready_endpoints(slices: Iterable[Obj], namespace: str, service: str) -> int:
    return sum(
        1
        for s in slices
        if s["metadata"]["namespace"] == namespace
        and (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == service
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
    )


def progress_mark(rollout: Obj) -> tuple[object, ...]:
    """What changes when a release moves: step, its state, phase, the revision released."""
    status = rollout.get("status") or {}
    return (
        status.get("currentStep"),
        status.get("stepState"),
        status.get("phase"),
        status.get("canaryRevision"),
        status.get("endingStage"),
    )


@dataclass
class Sampler:
    observer: Observer
    ledger: Ledger
    namespace_prefix: str
    samples: int = 0
    #: Samples that could not be taken (API server or etcd down).
    gaps: int = 0
    #: namespace -> monotonic time its rollout last moved.
    moved: dict[str, float] = field(default_factory=dict)
    _marks: dict[str, tuple[object, ...]] = field(default_factory=dict)
    #: Monotonic time of the last sample taken.
    _last: float = field(default_factory=time.monotonic)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.sample()
                self.samples += 1
            except Unreachable:
                self.gaps += 1
            await asyncio.sleep(max(INTERVAL - (time.monotonic() - started), 0.01))

    def _ours(self, objs: list[Obj]) -> list[Obj]:
        return [o for o in objs if o["metadata"]["namespace"].startswith(self.namespace_prefix)]

    async def sample(self) -> None:
        # Cluster state first, then the ledger: the runner raises approvals before it writes
        # them, so what the ledger says is never behind what the controller could have seen.
        rollouts = self._ours(
            await self.observer.items(
                "/apis/rollout.vela-progressive.io/v1alpha1/progressiverollouts"
            )
        )
        ingresses = self._ours(await self.observer.items("/apis/networking.k8s.io/v1/ingresses"))
        slices = self._ours(await self.observer.items("/apis/discovery.k8s.io/v1/endpointslices"))
        # Pods before and after the Services: a pod in both lists existed when the Services were
        # read, so "the Service selected it" is a fact, not a race with a pin or an unpin.
        pods = [p for p in self._ours(await self.observer.items("/api/v1/pods")) if live(p)]
        services = self._ours(await self.observer.items("/api/v1/services"))
        after = {
            p["metadata"]["uid"]
            for p in self._ours(await self.observer.items("/api/v1/pods"))
            if live(p)
        }
        throughout = [p for p in pods if p["metadata"]["uid"] in after]
        workloads = self._ours(await self.observer.items("/apis/apps/v1/deployments"))
        workloads += self._ours(await self.observer.items("/apis/apps/v1/statefulsets"))
        now = time.monotonic()
        self._templates(workloads, now)
        for rollout in rollouts:
            ns = rollout["metadata"]["namespace"]
            mark = progress_mark(rollout)
            if self._marks.get(ns) != mark:
                self._marks[ns] = mark
                self.moved[ns] = now
        releases = {r.namespace: r for r in self.ledger.in_flight()}
        for ns, release in releases.items():
            ns_pods = [p for p in pods if p["metadata"]["namespace"] == ns]
            self._allowance(release, ns_pods)
            self._pinned(
                release, [p for p in throughout if p["metadata"]["namespace"] == ns], services
            )
        for ingress in ingresses:
            release = releases.get(ingress["metadata"]["namespace"])
            if release is not None:
                self._routes(release, ingress, slices)

    def _templates(self, workloads: list[Obj], now: float) -> None:
        """Mark a release unheld when its revision reached the workload while the controller
        was down (between this sample and the one before)."""
        for release in self.ledger.in_flight():
            if release.template_seen:
                continue
            for w in workloads:
                meta = w["metadata"]
                if (meta["namespace"], meta["name"]) != (release.namespace, release.app):
                    continue
                if w["spec"]["template"]["spec"]["containers"][0]["image"] == release.target:
                    release.template_seen = True
                    if self.ledger.was_down(self._last, now):
                        release.unheld = True
                        release.note(
                            "its revision reached the workload while the controller was down"
                        )
        self._last = now

    def _allowance(self, release: Release, pods: list[Obj]) -> None:
        if release.unheld:
            return
        new = sum(1 for p in pods if image_of(p) == release.target)
        allowed = release.shape.allowance(release.approvals, release.replicas_max)
        if new > allowed:
            self.ledger.violate(
                "allowance",
                release,
                f"{new} pods run {release.target} after {release.approvals} approval(s); "
                f"at most {allowed} allowed",
            )

    def _pinned(self, release: Release, pods: list[Obj], services: list[Obj]) -> None:
        if not release.shape.traffic or release.unheld:
            return
        if release.approvals >= len(STEPS) and not release.aborted:
            return  # the last step: the finish unpins the Service, then promotes
        service = next(
            (
                s
                for s in services
                if s["metadata"]["namespace"] == release.namespace
                and s["metadata"]["name"] == release.app
            ),
            None,
        )
        if service is None:
            return
        selector = (service.get("spec") or {}).get("selector") or {}
        wrong = [
            p["metadata"]["name"]
            for p in pods
            if image_of(p) == release.target and selects(selector, p)
        ]
        if wrong:
            when = "during an abort" if release.aborted else "before the last step"
            self.ledger.violate(
                "stable-service-pinned",
                release,
                f"Service {release.app} selects {', '.join(sorted(wrong))} of {release.target} "
                f"{when} (selector {selector})",
            )

    def _routes(self, release: Release, ingress: Obj, slices: list[Obj]) -> None:
        annotations = ingress["metadata"].get("annotations") or {}
        if annotations.get(CANARY_ANNOTATION) != "true":
            return
        weight = int(annotations.get(WEIGHT_ANNOTATION) or 0)
        matches = [a for a in MATCH_ANNOTATIONS if annotations.get(a)]
        if weight <= 0 and not matches:
            return
        backends = {
            path["backend"]["service"]["name"]
            for rule in (ingress.get("spec") or {}).get("rules") or []
            for path in (rule.get("http") or {}).get("paths") or []
            if (path.get("backend") or {}).get("service")
        }
        ns = ingress["metadata"]["namespace"]
        for service in sorted(backends):
            if ready_endpoints(slices, ns, service) == 0:
                self.ledger.violate(
                    "no-route-without-endpoints",
                    release,
                    f"Ingress {ingress['metadata']['name']} sends weight {weight}"
                    f"{' and ' + ', '.join(matches) if matches else ''} to Service {service}, "
                    "which has no Ready endpoint",
                )
