"""The chaos tier's own view of the cluster: raw API reads and writes through
``kubernetes_asyncio`` with the admin kubeconfig.

Nothing here comes from the controller's code (not its client, not its rules): the sampler
judges the controller from what the API server says, the way a user's monitoring would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

Obj = dict[str, Any]

#: A read that takes longer than this is an error (the API server may be down on purpose).
TIMEOUT = 5
#: A write waits longer, as kubectl does: it may pass through an admission webhook of a
#: controller that is stopped, which the API server waits for up to 30 s before failing open.
WRITE_TIMEOUT = 40


#: Answers of a server that is down, restarting, or has lost its etcd for a moment.
UNREACHABLE = (0, 429, 500, 502, 503, 504)


class Unreachable(Exception):
    """The API server did not answer (killed, restarting, or its etcd is)."""


class Observer:
    """GET/LIST/PATCH by URL path; every failure to reach the server is :class:`Unreachable`."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls, kubeconfig: Path) -> Observer:
        configuration = client.Configuration()
        await config.load_kube_config(str(kubeconfig), client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()

    async def _call(
        self, method: str, path: str, body: object = None, query: dict[str, str] | None = None
    ) -> Obj | None:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        try:
            response = await self.api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=TIMEOUT if body is None else WRITE_TIMEOUT,
            )
            data = await response.read()
            response.release()
            # Without preloading, the client returns every answer, errors included: a 503 of a
            # restarting server must not read as a written patch (found by a lost approval).
            if not 200 <= response.status <= 299:
                raise ApiException(status=response.status, reason=data.decode(errors="replace"))
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status in UNREACHABLE:
                raise Unreachable(f"{method} {path}: HTTP {exc.status} {exc.reason}") from exc
            raise
        except (OSError, TimeoutError) as exc:
            raise Unreachable(f"{method} {path}: {exc!r}") from exc
        except Exception as exc:  # aiohttp's own errors when the server is gone mid-request
            if type(exc).__module__.startswith("aiohttp"):
                raise Unreachable(f"{method} {path}: {exc!r}") from exc
            raise
        result: Obj = json.loads(data)
        return result

    async def get(self, path: str) -> Obj | None:
        return await self._call("GET", path)

    async def items(self, path: str, selector: str = "") -> list[Obj]:
        got = await self._call("GET", path, query={"labelSelector": selector} if selector else None)
        if got is None:
            # A list is never "not found": a restarted API server serves a custom resource's
            # path only once it has installed it again.
            raise Unreachable(f"GET {path}: 404 (not served yet)")
        return list(got.get("items") or [])

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        got = await self._call("PATCH", path, body=body)
        if got is None:
            # The runner patches only objects that exist: a 404 is a restarted API server that
            # does not serve the path yet, and the patch was not made (retry it).
            raise Unreachable(f"PATCH {path}: 404 (not served yet)")
        return got


def rollouts_path(namespace: str) -> str:
    return f"/apis/rollout.vela-progressive.io/v1alpha1/namespaces/{namespace}/progressiverollouts"
