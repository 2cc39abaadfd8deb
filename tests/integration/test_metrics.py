"""The controller's own metrics, scraped by the test world's real Prometheus.

One rollout goes through a failed release (a ``-bad`` version fails its analysis and is aborted)
and then a successful one (analysis passed, one approval): every counter and histogram the
release touches is read back through Prometheus' HTTP API, not from the endpoint directly, and
every panel query of the shipped Grafana dashboard must parse and return data.

The world's Prometheus has a ``vela-progressive`` job reading ``prometheus/targets/*.json`` in
the world's state directory (``hack/cluster/world.py``); the test writes the session
controller's metrics port there. A world started before that job existed gets it added to its
configuration and reloaded (``--web.enable-lifecycle``).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.integration.release_kit import V1, Release, eventually
from tests.integration.test_analysis import IMAGE, errors, release, released
from tests.support.cluster import REPO, Cluster
from tests.support.controller import Controller
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

JOB = "vela-progressive"
DASHBOARD = REPO / "addon" / "dashboards" / "vela-progressive.json"
#: Step 1 gated by the error rate, step 2 waits for approval, step 3 completes.
STEPS: list[dict[str, Any]] = [
    {"replicas": 2, "weight": 50, "duration": 0, "analysis": {"metrics": [errors()]}},
    {"replicas": 3, "weight": 75},
    {"replicas": "100%", "weight": 100, "duration": 0},
]


# ---------------------------------------------------------------- the world's Prometheus
def _prometheus_home(cluster: Cluster) -> Path:
    home = cluster.kubeconfig.resolve().parent / "prometheus"
    if not cluster.prometheus_url or not (home / "prometheus.yml").exists():
        pytest.fail(
            "these tests need the test world's own Prometheus (hack/cluster/world.py up): "
            f"no {home / 'prometheus.yml'}",
            pytrace=False,
        )
    return home


def _ensure_job(cluster: Cluster, home: Path) -> Path:
    """The ``vela-progressive`` file_sd job (added and reloaded in a world that predates it)."""
    targets = home / "targets"
    targets.mkdir(exist_ok=True)
    config_file = home / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    jobs = [c.get("job_name") for c in config.get("scrape_configs", [])]
    if JOB not in jobs:
        config["scrape_configs"].append(
            {
                "job_name": JOB,
                "file_sd_configs": [{"files": [str(targets / "*.json")], "refresh_interval": "2s"}],
            }
        )
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        reload = urllib.request.Request(f"{cluster.prometheus_url}/-/reload", method="POST")
        urllib.request.urlopen(reload, timeout=10).close()
    return targets


@dataclass
class Prometheus:
    url: str
    instance: str

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector; fails the test when Prometheus rejects it."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/api/v1/query", params={"query": promql}) as answer,
        ):
            body = await answer.json()
        assert body.get("status") == "success", f"{promql}: {body}"
        result = body["data"]["result"]
        assert isinstance(result, list), f"{promql}: {body['data']}"
        return result

    async def value(self, promql: str) -> float | None:
        result = await self.query(promql)
        return float(result[0]["value"][1]) if result else None

    async def wait_value(self, promql: str, ok: Any, within: float = 30) -> float:
        async def probe() -> float | None:
            got = await self.value(promql)
            return got if got is not None and ok(got) else None

        return await eventually(probe, within, f"Prometheus: {promql}", interval=1)


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, controller: Controller) -> Iterator[Prometheus]:
    """The world's Prometheus scraping the session controller (job ``vela-progressive``)."""
    targets = _ensure_job(cluster, _prometheus_home(cluster))
    instance = f"127.0.0.1:{controller.metrics_port}"
    target = targets / f"controller-{os.getpid()}.json"
    target.write_text(json.dumps([{"targets": [instance], "labels": {}}]))
    assert cluster.prometheus_url
    prom = Prometheus(cluster.prometheus_url, instance)

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{prom.url}/api/v1/targets", timeout=10) as answer:
                active = json.load(answer)["data"]["activeTargets"]
        except OSError:
            return False
        return any(
            t["labels"].get("job") == JOB
            and t["labels"].get("instance") == instance
            and t["health"] == "up"
            for t in active
        )

    try:
        cluster.wait_for(up, 60, f"Prometheus scraping the controller at {instance}")
        yield prom
    finally:
        target.unlink(missing_ok=True)


# ---------------------------------------------------------------- one failed, one good release
@dataclass
class Released:
    namespace: str
    application: str
    started: float


@pytest.fixture(scope="module")
async def releases(
    cluster: Cluster, controller: Controller, prometheus: Prometheus
) -> AsyncIterator[Released]:
    namespace = f"t-metrics-{os.getpid()}-{int(time.time()) % 100000}"
    cluster.create_namespace(namespace)
    kube = await Kube.connect(str(cluster.kubeconfig))
    started = time.monotonic()
    try:
        rel = await release(kube, namespace, STEPS)
        # A bad version: its analysis fails and the release aborts back to stable.
        await rel.set_image(IMAGE.format("v2-bad"), "app-v2")
        await rel.wait_phase("Failed", within=120)
        await _aborted(rel)
        await rel.wait_pods(V1, 4)
        # A good one: the analysis passes, step 2 waits for an approval, then it completes.
        await rel.set_image(IMAGE.format("v3"), "app-v3")
        await rel.wait_step(2, within=120)
        await rel.approve(2)
        await released(rel, "app-v3")
        yield Released(namespace, "app", started)
    finally:
        await kube.close()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


async def _aborted(rel: Release) -> None:
    async def probe() -> bool:
        timeline = ((await rel.cr()).get("status") or {}).get("timeline") or []
        return any(e.get("state") == "Aborted" for e in timeline)

    await eventually(probe, 90, "the failed release to be aborted")


# ---------------------------------------------------------------- the counters
async def test_a_failed_and_a_good_release_move_the_counters_prometheus_scrapes(
    releases: Released, prometheus: Prometheus
) -> None:
    p = prometheus
    sel = f'job="{JOB}",namespace="{releases.namespace}",application="{releases.application}"'
    once = lambda v: v == 1  # noqa: E731
    assert (
        await p.wait_value(
            f"sum(vela_progressive_releases_started_total{{{sel}}})", lambda v: v == 2
        )
        == 2
    )
    await p.wait_value(f'vela_progressive_releases_total{{{sel},result="failed"}}', once)
    await p.wait_value(f'vela_progressive_releases_total{{{sel},result="succeeded"}}', once)
    await p.wait_value(
        f'vela_progressive_release_failures_total{{{sel},reason="AnalysisFailed"}}', once
    )
    # Steps 1, 2 and 3 of the good release passed; its approval was waited for.
    ns = f'job="{JOB}",namespace="{releases.namespace}"'
    await p.wait_value(f"vela_progressive_step_duration_seconds_count{{{ns}}}", lambda v: v >= 3)
    await p.wait_value(f"vela_progressive_approval_wait_seconds_count{{{ns}}}", once)
    await p.wait_value(f"vela_progressive_release_duration_seconds_count{{{sel}}}", once)
    # The good release restored the application after the failed one.
    restore = await p.wait_value(
        f"vela_progressive_time_to_restore_seconds_sum{{{sel}}}", lambda v: v > 0
    )
    assert restore < time.monotonic() - releases.started
    await p.wait_value(
        f'sum(vela_progressive_analysis_measurements_total{{{sel},verdict="Failed"}})',
        lambda v: v >= 1,
    )
    await p.wait_value(
        f'sum(vela_progressive_analysis_measurements_total{{{sel},verdict="Passed"}})',
        lambda v: v >= 2,
    )
    await p.wait_value(
        f'vela_progressive_rollouts{{job="{JOB}",namespace="{releases.namespace}",phase="Healthy"}}',
        once,
    )
    # The controller itself: passes, API requests, the hold webhook, release loops.
    mine = f'job="{JOB}",instance="{p.instance}"'
    await p.wait_value(
        f"vela_progressive_reconcile_duration_seconds_count{{{mine}}}", lambda v: v > 0
    )
    await p.wait_value(
        f'vela_progressive_api_requests_total{{{mine},verb="PATCH"}}', lambda v: v > 0
    )
    await p.wait_value(
        f'vela_progressive_webhook_hold_duration_seconds_count{{{mine},kind="Deployment"}}',
        lambda v: v > 0,
    )
    await p.wait_value(f"vela_progressive_release_loops{{{mine}}}", lambda v: v >= 1)


# ---------------------------------------------------------------- the dashboard
def _panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    # The template variables' label_values(metric, label): the metric must have series.
    for var in dashboard["templating"]["list"]:
        found = re.fullmatch(r"label_values\((.+), *\w+\)", str(var.get("definition", "")))
        if found:
            queries.append((f"variable {var['name']}", found.group(1)))
    return queries


def test_the_dashboard_has_a_query_per_panel_and_only_known_variables() -> None:
    queries = _panel_queries()
    assert len(queries) >= 15
    used = {v for _, q in queries for v in re.findall(r"\$(\w+)", q)}
    assert used <= {"namespace", "application", "job", "__range", "__rate_interval"}, used


async def test_every_dashboard_panel_query_parses_and_returns_data_after_the_releases(
    releases: Released, prometheus: Prometheus
) -> None:
    elapsed = int(time.monotonic() - releases.started) + 60
    values = {
        "$namespace": releases.namespace,
        "$application": releases.application,
        "$job": JOB,
        "$__range": f"{elapsed}s",
        "$__rate_interval": "1m",
    }

    def resolved(query: str) -> str:
        for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
            query = query.replace(name, value)
        return query

    async def missing() -> list[str]:
        empty = []
        for title, query in _panel_queries():
            result = await prometheus.query(resolved(query))
            finite = [r for r in result if not math.isnan(float(r["value"][1]))]
            if not finite:
                empty.append(f"{title}: {resolved(query)} -> {result}")
        return empty

    async def all_answer() -> bool:
        return not await missing()

    try:
        await eventually(all_answer, 30, "every panel to return data", interval=2)
    except pytest.fail.Exception:
        pytest.fail("panels without data:\n" + "\n".join(await missing()), pytrace=False)
