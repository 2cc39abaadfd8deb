"""``vela addon enable ./dist/addon/vela-progressive inCluster=false`` with a local controller."""

from __future__ import annotations

import json

import pytest

from tests.e2e.addon import TRAIT, Addon
from tests.support.cluster import Cluster
from tests.support.controller import WEBHOOK_CONFIG, Controller
from vela_progressive.core import identity
from vela_progressive.core.workloads import registry

pytestmark = [pytest.mark.e2e]


def test_a_local_controller_gets_the_trait_and_exactly_one_webhook_configuration(
    cluster: Cluster, addon: Addon, controller: Controller
) -> None:
    assert addon.enabled()
    # The installed definition documents itself (its parameter schema reached the cluster).
    described = cluster.vela("show", TRAIT).stdout
    assert "## canary" in described, described
    assert "progressDeadlineSeconds" in described, described
    configs = json.loads(
        cluster.kubectl("get", "mutatingwebhookconfigurations", "-o", "json").stdout
    )["items"]
    holding = {
        c["metadata"]["name"]: [w["clientConfig"].get("url") for w in c.get("webhooks", [])]
        for c in configs
        if any("vela-progressive" in w["name"] for w in c.get("webhooks", []))
    }
    # inCluster=false: the addon adds no configuration of its own (it would point at a
    # controller Service that does not exist); the local controller registered its own.
    assert list(holding) == [WEBHOOK_CONFIG], holding
    urls = holding[WEBHOOK_CONFIG]
    assert urls, holding
    base = f"https://127.0.0.1:{controller.port}/"
    paths = sorted(url.removeprefix(base) for url in urls if url.startswith(base))
    assert len(paths) == len(urls), urls
    # A hold webhook per registered kind, and the operation-stamp webhook on the rollouts.
    assert paths == sorted([k.handler_id for k in registry.REGISTRY] + [identity.WEBHOOK_ID])
    deployments = cluster.kubectl(
        "get", "deployments", "-n", "vela-system", "-o", "name", check=False
    ).stdout
    assert "vela-progressive-controller" not in deployments, "inCluster=false deployed one"
