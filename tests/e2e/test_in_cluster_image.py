"""The addon's default install path, for real: ``inCluster=true``, the controller run from the
image ``make image`` builds.

A world of its own (the module's ``incluster_world``, never the session's ``cluster``, whose
addon and local controller the other e2e tests use). The addon is enabled with its defaults plus
``webhookURL=https://127.0.0.1:<port>``: its Deployment runs as a kwok pod (no container runs),
so the process that pod stands for is started here from the image's unpacked root filesystem in
the bubblewrap sandbox (``hack/image/sandbox.py``: uid 65532, read-only root) with what a
kubelet gives it: the ServiceAccount token (a TokenRequest for the addon's ServiceAccount), the
cluster CA and namespace at ``/var/run/secrets/kubernetes.io/serviceaccount``,
``KUBERNETES_SERVICE_HOST/PORT``, the Deployment's own command, env and ``emptyDir``, and the
host network. Only the addresses change: the machine's rule is that nothing listens beyond
127.0.0.1, so the webhook, liveness and metrics bind there on free ports. The controller finds
the webhook configuration's URL, issues its serving certificate for 127.0.0.1 too and puts its CA
in; one example is released through it, held by its webhook.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.e2e.addon import ADDON_APP, ADDON_DIR, CONTROLLER
from tests.e2e.addon import build as build_addon
from tests.e2e.kit import Example, Release, timeline
from tests.support.cluster import REPO, Cluster, own_world
from tests.support.controller import free_port, terminate
from tests.support.image import build_image
from vela_progressive.core.status import StepState
from vela_progressive.shell.kube import Kube

sys.path.insert(0, str(REPO / "hack" / "image"))
import host_tools
import sandbox

pytestmark = [pytest.mark.e2e]

NAMESPACE = "vela-system"
STATE_SECRET = "vela-progressive-controller-state"
HOLD_CONFIG = "vela-progressive-hold"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IMAGE_OUT = REPO / "dist" / "image"


@pytest.fixture(scope="module")
def incluster_world(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with own_world(
        f"incluster-{os.getpid()}", pytestconfig, tmp_path_factory.mktemp("kubectl-cache")
    ) as started:
        yield started


def built_image() -> dict[str, Any]:
    """``make image`` (hack/image/build.py build into dist/image; cached, seconds when warm)."""
    return build_image(IMAGE_OUT).report


def enable_addon(cluster: Cluster, webhook_url: str) -> None:
    build_addon()
    # The defaults (inCluster=true) and where the API server reaches the webhook.
    done = cluster.vela(
        "addon", "enable", str(ADDON_DIR), f"webhookURL={webhook_url}", input="", check=False
    )
    if done.returncode != 0:
        why = cluster.vela("status", ADDON_APP, "-n", NAMESPACE, check=False)
        pytest.fail(
            f"vela addon enable failed:\n{done.stdout}{done.stderr}\n{why.stdout}{why.stderr}",
            pytrace=False,
        )


def cluster_ca(kubeconfig: Path) -> bytes:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    if "certificate-authority-data" in cluster:
        return base64.b64decode(cluster["certificate-authority-data"])
    path = Path(cluster["certificate-authority"])
    return (path if path.is_absolute() else kubeconfig.parent / path).read_bytes()


def api_server(kubeconfig: Path) -> tuple[str, int]:
    server = urlsplit(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    assert server.hostname, server
    assert server.port, server
    return server.hostname, server.port


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def pod_env(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's env as the kubelet resolves it (the Pod is in the addon's namespace)."""
    env: dict[str, str] = {}
    for item in container_of(deployment).get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            assert path == "metadata.namespace", item
            env[item["name"]] = deployment["metadata"]["namespace"]
    return env


@dataclass
class ImageController:
    proc: subprocess.Popen[bytes]
    log: Path
    webhook_port: int
    health_port: int
    metrics_port: int
    started: float

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(
                f"the image's controller exited ({self.proc.returncode}):\n{self.tail()}",
                pytrace=False,
            )


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


@contextlib.contextmanager
def run_image(
    cluster: Cluster, deployment: dict[str, Any], webhook_port: int, log: Path
) -> Iterator[ImageController]:
    """The Deployment's container as a kubelet would start it, from the image, on loopback."""
    report = built_image()
    tools = host_tools.ensure("umoci", "bwrap")
    container = container_of(deployment)
    health_port, metrics_port = free_port(), free_port()
    # The addon's arguments are Kopf's liveness endpoint on 0.0.0.0:8080; the same on loopback.
    assert container["args"] == ["--liveness=http://0.0.0.0:8080/healthz"], container
    command = [*container["command"], f"--liveness=http://127.0.0.1:{health_port}/healthz"]
    host, port = api_server(cluster.kubeconfig)
    env = {
        **pod_env(deployment),
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "VP_WEBHOOK_ADDR": "127.0.0.1",
        "VP_WEBHOOK_PORT": str(webhook_port),
        "VP_METRICS_ADDR": "127.0.0.1",
        "VP_METRICS_PORT": str(metrics_port),
        "PYTHONUNBUFFERED": "1",
    }
    empty_dirs = [m["mountPath"] for m in container.get("volumeMounts") or []]
    token = cluster.kubectl(
        "create", "token", CONTROLLER, "-n", NAMESPACE, "--duration=2h"
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="vp-incluster-") as tmp:
        os.chmod(tmp, 0o755)  # the sandbox runs as the image's unprivileged user
        work = Path(tmp)
        secrets = work / "serviceaccount"
        secrets.mkdir()
        (secrets / "token").write_text(token)
        (secrets / "ca.crt").write_bytes(cluster_ca(cluster.kubeconfig))
        (secrets / "namespace").write_text(NAMESPACE)
        for path in [secrets, *secrets.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        bundle = work / "bundle"
        config = sandbox.unpack(tools["umoci"], Path(report["layout"]), report["tag"], bundle)
        argv = sandbox.command(
            tools["bwrap"],
            bundle / "rootfs",
            config,
            replace=command,
            env=env,
            binds={SA_DIR: secrets},
            empty_dirs=empty_dirs,
            network=True,
        )
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        ctl = ImageController(proc, log, webhook_port, health_port, metrics_port, time.monotonic())
        try:
            yield ctl
        finally:
            terminate(proc, 30)
            print(f"image controller log ({log}):\n{ctl.tail(30)}")


def webhook_calls(cluster: Cluster, webhook: str) -> int:
    """Admission calls the API server made to ``webhook`` that were answered (code 200)."""
    metrics = cluster.kubectl("get", "--raw", "/metrics").stdout
    total = 0
    for line in metrics.splitlines():
        if line.startswith("apiserver_admission_webhook_request_total{") and (
            f'name="{webhook}"' in line and 'code="200"' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def test_one_release_through_the_image_controller_installed_in_cluster(
    incluster_world: Cluster, tmp_path: Path
) -> None:
    cluster = incluster_world
    started = time.monotonic()
    webhook_port = free_port()
    webhook_url = f"https://127.0.0.1:{webhook_port}"
    enable_addon(cluster, webhook_url)
    deployment = cluster.get("deployment", CONTROLLER, "-n", NAMESPACE)
    hold = cluster.get("mutatingwebhookconfiguration", HOLD_CONFIG)
    urls = [w["clientConfig"].get("url", "") for w in hold["webhooks"]]
    assert urls, hold
    assert all(u.startswith(f"{webhook_url}/") for u in urls), urls
    assert not any(w["clientConfig"].get("caBundle") for w in hold["webhooks"]), hold

    with run_image(cluster, deployment, webhook_port, tmp_path / "controller.log") as ctl:

        def up() -> bool:
            ctl.alive()
            hooks = cluster.get("mutatingwebhookconfiguration", HOLD_CONFIG)["webhooks"]
            if not all(w["clientConfig"].get("caBundle") for w in hooks):
                return False
            return get(f"http://127.0.0.1:{ctl.health_port}/healthz")[0] == 200

        cluster.wait_for(up, 120, "the image's controller to put its CA in and be live")
        came_up = time.monotonic() - started
        process_up = time.monotonic() - ctl.started
        ready = cluster.get("mutatingwebhookconfiguration", HOLD_CONFIG)["webhooks"]
        assert [w["clientConfig"]["url"] for w in ready] == urls  # still the addon's URLs
        status, metrics = get(f"http://127.0.0.1:{ctl.metrics_port}/metrics")
        assert status == 200, status
        assert "vela_progressive" in metrics, metrics[:500]
        # Every pod shares one serving certificate and stamp key through the state Secret:
        # the CA the webhooks trust is the Secret's.
        state = cluster.get("secret", STATE_SECRET, "-n", NAMESPACE)
        assert sorted(state["data"]) == ["ca.crt", "hosts", "stamp.key", "tls.crt", "tls.key"]
        assert {w["clientConfig"]["caBundle"] for w in ready} == {state["data"]["ca.crt"]}

        hold_deployments = next(
            w["name"] for w in ready if "/hold-deployments" in w["clientConfig"]["url"]
        )
        calls_before = webhook_calls(cluster, hold_deployments)
        namespace = f"t-incluster-{os.getpid()}"
        cluster.create_namespace(namespace)
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            rel = Release(cluster, kube, namespace, Example.named("05-manual-approval"))
            v1, v2 = rel.example.image(1), rel.example.image(2)
            await rel.deploy_v1(replicas=4)
            rel.vela_up(2)
            for step, new in ((1, 1), (2, 2), (3, 3)):
                await rel.wait_state(step, StepState.APPROVAL)
                # batch, in place: the Deployment's own pods move only as far as the step
                await rel.wait_pods({v1: 4 - new, v2: new})
                ctl.alive()
                rel.approve()
            status = await rel.wait_released(2, replicas=4)
            waits = [s for s, state, _ in timeline(status) if state == StepState.APPROVAL]
            assert waits == [1, 2, 3], timeline(status)
        finally:
            await kube.close()
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        # The API server called the image's hold webhook (TLS to 127.0.0.1 with the CA the
        # controller put in) and it answered: the template change was held there.
        calls = webhook_calls(cluster, hold_deployments)
        assert calls > calls_before, (calls_before, calls)
        # The addon's role is enough: nothing the controller asked for was refused.
        log = ctl.log.read_text(errors="replace")
        assert "Forbidden" not in log, ctl.tail(80)
        ctl.alive()
    print(f"image built, addon enabled, controller up: {came_up:.1f}s")
    print(f"the image's process: CA in and /healthz answered {process_up:.1f}s after its start")
    print(f"hold webhook calls: {calls - calls_before}")
