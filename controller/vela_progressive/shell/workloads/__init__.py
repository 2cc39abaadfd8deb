"""Workload adapters: one module per kind and style, all behind
:class:`~vela_progressive.shell.workloads.base.WorkloadAdapter`.

An adapter observes a normalised :class:`~vela_progressive.core.workloads.WorkloadView` and moves
the workload so that exactly N pods run the new template. Every method is idempotent: calling it
again after a crash or a restart changes nothing more.
"""

from __future__ import annotations

from typing import Any

from vela_progressive.core.model import ReleaseMode
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.workloads import deployment_canary, deployment_partition, statefulset
from vela_progressive.shell.workloads.base import (
    CANARY_OF_LABEL,
    WorkloadAdapter,
    WorkloadMissing,
)

__all__ = ["CANARY_OF_LABEL", "WorkloadAdapter", "WorkloadMissing", "adapter_for"]


def adapter_for(
    kube: Kube,
    kind: str,
    namespace: str,
    name: str,
    mode: ReleaseMode,
    owner: dict[str, Any] | None = None,
) -> WorkloadAdapter:
    """The adapter for a workload kind and release mode (kind support is validated earlier)."""

    if kind == "Deployment" and mode is ReleaseMode.CANARY:
        return deployment_canary.CanaryDeployment(kube, namespace, name, owner)
    if kind == "Deployment":
        return deployment_partition.PartitionDeployment(kube, namespace, name)
    if kind == "StatefulSet":
        return statefulset.PartitionStatefulSet(kube, namespace, name)
    raise ValueError(f"unsupported workload kind {kind}")
