"""The benchmark's releases, each described once and rendered for both controllers (issue 13).

A `Release` says what a platform team asks for: a Deployment of N replicas, the share of pods on
the new version at each step, the share of traffic (canary style behind an NGINX Ingress), and
no waits between steps. `ours()` renders the `spec.strategy` of our ProgressiveRollout (what the
`progressive-rollout` trait writes; `tests/integration/release_kit.rollout()` takes it as
keyword arguments), `kruise()` the equivalent `rollouts.kruise.io/v1beta1` Rollout, so the two
cannot drift. `tests/cluster/test_kruise_rollout_peer.py` releases the Kruise side of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
KRUISE_API = "rollouts.kruise.io/v1beta1"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    replicas: int = 10
    #: Percent of the pods on the new version at each step; the last one is 100.
    steps: tuple[int, ...] = (20, 50, 80, 100)
    #: Canary style: percent of the traffic at each step, moved by the canary Ingress of
    #: `ingress` (NGINX) in front of `service`; None: partition style (in place, no traffic).
    weights: tuple[int, ...] | None = None
    ingress: str = ""
    service: str = ""
    #: Both wait this long after each traffic change for the provider to apply it (defaults:
    #: Kruise 3 s, ours 5 s; the test world's simulator follows an Ingress within a second).
    grace_seconds: int = 1

    def __post_init__(self) -> None:
        if not self.steps or self.steps[-1] != 100:
            raise ValueError(f"{self.name}: the last step must be 100%, not {self.steps}")
        if self.weights is not None and (
            len(self.weights) != len(self.steps) or not self.ingress or not self.service
        ):
            raise ValueError(f"{self.name}: canary style needs a weight per step, ingress, service")

    @property
    def canary(self) -> bool:
        return self.weights is not None

    @property
    def plan(self) -> list[int]:
        """New-version pods after each step (a percentage rounded up, as Kruise does)."""
        return [-(-self.replicas * percent // 100) for percent in self.steps]


def partition(name: str = "web", namespace: str = "bench") -> Release:
    """A 10-replica Deployment in place (partition style), 20/50/80/100%, no waits."""
    return Release(name, namespace)


def canary_nginx(name: str = "web", namespace: str = "bench") -> Release:
    """A 10-replica Deployment in the canary style behind an NGINX Ingress: 20/50/100%."""
    return Release(
        name, namespace, steps=(20, 50, 100), weights=(20, 50, 100), ingress=name, service=name
    )


def ours(release: Release) -> Obj:
    """`spec.strategy` of our ProgressiveRollout for this release."""
    steps: list[Obj] = []
    for i, percent in enumerate(release.steps):
        step: Obj = {"replicas": f"{percent}%"}
        if release.weights is not None:
            step["weight"] = release.weights[i]
        if i < len(release.steps) - 1:
            step["duration"] = 0  # no duration would wait for an approval
        steps.append(step)
    canary: Obj = {"steps": steps}
    if release.canary:
        canary["trafficRoutings"] = [
            {
                "type": "ingress",
                "ingressName": release.ingress,
                "gracePeriodSeconds": release.grace_seconds,
            }
        ]
    return {"canary": canary, "releaseMode": "canary" if release.canary else "batch"}


def kruise(release: Release) -> Obj:
    """The Kruise Rollout (v1beta1) for this release."""
    steps: list[Obj] = []
    for i, percent in enumerate(release.steps):
        step: Obj = {"replicas": f"{percent}%", "pause": {"duration": 0}}  # no pause: approval
        if release.weights is not None:
            step["traffic"] = f"{release.weights[i]}%"
        steps.append(step)
    canary: Obj = {"enableExtraWorkloadForCanary": release.canary, "steps": steps}
    if release.canary:
        canary["trafficRoutings"] = [
            {
                "service": release.service,
                "gracePeriodSeconds": release.grace_seconds,
                "ingress": {"name": release.ingress, "classType": "nginx"},
            }
        ]
    return {
        "apiVersion": KRUISE_API,
        "kind": "Rollout",
        "metadata": {"name": release.name, "namespace": release.namespace},
        "spec": {
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": release.name},
            "strategy": {"canary": canary},
        },
    }
