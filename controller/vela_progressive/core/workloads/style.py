"""The shapes of the workload registry: a kind, its release styles, the rules it needs.

A :class:`Style` is the pure *compute* half of a workload adapter for one (kind, release mode):
it declares what to read, turns what was read into a :class:`~.common.WorkloadView`, and returns
the writes that hold the workload, run N pods of the new revision, abort, or hand the workload
back. The shell's one generic adapter (``vela_progressive.shell.workloads``) performs the reads
and applies the writes; the offline preview (``kubectl progressive plan``) applies them to an
:meth:`Style.example` of the workload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads.common import (
    TEMPLATE_CHANGED,
    Obj,
    Observed,
    Read,
    WorkloadView,
    Writes,
    key_of,
)


class Style(Protocol):
    """Pure compute of one release style. Every method is a function of its arguments."""

    #: The release mode this style implements for its kind.
    mode: ReleaseMode
    #: Objects this style creates beside the workload, labelled ``CANARY_OF_LABEL: <workload>``
    #: (watched so a change wakes the rollout): ``(group, version, plural)``.
    companions: tuple[tuple[str, str, str], ...]

    def reads(self, workload: Obj) -> tuple[Read, ...]:
        """What to read besides the workload itself (may depend on its selector)."""
        ...

    def observed(self, workload: Obj, found: Sequence[list[Obj]], owner: Obj | None) -> Observed:
        """The snapshot from the workload and the results of :meth:`reads`, in order."""
        ...

    def view(self, obs: Observed, stable_hint: str | None) -> WorkloadView:
        """The normalised view (``stable_hint``: the stable revision recorded earlier)."""
        ...

    def new_revision_pods(self, obs: Observed, view: WorkloadView) -> list[Obj]:
        """Pods of the update revision (for diagnosis)."""
        ...

    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        """Writes that keep the workload's own controller from rolling (empty: already held)."""
        ...

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        """Writes that run exactly ``new_pods`` pods of the update revision.

        ``surge_ready``: the new pods are Ready, so stable pods may now be taken down.
        """
        ...

    def abort(self, obs: Observed, view: WorkloadView) -> Writes:
        """Writes that put every pod back on the stable revision; the workload stays held."""
        ...

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        """Writes that hand the workload back, and whether its controller has finished."""
        ...

    def canary_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        """Labels selecting only the update revision's pods."""
        ...

    def stable_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        """Labels selecting only the stable revision's pods."""
        ...

    def example(
        self, namespace: str, name: str, replicas: int, template: Obj, new_pods: int, old_pods: int
    ) -> Observed:
        """A held workload mid-release, as the API server would show it: ``new_pods`` Ready pods
        of ``template`` and ``old_pods`` Ready pods of the stable one (offline preview, tests)."""
        ...


@dataclass(frozen=True)
class RbacRule:
    """One ClusterRole rule the controller needs for a kind, with the reason (a CUE comment)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str


#: Hold rule: the patch that holds an UPDATE from ``old`` to ``new``, or ``None``.
HoldRule = Callable[[Obj | None, Obj], Obj | None]


@dataclass(frozen=True)
class WorkloadKind:
    """One registry entry: everything the handlers, the addon and the release need of a kind."""

    api_version: str
    kind: str
    plural: str
    styles: Mapping[ReleaseMode, Style]
    default_style: ReleaseMode
    #: Label the kind's controller puts on pods: their revision (selects canary/stable pods).
    revision_label: str
    #: The webhook's hold decision (pure), see :func:`vela_progressive.core.workloads.hold_patch`.
    hold: HoldRule
    #: When ``hold`` may change an UPDATE, in CEL (``common.TEMPLATE_CHANGED``, ...), any of them:
    #: the API server calls the kind's hold webhook only then (``matchConditions``).
    hold_when: tuple[str, ...] = (TEMPLATE_CHANGED,)
    #: ClusterRole rules the controller needs to release this kind, every style included.
    rbac: tuple[RbacRule, ...] = field(default=())
    #: Other served versions of the same kind (same storage): ``apps.kruise.io/v1alpha1`` of the
    #: Advanced StatefulSet. The controller reads and writes ``api_version``.
    other_versions: tuple[str, ...] = ()
    #: The size of a release is the nodes the workload runs on, not ``spec.replicas``.
    sized_by_nodes: bool = False
    #: Pods are numbered (``<name>-<ordinal>``) and a step moves the highest ordinals.
    ordinal_pods: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def key(self) -> str:
        """The registry key: the kind for the ``apps`` group, else ``<kind>.<group>``
        (``CloneSet.apps.kruise.io``; an Advanced StatefulSet: ``StatefulSet.apps.kruise.io``)."""
        return key_of(self.api_version, self.kind)

    @property
    def api_versions(self) -> tuple[str, ...]:
        return (self.api_version, *self.other_versions)

    @property
    def handler_id(self) -> str:
        """The hold webhook handler's id, also its URL path: ``hold-<plural>`` for the ``apps``
        group, ``hold-<plural>-<group with dashes>`` otherwise."""
        if self.group == "apps":
            return f"hold-{self.plural}"
        return f"hold-{self.plural}-{self.group.replace('.', '-')}"

    @property
    def match_conditions(self) -> list[dict[str, str]]:
        """The hold webhook's ``matchConditions``: one, any of :attr:`hold_when`."""
        expression = " || ".join(f"({c})" for c in self.hold_when)
        return [{"name": "may-hold", "expression": expression}]

    @property
    def webhook_rule(self) -> dict[str, Any]:
        """The admission rule of the hold webhook for this kind (the other served versions are
        matched by the webhook's ``matchPolicy: Equivalent``) and its match conditions."""
        return {
            "id": self.handler_id,
            "group": self.group,
            "version": self.version,
            "resource": self.plural,
            "matchConditions": self.match_conditions,
        }

    def style(self, mode: ReleaseMode) -> Style:
        try:
            return self.styles[mode]
        except KeyError:
            raise ValueError(f"{self.kind} has no {mode.value} release style") from None
