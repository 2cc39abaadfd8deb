#!/usr/bin/env python3
"""``make demo``: from nothing to a visible canary release on a local cluster.

    .venv/bin/python hack/demo.py          # run the demo (reuses what is already up)
    .venv/bin/python hack/demo.py --stop   # stop the demo's controller and its cluster

Steps: start (or reuse) the test-world cluster ``demo``, assemble the addon (``make addon``),
enable it with ``inCluster=false``, start the controller in the background (log and pid file in
the cluster's state directory ``.cluster/demo/``), deploy ``examples/01-canary-nginx`` version 1,
release version 2 with ``vela up``, show each step with ``kubectl progressive status``, approve
the step that waits through the CLI, and end with a summary of the timeline. The cluster and the
controller keep running afterwards, so you can try more; ``--stop`` ends both.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from vela_progressive.cli.status import render as render_status

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "hack" / "cluster" / "world.py"
VENV_BIN = Path(sys.executable).parent
CLUSTER = "demo"
STATE = ROOT / ".cluster" / CLUSTER
PID_FILE = STATE / "controller.pid"
LOG_FILE = STATE / "controller.log"
EXAMPLE = ROOT / "examples" / "01-canary-nginx"
APP, COMPONENT, NAMESPACE = "shop", "web", "default"
ADDON_DIR = ROOT / "dist" / "addon" / "vela-progressive"
WEBHOOK_CONFIG = "hold.rollout.vela-progressive.io"
CR = "progressiverollouts.rollout.vela-progressive.io"

T0 = time.monotonic()


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to look at."""


def say(message: str) -> None:
    print(f"[demo {time.monotonic() - T0:5.1f}s] {message}", flush=True)


def heading(step: int, total: int, title: str) -> None:
    print(f"\n== {step}/{total} {title}", flush=True)


# ------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Env:
    """Environment for the tools: the demo cluster's kubeconfig, its binaries and the venv."""

    kubeconfig: Path
    bindir: Path

    @property
    def vars(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bindir}{os.pathsep}{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv),
            env=self.vars,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise DemoError(
                f"`{' '.join(argv)}` failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.bindir / "kubectl"), *args], check=check)

    def get_json(self, *args: str) -> dict[str, Any] | None:
        done = self.kubectl("get", *args, "-o", "json", check=False)
        if done.returncode != 0:
            return None
        loaded: dict[str, Any] = json.loads(done.stdout)
        return loaded

    def vela(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.bindir / "vela"), *args], check=check)

    def progressive(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([str(VENV_BIN / "kubectl-progressive"), *args], check=check)


def wait_for(what: str, probe: Callable[[], bool], timeout: float, every: float = 1.0) -> None:
    """Say what we wait for, then poll ``probe`` until it is true."""
    say(f"waiting for {what} ...")
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise DemoError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def demo_controllers() -> list[int]:
    """Controller processes started for the demo cluster (found by their KUBECONFIG)."""
    needle = f"KUBECONFIG={STATE / 'admin.kubeconfig'}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        argv = _cmdline(int(entry))
        if any(a.endswith("vela-progressive-controller") for a in argv[:2]) and (
            needle in _environ(int(entry)).split(b"\0")
        ):
            found.append(int(entry))
    return found


def stop_controller() -> None:
    pids = set(demo_controllers())
    if PID_FILE.exists():
        recorded = int(PID_FILE.read_text().strip() or 0)
        if recorded and any(a.endswith("vela-progressive-controller") for a in _cmdline(recorded)):
            pids.add(recorded)
    for pid in sorted(pids):
        say(f"stopping the controller (pid {pid})")
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------- the steps
def cluster_up() -> Env:
    say(f"starting (or reusing) the local cluster '{CLUSTER}': hack/cluster/world.py up")
    proc = subprocess.Popen(
        [sys.executable, str(WORLD), "up", "--name", CLUSTER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stdout is not None
    for line in proc.stderr:  # world.py's own progress lines
        print(f"    {line.rstrip()}", flush=True)
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise DemoError(f"the cluster did not start (world.py up --name {CLUSTER})")
    lines = out.strip().splitlines()
    if not lines or not lines[-1].startswith("export KUBECONFIG="):
        raise DemoError(f"world.py up printed no kubeconfig:\n{out}")
    env = subprocess.run(
        [sys.executable, str(WORLD), "env", "--name", CLUSTER],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    bindir = next(
        line.split('"')[1].split(os.pathsep)[0] for line in env.splitlines() if "PATH=" in line
    )
    return Env(Path(lines[-1].removeprefix("export KUBECONFIG=")), Path(bindir))


def build_addon() -> None:
    say("assembling the addon (make addon): hack/build_addon.py")
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "build_addon.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DemoError(f"make addon failed:\n{done.stdout}{done.stderr}")
    say(done.stdout.strip())


def enable_addon(env: Env) -> None:
    say(f"vela addon enable {ADDON_DIR.relative_to(ROOT)} inCluster=false")
    say("  (inCluster=false: the controller runs on this machine and registers its own webhook)")
    done = env.vela("addon", "enable", str(ADDON_DIR), "inCluster=false", check=False)
    if done.returncode != 0:
        raise DemoError(f"vela addon enable failed:\n{done.stdout}{done.stderr}")
    first = next((line for line in done.stdout.splitlines() if "enabled" in line), "")
    say(first.strip() or "addon enabled")


def prometheus_url() -> str:
    """The test world's Prometheus (world.py records it in the cluster's state)."""
    state = json.loads((STATE / "state.json").read_text())
    return str(state.get("prometheus_url") or "")


def start_controller(env: Env) -> None:
    recorded = int(PID_FILE.read_text().strip() or 0) if PID_FILE.exists() else 0
    if recorded and recorded in demo_controllers():
        say(f"the controller already runs (pid {recorded}, log {LOG_FILE.relative_to(ROOT)})")
        return
    stop_controller()  # one left over from an earlier demo on a cluster that is gone
    port = free_port()
    vars_ = {
        **env.vars,
        "VP_WEBHOOK_MODE": "local",
        "VP_WEBHOOK_PORT": str(port),
        "VP_STATE_DIR": str(STATE / "controller"),
        "PYTHONUNBUFFERED": "1",
        # the analysis asks the test world's Prometheus (the addon's prometheusAddress)
        "VP_PROMETHEUS_ADDRESS": prometheus_url(),
    }
    with LOG_FILE.open("ab") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "vela-progressive-controller")],
            env=vars_,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # keeps running after the demo ends
        )
    PID_FILE.write_text(f"{proc.pid}\n")
    say(f"controller started: pid {proc.pid}, hold webhook on 127.0.0.1:{port}")
    say(f"  log: {LOG_FILE.relative_to(ROOT)}   pid file: {PID_FILE.relative_to(ROOT)}")

    def ready() -> bool:
        if proc.poll() is not None:
            tail = "\n".join(LOG_FILE.read_text(errors="replace").splitlines()[-30:])
            raise DemoError(f"the controller exited (code {proc.returncode}):\n{tail}")
        config = env.get_json("mutatingwebhookconfiguration", WEBHOOK_CONFIG)
        urls = [
            w.get("clientConfig", {}).get("url", "") for w in (config or {}).get("webhooks", [])
        ]
        return bool(urls) and all(f":{port}/" in url for url in urls)

    wait_for(f"the controller to register its webhook {WEBHOOK_CONFIG}", ready, 90, every=0.5)


def app_phase(env: Env) -> str:
    app = env.get_json("application", APP, "-n", NAMESPACE)
    return str(((app or {}).get("status") or {}).get("status", ""))


def rollout(env: Env) -> dict[str, Any]:
    return env.get_json(CR, COMPONENT, "-n", NAMESPACE) or {}


def deploy_v1(env: Env) -> None:
    if env.get_json("application", APP, "-n", NAMESPACE) is not None:
        say(f"removing the Application {APP} of an earlier demo: vela delete {APP} -y")
        env.vela("delete", APP, "-n", NAMESPACE, "-y")
    say(f"vela up -f {(EXAMPLE / 'app-v1.yaml').relative_to(ROOT)}")
    env.vela("up", "-f", str(EXAMPLE / "app-v1.yaml"), "-n", NAMESPACE)
    wait_for(
        f"Application {APP} to be running (10 pods of version 1)",
        lambda: app_phase(env) == "running",
        180,
    )
    status = rollout(env).get("status") or {}
    say(f"version 1 runs; rollout {COMPONENT}: {status.get('phase')} ({status.get('message')})")


def pod_images(env: Env) -> dict[str, int]:
    pods = env.kubectl(
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        f"app.oam.dev/component={COMPONENT}",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image}{'\\n'}{end}",
    ).stdout.split()
    return {image.rsplit(":", 1)[-1]: pods.count(image) for image in sorted(set(pods))}


def traffic(env: Env) -> str:
    """What a step did to pods and traffic, read from the cluster."""
    canary = env.get_json("ingress", f"{COMPONENT}-canary", "-n", NAMESPACE)
    notes = (canary or {}).get("metadata", {}).get("annotations", {})
    weight = notes.get("nginx.ingress.kubernetes.io/canary-weight")
    ingress = (
        f"Ingress {COMPONENT}-canary canary-weight={weight}" if weight else "no canary Ingress"
    )
    return f"pods by version {pod_images(env)}; {ingress}"


def release_v2(env: Env) -> None:
    say(f"vela up -f {(EXAMPLE / 'app-v2.yaml').relative_to(ROOT)}   (only the image changes)")
    env.vela("up", "-f", str(EXAMPLE / "app-v2.yaml"), "-n", NAMESPACE)
    say("the release runs; each table is what `kubectl progressive status shop` prints now")
    print(flush=True)
    shown = ""
    approved: set[int] = set()
    traffic_shown: set[int] = set()
    deadline = time.monotonic() + 300
    while True:
        cr = rollout(env)
        status = cr.get("status") or {}
        current = cr.get("spec", {}).get("revision", {}).get("name")
        mine = current == f"{APP}-v2" and status.get("observedRevision") == current
        table = render_status(cr, APP) if cr else "(no rollout yet)"
        if table != shown:
            print("    " + table.rstrip().replace("\n", "\n    ") + "\n", flush=True)
            shown = table
        if mine and status.get("phase") == "Healthy":
            return
        if mine and status.get("phase") in ("Failed", "Aborted"):
            raise DemoError(f"the release ended in {status['phase']}: {status.get('message')}")
        step = int(status.get("currentStep") or 0)
        waiting = status.get("stepState") in ("Waiting", "WaitingApproval")
        if mine and waiting and step not in traffic_shown:
            say(f"step {step}: {traffic(env)}")
            traffic_shown.add(step)
        if mine and status.get("stepState") == "WaitingApproval" and step not in approved:
            say(f"step {step} waits for an approval; a person would now check the canary.")
            say("approving through the CLI in 3 s: kubectl progressive approve shop")
            time.sleep(3)
            out = env.progressive("approve", APP, "-n", NAMESPACE).stdout
            say(out.strip().splitlines()[0])
            approved.add(step)
        if time.monotonic() > deadline:
            raise DemoError("the release did not finish in 5 minutes; see the controller log")
        time.sleep(1)


#: The image tag the test world's traffic simulator answers with 30% HTTP 500.
BAD_IMAGE = "ghcr.io/stefanprodan/podinfo:6.7.2-bad"


def bad_version() -> Path:
    """Version 2's manifest with a bad image and its first step gated by the error rate."""
    app = yaml.safe_load((EXAMPLE / "app-v2.yaml").read_text())
    component = app["spec"]["components"][0]
    component["properties"]["image"] = BAD_IMAGE
    trait = next(t for t in component["traits"] if t["type"] == "progressive-rollout")
    errors = {
        "name": "errors",
        "template": "request-error-rate",
        "thresholdRange": {"max": 5},
        "interval": 5,
        "count": 2,
    }
    trait["properties"]["canary"]["steps"] = [
        {"replicas": "20%", "weight": 20, "duration": 0, "analysis": {"metrics": [errors]}},
        {"replicas": "100%", "weight": 100},
    ]
    path = STATE / "app-v3-bad.yaml"
    path.write_text(yaml.safe_dump(app, sort_keys=False))
    return path


def release_bad(env: Env) -> None:
    path = bad_version()
    say(f"vela up -f {path.relative_to(ROOT)}")
    say(f"  = app-v2.yaml with image {BAD_IMAGE} (the simulator answers 30% of its requests")
    say("    with HTTP 500) and step 1 gated: error rate at most 5%, measured every 5 s")
    env.vela("up", "-f", str(path), "-n", NAMESPACE)
    shown = ""
    deadline = time.monotonic() + 180
    while True:
        cr = rollout(env)
        status = cr.get("status") or {}
        mine = status.get("observedRevision") == cr.get("spec", {}).get("revision", {}).get(
            "name"
        ) and status.get("canaryRevision")
        table = render_status(cr, APP) if cr else "(no rollout yet)"
        if table != shown:
            print("    " + table.rstrip().replace("\n", "\n    ") + "\n", flush=True)
            shown = table
        if mine and status.get("phase") == "Failed" and status.get("endingStage") == "Done":
            say(f"rolled back on its own: {status.get('message')}")
            say(f"traffic now: {traffic(env)}; pods: {pod_images(env)}")
            return
        if time.monotonic() > deadline:
            raise DemoError("the bad version was not rolled back in 3 minutes; see the log")
        time.sleep(1)


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def summary(env: Env, started: float) -> None:
    status = rollout(env).get("status") or {}
    entries = status.get("timeline", [])
    print("\nTimeline (status.timeline of the ProgressiveRollout web):")
    print(f"    {'STEP':<5} {'STATE':<16} {'TOOK':>6}  MESSAGE")
    for e in entries:
        took = ""
        if e.get("finishedAt"):
            took = f"{(_stamp(e['finishedAt']) - _stamp(e['startedAt'])).total_seconds():.0f}s"
        print(f"    {e['step']:<5} {e['state']:<16} {took:>6}  {e.get('message', '')}")
    print("\nPer step (first entry's start to the next step's start):")
    starts: dict[int, datetime] = {}
    for e in entries:
        starts.setdefault(int(e["step"]), _stamp(e["startedAt"]))
    ends = [_stamp(e["finishedAt"]) for e in entries if e.get("finishedAt")]
    order = sorted(starts)
    for i, step in enumerate(order):
        end = starts[order[i + 1]] if i + 1 < len(order) else (max(ends) if ends else None)
        took = f"{(end - starts[step]).total_seconds():.0f}s" if end else "?"
        plan: dict[str, Any] = next((p for p in status.get("plan", []) if p["step"] == step), {})
        wait = (plan.get("wait") or {}).get("kind", "")
        print(f"    step {step}: {took:>4}  ({plan.get('weight', '-')}% traffic, wait: {wait})")
    print(f"\nThe release took {time.monotonic() - started:.0f}s from `vela up` to Healthy.")


def wait_running(env: Env) -> None:
    """Version 2 released: KubeVela marks the Application running again."""
    app = env.get_json("application", APP, "-n", NAMESPACE) or {}
    workflow = (app.get("status") or {}).get("workflow") or {}
    if app_phase(env) != "running" and workflow.get("finished"):
        # KubeVela only re-evaluates a finished workflow's Application at its resync (minutes).
        say(
            f"WARNING: KubeVela finished the workflow of {APP} at {workflow.get('endTime')}, "
            "before the release did, so it shows the Application as "
            f"'{app_phase(env)}' until its next resync. The trait's health check read the "
            "rollout of the previous revision (reported to the maintainers)."
        )
    else:
        wait_for(
            f"KubeVela to mark Application {APP} running (it re-checks the trait with a backoff)",
            lambda: app_phase(env) == "running",
            120,
            every=2,
        )
    say(f"Application {APP}: {app_phase(env)}; {traffic(env)}")


def finish(env: Env) -> None:
    say(
        f"Application {APP}: {app_phase(env)} (its revision 3 failed its analysis: KubeVela "
        "waits until you release a fixed version or roll back)"
    )
    rel = os.path.relpath
    tries = [
        (f"kubectl progressive status {APP}", "the release table and the next command"),
        (f"vela status {APP}", "KubeVela's view, with the trait's message"),
        ("kubectl get vpr -A", "every progressive rollout"),
        ("kubectl progressive plan examples/02-ab-header-gateway-api/app-v2.yaml", "offline"),
        (
            "less examples/README.md",
            "eight examples: A/B, Istio, StatefulSet, DaemonSet, abort, analysis, ...",
        ),
        (f"tail -f {rel(LOG_FILE)}", "the controller's log"),
    ]
    width = max(len(command) for command, _ in tries if len(command) < 45) + 2
    lines = "\n".join(
        f"    {command:<{max(width, len(command) + 2)}}# {why}" for command, why in tries
    )
    print(
        f"""
The cluster '{CLUSTER}' and the controller keep running. Use them from this shell with:

    eval "$({rel(sys.executable)} {rel(WORLD)} env --name {CLUSTER})"
    export PATH="{VENV_BIN}:$PATH"

Next commands to try:

{lines}

Stop everything (controller, then cluster):

    {rel(sys.executable)} hack/demo.py --stop
"""
    )


def run() -> int:
    total = 8
    heading(1, total, "cluster")
    env = cluster_up()
    heading(2, total, "addon")
    build_addon()
    enable_addon(env)
    heading(3, total, "controller")
    start_controller(env)
    heading(4, total, f"version 1 of {APP} (examples/01-canary-nginx)")
    deploy_v1(env)
    heading(5, total, "release version 2: canary 20% (approval) -> 50% (15 s) -> 100%")
    started = time.monotonic()
    release_v2(env)
    heading(6, total, "summary")
    summary(env, started)
    wait_running(env)
    heading(7, total, "a bad version: the analysis rolls it back on its own")
    release_bad(env)
    heading(8, total, "done")
    finish(env)
    say(f"make demo took {time.monotonic() - T0:.0f}s")
    return 0


def stop() -> int:
    stop_controller()
    say(f"stopping the cluster: hack/cluster/world.py down --name {CLUSTER}")
    return subprocess.run(
        [sys.executable, str(WORLD), "down", "--name", CLUSTER], check=False
    ).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stop", action="store_true", help="stop the controller and the cluster")
    args = parser.parse_args(argv)
    try:
        return stop() if args.stop else run()
    except DemoError as exc:
        print(f"\nhack/demo.py: error: {exc}", file=sys.stderr)
        if LOG_FILE.exists():
            print(f"hack/demo.py: the controller log is {LOG_FILE}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; the cluster and the controller keep running (--stop ends them)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
