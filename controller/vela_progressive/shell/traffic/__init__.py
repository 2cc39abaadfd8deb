"""Traffic I/O: applies what the pure providers in ``vela_progressive.core.traffic`` compute."""

from vela_progressive.shell.traffic.manager import TrafficError, TrafficManager
from vela_progressive.shell.traffic.port import TrafficPort, traffic_port

__all__ = ["TrafficError", "TrafficManager", "TrafficPort", "traffic_port"]
