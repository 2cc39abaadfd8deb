"""Objects nobody should write, written directly (bypassing the trait): rollouts with garbage in
every field the API server lets through, very long names, a routing object of the wrong shape.
The controller reports each one on its status and keeps releasing the others; it never exits."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.integration.release_kit import CR_API, V1, V2, Release, eventually, rollout, workload
from tests.support.controller import Controller
from vela_progressive.core.model import KIND
from vela_progressive.shell.kube import Kube, KubeError

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
SEED = 20261201


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: scalars of every type, unicode, huge numbers, nested junk."""
    choices = [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.randint(-(2**40), 2**40),
        lambda: rng.random() * 1e9,
        lambda: "".join(rng.choice("aé漢🙂-_.%/ ") for _ in range(rng.randint(0, 20))),
        lambda: "9" * 400,
    ]
    if depth < 3:
        choices += [
            lambda: [junk(rng, depth + 1) for _ in range(rng.randint(0, 3))],
            lambda: {
                rng.choice(["steps", "weight", "replicas", "x", "🙂", "type", "matches"]): junk(
                    rng, depth + 1
                )
                for _ in range(rng.randint(0, 3))
            },
        ]
    return rng.choice(choices)()


def garbage_rollouts(ns: str, count: int) -> list[Obj]:
    rng = random.Random(SEED)
    out = []
    for i in range(count):
        name = f"junk-{i}-" + "x" * (200 if i % 2 else 1)
        out.append(
            {
                "apiVersion": CR_API,
                "kind": KIND,
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "workloadRef": {
                        "apiVersion": rng.choice(["apps/v1", "apps.kruise.io/v1alpha1", "x/y"]),
                        "kind": rng.choice(["Deployment", "CloneSet", "Pod", "🙂"]),
                        "name": rng.choice(["web", "missing", "a" * 250]),
                    },
                    "revision": {"name": rng.choice(["app-v1", "é" * 10]), "number": 1},
                    "strategy": {
                        "canary": junk(rng),
                        "releaseMode": junk(rng),
                        "blueGreen": junk(rng),
                        "auto": junk(rng),
                    },
                },
            }
        )
    return out


#: Garbage the CRD's schema lets through (the right types, nonsense values): each one must be
#: reported on its own status.
PASSES_THE_SCHEMA: list[tuple[Obj, Obj]] = [
    ({"kind": "🙂"}, {}),
    ({"kind": "Pod", "apiVersion": "v1"}, {}),
    ({"name": "a" * 250}, {}),
    (
        {},
        {
            "canary": {
                "steps": [{"replicas": "90%", "weight": 90}, {"replicas": "10%", "weight": 5}]
            }
        },
    ),
    ({}, {"canary": {"steps": [{"replicas": "100%"}] * 50}, "releaseMode": "blueGreen"}),
    ({"kind": "StatefulSet"}, {"canary": {"steps": [{"replicas": 1}]}, "releaseMode": "blueGreen"}),
    ({}, {"canary": {"steps": [{"weight": 0}]}}),
    (
        {},
        {
            "canary": {
                "steps": [{"replicas": 1, "weight": 10}],
                "trafficRoutings": [{"type": "istio", "virtualServiceName": "é漢" * 20}],
            }
        },
    ),
]


def schema_valid_garbage(ns: str) -> list[Obj]:
    out = []
    for i, (ref, strategy) in enumerate(PASSES_THE_SCHEMA):
        cr = rollout(f"odd-{i}" + "y" * (150 if i % 2 else 0), ns, "Deployment", [{"replicas": 1}])
        cr["spec"]["workloadRef"].update(ref)
        if strategy:
            cr["spec"]["strategy"] = strategy
        cr["spec"]["revision"]["name"] = "révision-🙂"
        out.append(cr)
    return out


async def test_garbage_rollouts_are_reported_and_a_real_release_beside_them_completes(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    refused = 0
    for cr in garbage_rollouts(namespace, 12):
        try:
            await kube.create(cr)
        except KubeError:
            refused += 1  # the CRD's schema refused it: nothing reaches the controller
    accepted = []
    for cr in schema_valid_garbage(namespace):
        await kube.create(cr)
        accepted.append(cr["metadata"]["name"])
    assert refused, "the random junk all passed the CRD schema: is the schema gone?"

    # A VirtualService of the wrong shape in the same namespace, named by a real release.
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {"hosts": ["web"], "http": [{"route": []}]},
    }
    await kube.create(vs)
    broken = Release(kube, namespace, "Deployment", name="broken")
    await kube.create(workload("Deployment", "broken", namespace, 2, V1))
    cr = rollout("broken", namespace, "Deployment", [{"replicas": "50%", "weight": 50}])
    cr["spec"]["strategy"]["canary"]["trafficRoutings"] = [
        {"type": "istio", "virtualServiceName": "broken"}
    ]
    await kube.create(cr)

    # A real release beside all that completes.
    good = Release(kube, namespace, "Deployment", name="good")
    await kube.create(workload("Deployment", "good", namespace, 4, V1))
    await kube.create(
        rollout("good", namespace, "Deployment", [{"replicas": "50%", "duration": 0}])
    )
    await good.wait_phase("Healthy")
    await good.set_image(V2, "app-v2")

    async def released() -> bool:
        status = (await good.cr()).get("status") or {}
        return status.get("phase") == "Healthy" and status.get("stableAppRevision") == "app-v2"

    await eventually(released, 120, "the real release to complete")
    await good.wait_pods(V2, 4)

    # Every garbage rollout says what is wrong (or what it waits for); none is left unread.
    for name in accepted:

        async def reported(name: str = name) -> Obj | None:
            got = await kube.get(CR_API, KIND, name, namespace)
            status = (got or {}).get("status") or {}
            return status if status.get("message") else None

        status = await eventually(reported, 60, f"a status message on {name[:20]}...")
        assert status.get("phase") in ("Failed", "Initializing"), status
    # The broken route is reported when the release needs it, and nothing was half-changed.
    await broken.set_image(V2, "app-v2")

    async def route_reported() -> Obj | None:
        status = (await broken.cr()).get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        traffic = conditions.get("TrafficReady")
        return status if traffic and traffic["status"] == "False" else None

    await eventually(route_reported, 60, "the wrong-shape VirtualService reported")
    assert await broken.count(V2) == 0, "pods moved while the route cannot be applied"
    assert controller.proc is not None
    assert controller.proc.poll() is None, "the controller exited"
