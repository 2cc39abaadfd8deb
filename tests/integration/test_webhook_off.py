"""``VP_WEBHOOK_MODE=off``: the controller runs with no admission webhook at all (the watch
holds what changes). Kopf refuses to start when admission handlers exist and nothing serves
them, so in this mode none is registered."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.controller import Controller, free_port, terminate

pytestmark = pytest.mark.integration


def test_the_controller_starts_and_stays_up_with_the_webhook_off(controller: Controller) -> None:
    port = free_port()
    log = controller.state / "webhook-off.log"
    env = {
        **controller.cluster.env,
        "KUBECONFIG": str(controller.kubeconfig),
        "VP_WEBHOOK_MODE": "off",
        "VP_STATE_DIR": str(controller.state / "webhook-off"),
        "VP_METRICS_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    exe = Path(sys.executable).parent / "vela-progressive-controller"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), f"--liveness=http://127.0.0.1:{port}/healthz"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    healthy = r.status == 200
            except OSError:
                time.sleep(0.5)
        tail = log.read_text(errors="replace")[-3000:]
        assert proc.poll() is None, f"the controller exited (code {proc.returncode}):\n{tail}"
        assert healthy, f"no /healthz answer in 90 s:\n{tail}"
        time.sleep(3)
        assert proc.poll() is None, f"the controller exited after start:\n{tail}"
    finally:
        terminate(proc, 20)
