"""``kubectl progressive status APP [-w]``: the release at a glance, and the next command."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from vela_progressive.cli import rollouts
from vela_progressive.cli.output import table
from vela_progressive.cli.verb import Verb
from vela_progressive.core.status import Actor, Phase, Seen, StepState, iso
from vela_progressive.shell.kube import Kube

Obj = dict[str, Any]
EXIT_FAILED, EXIT_TIMEOUT = 1, 3


def _configure(parser: argparse.ArgumentParser) -> None:
    rollouts.add_target_args(parser)
    parser.add_argument("-w", "--watch", action="store_true", help="follow until the release ends")
    parser.add_argument(
        "-t", "--timeout", type=float, default=600, help="seconds to watch (default 600)"
    )


def _traffic(step: Obj) -> str:
    parts = []
    if step.get("weight") is not None:
        parts.append(f"{step['weight']}%")
    if step.get("matches"):
        parts.append(f"{len(step['matches'])} match rule(s)")
    return ", ".join(parts) or "-"


def _wait(step: Obj) -> str:
    wait = step.get("wait") or {}
    if wait.get("kind") == "approval":
        return "approval"
    if wait.get("kind") == "duration":
        return f"{wait.get('seconds', 0)}s"
    return "-"


def next_command(cr: Obj, app: str) -> str:
    status = cr.get("status") or {}
    phase, state = status.get("phase"), status.get("stepState")
    if phase == Phase.PROGRESSING and state == StepState.APPROVAL:
        return f"kubectl progressive approve {app}"
    if phase == Phase.PAUSED and "analysis inconclusive" in str(status.get("message", "")):
        return f"kubectl progressive status {app} -w   (goes on once Prometheus answers; or abort)"
    if phase == Phase.PAUSED:
        return f"kubectl progressive resume {app}"
    if phase == Phase.FAILED and status.get("ending"):
        return f"kubectl progressive status {app} -w   (going back to stable)"
    if phase == Phase.FAILED and status.get("canaryRevision"):
        return f"kubectl progressive retry {app}  (or: abort / rollback / release a fixed version)"
    if phase in (Phase.FAILED, Phase.ABORTED):
        return f"kubectl progressive rollback {app}  (or release a fixed version)"
    if phase == Phase.PROGRESSING:
        return f"kubectl progressive status {app} -w   (or: pause / abort)"
    return "nothing to do"


def render(cr: Obj, app: str) -> str:
    status = cr.get("status") or {}
    ref = cr["spec"].get("workloadRef", {})
    current = status.get("currentStep", 0)
    releasing = status.get("phase") not in (Phase.HEALTHY, None)
    rows = []
    for step in status.get("plan", []):
        mark = ">" if releasing and step["step"] == current else " "
        rows.append(
            [
                f"{mark} {step['step']}",
                f"{step['newPods']}/{step['oldPods']}",
                _traffic(step),
                _wait(step),
            ]
        )
    lines = [
        f"{rollouts.label(cr)}  {ref.get('kind', '?')} {ref.get('name', '?')}  "
        f"revision {rollouts.revision(cr)}",
        f"phase {status.get('phase', 'Pending')}: "
        f"{status.get('message', 'waiting for the controller')}",
        "",
        table(["STEP", "PODS NEW/OLD", "TRAFFIC", "WAIT"], rows) if rows else "(no plan yet)",
        "",
        *measurements(status),
        *operations(status),
        f"next: {next_command(cr, app)}",
    ]
    return "\n".join(lines)


#: Measurements shown by ``status`` (the newest).
SHOWN_MEASUREMENTS = 8


def measurements(status: Obj) -> list[str]:
    """The last measurements as a table (value, stable, threshold, verdict, time), then a blank."""
    taken = status.get("measurements") or []
    if not taken:
        return []
    rows = [
        [
            m.get("metric", "?"),
            m.get("step", "?"),
            m.get("value") or "-",
            m.get("stable") or "-",
            m.get("threshold", ""),
            m.get("verdict", "?"),
            str(m.get("at", ""))[11:19],
        ]
        for m in taken[-SHOWN_MEASUREMENTS:]
    ]
    header = ["METRIC", "STEP", "VALUE", "STABLE", "THRESHOLD", "VERDICT", "TIME"]
    return [table(header, rows), ""]


def operations(status: Obj) -> list[str]:
    """Who approved, aborted or retried (from the timeline), when, and what they saw, then a
    blank; unverified ones say why."""
    rows = []
    for entry in status.get("timeline") or []:
        raw = entry.get("by")
        if not isinstance(raw, dict):
            continue
        by = Actor.from_dict(raw)
        seen = entry.get("seen")
        rows.append(
            [
                by.operation,
                entry.get("step", "?"),
                by.describe(),
                iso(by.at) if by.at else "-",
                Seen.from_dict(seen).describe() if isinstance(seen, dict) else "-",
            ]
        )
    if not rows:
        return []
    return [table(["OPERATION", "STEP", "BY", "AT", "SAW"], rows), ""]


def _run(args: argparse.Namespace) -> int:
    async def body(kube: Kube) -> int:
        cr = await rollouts.find(kube, args)
        if not args.watch:
            print(render(cr, args.app))
            return 0
        deadline = time.monotonic() + args.timeout
        last = ""
        while True:
            text = render(cr, args.app)
            if text != last:
                print(text + "\n", flush=True)
                last = text
            phase = (cr.get("status") or {}).get("phase")
            if phase == Phase.HEALTHY:
                return 0
            if phase in (Phase.FAILED, Phase.ABORTED):
                return EXIT_FAILED
            if time.monotonic() > deadline:
                print(f"timed out after {args.timeout:.0f}s")
                return EXIT_TIMEOUT
            await asyncio.sleep(1)
            cr = await rollouts.find(kube, args)

    return rollouts.run(args, body)


VERB = Verb(
    "status", "show the release: steps, pods, traffic, waits, next command", _configure, _run
)
