"""`world.py down` leaves no process and no listening port behind (on its own, second cluster)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
WORLD = REPO / "hack" / "cluster" / "world.py"


def _world(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORLD), *args], capture_output=True, text=True, check=False
    )


def _alive(pid: int, starttime: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] not in ("Z", "X") and int(fields[19]) == starttime


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _mentioning(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if needle.encode() in cmdline:
                found.append(int(entry))
    return found


def test_world_down_stops_every_process_and_frees_every_port() -> None:
    name = f"down-check-{os.getpid()}"
    state_dir = REPO / ".cluster" / name
    started = _world("up", "--name", name)
    try:
        assert started.returncode == 0, f"world.py up failed:\n{started.stderr}"
        assert started.stdout.splitlines()[-1] == (
            f"export KUBECONFIG={state_dir / 'admin.kubeconfig'}"
        )
        state = json.loads((state_dir / "state.json").read_text())
        processes = [(p["name"], p["pid"], p["starttime"]) for p in state["processes"]]
        ports = sorted(state["ports"].values())
        names = {n for n, _, _ in processes}
        assert names == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "vela-core",
            "kruise-manager",
            "prometheus",
            "simulator",
        }
        assert all(_alive(pid, start) for _, pid, start in processes)
        assert [p for p in ports if _listening(p)] == ports  # etcd-peer included

        t0 = time.monotonic()
        reused = _world("up", "--name", name)
        assert reused.returncode == 0, reused.stderr
        assert reused.stdout == started.stdout.splitlines()[-1] + "\n"
        assert time.monotonic() - t0 < 10, "reusing a running cluster must be quick"
    finally:
        stopped = _world("down", "--name", name)

    assert stopped.returncode == 0, f"world.py down reported leftovers:\n{stopped.stderr}"
    assert [n for n, pid, start in processes if _alive(pid, start)] == []
    assert [p for p in ports if _listening(p)] == []
    assert _mentioning(str(state_dir) + "/") == []
    assert not state_dir.exists()
