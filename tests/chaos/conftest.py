"""The chaos tier's own world: it kills kube-apiserver, etcd and vela-core, so it never runs
on a cluster another tier (or a user) uses. ``cluster`` here always starts a fresh world.py
cluster named ``chaos-<pid>`` and removes it afterwards, whatever ``$KUBECONFIG`` says."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.chaos.observe import Observer
from tests.e2e.addon import Addon, built_and_enabled
from tests.support.cluster import Cluster, own_world
from tests.support.controller import Controller, running_controller

# Its DEBUG lines (every response body) would bury the report in a failure's captured log.
logging.getLogger("kubernetes_asyncio").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    with own_world(f"chaos-{os.getpid()}", pytestconfig, cache) as started:
        yield started


@pytest.fixture(scope="session")
def controller(cluster: Cluster) -> Iterator[Controller]:
    """The chaos world's own controller (never the cluster tier's session controller)."""
    with running_controller(cluster) as ctl:
        yield ctl


@pytest.fixture(scope="session")
def addon(cluster: Cluster, controller: Controller) -> Addon:
    return built_and_enabled(cluster)


@pytest.fixture
async def observer(cluster: Cluster) -> AsyncIterator[Observer]:
    seen = await Observer.connect(cluster.kubeconfig)
    try:
        yield seen
    finally:
        await seen.close()
