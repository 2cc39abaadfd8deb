"""E2E tier: the addon enabled with the real ``vela`` CLI, the examples released step by step.

Fixtures:

- ``addon`` (session): builds the addon (``hack/build_addon.py``) and enables it with
  ``vela addon enable ./dist/addon/vela-progressive inCluster=false``; the controller is the
  session's local process (``controller`` fixture), which registers its own hold webhook.
- ``release_of`` (function): ``release_of("01-canary-nginx")`` gives a :class:`Release` of
  that example in the test's own namespace.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.e2e.addon import Addon
from tests.e2e.kit import Example, Release
from tests.support.cluster import REPO, Cluster
from tests.support.controller import Controller
from vela_progressive.shell.kube import Kube


@pytest.fixture(scope="session")
def addon(cluster: Cluster, controller: Controller) -> Addon:
    built = subprocess.run(
        [sys.executable, str(REPO / "hack" / "build_addon.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"make addon failed:\n{built.stdout}{built.stderr}", pytrace=False)
    installed = Addon(cluster)
    installed.enable()
    return installed


@pytest.fixture
def release_of(
    cluster: Cluster, kube: Kube, namespace: str, addon: Addon
) -> Callable[[str], Release]:
    addon.ensure_enabled()

    def make(name: str) -> Release:
        return Release(cluster, kube, namespace, Example.named(name))

    return make
