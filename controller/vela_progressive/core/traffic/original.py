"""Save and restore the pre-release state of objects we patch but do not own.

The first change to a pre-existing object (stable Service, HTTPRoute, VirtualService, ...) stores
its ``spec`` and the annotations we touch, as JSON, in :data:`ORIGINAL_ANNOTATION` on the object
itself. Every later step starts again from that saved state, so steps never compound, and
restoring writes it back byte for byte and removes the annotation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vela_progressive.core.traffic.objects import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ORIGINAL_ANNOTATION,
    Obj,
    ObjectRef,
    Saved,
    TrafficConfigError,
)

#: The parts of an object we read and write; everything else belongs to the server.
_KEPT_METADATA = ("name", "namespace", "labels", "annotations")


def clean(obj: Mapping[str, Any]) -> Obj:
    """``apiVersion``, ``kind``, name/namespace/labels/annotations and ``spec`` (deep copy)."""
    meta = obj.get("metadata") or {}
    out: Obj = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {k: copy.deepcopy(meta[k]) for k in _KEPT_METADATA if meta.get(k)},
    }
    if "spec" in obj:
        out["spec"] = copy.deepcopy(obj["spec"])
    return out


def original_of(current: Mapping[str, Any]) -> Obj:
    """The object as it was before the release (``current`` itself when never patched)."""
    obj = clean(current)
    annotations: dict[str, str] = obj["metadata"].get("annotations", {})
    text = annotations.pop(ORIGINAL_ANNOTATION, None)
    if text is not None:
        saved = Saved.decode(text, ObjectRef.of(obj))
        obj["spec"] = copy.deepcopy(saved.spec)
        for key, value in saved.annotations.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
    if not annotations:
        obj["metadata"].pop("annotations", None)
    return obj


def patched(
    current: Mapping[str, Any],
    change: Callable[[Obj], None],
    touched_annotations: Iterable[str] = (),
) -> Obj:
    """``current``'s original with ``change`` applied in place and the original saved on it.

    When ``change`` leaves the original as it was, the result is the original itself (no
    annotation): a step that routes nothing differently is the same as a restore.
    """
    base = original_of(current)
    new = copy.deepcopy(base)
    change(new)
    if new == base:
        return base
    touched = sorted(set(touched_annotations))
    base_annotations = base["metadata"].get("annotations", {})
    saved = Saved(
        spec=base.get("spec"),
        annotations={k: base_annotations.get(k) for k in touched},
    )
    new["metadata"].setdefault("annotations", {})[ORIGINAL_ANNOTATION] = saved.encode()
    return new


def is_patched(current: Mapping[str, Any]) -> bool:
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    return ORIGINAL_ANNOTATION in annotations


def is_owned(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def require(originals: Mapping[ObjectRef, Obj | None], ref: ObjectRef, field: str) -> Obj:
    """The pre-existing object ``ref``, or an error naming the routing field to fix."""
    obj = originals.get(ref)
    if obj is None:
        raise TrafficConfigError(
            f"{ref} not found; create it first or set {field} to an existing {ref.kind}"
        )
    return obj


def existing_owned(originals: Mapping[ObjectRef, Obj | None], ref: ObjectRef) -> Obj | None:
    """Our object ``ref`` if it exists; an error if someone else's object has that name."""
    obj = originals.get(ref)
    if obj is not None and not is_owned(obj):
        raise TrafficConfigError(
            f"{ref} exists and was not created by vela-progressive (label "
            f"{MANAGED_BY_LABEL}={MANAGED_BY} missing); rename or delete it, the release "
            "needs that name"
        )
    return obj
