"""E2E tier: the addon enabled with the real ``vela`` CLI, the examples released step by step.

Fixtures:

- ``addon`` (session): builds the addon (``hack/build_addon.py``) and enables it with
  ``vela addon enable ./dist/addon/vela-progressive inCluster=false``; the controller is the
  session's local process (``controller`` fixture), which registers its own hold webhook.
- ``release_of`` (function): ``release_of("01-canary-nginx")`` gives a :class:`Release` of
  that example in the test's own namespace.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.addon import Addon, built_and_enabled
from tests.e2e.kit import Example, Release
from tests.support.cluster import Cluster
from tests.support.controller import Controller
from vela_progressive.shell.kube import Kube


@pytest.fixture(scope="session")
def addon(cluster: Cluster, controller: Controller) -> Addon:
    return built_and_enabled(cluster)


@pytest.fixture
def release_of(
    cluster: Cluster, kube: Kube, namespace: str, addon: Addon
) -> Callable[[str], Release]:
    addon.ensure_enabled()

    def make(name: str) -> Release:
        return Release(cluster, kube, namespace, Example.named(name))

    return make
