"""The values traffic providers work on: object references, context, route state, changes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vela_progressive.core.model import ANNOTATION_PREFIX, Match

Obj = dict[str, Any]

#: Where a patched pre-existing object keeps its pre-release state (JSON, see :func:`saved`).
ORIGINAL_ANNOTATION = f"{ANNOTATION_PREFIX}/original-spec"
#: Label on every object this project creates; objects without it are never changed or deleted.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "vela-progressive"
#: Label naming the workload an object we created belongs to.
WORKLOAD_LABEL = f"{ANNOTATION_PREFIX}/workload"


class TrafficConfigError(ValueError):
    """The routing objects, or the step, cannot be served (message names the object and the fix)."""


@dataclass(frozen=True, order=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class TrafficContext:
    """What a provider needs to know about the release besides the routing entry.

    ``stable_selector``/``canary_selector`` are the labels that tell the stable revision's pods
    from the new revision's, e.g. ``{"pod-template-hash": "5d4f..."}`` (Deployment) or
    ``{"controller-revision-hash": "web-7c9..."}`` (StatefulSet). They are added to the stable
    Service's selector to pin it, to the canary Service's selector, and are the labels of the
    Istio subsets.
    """

    namespace: str
    workload: str
    stable_selector: Mapping[str, str]
    canary_selector: Mapping[str, str]
    disable_canary_service: bool = False
    #: Owner references set on every object the release creates (the ProgressiveRollout), so
    #: ``vela status --tree`` shows them under the rollout and the garbage collector removes
    #: them if the rollout is ever deleted without the controller.
    owner_references: tuple[Mapping[str, Any], ...] = ()

    def check_split(self) -> None:
        """Raise unless the selectors tell the two revisions apart (needed to route by them)."""
        if not self.stable_selector or not self.canary_selector:
            raise TrafficConfigError(
                "the stable and canary revisions are not known yet (empty selector)"
            )
        if dict(self.stable_selector) == dict(self.canary_selector):
            raise TrafficConfigError(
                f"the stable and canary selectors are the same ({dict(self.stable_selector)}); "
                "traffic cannot be split between identical pods"
            )

    def canary_service(self, service: str) -> str:
        return f"{service}-canary"

    def owned_labels(self) -> dict[str, str]:
        """Labels of every object the release creates."""
        return {MANAGED_BY_LABEL: MANAGED_BY, WORKLOAD_LABEL: self.workload}


@dataclass(frozen=True)
class RouteState:
    """Where traffic goes at a step: ``weight`` percent plus requests matching ``matches``.

    A request matching any match goes to the new version; the rest is split by ``weight``.
    ``RouteState()`` (weight 0, no matches) sends everything to the stable version.
    """

    weight: int = 0
    matches: tuple[Match, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise TrafficConfigError(f"weight must be within 0..100, got {self.weight}")

    @property
    def all_stable(self) -> bool:
        return self.weight == 0 and not self.matches


@dataclass(frozen=True)
class Changes:
    """What a provider wants the cluster to look like.

    ``owned``: objects this project creates and owns (full desired objects; created when absent).
    ``patched``: pre-existing objects in their full desired state, carrying the saved original in
    :data:`ORIGINAL_ANNOTATION` (or without it when they are being restored).
    ``delete``: objects to remove (always objects we own).
    """

    owned: tuple[Obj, ...] = ()
    patched: tuple[Obj, ...] = ()
    delete: tuple[ObjectRef, ...] = ()

    @property
    def apply(self) -> tuple[Obj, ...]:
        return self.owned + self.patched

    def __add__(self, other: Changes) -> Changes:
        return Changes(
            self.owned + other.owned, self.patched + other.patched, self.delete + other.delete
        )

    def objects(self) -> list[Obj]:
        """Every object to apply, sorted by reference (for previews and golden files)."""
        return sorted(self.apply, key=ObjectRef.of)


@dataclass(frozen=True)
class Saved:
    """The pre-release state of a patched object: its ``spec`` and the annotations we touch."""

    spec: Any
    annotations: Mapping[str, str | None] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps(
            {"spec": self.spec, "annotations": dict(self.annotations)},
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str, where: ObjectRef) -> Saved:
        try:
            raw = json.loads(text)
            return cls(spec=raw["spec"], annotations=raw.get("annotations") or {})
        except (ValueError, KeyError, TypeError) as exc:
            raise TrafficConfigError(
                f"{where}: annotation {ORIGINAL_ANNOTATION} is not valid saved state ({exc}); "
                "remove the annotation only if the object's spec is the pre-release one"
            ) from exc
