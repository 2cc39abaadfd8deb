"""Pytest plugin: the vela-progressive controller as a real process against the test cluster.

``controller`` (session) installs the CRD, starts ``vela-progressive-controller`` (Kopf, hold
webhook on 127.0.0.1 with its own CA, registered through a URL clientConfig) and stops it at the
end. ``controller.kill()`` sends SIGKILL and ``controller.start()`` starts a new process, for the
restart tests. ``kube`` gives tests the project's own async API client.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO, Cluster
from tests.support.users import write_kubeconfig
from vela_progressive.core import identity
from vela_progressive.core.model import API_GROUP
from vela_progressive.core.workloads import registry
from vela_progressive.shell.kube import Kube

CRD = REPO / "addon" / "resources" / "crd.yaml"
WEBHOOK_CONFIG = f"hold.{API_GROUP}"
#: The addon as vela renders it (golden of the CUE tier): its RBAC is what the controller gets.
RENDERED_ADDON = REPO / "tests" / "golden" / "cue" / "addon" / "local-controller.yaml"
SERVICE_ACCOUNT = ("vela-system", "vela-progressive-controller")
#: Only for a controller outside the cluster: it registers its own webhook configuration
#: (the addon's in-cluster controller only updates the addon's), and Kopf watches CRDs.
LOCAL_MODE_RULES = [
    {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
]


def rendered_objects(
    kinds: set[str], names: set[str], rendered: Path = RENDERED_ADDON
) -> list[dict[str, Any]]:
    """Objects of the addon as vela renders it (a CUE tier golden), by kind and name."""
    found: list[dict[str, Any]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("kind") in kinds and node.get("metadata", {}).get("name") in names:
                found.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in yaml.safe_load_all(rendered.read_text()):
        walk(doc)
    return found


def _rbac_objects() -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding exactly as the addon renders them."""
    found = rendered_objects(
        {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}, {SERVICE_ACCOUNT[1]}
    )
    kinds = sorted(o["kind"] for o in found)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"], kinds
    return found


def controller_kubeconfig(cluster: Cluster, state: Path) -> Path:
    """A kubeconfig that authenticates as the addon's ServiceAccount (a TokenRequest token), so
    every test also checks that the addon's RBAC is enough."""
    extra = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{SERVICE_ACCOUNT[1]}-local-mode"},
        "rules": LOCAL_MODE_RULES,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{SERVICE_ACCOUNT[1]}-local-mode"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": extra["metadata"]["name"],
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT[1], "namespace": SERVICE_ACCOUNT[0]}
        ],
    }
    docs = [*_rbac_objects(), extra, binding]
    cluster.apply_yaml("\n---\n".join(yaml.safe_dump(d) for d in docs))
    token = cluster.kubectl(
        "create", "token", SERVICE_ACCOUNT[1], "-n", SERVICE_ACCOUNT[0], "--duration=24h"
    ).stdout.strip()
    return write_kubeconfig(
        cluster, state / "controller.kubeconfig", SERVICE_ACCOUNT[1], {"token": token}
    )


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``grace`` seconds; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Controller:
    def __init__(
        self,
        cluster: Cluster,
        state: Path,
        kubeconfig: Path,
        env: dict[str, str] | None = None,
        verbose: bool = True,
    ) -> None:
        self.cluster = cluster
        #: More settings, e.g. VP_SHARD or VP_PEERING for a replica of several.
        self.extra_env = dict(env or {})
        #: Debug logs (Kopf's and ours); a benchmark turns them off to measure the controller.
        self.verbose = verbose
        self.state = state
        self.kubeconfig = kubeconfig
        self.port = free_port()
        #: Its Prometheus endpoint: ``http://127.0.0.1:<metrics_port>/metrics``.
        self.metrics_port = free_port()
        self.log = state / "controller.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **self.cluster.env,
            "KUBECONFIG": str(self.kubeconfig),
            "VP_WEBHOOK_MODE": "local",
            "VP_WEBHOOK_PORT": str(self.port),
            "VP_METRICS_PORT": str(self.metrics_port),
            "VP_STATE_DIR": str(self.state),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        if self.cluster.prometheus_url:  # the analysis' default Prometheus: the test world's
            env["VP_PROMETHEUS_ADDRESS"] = self.cluster.prometheus_url
        exe = Path(sys.executable).parent / "vela-progressive-controller"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(exe), *(["--verbose"] if self.verbose else [])],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the controller exited at start:\n{self.tail()}", pytrace=False)
            listening = False
            with socket.socket() as s:
                listening = s.connect_ex(("127.0.0.1", self.port)) == 0
            # Kopf creates the configuration empty, then fills it once its server listens.
            if listening and self.registered() == self.expected_paths():
                return
            time.sleep(0.5)
        pytest.fail(
            f"the controller did not come up in 60s (webhooks registered: {self.registered()})"
            f":\n{self.tail()}",
            pytrace=False,
        )

    @staticmethod
    def expected_paths() -> list[str]:
        """The webhooks a local controller registers: a hold per kind and the stamp."""
        return sorted([k.handler_id for k in registry.REGISTRY] + [identity.WEBHOOK_ID])

    def registered(self) -> list[str]:
        """The paths of this process' webhooks in the configuration it manages."""
        got = self.cluster.kubectl(
            "get", "mutatingwebhookconfiguration", WEBHOOK_CONFIG, "-o", "json", check=False
        )
        if got.returncode != 0:
            return []
        base = f"https://127.0.0.1:{self.port}/"
        urls = [
            w["clientConfig"].get("url") or "" for w in json.loads(got.stdout).get("webhooks") or []
        ]
        return sorted(u.removeprefix(base) for u in urls if u.startswith(base))

    def problem(self) -> str | None:
        """Why the controller is not serving (it exited, or its webhooks are gone), or None."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None:
            last = self.tail(1).strip()
            return f"the controller exited with code {code} (last log line: {last})"
        registered = self.registered()
        if registered != self.expected_paths():
            return f"the controller's webhook configuration holds {registered}"
        return None

    def ensure_serving(self) -> str | None:
        """Restart a controller that stopped serving, so one failure does not cascade; say why
        it had stopped (None when it was serving)."""
        problem = self.problem()
        if problem is not None:
            tail = self.tail(40)
            refused = [
                line for line in tail.splitlines() if "401" in line or "Unauthorized" in line
            ]
            if refused:
                problem += f"; the API server refused its token: {refused[-1].strip()[:200]}"
            self.restart_with_new_token()
            return f"{problem}; restarted it. Its log before the restart:\n{tail}"
        return None

    def restart_with_new_token(self) -> None:
        """A token is bound to its ServiceAccount's UID: one deleted and created again (addon
        disable/enable) voids it, and the controller then only hears 401."""
        self.stop()
        self.kubeconfig = controller_kubeconfig(self.cluster, self.state)
        self.start()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc:
            terminate(self.proc, 20)

    def logged(self, text: str) -> bool:
        """Whether ``text`` is anywhere in this controller's log."""
        return self.log.exists() and text in self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


#: The session's controller, once started (for reports of tests that reach it indirectly).
_SESSION: list[Controller] = []


@pytest.fixture(scope="session")
def controller(cluster: Cluster) -> Iterator[Controller]:
    with running_controller(cluster) as ctl:
        yield ctl


@contextlib.contextmanager
def running_controller(cluster: Cluster, verbose: bool = True) -> Iterator[Controller]:
    """The CRD installed and a controller started against ``cluster``, stopped at the end.

    A session fixture is cached by its name for the whole session, whichever cluster it was
    first made with: a tier with a world of its own (the chaos tier) defines its own
    ``controller`` fixture with this, so it never lends its controller to another tier.
    """
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    # `kubectl wait` fails outright (not waits) while the new CRD has no conditions yet.
    cluster.wait_established(f"crd/progressiverollouts.{API_GROUP}")
    # Not under pytest's tmp dirs: those are pruned by other sessions while this one runs.
    state = Path(tempfile.mkdtemp(prefix="vela-progressive-controller-"))
    ctl = Controller(cluster, state, controller_kubeconfig(cluster, state), verbose=verbose)
    ctl.start()
    _SESSION.append(ctl)
    try:
        yield ctl
    finally:
        ctl.stop()
        _SESSION.remove(ctl)
        if os.environ.get("VP_SHOW_CONTROLLER_LOG"):
            print(ctl.tail(200))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the controller log's tail to the report."""
    outcome = yield
    report = outcome.get_result()
    uses = "controller" in getattr(item, "fixturenames", ())
    if report.failed and uses and _SESSION:
        report.sections.append(("controller log (tail)", _SESSION[-1].tail(80)))


@pytest.fixture(autouse=True)
def controller_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that needs the controller starts with it serving and must leave it serving: a
    controller that exited or lost its webhooks fails the test where it was found (saying why)
    and is restarted, so the tests after it are not failed by it too."""
    if "controller" not in request.fixturenames:
        yield
        return
    ctl: Controller = request.getfixturevalue("controller")
    found = ctl.ensure_serving()
    if found:
        pytest.fail(f"before this test: {found}", pytrace=False)
    yield
    found = ctl.ensure_serving()
    if found:
        pytest.fail(f"after this test: {found}", pytrace=False)


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    client = await Kube.connect(str(cluster.kubeconfig))
    try:
        yield client
    finally:
        await client.close()
