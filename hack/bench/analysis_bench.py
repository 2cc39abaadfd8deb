"""Benchmark the metric analysis on a running test cluster and its Prometheus (measure only).

    eval "$(.venv/bin/python hack/cluster/world.py env)"
    .venv/bin/python hack/bench/analysis_bench.py [--runs 5]

With the controller as a real process asking the test world's Prometheus, releases a
canary-style Deployment of 4 pods behind an NGINX Ingress whose step 1 is gated by the error rate
(``interval: 5``, ``count: 2``, ``failureLimit: 0``):

1. a ``-bad`` version, ``--runs`` times: the time from the first failing measurement (the
   bench sees it appear in ``status.measurements``, polling every 50 ms) to the canary Ingress
   carrying no weight any more (polled every 50 ms); and from the moment the bench's own copy of
   the query shows the error rate above the threshold in Prometheus to that same moment;
2. a healthy version: the queries Prometheus answered during the release (its own
   ``prometheus_http_requests_total{handler="/api/v1/query"}``, read from its /metrics before and
   after, with nothing else querying), per gated step;
3. the controller's CPU seconds (utime + stime from /proc) over every release, per 100 releases.

Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.release_kit import CR_API, rollout, workload  # noqa: E402

from vela_progressive.core.model import KIND  # noqa: E402
from vela_progressive.shell.kube import Kube  # noqa: E402

Obj = dict[str, Any]
INTERVAL, COUNT = 5, 2
ERRORS = {
    "name": "errors",
    "template": "request-error-rate",
    "thresholdRange": {"max": 5},
    "interval": INTERVAL,
    "count": COUNT,
}
STEPS: list[Obj] = [
    {"replicas": 1, "weight": 25, "duration": 0, "analysis": {"metrics": [ERRORS]}},
    {"replicas": "100%", "weight": 100, "duration": 0},
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prometheus_queries(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = r'prometheus_http_requests_total\{[^}]*handler="/api/v1/query"[^}]*\} (\d+)'
    return sum(int(m) for m in re.findall(pattern, text))


def error_rate(url: str, ns: str) -> float | None:
    query = (
        f'100 * (sum(rate(nginx_ingress_controller_requests{{namespace="{ns}",ingress="web",'
        f'canary!="",status=~"5.."}}[{INTERVAL}s])) or vector(0)) / '
        f'sum(rate(nginx_ingress_controller_requests{{namespace="{ns}",ingress="web",'
        f'canary!=""}}[{INTERVAL}s]))'
    )
    q = urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5) as resp:
        result = json.loads(resp.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def start_controller(state: Path, prometheus: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VP_WEBHOOK_MODE": "local",
        "VP_WEBHOOK_PORT": str(_free_port()),
        "VP_STATE_DIR": str(state),
        "VP_PROMETHEUS_ADDRESS": prometheus,
    }
    exe = Path(sys.executable).parent / "vela-progressive-controller"
    log = (state / "controller.log").open("wb")
    proc = subprocess.Popen([str(exe)], env=env, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(8)  # the webhook registers itself
    return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def setup(kube: Kube, ns: str) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    labels = {"app.oam.dev/component": "web"}
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns, "labels": labels},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    path = {"path": "/", "pathType": "Prefix", "backend": backend}
    await kube.create(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{"host": "b.example.com", "http": {"paths": [path]}}],
            },
        }
    )
    await kube.create(workload("Deployment", "web", ns, 4, "registry.invalid/web:v1"))
    cr = rollout("web", ns, "Deployment", STEPS)
    cr["spec"]["strategy"]["canary"]["trafficRoutings"] = [{"type": "ingress"}]
    await kube.create(cr)
    await until(kube, ns, lambda s: s.get("phase") == "Healthy", 120)


async def until(kube: Kube, ns: str, done: Any, within: float) -> Obj:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = ((await kube.get(CR_API, KIND, "web", ns)) or {}).get("status") or {}
        if done(status):
            return status
        await asyncio.sleep(0.05)
    raise SystemExit(f"{ns}: timed out")


async def release(kube: Kube, ns: str, image: str) -> None:
    await kube.patch(CR_API, KIND, "web", ns, {"spec": {"revision": {"name": "app-v2"}}})
    container = {"name": "main", "image": image}
    template = {"spec": {"template": {"spec": {"containers": [container]}}}}
    await kube.patch("apps/v1", "Deployment", "web", ns, template, patch_type="strategic")


async def weight(kube: Kube, ns: str) -> int:
    canary = await kube.get("networking.k8s.io/v1", "Ingress", "web-canary", ns)
    annotations = ((canary or {}).get("metadata") or {}).get("annotations") or {}
    return int(annotations.get("nginx.ingress.kubernetes.io/canary-weight", "0") or 0)


async def bad_run(kube: Kube, ns: str, prometheus: str) -> tuple[float, float]:
    await setup(kube, ns)
    await release(kube, ns, "registry.invalid/web:v2-bad")
    await until(kube, ns, lambda s: s.get("stepState") == "Analyzing", 120)
    seen_bad = failed_at = back_at = None
    while back_at is None:
        now = time.monotonic()
        if seen_bad is None:
            rate = await asyncio.to_thread(error_rate, prometheus, ns)
            if rate is not None and rate > 5:
                seen_bad = now
        status = ((await kube.get(CR_API, KIND, "web", ns)) or {}).get("status") or {}
        failed = any(m.get("verdict") == "Failed" for m in status.get("measurements") or [])
        if failed and failed_at is None:
            failed_at = now
        if failed_at is not None and await weight(kube, ns) == 0:
            back_at = time.monotonic()
        await asyncio.sleep(0.05)
    assert failed_at is not None
    return back_at - failed_at, back_at - (seen_bad or failed_at)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    prometheus = os.environ.get("VP_PROMETHEUS_URL")
    if not prometheus:
        raise SystemExit('VP_PROMETHEUS_URL is not set: eval "$(world.py env)" first')
    kube = await Kube.connect()
    await asyncio.to_thread(
        subprocess.run,
        [
            "kubectl",
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(REPO / "addon/resources/crd.yaml"),
        ],
        check=True,
        capture_output=True,
    )
    state = Path(tempfile.mkdtemp(prefix="vp-analysis-bench-"))
    proc = start_controller(state, prometheus)
    stamp = int(time.time())
    releases = 0
    cpu0 = cpu_seconds(proc.pid)
    try:
        ns = f"bench-ok-{stamp}"
        await setup(kube, ns)
        before = prometheus_queries(prometheus)
        await release(kube, ns, "registry.invalid/web:v2")
        await until(kube, ns, lambda s: s.get("stableAppRevision") == "app-v2", 180)
        queries = prometheus_queries(prometheus) - before
        releases += 1
        to_back, from_visible = [], []
        for i in range(args.runs):
            a, b = await bad_run(kube, f"bench-bad-{stamp}-{i}", prometheus)
            to_back.append(a)
            from_visible.append(b)
            releases += 1
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(20)
        await kube.close()
    load = os.getloadavg()
    print("| figure | value |")
    print("|---|---|")
    print(
        f"| failing measurement → canary weight 0, median of {args.runs} (min, max) | "
        f"{statistics.median(to_back):.2f} s ({min(to_back):.2f}, {max(to_back):.2f}) |"
    )
    print(
        f"| error rate above the threshold in Prometheus → canary weight 0, median "
        f"(min, max) | {statistics.median(from_visible):.2f} s ({min(from_visible):.2f}, "
        f"{max(from_visible):.2f}) |"
    )
    print(f"| queries to Prometheus for one gated step (count {COUNT}) | {queries} |")
    print(
        f"| controller CPU per 100 analysed releases ({releases} measured) | "
        f"{100 * cpu / releases:.1f} s |"
    )
    print(f"\nload average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
