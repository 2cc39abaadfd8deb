"""Kubernetes Events on the ProgressiveRollout, plus a structured log line for each."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from vela_progressive.shell.kube import Kube, KubeError

Obj = dict[str, Any]
log = logging.getLogger("vela_progressive.events")
COMPONENT = "vela-progressive"


@dataclass
class EventSink:
    kube: Kube

    async def post(self, cr: Obj, kind: str, reason: str, message: str) -> None:
        meta = cr["metadata"]
        log.log(
            logging.WARNING if kind == "Warning" else logging.INFO,
            "%s: %s",
            reason,
            message,
            extra={"rollout": f"{meta['namespace']}/{meta['name']}", "reason": reason},
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": cr["apiVersion"],
                "kind": cr["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1000],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.create(event)
        except KubeError as exc:  # an Event is best effort; the status carries the truth
            log.debug("could not post event %s: %s", reason, exc)
