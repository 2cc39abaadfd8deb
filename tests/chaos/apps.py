"""The releases the chaos runner drives: three shapes of Application, written here once.

Each shape declares its steps in absolute pod counts (the last is 100%), every step but the last
waiting for an approval the runner gives, so the runner always knows which step the controller
may be on: after ``k`` approvals of a revision, at most step ``k + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

Obj = dict[str, Any]

#: Pods of the new revision per step before the last (the last step is 100%).
STEPS = (1, 2)


@dataclass(frozen=True)
class Shape:
    name: str
    #: KubeVela component type.
    component: str
    kind: str
    release_mode: str
    #: An NGINX Ingress (KubeVela's ``gateway`` trait) with the canary's weight on it.
    traffic: bool
    replicas: int
    #: Extra new-revision pods a workload's own rolling update may add (Deployment maxSurge:
    #: the default 25% of the replicas, rounded up).
    surge_fraction: float

    def weights(self) -> tuple[int, ...]:
        return (25, 50, 100) if self.traffic else ()

    def allowance(self, approvals: int, replicas: int) -> int:
        """The most pods of the new revision that may exist after ``approvals`` approvals.

        >>> BATCH.allowance(0, 4), BATCH.allowance(1, 4), BATCH.allowance(2, 4)
        (2, 3, 5)
        >>> CANARY.allowance(1, 4), CANARY.allowance(2, 4)
        (3, 9)
        >>> STATEFUL.allowance(0, 3), STATEFUL.allowance(2, 3)
        (1, 3)
        """
        surge = math.ceil(replicas * self.surge_fraction)
        if approvals < len(STEPS):
            return STEPS[approvals] + surge
        if self.release_mode == "canary":
            # The last step promotes the workload itself (its rolling update, with surge) while
            # the canary Deployment still runs its full size, until the finish removes it.
            return 2 * replicas + surge
        return replicas + surge

    def application(self, app: str, image: str, replicas: int) -> Obj:
        steps: list[Obj] = [{"replicas": n} for n in STEPS] + [{"replicas": "100%"}]
        for step, weight in zip(steps, self.weights(), strict=False):
            step["weight"] = weight
        properties: Obj = {"releaseMode": self.release_mode, "canary": {"steps": steps}}
        traits: list[Obj] = [{"type": "scaler", "properties": {"replicas": replicas}}]
        if self.traffic:
            properties["canary"]["trafficRoutings"] = [{"type": "ingress"}]
            traits.append(
                {
                    "type": "gateway",
                    "properties": {
                        "domain": f"{app}.chaos.example",
                        "classInSpec": True,
                        "pathType": "Prefix",
                        "http": {"/": 8080},
                    },
                }
            )
        traits.append({"type": "progressive-rollout", "properties": properties})
        return {
            "apiVersion": "core.oam.dev/v1beta1",
            "kind": "Application",
            "metadata": {"name": app},
            "spec": {
                "components": [
                    {
                        "name": app,
                        "type": self.component,
                        "properties": {
                            "image": image,
                            # With traffic the gateway trait renders the Service; both
                            # rendering one would make KubeVela flip its labels.
                            "ports": [{"port": 8080, "expose": not self.traffic}],
                        },
                        "traits": traits,
                    }
                ]
            },
        }

    def yaml(self, app: str, image: str, replicas: int) -> str:
        return yaml.safe_dump(self.application(app, image, replicas), sort_keys=False)


BATCH = Shape("deployment-batch", "webservice", "Deployment", "batch", False, 4, 0.25)
CANARY = Shape("deployment-canary-nginx", "webservice", "Deployment", "canary", True, 4, 0.25)
STATEFUL = Shape("statefulset-batch", "statefulset", "StatefulSet", "batch", False, 3, 0.0)
SHAPES = (BATCH, CANARY, STATEFUL)


def image(version: int) -> str:
    return f"chaos.example/web:v{version}"
