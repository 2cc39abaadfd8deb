"""How the controller configures Kopf's bookkeeping on the rollouts."""

from __future__ import annotations

import json

import kopf

from vela_progressive import handlers
from vela_progressive.core.model import API_GROUP, API_VERSION


def _rollout(spec: dict[str, object]) -> kopf.Body:
    annotations = {f"{API_GROUP}/last-handled-configuration": json.dumps({"spec": {"old": 1}})}
    return kopf.Body(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "ProgressiveRollout",
            "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
            "spec": spec,
        }
    )


def test_a_change_of_a_rollouts_spec_costs_no_patch_of_kopfs_own() -> None:
    storage = handlers.NoDiffBase()
    body = _rollout({"revision": {"name": "app-v2"}})
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch, "Kopf would patch the rollout at every change of its spec"
    # Nothing compares against what an earlier version of the controller left on the rollout.
    assert storage.fetch(body=body) is None
    assert storage.build(body=body) == {}, "no copy of the rollout at every watch event"
