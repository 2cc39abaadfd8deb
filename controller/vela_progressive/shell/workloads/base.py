"""What every workload adapter shares: the protocol, errors and pod helpers.

An adapter observes a normalised :class:`~vela_progressive.core.workloads.WorkloadView` and moves
the workload so that exactly N pods run the new template. Every method is idempotent: calling it
again after a crash or a restart changes nothing more.
"""

from __future__ import annotations

from typing import Any, Protocol

from vela_progressive.core.model import ANNOTATION_PREFIX, HOLD_LABEL
from vela_progressive.core.workloads import APP_REVISION_LABEL, WorkloadView

Obj = dict[str, Any]

#: Label on objects this controller creates for a workload (canary Deployment, ...).
CANARY_OF_LABEL = f"{ANNOTATION_PREFIX}/canary-of"


class WorkloadMissing(Exception):
    """The workload the rollout points at does not exist."""


class WorkloadAdapter(Protocol):
    kind: str

    async def observe(self, stable_hint: str | None) -> WorkloadView:
        """Read the workload and its pods. ``stable_hint``: the stable revision recorded earlier."""
        ...

    async def new_revision_pods(self, view: WorkloadView) -> list[Obj]:
        """Pods of the update revision (for diagnosis)."""
        ...

    async def hold(self, view: WorkloadView) -> bool:
        """Make sure the workload cannot roll by itself; ``True`` if it had to act."""
        ...

    async def scale_to(self, view: WorkloadView, new_pods: int, *, surge_ready: bool) -> None:
        """Run exactly ``new_pods`` pods of the update revision.

        ``surge_ready``: the new pods are Ready, so old pods may now be taken down.
        """
        ...

    async def abort(self, view: WorkloadView) -> None:
        """All pods back to the stable revision; the workload stays held."""
        ...

    async def finalize(self, view: WorkloadView) -> bool:
        """Hand control back to the workload's own controller; ``True`` once it has finished."""
        ...

    def canary_selector(self, view: WorkloadView) -> dict[str, str]:
        """Labels selecting only the update revision's pods."""
        ...

    def stable_selector(self, view: WorkloadView) -> dict[str, str]:
        """Labels selecting only the stable revision's pods."""
        ...


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def is_live(pod: Obj) -> bool:
    """Counted as a pod of its revision: not terminating and not finished."""
    return not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get(
        "phase"
    ) not in ("Succeeded", "Failed")


def settled(obj: Obj) -> bool:
    """The workload's controller has observed its latest spec."""
    return int(obj.get("status", {}).get("observedGeneration", 0)) >= int(
        obj["metadata"].get("generation", 0)
    )


def view_of(
    obj: Obj, *, update: str, stable: str | None, new: list[Obj], live_pods: int, held: bool
) -> WorkloadView:
    """The normalised view of a workload object and its pods (``new``: the update revision's)."""
    return WorkloadView(
        kind=obj["kind"],
        name=obj["metadata"]["name"],
        namespace=obj["metadata"]["namespace"],
        replicas=int(obj["spec"].get("replicas", 1)),
        update_revision=update,
        stable_revision=stable,
        new_pods=len(new),
        new_ready=sum(1 for p in new if is_ready(p)),
        old_pods=live_pods - len(new),
        held=held,
        settled=settled(obj),
        app_revision=(obj["metadata"].get("labels") or {}).get(APP_REVISION_LABEL),
        governed=(obj["metadata"].get("labels") or {}).get(HOLD_LABEL) == "true",
    )
