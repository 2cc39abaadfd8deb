"""The serving certificate and stamp key every controller pod shares through one Secret
(shell.state), against an in-memory API (a unit test: the in-cluster e2e test runs it for real)."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.state import install_ca_bundle, shared_state

Obj = dict[str, Any]
HOSTS = ["vela-progressive.vela-system.svc"]


class MemoryApi:
    """get/create/replace with resourceVersions, as the API server answers them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.version = 0
        self.writes = 0
        #: Before the next create: another pod creates the Secret first.
        self.race: Obj | None = None

    def _store(self, obj: Obj) -> Obj:
        self.version += 1
        self.writes += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(obj["kind"], obj["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    async def get(self, api: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    async def create(self, obj: Obj) -> Obj:
        if self.race is not None:
            self._store(self.race)
            self.race = None
        if (obj["kind"], obj["metadata"]["name"]) in self.objects:
            raise KubeError(409, "AlreadyExists", "exists")
        return self._store(obj)

    async def replace(self, obj: Obj) -> Obj:
        current = self.objects[(obj["kind"], obj["metadata"]["name"])]
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified")
        return self._store(obj)


def _share(api: MemoryApi, directory: Path, hosts: list[str] = HOSTS) -> tuple[bytes, bytes]:
    cert, key = asyncio.run(shared_state(api, "vela-system", "state", directory, hosts))  # type: ignore[arg-type]
    return cert.cafile.read_bytes() + cert.certfile.read_bytes(), key


def test_the_first_pod_makes_the_secret_and_the_next_pods_adopt_it(tmp_path: Path) -> None:
    api = MemoryApi()
    first = _share(api, tmp_path / "a")
    assert ("Secret", "state") in api.objects
    writes = api.writes
    assert _share(api, tmp_path / "b") == first
    assert _share(api, tmp_path / "c") == first
    assert api.writes == writes  # adopting writes nothing


def test_a_restarted_pod_keeps_its_stamp_key_and_certificate(tmp_path: Path) -> None:
    api = MemoryApi()
    first = _share(api, tmp_path / "pod")
    assert _share(api, tmp_path / "new-pod-same-secret") == first


def test_a_pod_that_loses_the_creation_race_adopts_the_winners_state(tmp_path: Path) -> None:
    winner_api = MemoryApi()
    winner = _share(winner_api, tmp_path / "winner")
    secret = copy.deepcopy(winner_api.objects[("Secret", "state")])
    del secret["metadata"]["resourceVersion"]
    api = MemoryApi()
    api.race = secret  # the winner creates it just before the loser tries to
    assert _share(api, tmp_path / "loser") == winner
    assert api.objects[("Secret", "state")]["data"] == secret["data"]  # not overwritten


def test_other_hosts_get_a_new_certificate_written_back_for_every_pod(tmp_path: Path) -> None:
    api = MemoryApi()
    before = _share(api, tmp_path / "a")
    hosts = [*HOSTS, "127.0.0.1"]
    after = _share(api, tmp_path / "b", hosts)
    assert after[0] != before[0]
    assert after[1] == before[1]  # the stamp key stays
    assert _share(api, tmp_path / "c", hosts) == after


def test_the_ca_bundle_is_written_once_and_a_conflict_is_retried() -> None:
    api = MemoryApi()
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "hold"},
        "webhooks": [{"name": "a", "clientConfig": {}}, {"name": "b", "clientConfig": {}}],
    }
    stale = api._store(config)
    api._store(config)  # changed by someone since it was read
    asyncio.run(install_ca_bundle(api, "hold", stale, b"CA"))  # type: ignore[arg-type]
    hooks = api.objects[("MutatingWebhookConfiguration", "hold")]["webhooks"]
    assert {h["clientConfig"]["caBundle"] for h in hooks} == {"Q0E="}
    writes = api.writes
    current = copy.deepcopy(api.objects[("MutatingWebhookConfiguration", "hold")])
    asyncio.run(install_ca_bundle(api, "hold", current, b"CA"))  # type: ignore[arg-type]
    assert api.writes == writes


def test_a_forbidden_secret_is_an_error_not_a_loop(tmp_path: Path) -> None:
    class Forbidden(MemoryApi):
        async def create(self, obj: Obj) -> Obj:
            raise KubeError(403, "Forbidden", "secrets is forbidden")

    with pytest.raises(KubeError, match="forbidden"):
        _share(Forbidden(), tmp_path)
