"""Pytest plugin: the real test cluster built by hack/cluster/world.py.

Fixtures:

- ``cluster`` (session): uses the cluster ``$KUBECONFIG`` points at if it is reachable and has
  KubeVela's CRDs (e.g. after ``eval "$(make -s cluster-up)"``); otherwise starts its own with
  ``world.py up --name pytest-<pid>`` and stops it with ``world.py down`` at the end. If no cluster
  can be had, every test using it FAILS with the reason (never skips).
- ``namespace`` (function): a fresh namespace with its ``default`` ServiceAccount, deleted after.

Tests that use ``cluster`` get the ``cluster`` marker automatically (``-m "not cluster"`` skips
the tier on purpose).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from vela_progressive.shell.kube import Kube

REPO = Path(__file__).resolve().parents[2]
WORLD = REPO / "hack" / "cluster" / "world.py"
BUILD_SH = REPO / "hack" / "cluster" / "build.sh"

T = TypeVar("T")


class CommandFailed(AssertionError):
    """A command run by a test failed; the message carries its output."""


@dataclass(frozen=True)
class Cluster:
    """A reachable cluster and the tools (from the build cache) to drive it."""

    kubeconfig: Path
    bindir: Path
    env: dict[str, str]
    name: str | None  # world.py cluster name, None for a foreign cluster
    #: The test world's Prometheus (state.json's ``prometheus_url``, else ``$VP_PROMETHEUS_URL``);
    #: None when the cluster has none (started before it had one, or a foreign cluster).
    prometheus_url: str | None = None

    def run(
        self,
        argv: list[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise CommandFailed(
                f"command failed (exit {done.returncode}): {' '.join(argv)}\n"
                f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
            )
        return done

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        return self.run(argv, check=check, input=input, timeout=timeout)

    def vela(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            [str(self.bindir / "vela"), *args], check=check, input=input, timeout=timeout
        )

    def apply_yaml(
        self, text: str, *, namespace: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` (server-side, so big objects and CRs work alike)."""
        args = ["apply", "--server-side", "--field-manager=pytest", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        return self.kubectl(*args, input=text, check=check)

    def get(self, *args: str) -> Any:
        """``kubectl get ARGS -o yaml``, parsed."""
        return yaml.safe_load(self.kubectl("get", *args, "-o", "yaml").stdout)

    def create_namespace(self, name: str) -> None:
        """Create ``name`` and wait for its default ServiceAccount (a Pod needs it)."""
        self.kubectl("create", "namespace", name)
        self.wait_for(
            lambda: self.kubectl(
                "get", "serviceaccount", "default", "-n", name, check=False
            ).returncode
            == 0,
            60,
            f"ServiceAccount default in namespace {name}",
        )

    def wait_established(self, crd: str) -> None:
        """Until the CRD is Established: ``kubectl wait`` fails outright (it does not wait)
        while a CRD just (re)created has no conditions yet, so it is retried."""
        self.wait_for(
            lambda: self.kubectl("wait", "--for=condition=Established", "--timeout=60s", crd),
            90,
            f"{crd} to be Established",
        )

    def wait_for(
        self, predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5
    ) -> T:
        """Call ``predicate`` until it returns something truthy and return that value.

        Exceptions count as "not yet"; on timeout the test fails with the last value and error.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        error: BaseException | None = None
        while True:
            try:
                last = predicate()
                error = None
                if last:
                    return last
            except Exception as exc:  # the predicate's own failure is the thing we wait out
                error = exc
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"last result: {last!r}; last error: {error}",
                    pytrace=False,
                )
            time.sleep(interval)


def _run_streaming(argv: list[str], config: pytest.Config) -> tuple[int, str, str]:
    """Run argv, echoing its stderr (progress) live even under pytest's output capture."""
    capture = config.pluginmanager.getplugin("capturemanager")
    tail: list[str] = []
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        assert proc.stdout is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail = [*tail[-40:], line.rstrip("\n")]
        out = proc.stdout.read()
        proc.wait()
    return proc.returncode, out, "\n".join(tail)


def _bindir(config: pytest.Config) -> Path:
    code, out, err = _run_streaming(["bash", str(BUILD_SH), "--bindir"], config)
    if code != 0 or not out.strip():
        pytest.fail(f"building the test-world binaries failed:\n{err}", pytrace=False)
    return Path(out.strip().splitlines()[-1])


def _env(kubeconfig: Path, bindir: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kubeconfig)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["KUBECACHEDIR"] = str(cache)  # discovery cache per session: no stale kinds
    return env


def _usable(kubeconfig: str, bindir: Path) -> bool:
    """Reachable and has KubeVela's CRDs."""
    if not Path(kubeconfig).is_file():
        return False
    done = subprocess.run(
        [
            str(bindir / "kubectl"),
            f"--kubeconfig={kubeconfig}",
            "--request-timeout=5s",
            "get",
            "crd",
            "applications.core.oam.dev",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return done.returncode == 0


def _prometheus_url(kubeconfig: Path) -> str | None:
    state = kubeconfig.resolve().parent / "state.json"
    with contextlib.suppress(OSError, ValueError):
        url = json.loads(state.read_text()).get("prometheus_url")
        if url:
            return str(url)
    return os.environ.get("VP_PROMETHEUS_URL") or None


def _world_name(kubeconfig: Path) -> str | None:
    state = kubeconfig.resolve().parent
    if state.parent == (REPO / ".cluster").resolve() and (state / "state.json").exists():
        return state.name
    return None


@pytest.fixture(scope="session")
def cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The session's real cluster (see the module docstring)."""
    bindir = _bindir(pytestconfig)
    cache = tmp_path_factory.mktemp("kubectl-cache")
    existing = os.environ.get("KUBECONFIG", "")
    if existing and ":" not in existing and _usable(existing, bindir):
        kubeconfig = Path(existing)
        yield Cluster(
            kubeconfig,
            bindir,
            _env(kubeconfig, bindir, cache),
            _world_name(kubeconfig),
            _prometheus_url(kubeconfig),
        )
        return

    with own_world(f"pytest-{os.getpid()}", pytestconfig, cache) as started:
        yield started


@contextlib.contextmanager
def own_world(
    name: str, pytestconfig: pytest.Config, cache: Path, *up_args: str
) -> Iterator[Cluster]:
    """A world.py cluster of this session's own, ``name``, removed afterwards (``up_args``:
    more arguments of ``world.py up``, e.g. ``--audit``)."""
    bindir = _bindir(pytestconfig)
    code, out, err = _run_streaming(
        [sys.executable, str(WORLD), "up", "--name", name, *up_args], pytestconfig
    )
    lines = out.strip().splitlines()
    if code != 0 or not lines or not lines[-1].startswith("export KUBECONFIG="):
        _run_streaming([sys.executable, str(WORLD), "down", "--name", name], pytestconfig)
        pytest.fail(f"the test cluster did not start (world.py up exit {code}):\n{err}", False)
    kubeconfig = Path(lines[-1].removeprefix("export KUBECONFIG="))
    try:
        yield Cluster(
            kubeconfig, bindir, _env(kubeconfig, bindir, cache), name, _prometheus_url(kubeconfig)
        )
    finally:
        code, _, err = _run_streaming(
            [sys.executable, str(WORLD), "down", "--name", name], pytestconfig
        )
        if code != 0:
            raise RuntimeError(f"world.py down --name {name} left something behind:\n{err}")


def _namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted after the test."""
    name = _namespace_name(request.node.name)
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    """The controller's own API client, as the admin of the test world."""
    client = await Kube.connect(str(cluster.kubeconfig))
    yield client
    await client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # The chaos tier runs on a world of its own and is a tier of its own (make test-chaos):
        # never part of the cluster tier's session, whose fixtures it must not share.
        if "cluster" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("chaos"):
            item.add_marker(pytest.mark.cluster)
