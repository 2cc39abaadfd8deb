"""The only way this project talks to the API server: plain dicts in, plain dicts out.

A thin async wrapper over ``kubernetes_asyncio``'s ApiClient (same aiohttp stack as Kopf): it
maps (apiVersion, kind) to REST paths, speaks merge/strategic/JSON patch, and counts requests so
benchmarks can report API calls per release.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from vela_progressive.core.model import API_GROUP, API_VERSION, KIND, PLURAL
from vela_progressive.core.traffic.patch import failed_tests
from vela_progressive.core.watched import parse_selector
from vela_progressive.core.workloads import registry

Obj = dict[str, Any]
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)

#: (apiVersion, kind) -> (plural, namespaced). Kinds outside this table are resolved by discovery.
#: The workload kinds come from the registry (``core.workloads.registry``).
KNOWN_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Pod"): ("pods", True),
    ("v1", "Service"): ("services", True),
    ("v1", "Event"): ("events", True),
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    **{(v, k.kind): (k.plural, True) for k in registry.REGISTRY for v in k.api_versions},
    ("apps/v1", "ReplicaSet"): ("replicasets", True),
    ("apps/v1", "ControllerRevision"): ("controllerrevisions", True),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("endpointslices", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("httproutes", True),
    ("networking.istio.io/v1", "VirtualService"): ("virtualservices", True),
    ("networking.istio.io/v1", "DestinationRule"): ("destinationrules", True),
    ("networking.istio.io/v1beta1", "VirtualService"): ("virtualservices", True),
    ("networking.istio.io/v1beta1", "DestinationRule"): ("destinationrules", True),
    ("core.oam.dev/v1beta1", "Application"): ("applications", True),
    ("core.oam.dev/v1beta1", "ApplicationRevision"): ("applicationrevisions", True),
    (f"{API_GROUP}/{API_VERSION}", KIND): (PLURAL, True),
}

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

FIELD_MANAGER = "vela-progressive"


class Copy(Protocol):
    """A watch-backed copy of one kind (``shell.cache.WatchCache``)."""

    def ready(self) -> bool: ...

    def get(self, namespace: str, name: str) -> Obj | None: ...

    def peek(self, namespace: str, name: str) -> Obj | None: ...

    def list(
        self, namespace: str, labels: dict[str, str], *, shared: bool = False
    ) -> list[Obj]: ...

    def wrote(self, obj: Obj) -> None: ...

    def deleted(self, namespace: str, name: str, uid: str | None) -> None: ...


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 for transport errors)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass
class Kube:
    api: client.ApiClient
    requests: Counter[str] = field(default_factory=Counter)
    #: (apiVersion, kind) -> its watch-backed copy: reads of the kind are served from memory
    #: while the copy is current (``shell.cache``), and the answers of writes go into it.
    copies: dict[tuple[str, str], Copy] = field(default_factory=dict)
    #: Reads served from the copies, by kind (for benchmarks).
    from_memory: Counter[str] = field(default_factory=Counter)

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        """Connect with ``$KUBECONFIG`` (or ``kubeconfig``), else the in-cluster ServiceAccount."""
        cfg = client.Configuration()
        try:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        except config.ConfigException:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        api = client.ApiClient(configuration=cfg)
        if not any(os.environ.get(v) for v in PROXY_VARIABLES):
            # kubernetes_asyncio's session trusts the environment, so aiohttp looks for proxy
            # variables and reads ~/.netrc on every request: 11% of the controller's CPU with
            # 1,000 releases in flight (docs/benchmarks.md). Without a proxy variable there is
            # nothing to find (a kubeconfig's proxy-url is passed explicitly).
            api.rest_client.pool_manager._trust_env = False
        return cls(api)

    async def close(self) -> None:
        await self.api.close()

    # ------------------------------------------------------------------ paths
    async def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        known = KNOWN_KINDS.get((api_version, kind))
        if known:
            return known
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        listing = await self._call("GET", base)
        for res in listing.get("resources", []):
            if res.get("kind") == kind and "/" not in res["name"]:
                found = (res["name"], bool(res.get("namespaced")))
                KNOWN_KINDS[(api_version, kind)] = found
                return found
        raise KubeError(404, "NotFound", f"the server has no {kind} in {api_version}")

    async def path(
        self, api_version: str, kind: str, namespace: str | None, name: str | None = None
    ) -> str:
        plural, namespaced = await self._resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{plural}"
        return f"{base}/{name}" if name else base

    # ------------------------------------------------------------------ transport
    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        self.requests[method] += 1
        try:
            result = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as exc:
            reason, message = exc.reason or "", str(exc.body or "")
            try:
                status_body = json.loads(exc.body) if exc.body else {}
                message = status_body.get("message", message)
                reason = status_body.get("reason", reason)
            except (TypeError, ValueError):
                pass
            raise KubeError(int(exc.status or 0), reason, message) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The API server is restarting, or its etcd is: an API error like any other (the
            # caller retries), not a crash of the release loop.
            raise KubeError(0, "Unreachable", f"{method} {path}: {exc!r}") from exc
        return result if isinstance(result, dict) else {}

    # ------------------------------------------------------------------ watch-backed copies
    def _copy(self, api_version: str, kind: str) -> Copy | None:
        copy = self.copies.get((api_version, kind))
        return copy if copy is not None and copy.ready() else None

    def watched(self, api_version: str, kind: str) -> bool:
        """Whether reads of the kind are served now from a current watch-backed copy (whose
        changes wake the rollouts they concern)."""
        return self._copy(api_version, kind) is not None

    def _wrote(self, api_version: str, kind: str, answer: Obj) -> Obj:
        copy = self.copies.get((api_version, kind))
        if copy is not None:
            copy.wrote(answer)
        return answer

    async def list_raw(self, path: str, query: list[tuple[str, str]] | None = None) -> Obj:
        """The answer of a LIST, as the server sent it (with its ``resourceVersion`` and, for a
        page, its ``continue`` token)."""
        return await self._call("GET", path, query=query)

    async def open_watch(
        self, path: str, query: list[tuple[str, str]], seconds: float
    ) -> aiohttp.ClientResponse:
        """An open watch stream (the caller reads and closes it)."""
        self.requests["WATCH"] += 1
        try:
            response = await self.api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(total=seconds, sock_connect=10),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeError(0, "Unreachable", f"WATCH {path}: {exc!r}") from exc
        if response.status != 200:
            text = await response.text()
            response.release()
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text
            raise KubeError(response.status, response.reason or "", message)
        return response  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ verbs
    async def get(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        shared: bool = False,
    ) -> Obj | None:
        """The object, or ``None`` when it does not exist.

        ``shared``: the caller never changes what it gets (a style's pure compute, checked by
        tests/unit/test_workload_registry.py), so an object of a watch-backed copy is handed
        out as it is kept, not copied: copying every pod and ReplicaSet a pass read was 12% of
        the controller's py-spy samples at 1,000 releases in flight (docs/benchmarks.md)."""
        copy = self._copy(api_version, kind)
        if copy is not None and namespace:
            # A name the current copy does not have did not exist when its watch last spoke.
            # The controller's own creates are in it at once; one made by someone else a moment
            # ago wakes its rollout when its event arrives (a workload's creation does), and a
            # create of a name the copy missed is refused as AlreadyExists and tried again.
            self.from_memory[kind] += 1
            return copy.peek(namespace, name) if shared else copy.get(namespace, name)
        try:
            return await self._call("GET", await self.path(api_version, kind, namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        shared: bool = False,
    ) -> list[Obj]:
        """The objects (``shared``: as :meth:`get`)."""
        copy = self._copy(api_version, kind)
        labels = parse_selector(label_selector) if copy is not None else None
        if copy is not None and namespace and labels is not None and not field_selector:
            self.from_memory[kind] += 1
            return copy.list(namespace, labels, shared=shared)
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        result = await self._call("GET", await self.path(api_version, kind, namespace), query=query)
        items: list[Obj] = result.get("items", [])
        return items

    async def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        path = await self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        return self._wrote(obj["apiVersion"], obj["kind"], await self._call("POST", path, body=obj))

    async def replace(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        path = await self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        return self._wrote(obj["apiVersion"], obj["kind"], await self._call("PUT", path, body=obj))

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Any,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> Obj:
        path = await self.path(api_version, kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        query = [("fieldManager", FIELD_MANAGER)]
        if patch_type == "apply":
            query.append(("force", "true"))
        try:
            answer = await self._call(
                "PATCH", path, body=patch, query=query, content_type=PATCH_TYPES[patch_type]
            )
        except KubeError as exc:
            guarded = patch_type == "json" and any(op.get("op") == "test" for op in patch)
            copy = self.copies.get((api_version, kind))
            refused = (guarded and exc.status == 422) or (exc.conflict and copy is not None)
            if subresource or not refused:
                raise
            # Refused as computed from an older version: whatever the copy holds, the next
            # pass reads what the server has now.
            try:
                now = await self._call("GET", path)
            except KubeError:
                raise exc from None
            if copy is not None:
                copy.wrote(now)
            changed = failed_tests(now, patch) if guarded else []
            if changed:  # a failed test is answered 422 without details: a conflict it is
                raise KubeError(
                    409, "Conflict", f"{kind} {name}: {', '.join(changed)} changed since read"
                ) from exc
            raise
        return answer if subresource else self._wrote(api_version, kind, answer)

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: Obj | None = None,
    ) -> bool:
        """Delete; ``False`` when it was already gone.

        ``preconditions`` (``uid``, ``resourceVersion``): the server refuses (409) to delete an
        object that no longer matches them.
        """
        body = None
        if preconditions:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions}
        copy = self.copies.get((api_version, kind))
        try:
            await self._call(
                "DELETE", await self.path(api_version, kind, namespace, name), body=body
            )
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        if copy is not None and namespace:
            copy.deleted(namespace, name, (preconditions or {}).get("uid"))
        return True
