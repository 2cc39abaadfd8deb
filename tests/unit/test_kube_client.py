"""The API client's errors: an API server that does not answer is an API error the release
loop retries (status 0), never an exception that stops the loop."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client
from tests.support.controller import free_port

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
