"""Builds the reconciler's traffic port on the API server."""

from __future__ import annotations

from vela_progressive.shell.kube import Kube
from vela_progressive.shell.traffic.manager import TrafficManager
from vela_progressive.shell.traffic.port import TrafficPort


def traffic_port(kube: Kube) -> TrafficPort:
    return TrafficPort(TrafficManager(kube))
