"""Workload adapters: the registry's (kind, style) compute, applied by one generic
:class:`~vela_progressive.shell.workloads.base.Adapter` behind
:class:`~vela_progressive.shell.workloads.base.WorkloadAdapter`.

An adapter observes a normalised :class:`~vela_progressive.core.workloads.WorkloadView` and moves
the workload so that exactly N pods run the new template. Every method is idempotent: calling it
again after a crash or a restart changes nothing more.
"""

from __future__ import annotations

from typing import Any

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads import CANARY_OF_LABEL, registry
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.workloads.base import (
    Adapter,
    WorkloadAdapter,
    WorkloadMissing,
    apply_writes,
)

__all__ = [
    "CANARY_OF_LABEL",
    "Adapter",
    "WorkloadAdapter",
    "WorkloadMissing",
    "adapter_for",
    "apply_writes",
]


def adapter_for(
    kube: Kube,
    kind: str,
    namespace: str,
    name: str,
    mode: ReleaseMode,
    owner: dict[str, Any] | None = None,
) -> WorkloadAdapter:
    """The adapter for a workload kind and release mode (kind support is validated earlier):
    the registry's style for (kind, mode); ``ValueError`` for a kind or style it lacks."""
    entry = registry.find(kind)
    if entry is None:
        raise ValueError(f"unsupported workload kind {kind}")
    return Adapter(kube, entry.api_version, entry.kind, entry.style(mode), namespace, name, owner)
