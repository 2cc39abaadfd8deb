"""An in-memory API server behind the :class:`~vela_progressive.shell.kube.Kube` interface.

It keeps objects by reference and behaves like the real server where our code relies on it:
``resourceVersion`` preconditions of merge patches (409 Conflict when the object changed since it
was read), JSON patches whose ``test`` operations fail (409, as ``Kube.patch`` reports the
server's 422), the generation moved by
a change of the spec, ``uid`` / ``resourceVersion`` preconditions of deletes, ``AlreadyExists``
on create, equality label selectors, list items without ``apiVersion``/``kind``, empty
label/annotation maps omitted. It runs no controller: a test plays the Deployment or
StatefulSet controller itself (:meth:`FakeKube.put`), and can inject a failure for any (verb,
object) with :attr:`FakeKube.fail_on`.

The same behaviours are checked against the real cluster in ``tests/integration``; this tier runs
in milliseconds.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import jsonpatch

from vela_progressive.core.traffic import ObjectRef
from vela_progressive.core.traffic.patch import apply_merge_patch, failed_tests
from vela_progressive.shell.kube import Kube, KubeError

Obj = dict[str, Any]


class FakeKube(Kube):
    """Stores objects by reference; honours the preconditions the real API server checks."""

    def __init__(self, *objects: Obj) -> None:
        super().__init__(api=None)
        self.store: dict[ObjectRef, Obj] = {}
        self.version = 0
        self._uids = itertools.count(1)
        #: (verb, object) -> the error that call raises (verbs: GET, POST, PATCH, PUT, DELETE).
        self.fail_on: dict[tuple[str, ObjectRef], KubeError] = {}
        #: Every write, in order: (verb, object, body) (body: the patch / object / preconditions).
        self.writes: list[tuple[str, ObjectRef, Any]] = []
        for obj in objects:
            self.put(obj)

    # ------------------------------------------------------------------ test helpers
    def put(self, obj: Obj) -> Obj:
        """Store ``obj`` as the server would (new resourceVersion, a uid if it has none),
        bypassing every check: what a controller or another client did."""
        return self._put(copy.deepcopy(obj))

    def _put(self, obj: Obj) -> Obj:
        for key in ("labels", "annotations"):  # the API server omits empty maps
            if obj["metadata"].get(key) == {}:
                del obj["metadata"][key]
        before = self.store.get(ObjectRef.of(obj))
        meta = obj["metadata"]
        if (  # a change of the spec moves the generation (of an object that has one)
            before is not None
            and "generation" in before["metadata"]
            and meta.get("generation") == before["metadata"]["generation"]
            and obj.get("spec") != before.get("spec")
        ):
            meta["generation"] += 1
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        obj["metadata"].setdefault("uid", f"uid-{next(self._uids)}")
        self.store[ObjectRef.of(obj)] = obj
        return copy.deepcopy(obj)

    def obj(self, api_version: str, kind: str, namespace: str, name: str) -> Obj:
        """The stored object (a copy); ``KeyError`` when there is none."""
        return copy.deepcopy(self.store[ObjectRef(api_version, kind, namespace, name)])

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Stored objects of ``kind`` (copies), by name."""
        return [
            copy.deepcopy(o)
            for ref, o in sorted(self.store.items(), key=lambda kv: kv[0].name)
            if ref.kind == kind and (namespace is None or ref.namespace == namespace)
        ]

    def view(self) -> dict[ObjectRef, Obj]:
        """Every object without its resourceVersion (what a restore must give back)."""
        out = copy.deepcopy(self.store)
        for obj in out.values():
            obj["metadata"].pop("resourceVersion", None)
        return out

    def _check(self, verb: str, ref: ObjectRef) -> None:
        self.requests[verb] += 1
        if (verb, ref) in self.fail_on:
            raise self.fail_on[(verb, ref)]

    # ------------------------------------------------------------------ the Kube interface
    async def get(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        shared: bool = False,
    ) -> Obj | None:
        ref = ObjectRef(api_version, kind, namespace or "", name)
        self._check("GET", ref)
        found = self.store.get(ref)
        return copy.deepcopy(found) if found else None

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
        self.requests["GET"] += 1
        wanted = dict(p.split("=", 1) for p in (label_selector or "").split(",") if p)
        # As the real server: the items of a list carry no apiVersion/kind.
        return [
            {k: copy.deepcopy(v) for k, v in o.items() if k not in ("apiVersion", "kind")}
            for ref, o in self.store.items()
            if (ref.api_version, ref.kind) == (api_version, kind)
            and (namespace is None or ref.namespace == namespace)
            and wanted.items() <= (o["metadata"].get("labels") or {}).items()
        ]

    async def create(self, obj: Obj) -> Obj:
        ref = ObjectRef.of(obj)
        self._check("POST", ref)
        if ref in self.store:
            raise KubeError(409, "AlreadyExists", f"{ref} already exists")
        created = copy.deepcopy(obj)
        created["metadata"].pop("uid", None)
        self.writes.append(("POST", ref, copy.deepcopy(obj)))
        return self._put(created)

    async def replace(self, obj: Obj) -> Obj:
        ref = ObjectRef.of(obj)
        self._check("PUT", ref)
        current = self.store.get(ref)
        if current is None:
            raise KubeError(404, "NotFound", f"{ref} not found")
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", f"{ref} was modified")
        self.writes.append(("PUT", ref, copy.deepcopy(obj)))
        replaced = copy.deepcopy(obj)
        replaced["metadata"]["uid"] = current["metadata"]["uid"]
        return self._put(replaced)

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
        ref = ObjectRef(api_version, kind, namespace or "", name)
        self._check("PATCH", ref)
        assert patch_type in ("merge", "json"), f"the fake speaks no {patch_type} patches"
        current = self.store.get(ref)
        if current is None:
            raise KubeError(404, "NotFound", f"{ref} not found")
        if patch_type == "json":
            changed = failed_tests(current, patch)
            if changed:  # as Kube.patch reports the server's refusal
                raise KubeError(409, "Conflict", f"{ref}: {', '.join(changed)} changed since read")
            patched = jsonpatch.apply_patch(current, patch)
            self.writes.append(("PATCH", ref, copy.deepcopy(patch)))
            return self._put(patched)
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", f"{ref} was modified")
        self.writes.append(("PATCH", ref, copy.deepcopy(patch)))
        return self._put(apply_merge_patch(current, patch))

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: Obj | None = None,
    ) -> bool:
        ref = ObjectRef(api_version, kind, namespace or "", name)
        self._check("DELETE", ref)
        current = self.store.get(ref)
        if current is None:
            return False
        for key, value in (preconditions or {}).items():
            if current["metadata"].get(key) != value:
                raise KubeError(409, "Conflict", f"{ref}: precondition {key}={value} failed")
        self.writes.append(("DELETE", ref, preconditions))
        del self.store[ref]
        return True
