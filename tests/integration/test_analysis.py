"""Metric analysis on the real cluster, against the test world's real Prometheus and the traffic
simulator (versions behave by image tag: ``-bad`` errs 30%, ``-flaky`` 3%, ``-quiet`` gets no
traffic, anything else errs 1%).

Each release is a canary-style Deployment of 4 pods behind an NGINX Ingress, so the built-in
``request-error-rate`` template reads ``nginx_ingress_controller_requests`` of the canary and
stable Services.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.release_kit import CR_API, V1, Release, eventually
from tests.integration.test_release_safety import canary_weight, nginx_release
from tests.support.cluster import Cluster
from tests.support.controller import Controller
from vela_progressive.core.model import KIND
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

Obj = dict[str, Any]
IMAGE = "registry.invalid/web:{}"


def errors(**extra: Any) -> Obj:
    return {
        "name": "errors",
        "template": "request-error-rate",
        "thresholdRange": {"max": 5},
        "interval": 5,
        "count": 2,
    } | extra


def gated(*metrics: Obj, webhooks: list[Obj] | None = None) -> tuple[list[Obj], dict[str, Any]]:
    """Two steps, each gated by ``metrics``, no approvals."""
    steps = [
        {"replicas": 2, "weight": 50, "duration": 0, "analysis": {"metrics": list(metrics)}},
        {"replicas": "100%", "weight": 100, "duration": 0},
    ]
    extra: dict[str, Any] = {}
    if webhooks:
        extra["webhooks"] = webhooks
    return steps, extra


async def release(kube: Kube, ns: str, steps: list[Obj], **strategy: Any) -> Release:
    webhooks = strategy.pop("webhooks", None)
    rel = await nginx_release(kube, ns, steps, replicas=4, **strategy)
    if webhooks:
        await kube.patch(
            CR_API,
            KIND,
            "web",
            ns,
            {"spec": {"strategy": {"canary": {"webhooks": webhooks}}}},
        )
    return rel


async def released(rel: Release, revision: str = "app-v2", within: float = 150) -> Obj:
    """The release of ``revision`` completed (not the Healthy status of the one before)."""

    async def probe() -> Obj | None:
        status = (await rel.cr()).get("status") or {}
        done = status.get("phase") == "Healthy" and status.get("stableAppRevision") == revision
        return status if done else None

    return await eventually(probe, within, f"the release of {revision} to complete")


async def measurements(rel: Release) -> list[Obj]:
    return list(((await rel.cr()).get("status") or {}).get("measurements") or [])


async def test_a_healthy_version_passes_every_gate_and_completes_on_its_own(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps, _ = gated(errors())
    rel = await release(kube, namespace, steps)
    started = time.monotonic()
    await rel.set_image(IMAGE.format("v2"), "app-v2")
    await released(rel)
    took = time.monotonic() - started
    taken = await measurements(rel)
    assert [m["verdict"] for m in taken if m["metric"] == "errors"] == ["Passed", "Passed"]
    assert all(float(m["value"]) < 5 for m in taken), taken
    await rel.wait_pods(IMAGE.format("v2"), 4)
    # Two measurements 5 s apart: the gate costs about 10 s, not a fixed longer period.
    assert took < 90, f"the release took {took:.0f}s"


async def test_a_bad_version_is_rolled_back_automatically_naming_the_metric_and_value(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps, _ = gated(errors())
    rel = await release(kube, namespace, steps)
    await rel.set_image(IMAGE.format("v2-bad"), "app-v2")
    status = await rel.wait_phase("Failed", within=120)
    failed_at = time.monotonic()
    assert status["failureReason"] == "AnalysisFailed"
    assert "metric errors" in status["message"]
    assert "above the maximum 5" in status["message"]
    assert "nginx_ingress_controller_requests" in status["message"]

    async def traffic_on_stable() -> bool:
        return await canary_weight(kube, namespace) == 0

    await eventually(traffic_on_stable, 15, "traffic back on stable")
    back_after = time.monotonic() - failed_at
    assert back_after < 10, f"traffic went back {back_after:.1f}s after the failure"
    await rel.wait_pods(V1, 4)
    status = (await rel.cr())["status"]
    assert status["currentStep"] == 1, "no later step may run"
    bad = [m for m in status["measurements"] if m["verdict"] == "Failed"]
    assert bad
    assert float(bad[-1]["value"]) > 20, bad[-1]


async def test_a_flaky_version_passes_a_naive_threshold_but_fails_against_stable(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    steps, _ = gated(errors(compareWithStable={"maxIncrease": 1.0}))
    rel = await release(kube, namespace, steps)
    await rel.set_image(IMAGE.format("v2-flaky"), "app-v2")
    status = await rel.wait_phase("Failed", within=120)
    assert "worse than stable" in status["message"], status["message"]
    taken = [m for m in status["measurements"] if m["metric"] == "errors"]
    value, stable = float(taken[-1]["value"]), float(taken[-1]["stable"])
    assert value < 5, "the naive max 5 alone would have passed it"
    assert value - stable > 1.0


@pytest.mark.parametrize("policy", ["wait", "fail", "pass"])
async def test_a_quiet_version_follows_the_no_data_policy_and_says_so(
    controller: Controller, kube: Kube, namespace: str, policy: str
) -> None:
    steps, _ = gated(errors(noData=policy))
    rel = await release(kube, namespace, steps)
    await rel.set_image(IMAGE.format("v2-quiet"), "app-v2")
    if policy == "wait":

        async def says_no_data() -> Obj | None:
            taken = await measurements(rel)
            return taken[-1] if taken and taken[-1]["verdict"] == "NoData" else None

        last = await eventually(says_no_data, 90, "a no-data measurement")
        assert "(noData: wait)" in last["message"]
        status = (await rel.cr())["status"]
        assert status["stepState"] == "Analyzing"
        assert "analyzing (errors 0/2 passed)" in status["message"]
    elif policy == "fail":
        status = await rel.wait_phase("Failed", within=90)
        assert "(noData: fail)" in status["message"]
    else:
        await released(rel)
        taken = await measurements(rel)
        assert any("(noData: pass)" in m["message"] for m in taken)


@contextlib.asynccontextmanager
async def proxy_to(
    target: str, token: str | None = None
) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A loopback HTTP proxy to Prometheus; clearing the event makes it refuse connections;
    with ``token`` it answers 401 to a request without ``Authorization: Bearer <token>``."""

    up = asyncio.Event()
    up.set()
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        if not up.is_set():
            raise web.HTTPServiceUnavailable(text="prometheus is down")
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            raise web.HTTPUnauthorized(text="who are you?")
        async with session.get(f"{target}{request.path_qs}") as answer:
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    try:
        async with serving(app) as url:
            yield url, up
    finally:
        await session.close()


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_prometheus_going_away_pauses_the_release_and_it_resumes_when_back(
    controller: Controller, kube: Kube, namespace: str, cluster: Cluster
) -> None:
    assert cluster.prometheus_url, "the test world runs no Prometheus"
    async with proxy_to(cluster.prometheus_url) as (address, up):
        steps, _ = gated(errors(count=4, inconclusiveLimit=1, prometheusAddress=address))
        rel = await release(kube, namespace, steps)
        up.clear()
        await rel.set_image(IMAGE.format("v2"), "app-v2")
        status = await rel.wait_phase("Paused", within=90)
        assert "analysis inconclusive" in status["message"]
        assert "kubectl progressive abort" in status["message"]
        up.set()
        await released(rel)


async def test_a_webhook_gate_answering_500_holds_its_step_and_200_lets_it_go(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    answer = {"status": 500}
    bodies: list[Obj] = []

    async def gate(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(status=answer["status"], text="not now")

    app = web.Application()
    app.router.add_post("/gate", gate)
    async with serving(app) as base:
        steps: list[Obj] = [
            {"replicas": 2, "weight": 50, "duration": 0},
            {"replicas": "100%", "weight": 100, "duration": 0},
        ]
        hook = {"name": "smoke", "type": "rollout", "url": f"{base}/gate"}
        rel = await release(kube, namespace, steps, webhooks=[hook])
        await rel.set_image(IMAGE.format("v2"), "app-v2")

        async def held() -> Obj | None:
            status = (await rel.cr()).get("status") or {}
            message = status.get("message") or ""
            return status if "waiting for the rollout webhook smoke (HTTP 500" in message else None

        status = await eventually(held, 90, "the step held by the webhook")
        assert status["currentStep"] == 1
        await asyncio.sleep(5)
        assert (await rel.cr())["status"]["currentStep"] == 1
        answer["status"] = 200
        await released(rel)
        assert bodies[0]["type"] == "rollout"
        assert bodies[0]["name"] == "web"


async def test_prometheus_credentials_come_from_the_secret_the_metric_names(
    controller: Controller, kube: Kube, namespace: str, cluster: Cluster
) -> None:
    # The controller may read only this Secret: a Role in the rollout's namespace.
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prom-token", "namespace": namespace},
            "stringData": {"token": "s3cret"},
        }
    )
    role = {"name": "read-prom-token", "namespace": namespace}
    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": role,
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": ["prom-token"],
                    "verbs": ["get"],
                }
            ],
        }
    )
    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": role,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", **role},
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "vela-progressive-controller",
                    "namespace": "vela-system",
                }
            ],
        }
    )
    assert cluster.prometheus_url, "the test world runs no Prometheus"
    async with proxy_to(cluster.prometheus_url, token="s3cret") as (address, _):
        auth = {"secretName": "prom-token", "type": "bearer"}
        steps, _ = gated(errors(prometheusAddress=address, prometheusAuth=auth))
        rel = await release(kube, namespace, steps)
        await rel.set_image(IMAGE.format("v2"), "app-v2")
        status = await released(rel)
        assert [m["verdict"] for m in status["measurements"]] == ["Passed", "Passed"]
