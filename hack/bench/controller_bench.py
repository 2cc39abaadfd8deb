"""Benchmark the controller on a running test cluster (issue: measure, do not assert).

    KUBECONFIG=... .venv/bin/python hack/bench/controller_bench.py [--releases 5] [--idle 100]
        [--kind Deployment|CloneSet]

Measures, with the controller as a real process (hold webhook on 127.0.0.1):

1. step latency: from the moment every pod of step k is Ready (observed by polling pods every
   25 ms) to the moment the controller patches the workload for step k+1 (observed by polling the
   new ReplicaSet's ``spec.replicas``, or a CloneSet's ``spec.updateStrategy.partition``: pods
   allowed on the new revision = replicas - partition); steps have ``duration: 0`` so no wait is
   involved; ``--kind CloneSet`` needs OpenKruise (the test world runs kruise-manager);
2. API requests per release: the controller's own client counter (Kopf probe ``apiRequests`` on
   the ``--liveness`` endpoint), before and after each release; Kopf's watch streams are extra;
3. resident memory of the controller with N rollouts idle (VmRSS from /proc after 30 s idle).

Prints a Markdown report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.release_kit import CR_API, rollout, workload  # noqa: E402

from vela_progressive.core.model import KIND  # noqa: E402
from vela_progressive.shell.kube import Kube  # noqa: E402

Obj = dict[str, Any]
STEPS: list[Obj] = [
    {"replicas": "20%", "duration": 0},
    {"replicas": "50%", "duration": 0},
    {"replicas": "80%", "duration": 0},
    {"replicas": "100%"},
]
PLAN = [2, 5, 8, 10]
#: Kopf caches probe results for 10 s; wait that long so each reading is fresh.
PROBE_CACHE = 10.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_controller(state: Path) -> tuple[subprocess.Popen[bytes], int]:
    live = free_port()
    env = {
        **os.environ,
        "VP_WEBHOOK_MODE": "local",
        "VP_WEBHOOK_PORT": str(free_port()),
        "VP_STATE_DIR": str(state),
    }
    exe = Path(sys.executable).parent / "vela-progressive-controller"
    log = (state / "controller.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), f"--liveness=http://127.0.0.1:{live}/healthz"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            probe(live)
            return proc, live
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"controller did not start; see {state / 'controller.log'}")


def probe(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        body = json.loads(resp.read())
    return dict(body.get("apiRequests") or {})


async def wait_healthy(kube: Kube, ns: str, name: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        cr = await kube.get(CR_API, KIND, name, ns)
        status = (cr or {}).get("status") or {}
        if status.get("phase") == "Healthy" and status.get("observedRevision") == (
            (cr or {}).get("spec", {}).get("revision", {}).get("name")
        ):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"{ns}/{name} did not become Healthy")


def ready(pod: Obj) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


#: Workload kinds the benchmark releases: apiVersion, and the update strategy it starts with.
KINDS: dict[str, tuple[str, Obj | None]] = {
    "Deployment": ("apps/v1", None),
    "CloneSet": ("apps.kruise.io/v1alpha1", {"type": "ReCreate", "maxUnavailable": 2}),
}


async def allowed_new(kube: Kube, ns: str, kind: str, name: str) -> int:
    """Pods the controller has allowed on the new revision so far (what its last patch says)."""
    if kind == "CloneSet":
        cs = await kube.get(KINDS[kind][0], kind, name, ns)
        assert cs is not None
        partition = cs["spec"].get("updateStrategy", {}).get("partition", 0)
        if isinstance(partition, str):  # "100%": held
            return 0
        return int(cs["spec"]["replicas"]) - int(partition)
    rs_list = await kube.list("apps/v1", "ReplicaSet", ns)
    new_rs = [
        rs
        for rs in rs_list
        if rs["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
    ]
    return int(new_rs[0]["spec"].get("replicas", 0)) if new_rs else 0


async def one_release(kube: Kube, ns: str, live: int, kind: str) -> tuple[list[float], int]:
    name = "web"
    api_version, strategy = KINDS[kind]
    obj = workload(kind, name, ns, 10, "registry.invalid/web:v1", api_version=api_version)
    if strategy is not None:
        obj["spec"]["updateStrategy"] = strategy
    await kube.create(obj)
    cr = rollout(name, ns, kind, STEPS, api_version=api_version, releaseMode="batch")
    await kube.create(cr)
    await wait_healthy(kube, ns, name)
    await asyncio.sleep(PROBE_CACHE)
    before = sum(probe(live).values())
    await kube.patch(CR_API, KIND, name, ns, {"spec": {"revision": {"name": "app-v2"}}})
    current = await kube.get(api_version, kind, name, ns)
    assert current is not None
    template = current["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "registry.invalid/web:v2"
    await kube.patch(api_version, kind, name, ns, {"spec": {"template": template}})
    ready_at: dict[int, float] = {}
    patched_at: dict[int, float] = {}
    deadline = time.monotonic() + 120
    while len(patched_at) < len(PLAN) - 1 and time.monotonic() < deadline:
        now = time.monotonic()
        pods = await kube.list("v1", "Pod", ns, label_selector="app.oam.dev/component=web")
        new_ready = sum(
            1
            for p in pods
            if p["spec"]["containers"][0]["image"].endswith(":v2")
            and ready(p)
            and not p["metadata"].get("deletionTimestamp")
        )
        desired = await allowed_new(kube, ns, kind, name)
        for k, pods_k in enumerate(PLAN[:-1]):
            if new_ready >= pods_k and k not in ready_at:
                ready_at[k] = now
            if desired >= PLAN[k + 1] and k not in patched_at:
                patched_at[k] = now
        await asyncio.sleep(0.025)
    await wait_healthy(kube, ns, name)
    await asyncio.sleep(PROBE_CACHE)
    after = sum(probe(live).values())
    latencies = [patched_at[k] - ready_at[k] for k in patched_at if k in ready_at]
    return latencies, after - before


async def idle(kube: Kube, ns: str, count: int) -> None:
    for i in range(count):
        await kube.create(workload("Deployment", f"idle-{i}", ns, 1, "registry.invalid/web:v1"))
        cr = rollout(f"idle-{i}", ns, "Deployment", STEPS, releaseMode="batch")
        await kube.create(cr)
    for i in range(count):
        await wait_healthy(kube, ns, f"idle-{i}", within=300)


async def clean_up(kube: Kube, proc: subprocess.Popen[bytes], namespaces: list[str]) -> None:
    """Namespaces first (the controller releases each rollout's finalizer), then the controller."""
    await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "delete", "namespace", *namespaces, "--timeout=300s"],
        capture_output=True,
        check=False,
    )
    proc.terminate()
    proc.wait(20)
    await kube.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=5)
    parser.add_argument("--idle", type=int, default=100, help="0: skip the idle measure")
    parser.add_argument("--kind", choices=sorted(KINDS), default="Deployment")
    args = parser.parse_args()
    kube = await Kube.connect()
    state = Path(tempfile.mkdtemp(prefix="vp-bench-"))
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
    proc, live = start_controller(state)
    namespaces = []
    try:
        latencies: list[float] = []
        requests: list[int] = []
        for i in range(args.releases):
            ns = f"bench-{os.getpid()}-{i}"
            namespaces.append(ns)
            await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            await asyncio.sleep(1)  # the default ServiceAccount
            lat, req = await one_release(kube, ns, live, args.kind)
            latencies += lat
            requests.append(req)
        print("| measure | value |")
        print("|---|---|")
        print(
            f"| step latency of a {args.kind}, pods Ready → next step's patch "
            f"(n={len(latencies)}) | median {statistics.median(latencies) * 1000:.0f} ms, "
            f"worst {max(latencies) * 1000:.0f} ms |"
        )
        print(
            f"| API requests per release (10 replicas, 4 steps; n={len(requests)}) | "
            f"median {statistics.median(requests):.0f}, min {min(requests)}, max {max(requests)} |"
        )
        if not args.idle:
            return
        ns = f"bench-{os.getpid()}-idle"
        namespaces.append(ns)
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await asyncio.sleep(1)
        t0 = time.monotonic()
        await idle(kube, ns, args.idle)
        settle = time.monotonic() - t0
        await asyncio.sleep(30)
        req0 = sum(probe(live).values())
        await asyncio.sleep(60)
        idle_rate = sum(probe(live).values()) - req0
        rss_kb = next(
            int(line.split()[1])
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        print(f"| {args.idle} rollouts created and Healthy | {settle:.1f} s |")
        print(f"| controller RSS with {args.idle} rollouts idle | {rss_kb / 1024:.0f} MiB |")
        print(f"| API requests per minute with {args.idle} rollouts idle | {idle_rate} |")
    finally:
        await clean_up(kube, proc, namespaces)


if __name__ == "__main__":
    asyncio.run(main())
