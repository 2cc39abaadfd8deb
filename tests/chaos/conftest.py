"""The chaos tier's own world: it kills kube-apiserver, etcd and vela-core, so it never runs
on a cluster another tier (or a user) uses. ``cluster`` here always starts a fresh world.py
cluster named ``chaos-<pid>`` and removes it afterwards, whatever ``$KUBECONFIG`` says."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.chaos.observe import Observer
from tests.e2e.addon import ADDON_DIR, Addon
from tests.support.cluster import REPO, Cluster, _bindir, _env, _prometheus_url
from tests.support.controller import Controller

WORLD = REPO / "hack" / "cluster" / "world.py"
# Its DEBUG lines (every response body) would bury the report in a failure's captured log.
logging.getLogger("kubernetes_asyncio").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    name = f"chaos-{os.getpid()}"
    up = subprocess.run(
        [sys.executable, str(WORLD), "up", "--name", name],
        check=False,
        capture_output=True,
        text=True,
    )
    lines = up.stdout.strip().splitlines()
    if up.returncode != 0 or not lines or not lines[-1].startswith("export KUBECONFIG="):
        subprocess.run([sys.executable, str(WORLD), "down", "--name", name], check=False)
        pytest.fail(f"the chaos world did not start (exit {up.returncode}):\n{up.stderr}", False)
    kubeconfig = Path(lines[-1].removeprefix("export KUBECONFIG="))
    bindir = _bindir(pytestconfig)
    cache = tmp_path_factory.mktemp("kubectl-cache")
    try:
        yield Cluster(
            kubeconfig, bindir, _env(kubeconfig, bindir, cache), name, _prometheus_url(kubeconfig)
        )
    finally:
        down = subprocess.run(
            [sys.executable, str(WORLD), "down", "--name", name],
            check=False,
            capture_output=True,
            text=True,
        )
        if down.returncode != 0:
            raise RuntimeError(f"world.py down --name {name} left something behind:\n{down.stderr}")


@pytest.fixture(scope="session")
def addon(cluster: Cluster, controller: Controller) -> Addon:
    built = subprocess.run(
        [sys.executable, str(REPO / "hack" / "build_addon.py")],
        check=False,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0 or not ADDON_DIR.exists():
        pytest.fail(f"make addon failed:\n{built.stdout}{built.stderr}", pytrace=False)
    installed = Addon(cluster)
    installed.enable()
    return installed


@pytest.fixture
async def observer(cluster: Cluster) -> AsyncIterator[Observer]:
    seen = await Observer.connect(cluster.kubeconfig)
    try:
        yield seen
    finally:
        await seen.close()
