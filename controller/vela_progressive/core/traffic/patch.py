"""JSON merge patches (RFC 7386) between the object read from the server and the desired one.

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
