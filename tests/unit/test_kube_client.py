"""The API client's errors: an API server that does not answer is an API error the release
loop retries (status 0), never an exception that stops the loop; a patch refused because the
object changed since it was read is a conflict, whichever way the server says so."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from kubernetes_asyncio import client
from tests.support.controller import free_port

from vela_progressive.core.workloads.common import patch_of
from vela_progressive.shell.kube import Kube, KubeError


async def test_an_api_server_that_is_down_is_an_api_error_with_status_zero() -> None:
    cfg = client.Configuration(host=f"http://127.0.0.1:{free_port()}")
    kube = Kube(client.ApiClient(configuration=cfg))
    try:
        with pytest.raises(KubeError) as err:
            await kube.get("v1", "Namespace", "default")
    finally:
        await kube.close()
    assert err.value.status == 0
    assert err.value.reason == "Unreachable"


class Server(Kube):
    """The API client in front of one stored ReplicaSet, as the real server answers a JSON
    patch whose test fails (422 Invalid, no details) or whose change is invalid (422 too)."""

    def __init__(self, stored: dict[str, Any], invalid: bool = False) -> None:
        super().__init__(api=None)  # type: ignore[arg-type]
        self.stored, self.invalid = stored, invalid
        self.copies[("apps/v1", "ReplicaSet")] = self.copy = Copied()

    async def path(
        self, api_version: str, kind: str, namespace: str | None, name: Any = None
    ) -> str:
        return f"/apis/{api_version}/namespaces/{namespace}/replicasets/{name}"

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.requests[method] += 1
        if method == "GET":
            return copy.deepcopy(self.stored)
        try:
            patched = jsonpatch.apply_patch(self.stored, kwargs["body"])
        except jsonpatch.JsonPatchTestFailed:
            raise KubeError(422, "Invalid", "the server rejected our request") from None
        if self.invalid:
            raise KubeError(422, "Invalid", "spec.replicas: must be greater than or equal to 0")
        return dict(patched)


class Copied:
    """A watch-backed copy that only records what it is given."""

    def __init__(self) -> None:
        self.given: list[dict[str, Any]] = []

    def wrote(self, obj: dict[str, Any]) -> None:
        self.given.append(obj)


def _replicaset(generation: int, ready: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "generation": generation},
        "spec": {"replicas": 2},
        "status": {"readyReplicas": ready},
    }


async def test_a_scale_survives_a_status_write_and_conflicts_with_a_spec_change() -> None:
    read = _replicaset(generation=3, ready=1)
    scale = patch_of(read, {"spec": {"replicas": 4}})
    assert scale.ops[:2] == (
        {"op": "test", "path": "/metadata/uid", "value": "u1"},
        {"op": "test", "path": "/metadata/generation", "value": 3},
    )
    assert "metadata" not in (scale.body or {}), "no resourceVersion: status writes do not count"
    # The ReplicaSet controller wrote the status since: the generation stands, the scale is made.
    server = Server(_replicaset(generation=3, ready=2))
    await server.patch("apps/v1", "ReplicaSet", "web-1", "shop", list(scale.ops), patch_type="json")
    # Someone scaled it since: refused as a conflict, and the copy holds what the server has.
    server = Server(_replicaset(generation=4, ready=2))
    with pytest.raises(KubeError) as err:
        await server.patch(
            "apps/v1", "ReplicaSet", "web-1", "shop", list(scale.ops), patch_type="json"
        )
    assert err.value.conflict, err.value
    assert "/metadata/generation" in err.value.message
    assert server.copy.given == [server.stored]


async def test_an_invalid_json_patch_whose_tests_pass_is_no_conflict() -> None:
    scale = patch_of(_replicaset(generation=3, ready=1), {"spec": {"replicas": -1}})
    server = Server(_replicaset(generation=3, ready=1), invalid=True)
    with pytest.raises(KubeError) as err:
        await server.patch(
            "apps/v1", "ReplicaSet", "web-1", "shop", list(scale.ops), patch_type="json"
        )
    assert err.value.status == 422


def test_a_patch_of_more_than_the_spec_keeps_the_resource_version_precondition() -> None:
    read = _replicaset(generation=3, ready=1)
    read["metadata"]["resourceVersion"] = "17"
    write = patch_of(read, {"spec": {"paused": True}, "metadata": {"annotations": {"a": "b"}}})
    assert write.ops == ()
    assert (write.body or {})["metadata"]["resourceVersion"] == "17"
