"""`make bench`: our controller and Kruise Rollout, side by side on one world (issue 13).

    .venv/bin/python hack/bench/bench.py [--world NAME] [--releases 5] [--scale "1 100 500 1000"]
        [--kruise-scale "1 100"] [--idle 10000] [--restart 1000] [--restart-wait 180]
        [--docs docs/benchmarks.md | --no-docs] [--samples timings.jsonl]

Without --world it starts a world of its own (`world.py up --audit --name bench-<pid>`, then
`world.py peer kruise-rollout`) and stops it at the end; with --world it uses that one (started
with --audit and the peer). Our controller runs as a real process with the addon's
ServiceAccount (tests/support/controller.py), Kruise Rollout with its own; kube-apiserver's audit
log counts both (audit_count.py). Releases are watched (fleet.py); processes are read from /proc.

1. Side by side, alternating ours / Kruise's, N each: the partition release and the NGINX
   canary release of peer_release.py (10 replicas). Step latency p50/p99, wall time, API
   requests per release by verb, CPU seconds and peak RSS of each controller.
2. Scale: S releases in flight at once (2 replicas, steps 50/100%, partition style), each size
   ours and (for --kruise-scale sizes) Kruise's.
3. Restart: our controller killed (SIGKILL) with R releases in flight (step 1 waits
   --restart-wait seconds), started again: time until every release moved again, lateness
   against its wait, and the timelines checked (no step repeated or skipped).
4. Idle: I rollouts (1 replica each) created and Healthy, then RSS and API requests per minute.

--samples appends each scale part's per-release timings (JSON lines: when each step's new pods
were Ready and when the next step was allowed, in seconds from the trigger, and the trigger's
CLOCK_MONOTONIC, to join other logs of the same machine): the slowest steps, one by one.

Progress goes to stderr; the Markdown goes into --docs (between `<!-- make bench -->` markers)
and stdout; the last line is `bench: step p50 ours/kruise = ..., api requests ours/kruise = ...,
N releases done in T s, rss P MiB`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import audit_count
import bench_stats
import fleet
import peer_release
from fleet import KRUISE, OURS, Fleet, Observer, say

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack" / "cluster"))
sys.path.insert(0, str(REPO))

import peer_rollouts  # noqa: E402
from tests.chaos.runner import steps_problem  # noqa: E402
from tests.integration.release_kit import CR_API  # noqa: E402
from tests.support.cluster import WORLD, Cluster  # noqa: E402
from tests.support.controller import (  # noqa: E402
    SERVICE_ACCOUNT,
    Controller,
    running_controller,
)

from vela_progressive.core.model import KIND  # noqa: E402
from vela_progressive.shell.kube import Kube  # noqa: E402

PREFIX = "bench-"
USERS = {
    OURS: f"system:serviceaccount:{SERVICE_ACCOUNT[0]}:{SERVICE_ACCOUNT[1]}",
    KRUISE: peer_rollouts.USER,
}
MARK_BEGIN, MARK_END = "<!-- make bench -->", "<!-- /make bench -->"
#: Releases per namespace at scale.
PER_NAMESPACE = 100


# ------------------------------------------------------------------------------ the world
def world(*args: str) -> str:
    """world.py with progress on stderr; its stdout."""
    done = subprocess.run(
        [sys.executable, str(WORLD), *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"world.py {' '.join(args)} failed (exit {done.returncode})")
    return done.stdout


def cluster_of(name: str) -> Cluster:
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in world("env", "--name", name).splitlines()
        if line.startswith("export ")
    )
    if "VP_AUDIT_LOG" not in exports:
        raise SystemExit(f"world {name} has no audit log: start it with world.py up --audit")
    bindir = Path(exports["PATH"].strip('"').split(":", 1)[0])
    kubeconfig = Path(exports["KUBECONFIG"])
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECACHEDIR": tempfile.mkdtemp(prefix="bench-kubectl-"),
        "VP_AUDIT_LOG": exports["VP_AUDIT_LOG"],
        # The controller of this checkout, whichever checkout the venv was installed from.
        "PYTHONPATH": os.pathsep.join(
            p for p in [str(REPO / "controller"), os.environ.get("PYTHONPATH")] if p
        ),
    }
    return Cluster(kubeconfig, bindir, env, name, exports.get("VP_PROMETHEUS_URL"))


def peer_pid(cluster: Cluster) -> int:
    state = json.loads((cluster.kubeconfig.parent / "state.json").read_text())
    for record in state["processes"]:
        if record["name"] == peer_rollouts.PROCESS:
            return int(record["pid"])
    raise SystemExit("Kruise Rollout does not run in this world (world.py peer kruise-rollout)")


# ------------------------------------------------------------------------------ readings
class Sampler:
    """Every second: the 1-minute load average and each controller's VmRSS."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.load: list[float] = []
        self.rss_peak: dict[str, int] = {}

    def reset(self) -> None:
        self.load, self.rss_peak = [os.getloadavg()[0]], {}
        self.sample()

    def sample(self) -> None:
        for side, pid in self.pids.items():
            with contextlib.suppress(OSError):
                rss = fleet.proc_memory_kib(pid, "VmRSS")
                self.rss_peak[side] = max(self.rss_peak.get(side, 0), rss)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1)
            self.load.append(os.getloadavg()[0])
            self.sample()

    @property
    def load_text(self) -> str:
        return bench_stats.load_range(self.load)

    def rss_mib(self, side: str) -> float:
        return self.rss_peak.get(side, 0) / 1024


class Audit:
    """Windows of kube-apiserver's audit log, read from where the window began.

    kube-apiserver rotates the log at 100 MB (`audit-<time>.log` beside it, all kept): a
    window is read from its mark in the file it began in, then every file written after it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> tuple[int, int]:
        """(inode, offset) of the log now."""
        stat = self.path.stat()
        return stat.st_ino, stat.st_size

    def files_since(self, mark: tuple[int, int]) -> list[tuple[Path, int]]:
        """The files a window that began at ``mark`` spans, each with where to start reading."""
        rotated = sorted(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"))
        files = [*rotated, self.path]
        inodes = [f.stat().st_ino for f in files]
        first = inodes.index(mark[0]) if mark[0] in inodes else len(files) - 1
        return [(f, mark[1] if i == first else 0) for i, f in enumerate(files) if i >= first]

    def count(
        self,
        mark: tuple[int, int],
        side: str,
        since: datetime.datetime,
        until: datetime.datetime,
    ) -> Counter[str]:
        verbs: Counter[str] = Counter()
        for path, offset in self.files_since(mark):
            with path.open() as handle:
                handle.seek(offset)
                for key, n in audit_count.count(handle, [USERS[side]], since, until).items():
                    verbs[key.verb] += n
        return verbs


@dataclass
class Proc:
    """CPU seconds and peak RSS of one controller over a window."""

    pid: int
    cpu0: float = 0.0

    def begin(self) -> None:
        self.cpu0 = fleet.proc_cpu_seconds(self.pid)

    def cpu(self) -> float:
        return fleet.proc_cpu_seconds(self.pid) - self.cpu0

    def hwm_mib(self) -> float:
        return fleet.proc_memory_kib(self.pid, "VmHWM") / 1024


@dataclass
class Bench:
    kube: Kube
    observer: Observer
    cluster: Cluster
    ctl: Controller
    audit: Audit
    sampler: Sampler
    sections: list[str] = field(default_factory=list)
    #: For the last line.
    summary: dict[str, float] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    #: Called with the sections so far after each part.
    written: Callable[[list[str]], None] = lambda _: None
    #: Where each scale part's per-release timings go (JSON lines), if anywhere.
    samples: Path | None = None

    def add(self, section: str) -> None:
        """A part's section: on stderr at once, and into the docs (a run cut short keeps it)."""
        self.sections.append(section)
        print(section, file=sys.stderr, flush=True)
        self.written(self.sections)

    def pid(self, side: str) -> int:
        return self.sampler.pids[side]

    def fresh_controller(self) -> None:
        """Our controller started again, so a part's peak RSS and CPU are its own."""
        self.ctl.stop()
        self.ctl.start()
        self.sampler.pids[OURS] = self.pid_of_ours()

    def pid_of_ours(self) -> int:
        assert self.ctl.proc is not None
        return self.ctl.proc.pid

    async def clean(self) -> None:
        names, self.namespaces = self.namespaces, []
        if names:
            say(f"deleting {len(names)} namespaces")
            await fleet.delete_namespaces(self.kube, names)

    # -------------------------------------------------------------------------- 1: side by side
    async def side_by_side(self, n: int) -> None:
        styles = {
            "partition": peer_release.partition,
            "canary": peer_release.canary_nginx,
        }
        lat: dict[tuple[str, str], list[float]] = {}
        wall: dict[tuple[str, str], list[float]] = {}
        requests: dict[tuple[str, str], list[Counter[str]]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        self.sampler.reset()
        for style, describe in styles.items():
            for i in range(n):
                for side in (OURS, KRUISE):
                    ns = f"{PREFIX}{side}-{style}-{i}"
                    self.namespaces.append(ns)
                    release = describe("web", ns)
                    one = Fleet(self.kube, self.observer, side, [release])
                    if (await one.prepare(within=180))[1]:
                        continue
                    await asyncio.sleep(1)
                    proc = Proc(self.pid(side))
                    proc.begin()
                    offset = self.audit.mark()
                    await one.trigger()
                    left = await one.wait_done(180)
                    (track,) = one.tracks()
                    if left:
                        say(f"{side} {style} {i}: not done in 180 s; status {track.status}")
                        continue
                    await asyncio.sleep(0.5)  # the audit log is written when answered
                    assert track.triggered_wall is not None
                    assert track.done_wall is not None
                    assert track.done is not None
                    assert track.triggered is not None
                    key = (side, style)
                    lat.setdefault(key, []).extend(track.latencies())
                    wall.setdefault(key, []).append(track.done - track.triggered)
                    verbs = self.audit.count(offset, side, track.triggered_wall, track.done_wall)
                    requests.setdefault(key, []).append(verbs)
                    cpu.setdefault(key, []).append(proc.cpu())
                    say(
                        f"{side} {style} {i + 1}/{n}: {track.done - track.triggered:.1f} s, "
                        f"steps {[round(x * 1000) for x in track.latencies()]} ms, "
                        f"{sum(verbs.values())} requests"
                    )
        rows = [
            "| release | measure | ours | Kruise Rollout | ours/Kruise |",
            "|---|---|---:|---:|---:|",
        ]
        all_lat: dict[str, list[float]] = {OURS: [], KRUISE: []}
        all_req: dict[str, list[int]] = {OURS: [], KRUISE: []}
        for style in styles:
            o, k = (OURS, style), (KRUISE, style)
            all_lat[OURS] += lat.get(o, [])
            all_lat[KRUISE] += lat.get(k, [])
            all_req[OURS] += [sum(c.values()) for c in requests.get(o, [])]
            all_req[KRUISE] += [sum(c.values()) for c in requests.get(k, [])]
            for q in (50, 99):
                a = bench_stats.percentile(lat.get(o, []), q)
                b = bench_stats.percentile(lat.get(k, []), q)
                rows.append(
                    f"| {style} | step latency p{q} (n={len(lat.get(o, []))}/"
                    f"{len(lat.get(k, []))}) | {bench_stats.fmt_ms(a)} | "
                    f"{bench_stats.fmt_ms(b)} | {bench_stats.ratio(a, b)} |"
                )
            a, b = median(wall.get(o, [])), median(wall.get(k, []))
            rows.append(
                f"| {style} | release wall time, median | {bench_stats.fmt_s(a)} | "
                f"{bench_stats.fmt_s(b)} | {bench_stats.ratio(a, b)} |"
            )
            ro, rk = requests.get(o, []), requests.get(k, [])
            a, b = median([sum(c.values()) for c in ro]), median([sum(c.values()) for c in rk])
            rows.append(
                f"| {style} | API requests per release, median | {a:.0f} ({by_verb(ro)}) | "
                f"{b:.0f} ({by_verb(rk)}) | {bench_stats.ratio(a, b)} |"
            )
            a, b = median(cpu.get(o, [])), median(cpu.get(k, []))
            rows.append(
                f"| {style} | controller CPU per release, median | {a:.2f} s | {b:.2f} s | "
                f"{bench_stats.ratio(a, b)} |"
            )
        a, b = self.sampler.rss_mib(OURS), self.sampler.rss_mib(KRUISE)
        rows.append(
            f"| both | peak RSS during the part (VmHWM since start) | {a:.0f} MiB "
            f"({Proc(self.pid(OURS)).hwm_mib():.0f}) | {b:.0f} MiB "
            f"({Proc(self.pid(KRUISE)).hwm_mib():.0f}) | {bench_stats.ratio(a, b)} |"
        )
        self.summary["step_ratio"] = bench_stats.ratio_value(
            bench_stats.percentile(all_lat[OURS], 50), bench_stats.percentile(all_lat[KRUISE], 50)
        )
        self.summary["request_ratio"] = bench_stats.ratio_value(
            median(all_req[OURS]), median(all_req[KRUISE])
        )
        self.add(
            f"### Side by side ({n} releases of each style per controller, alternating; "
            f"load {self.sampler.load_text})\n\n" + "\n".join(rows) + "\n"
        )
        await self.clean()

    # -------------------------------------------------------------------------- 2: scale
    async def scale(self, sizes: list[int], kruise_sizes: list[int], within: float) -> None:
        rows = [
            "| releases | controller | step p50 | step p99 | all done in | not done | "
            "requests/s | requests per release | CPU | peak RSS | load |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for size in sizes:
            for side in (OURS, KRUISE):
                if side == KRUISE and size not in kruise_sizes:
                    continue
                rows.append(await self.scale_one(size, side, within))
                print(rows[-1], file=sys.stderr, flush=True)
        self.add(
            "### Releases in flight at once (2 replicas each, partition style, steps 50/100%, "
            "no waits)\n\n" + "\n".join(rows) + "\n"
        )

    async def scale_one(self, size: int, side: str, within: float) -> str:
        if side == OURS:
            self.fresh_controller()
        releases = [
            peer_release.Release(
                f"r{i:04d}", f"{PREFIX}{side}-s{size}-{i // PER_NAMESPACE}", 2, (50, 100)
            )
            for i in range(size)
        ]
        self.namespaces += sorted({r.namespace for r in releases})
        group = Fleet(self.kube, self.observer, side, releases)
        say(f"{side}: {size} releases: creating")
        took, unready = await group.prepare(within=max(300, size * 2.0))
        if unready:
            return f"| {size} | {side} | {unready} of {size} never ready for a release |"
        say(f"{side}: {size} releases ready in {took:.1f} s; releasing all at once")
        await asyncio.sleep(2)
        proc = Proc(self.pid(side))
        proc.begin()
        self.sampler.reset()
        offset, since = self.audit.mark(), fleet.now_utc()
        t0 = time.monotonic()
        await group.trigger()
        triggered = time.monotonic() - t0
        left = await group.wait_done(within)
        t1 = time.monotonic()
        await asyncio.sleep(0.5)
        verbs = self.audit.count(offset, side, since, fleet.now_utc())
        tracks = group.tracks()
        if self.samples is not None:
            with self.samples.open("a") as out:
                for release, track in zip(releases, tracks, strict=True):
                    row = {
                        "size": size,
                        "side": side,
                        "release": f"{release.namespace}/{release.name}",
                        # CLOCK_MONOTONIC, the same in every process: for joining other logs
                        "origin": t0,
                    }
                    out.write(json.dumps(row | track.timings(t0)) + "\n")
        done = [t for t in tracks if t.done is not None]
        lats = [x for t in tracks for x in t.latencies()]
        finish = max((t.done for t in done if t.done), default=math.nan) - t0
        total = sum(verbs.values())
        rss = self.sampler.rss_mib(side)
        cpu = proc.cpu()  # the releases', not the teardown's that follows
        if side == OURS and not left and size >= self.summary.get("size", 0):
            self.summary.update(size=size, finish=finish, rss=rss)
        say(
            f"{side}: {size} releases: {len(done)} done in {finish:.1f} s (triggered in "
            f"{triggered:.1f} s), {total} requests, load {self.sampler.load_text}"
        )
        await self.clean()
        return (
            f"| {size} | {side} | {bench_stats.fmt_ms(bench_stats.percentile(lats, 50))} | "
            f"{bench_stats.fmt_ms(bench_stats.percentile(lats, 99))} | "
            f"{bench_stats.fmt_s(finish)} (templates changed in {triggered:.1f} s) | "
            f"{len(left)} | {total / (t1 - t0):.1f} | "
            f"{total / size:.1f} ({per_release(verbs, size)}) | "
            f"{cpu:.1f} s | {rss:.0f} MiB | {self.sampler.load_text} |"
        )

    # -------------------------------------------------------------------------- 3: restart
    async def restart(self, size: int, wait: int, within: float) -> None:
        self.fresh_controller()
        strategy = {
            "canary": {
                "steps": [{"replicas": "50%", "duration": wait}, {"replicas": "100%"}],
            },
            "releaseMode": "batch",
        }
        releases = [
            peer_release.Release(f"r{i:04d}", f"{PREFIX}restart-{i // PER_NAMESPACE}", 2, (50, 100))
            for i in range(size)
        ]
        self.namespaces += sorted({r.namespace for r in releases})
        group = Fleet(self.kube, self.observer, OURS, releases, strategy)
        say(f"restart: {size} releases (step 1 waits {wait} s): creating")
        await group.prepare(within=max(300, size * 2.0))
        self.sampler.reset()
        await group.trigger()

        def waiting() -> int:
            return sum(1 for t in group.tracks() if t.steps and t.steps[-1][1:] == (1, "Waiting"))

        deadline = time.monotonic() + wait * 0.8
        while True:
            if waiting() == size or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        at_kill = {id(t): t.steps[-1][1:] if t.steps else (0, "") for t in group.tracks()}
        in_wait = waiting()
        say(f"restart: {in_wait}/{size} releases in step 1's wait; kill -9 of the controller")
        killed = time.monotonic()
        assert self.ctl.proc is not None
        self.ctl.proc.send_signal(signal.SIGKILL)
        self.ctl.proc.wait(10)
        self.ctl.start()
        up = time.monotonic()
        self.sampler.pids[OURS] = self.pid_of_ours()
        say(f"restart: serving again {up - killed:.1f} s after the kill")
        left = await group.wait_done(within, what="releases after the restart")
        moved, late = [], []
        for t in group.tracks():
            after = [s for s in t.steps if s[0] > killed and s[1:] != at_kill[id(t)]]
            if not after:
                continue
            moved.append(after[0][0] - killed)
            started = [s[0] for s in t.steps if s[1:] == (1, "Waiting")]
            if started:  # 0: on time (the wait counts from the step's start, seen earlier)
                late.append(max(0.0, after[0][0] - max(up, started[0] + wait)))
        problems = await self.timeline_problems(releases)
        rows = [
            "| measure | value |",
            "|---|---|",
            f"| releases in flight at the kill (in step 1's {wait} s wait) | {size} ({in_wait}) |",
            f"| kill -9 → webhook served again | {up - killed:.1f} s |",
            f"| kill -9 → every release moved again | "
            f"{bench_stats.fmt_s(max(moved, default=math.nan))} "
            f"({len(moved)}/{size} moved) |",
            f"| a release's move after its wait ended (or after the restart), p50 / p99 / max | "
            f"{bench_stats.fmt_s(bench_stats.percentile(late, 50))} / "
            f"{bench_stats.fmt_s(bench_stats.percentile(late, 99))} / "
            f"{bench_stats.fmt_s(max(late, default=math.nan))} |",
            f"| releases not done {within:.0f} s after the restart | {len(left)} |",
            f"| timelines with a step repeated or skipped | {len(problems)}"
            + (f": {problems[:3]}" if problems else "")
            + " |",
        ]
        self.add(
            f"### Restart under load (load {self.sampler.load_text})\n\n" + "\n".join(rows) + "\n"
        )
        await self.clean()

    async def timeline_problems(self, releases: list[peer_release.Release]) -> list[str]:
        problems = []
        for ns in sorted({r.namespace for r in releases}):
            for cr in await self.kube.list(CR_API, KIND, ns):
                timeline = (cr.get("status") or {}).get("timeline") or []
                problem = steps_problem(timeline) or bench_stats.started_twice(timeline)
                if problem:
                    problems.append(f"{ns}/{cr['metadata']['name']}: {problem}")
        return problems

    # -------------------------------------------------------------------------- 4: idle
    async def idle(self, count: int, within: float, clean: bool) -> None:
        self.fresh_controller()
        releases = [
            peer_release.Release(f"i{i:05d}", f"{PREFIX}idle-{i // PER_NAMESPACE}", 1, (100,))
            for i in range(count)
        ]
        self.namespaces += sorted({r.namespace for r in releases})
        group = Fleet(self.kube, self.observer, OURS, releases)
        self.sampler.reset()
        say(f"idle: creating {count} rollouts")
        took, unready = await group.prepare(within=within)
        healthy = f"{count - unready} of {count}" if unready else f"{count}"
        say(f"idle: {healthy} rollouts Healthy in {took:.1f} s; 30 s idle, then 60 s counted")
        await asyncio.sleep(30)
        rss = fleet.proc_memory_kib(self.pid(OURS), "VmRSS") / 1024
        offset, since = self.audit.mark(), fleet.now_utc()
        await asyncio.sleep(60)
        verbs = self.audit.count(offset, OURS, since, fleet.now_utc())
        rows = [
            "| measure | value |",
            "|---|---|",
            f"| {count} rollouts created, {healthy} Healthy | {took:.1f} s |",
            f"| controller RSS after 30 s idle (peak while creating) | {rss:.0f} MiB "
            f"({self.sampler.rss_mib(OURS):.0f} MiB) |",
            f"| API requests per minute while idle | {sum(verbs.values())} "
            f"({by_verb([verbs]) or 'none'}) |",
        ]
        self.add(
            f"### {count} idle rollouts (ours; load {self.sampler.load_text})\n\n"
            + "\n".join(rows)
            + "\n"
        )
        if clean:
            await self.clean()


def median(values: list[float] | list[int]) -> float:
    return bench_stats.percentile(values, 50)


def per_release(verbs: Counter[str], releases: int) -> str:
    """Requests of a part, by verb, divided by its releases."""
    return ", ".join(f"{v} {n / releases:.3g}" for v, n in sorted(verbs.items()))


def by_verb(counts: list[Counter[str]]) -> str:
    """Median requests per release for each verb."""
    verbs = sorted({v for c in counts for v in c})
    return ", ".join(f"{v} {median([c.get(v, 0) for c in counts]):g}" for v in verbs)


# ------------------------------------------------------------------------------ report
def header(cluster: Cluster, args: argparse.Namespace) -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    mem = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    versions = world("versions").splitlines()
    keep = [v.split("(")[0].strip() for v in versions if v.startswith(("kubernetes", "peer"))]
    return (
        f"## `make bench` ({datetime.date.today().isoformat()}, commit {commit})\n\n"
        f"`hack/bench/bench.py {' '.join(args.argv)}`: machine {os.cpu_count()} cores, "
        f"{mem / 1024 / 1024:.0f} GiB, {platform.python_implementation()} "
        f"{platform.python_version()}; {'; '.join(' '.join(k.split()) for k in keep)}; "
        f"world `{cluster.name}` (kwok pods, audit log). Load average (1 min) per part, "
        "sampled every second. How each figure is taken: `hack/bench/bench.py`'s docstring "
        "and `hack/bench/fleet.py`.\n"
    )


def write_docs(path: Path, text: str) -> None:
    old = path.read_text()
    block = f"{MARK_BEGIN}\n{text}\n{MARK_END}"
    if MARK_BEGIN in old and MARK_END in old:
        head, rest = old.split(MARK_BEGIN, 1)
        new = head + block + rest.split(MARK_END, 1)[1]
    elif "## Test world" in old:
        head, rest = old.split("## Test world", 1)
        new = f"{head}{block}\n\n## Test world{rest}"
    else:
        new = f"{old.rstrip()}\n\n{block}\n"
    path.write_text(new)


def last_line(summary: dict[str, float]) -> str:
    def num(key: str, spec: str) -> str:
        value = summary.get(key, math.nan)
        return "n/a" if math.isnan(value) else format(value, spec)

    return (
        f"bench: step p50 ours/kruise = {num('step_ratio', '.2f')}, api requests ours/kruise = "
        f"{num('request_ratio', '.2f')}, {num('size', '.0f')} releases done in "
        f"{num('finish', '.1f')} s, rss {num('rss', '.0f')} MiB"
    )


# ------------------------------------------------------------------------------ main
@contextlib.contextmanager
def own_world(name: str | None) -> Iterator[str]:
    if name:
        yield name
        return
    name = f"bench-{os.getpid()}"
    say(f"starting a world of its own: world.py up --audit --name {name}")
    try:
        world("up", "--audit", "--name", name)
        world("peer", "kruise-rollout", "--name", name)
        yield name
    finally:
        say(f"stopping world {name}")
        world("down", "--name", name)


async def run(args: argparse.Namespace, name: str) -> str:
    cluster = cluster_of(name)
    kube = await Kube.connect(str(cluster.kubeconfig))
    watch_kube = await Kube.connect(str(cluster.kubeconfig))
    observer = Observer(watch_kube, PREFIX)
    observer.start()
    with running_controller(cluster, verbose=False) as ctl:
        assert ctl.proc is not None
        sampler = Sampler({OURS: ctl.proc.pid, KRUISE: peer_pid(cluster)})
        sampling = asyncio.create_task(sampler.run())
        head = header(cluster, args)

        def written(sections: list[str]) -> None:
            if not args.no_docs:
                write_docs(args.docs, head + "\n" + "\n".join(sections))

        bench = Bench(
            kube,
            observer,
            cluster,
            ctl,
            Audit(Path(cluster.env["VP_AUDIT_LOG"])),
            sampler,
            written=written,
            samples=args.samples,
        )
        try:
            if args.releases:
                say(f"part 1: side by side, {args.releases} releases of each style each")
                await bench.side_by_side(args.releases)
            if args.scale:
                say(f"part 2: scale {args.scale} (Kruise Rollout at {args.kruise_scale})")
                await bench.scale(args.scale, args.kruise_scale, args.timeout)
            if args.restart:
                say(f"part 3: restart with {args.restart} releases in flight")
                await bench.restart(args.restart, args.restart_wait, args.timeout)
            if args.idle:
                say(f"part 4: {args.idle} idle rollouts")
                await bench.idle(args.idle, args.timeout * 2, clean=bool(args.world))
        finally:
            sampling.cancel()
            if args.world:  # a world of its own is removed whole: no need to delete anything
                with contextlib.suppress(Exception):
                    await bench.clean()
            await observer.stop()
            await kube.close()
            await watch_kube.close()
    return head + "\n" + "\n".join(bench.sections) + "\n" + last_line(bench.summary)


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.replace(",", " ").split()]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bench.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--world", help="an existing world (up --audit, with the peer)")
    parser.add_argument("--releases", type=int, default=5, help="side by side, per style")
    parser.add_argument("--scale", type=sizes, default=sizes("1 100 500 1000"))
    parser.add_argument("--kruise-scale", type=sizes, default=sizes("1 100"))
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--restart", type=int, default=1000)
    parser.add_argument("--restart-wait", type=int, default=180)
    parser.add_argument("--timeout", type=float, default=900, help="per part, seconds")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--samples",
        type=Path,
        help="append each scale part's per-release timings here (JSON lines, seconds from the "
        "part's trigger: when each step's pods were Ready and when the next step was allowed)",
    )
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    with own_world(args.world) as name:
        text = asyncio.run(run(args, name))
    body, line = text.rsplit("\n", 1)
    if not args.no_docs:
        write_docs(args.docs, body.rstrip() + "\n")
        say(f"wrote {args.docs}")
    print(body)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
