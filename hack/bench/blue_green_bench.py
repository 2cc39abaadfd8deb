"""Blue-green switch and switch-back times on a running test cluster (measured, not asserted).

    KUBECONFIG=... .venv/bin/python hack/bench/blue_green_bench.py [--releases 5]

Each release: a 10-replica Deployment behind an NGINX Ingress, ``releaseMode: blueGreen`` with a
preview step (approval) and a 300 s scale-down delay; the controller runs as a real process.

1. switch: from the approve annotation written to the first poll (every 25 ms) that sees the
   canary Ingress at ``canary-weight: 100``;
2. rollback: from the stable template applied as a new revision (what ``kubectl progressive
   rollback`` makes KubeVela do) to the first poll that sees the canary Ingress gone (every
   request back on the old set through the user's Ingress), and whether any pod was created.

Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from controller_bench import (  # noqa: E402  (this directory: the same script)
    clean_up,
    start_controller,
)
from tests.integration.release_kit import V1, V2, Release, rollout, workload  # noqa: E402
from tests.integration.test_release_traffic import INGRESS, originals  # noqa: E402

from vela_progressive.core.release import APPROVE_ANNOTATION  # noqa: E402
from vela_progressive.shell.kube import Kube  # noqa: E402

Obj = dict[str, Any]
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


async def until(probe: Any, within: float = 120) -> float:
    """Poll ``probe`` every 25 ms; the monotonic time it first returned true."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await probe():
            return time.monotonic()
        await asyncio.sleep(0.025)
    raise SystemExit("timed out")


async def one_release(kube: Kube, ns: str) -> tuple[float, float, int]:
    for obj in originals(ns)[:2]:  # the Service and the Ingress
        await kube.create(obj)
    rel = Release(kube, ns, "Deployment")
    await kube.create(workload("Deployment", "web", ns, 10, V1))
    cr = rollout(
        "web",
        ns,
        "Deployment",
        [{"replicas": "100%", "matches": [{"headers": [{"name": "x-preview", "value": "g"}]}]}],
        releaseMode="blueGreen",
        blueGreen={"scaleDownDelaySeconds": 300},
    )
    cr["spec"]["strategy"]["canary"]["trafficRoutings"] = [
        {"type": "ingress", "ingressName": "web"}
    ]
    await kube.create(cr)
    await rel.wait_phase("Healthy", within=120)
    await rel.wait_pods(V1, 10)
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1, within=120)

    async def weight_100() -> bool:
        canary = await kube.get(*INGRESS, "web-canary", ns)
        return ((canary or {}).get("metadata", {}).get("annotations") or {}).get(WEIGHT) == "100"

    t0 = time.monotonic()
    await rel.annotate(APPROVE_ANNOTATION, "app-v2/1")
    switched = await until(weight_100) - t0
    await rel.wait_step(2, "Waiting", within=60)
    before = {p["metadata"]["name"] for p in await rel.pods()}

    async def canary_gone() -> bool:
        return await kube.get(*INGRESS, "web-canary", ns) is None

    t0 = time.monotonic()
    await rel.set_image(V1, "app-v3")
    back = await until(canary_gone) - t0
    await rel.wait_phase("Healthy", within=120)
    created = len({p["metadata"]["name"] for p in await rel.pods()} - before)
    return switched, back, created


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=5)
    args = parser.parse_args()
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
    proc, _ = start_controller(Path(tempfile.mkdtemp(prefix="vp-bg-bench-")))
    namespaces: list[str] = []
    try:
        switches, backs, created = [], [], 0
        for i in range(args.releases):
            ns = f"bg-bench-{os.getpid()}-{i}"
            namespaces.append(ns)
            await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            await asyncio.sleep(1)  # the default ServiceAccount
            switched, back, made = await one_release(kube, ns)
            switches.append(switched)
            backs.append(back)
            created += made
        n = len(switches)
        print("| measure | value |")
        print("|---|---|")
        print(
            f"| approve → canary Ingress at weight 100 (n={n}) | median "
            f"{statistics.median(switches) * 1000:.0f} ms, worst {max(switches) * 1000:.0f} ms |"
        )
        print(
            f"| rollback (stable template applied) → every request on the old set (n={n}) | median "
            f"{statistics.median(backs) * 1000:.0f} ms, worst {max(backs) * 1000:.0f} ms |"
        )
        print(f"| pods created by the {n} rollbacks | {created} |")
    finally:
        await clean_up(kube, proc, namespaces)


if __name__ == "__main__":
    asyncio.run(main())
