"""JSON merge patches (RFC 7386) between the object read from the server and the desired one,
and the JSON patches (RFC 6902) that do what a merge patch does, guarded by ``test`` operations.

Only the fields we manage are compared: ``metadata.labels``, ``metadata.annotations`` and
``spec``. For objects we own, fields the server filled in (a Service's ``clusterIP``, ...) are
kept: the desired ``spec`` is laid over the current one key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vela_progressive.core.traffic.objects import Obj

_SAME = object()


def diff(current: Any, desired: Any) -> Any:
    """A merge patch turning ``current`` into ``desired``, or the ``_SAME`` marker."""
    if isinstance(current, dict) and isinstance(desired, dict):
        patch: dict[str, Any] = {}
        for key, value in desired.items():
            if key not in current:
                patch[key] = value
                continue
            sub = diff(current[key], value)
            if sub is not _SAME:
                patch[key] = sub
        for key in current:
            if key not in desired:
                patch[key] = None
        return patch or _SAME
    return _SAME if current == desired else desired


def _view(obj: Mapping[str, Any], spec: Any) -> Obj:
    meta = obj.get("metadata") or {}
    view: Obj = {
        "metadata": {
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        }
    }
    if spec is not None:
        view["spec"] = spec
    return view


def update_patch(current: Mapping[str, Any], desired: Mapping[str, Any], *, owned: bool) -> Obj:
    """The merge patch that brings ``current`` to ``desired`` (``{}`` when nothing differs).

    The patch carries ``metadata.resourceVersion`` of ``current`` when non-empty, so the API
    server rejects it (409) if the object changed after it was read.
    """
    spec = desired.get("spec")
    if owned and isinstance(spec, dict) and isinstance(current.get("spec"), dict):
        spec = {**current["spec"], **spec}
    patch = diff(_view(current, current.get("spec")), _view(desired, spec))
    if patch is _SAME:
        return {}
    assert isinstance(patch, dict)
    version = (current.get("metadata") or {}).get("resourceVersion")
    if version:
        patch.setdefault("metadata", {})["resourceVersion"] = version
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 apply (used by tests and by previews to check a patch round-trips)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def json_patch(obj: Any, merge: Obj, path: str = "") -> list[Obj]:
    """The JSON patch (RFC 6902) operations that do to ``obj`` what the merge patch ``merge``
    (RFC 7386) does: ``apply_merge_patch(obj, merge)``, but as operations on the paths the
    merge patch names, without looking at the rest of the object.

    >>> json_patch({"spec": {"paused": False, "replicas": 3}}, {"spec": {"paused": True}})
    [{'op': 'replace', 'path': '/spec/paused', 'value': True}]
    >>> json_patch({"metadata": {}}, {"metadata": {"annotations": {"a/b": "1", "c": None}}})
    [{'op': 'add', 'path': '/metadata/annotations', 'value': {'a/b': '1'}}]
    """
    ops: list[Obj] = []
    here = obj if isinstance(obj, dict) else {}
    for key, value in merge.items():
        where = f"{path}/{key.replace('~', '~0').replace('/', '~1')}"
        present = key in here
        if value is None:
            if present:
                ops.append({"op": "remove", "path": where})
        elif isinstance(value, dict) and present and isinstance(here[key], dict):
            ops += json_patch(here[key], value, where)
        else:
            wanted = apply_merge_patch(None, value)  # a new object loses its nulls
            if not present or here[key] != wanted:
                ops.append({"op": "replace" if present else "add", "path": where, "value": wanted})
    return ops


def pointer(obj: Any, path: str) -> tuple[bool, Any]:
    """The value at the JSON pointer ``path`` (RFC 6901) of ``obj``: (found, value).

    >>> pointer({"metadata": {"annotations": {"a/b": "1"}}}, "/metadata/annotations/a~1b")
    (True, '1')
    >>> pointer({"spec": {}}, "/spec/replicas")
    (False, None)
    """
    here = obj
    for token in path.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(here, dict) or key not in here:
            return False, None
        here = here[key]
    return True, here


def failed_tests(obj: Any, ops: list[Obj] | tuple[Obj, ...]) -> list[str]:
    """The paths of the JSON patch's ``test`` operations that ``obj`` does not pass.

    >>> test = {"op": "test", "path": "/metadata/generation", "value": 2}
    >>> failed_tests({"metadata": {"generation": 3}}, [test])
    ['/metadata/generation']
    """
    return [
        op["path"]
        for op in ops
        if op.get("op") == "test" and pointer(obj, op["path"]) != (True, op.get("value"))
    ]
