"""Driving the examples under ``examples/`` end to end, the way a user does.

Users' actions go through the real command-line tools (``vela up``, ``vela status``,
``kubectl-progressive``); the test only *reads* the cluster through the project's API client,
to check pods and traffic objects at every pause.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.support.cluster import REPO, Cluster
from vela_progressive.core.model import API_GROUP, API_VERSION, KIND
from vela_progressive.core.status import Phase
from vela_progressive.shell.kube import Kube

Obj = dict[str, Any]
T = TypeVar("T")

EXAMPLES = REPO / "examples"
CLI = Path(sys.executable).parent / "kubectl-progressive"
CR_API = f"{API_GROUP}/{API_VERSION}"
APP_API = "core.oam.dev/v1beta1"

#: Metadata the API server manages; never compared.
SERVER_MANAGED = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")
#: KubeVela's bookkeeping on what it applies (revision labels, last-applied configuration):
#: it changes with every revision by design, so it is left out of "restored exactly".
VELA_KEYS = ("app.oam.dev/", "oam.dev/")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float, what: str, interval: float = 0.3
) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + within
    last: object = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f}s waiting for {what}; last: {last!r}", False)
        await asyncio.sleep(interval)


def normalized(obj: Obj) -> Obj:
    """What must come back exactly after a release: spec, owners, our labels and annotations.

    Server-managed metadata and KubeVela's per-revision bookkeeping keys are left out; anything
    else (in particular a leftover ``rollout.vela-progressive.io/*`` key) counts.
    """
    meta = obj.get("metadata") or {}

    def own(values: dict[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (values or {}).items() if not k.startswith(VELA_KEYS)}

    return {
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "labels": own(meta.get("labels")),
        "annotations": own(meta.get("annotations")),
        "ownerReferences": meta.get("ownerReferences"),
        "spec": obj.get("spec"),
    }


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def timeline(status: Obj) -> list[tuple[int, str, str]]:
    """``(step, state, message)`` of every timeline entry, in order."""
    return [(e["step"], e["state"], e.get("message", "")) for e in status.get("timeline", [])]


def seconds_in(status: Obj, step: int, state: str) -> float:
    """How long the (last) timeline entry ``step``/``state`` lasted."""
    entries = [e for e in status.get("timeline", []) if e["step"] == step and e["state"] == state]
    assert entries, f"no timeline entry for step {step} {state}: {timeline(status)}"
    entry = entries[-1]
    return (parse_time(entry["finishedAt"]) - parse_time(entry["startedAt"])).total_seconds()


def rolled_component(app: Obj) -> Obj:
    """The component of an Application manifest that carries the progressive-rollout trait."""
    (comp,) = [
        c
        for c in app["spec"]["components"]
        if any(t["type"] == "progressive-rollout" for t in c.get("traits", []))
    ]
    return comp  # type: ignore[no-any-return]


def component_image(comp: Obj) -> str:
    """The image a component runs: its ``image`` property, or (``k8s-objects``) the first
    container of the first object with a pod template."""
    props = comp["properties"]
    if "image" in props:
        return str(props["image"])
    for obj in props.get("objects", []):
        template = obj.get("spec", {}).get("template")
        if template:
            return str(template["spec"]["containers"][0]["image"])
    raise AssertionError(f"component {comp['name']} names no image")


def trait_properties(app: Obj) -> Obj:
    """The progressive-rollout trait's properties in an Application manifest (to edit)."""
    (trait,) = [t for t in rolled_component(app)["traits"] if t["type"] == "progressive-rollout"]
    return trait["properties"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Example:
    """One directory of ``examples/``: app-v1.yaml, app-v2.yaml, ... and a README."""

    directory: Path

    @classmethod
    def named(cls, name: str) -> Example:
        example = cls(EXAMPLES / name)
        assert example.manifest(1).is_file(), f"{example.manifest(1)} is missing"
        return example

    def manifest(self, version: int) -> Path:
        return self.directory / f"app-v{version}.yaml"

    def load(self, version: int) -> Obj:
        loaded: Obj = yaml.safe_load(self.manifest(version).read_text())
        return loaded

    @property
    def app(self) -> str:
        return str(self.load(1)["metadata"]["name"])

    def _component(self, version: int) -> Obj:
        comps = self.load(version)["spec"]["components"]
        (comp,) = [
            c for c in comps if any(t["type"] == "progressive-rollout" for t in c.get("traits", []))
        ]
        return comp  # type: ignore[no-any-return]

    @property
    def component(self) -> str:
        return str(self._component(1)["name"])

    def image(self, version: int) -> str:
        return component_image(self._component(version))


class Release:
    """An example Application in its own namespace, and what a user sees of its releases."""

    def __init__(self, cluster: Cluster, kube: Kube, namespace: str, example: Example) -> None:
        self.cluster = cluster
        self.kube = kube
        self.ns = namespace
        self.example = example
        self.app = example.app
        self.component = example.component

    # ---------------------------------------------------------------- what the user runs
    def vela_up(self, version: int | Path) -> subprocess.CompletedProcess[str]:
        """``vela up -f app-vN.yaml`` (or the given file) in the test's namespace."""
        path = self.example.manifest(version) if isinstance(version, int) else version
        return self.cluster.vela("up", "-f", str(path), "-n", self.ns)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl progressive ARGS -n NS`` (the installed console script)."""
        return self.cluster.run([str(CLI), *args, "-n", self.ns], check=check, timeout=timeout)

    def approve(self) -> None:
        done = self.cli("approve", self.app)
        assert "approved step" in done.stdout, done.stdout

    def watch(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """``kubectl progressive status APP -w -t TIMEOUT``; the caller checks the exit code."""
        return self.cli(
            "status", self.app, "-w", "-t", str(int(timeout)), check=False, timeout=timeout + 60
        )

    def vela_status(self) -> str:
        return self.cluster.vela("status", self.app, "-n", self.ns).stdout

    def trait_message(self) -> str | None:
        """The ``Message:`` line of the progressive-rollout trait in ``vela status``."""
        lines = self.vela_status().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "Type: progressive-rollout":
                for follow in lines[i + 1 : i + 4]:
                    if follow.strip().startswith("Message:"):
                        return follow.split("Message:", 1)[1].strip()
        return None

    def expect_message(self, prefix: str, *parts: str, within: float = 90) -> str:
        """``vela status`` shows the trait's message starting with ``prefix`` and saying every
        one of ``parts``.

        KubeVela refreshes the trait's status when its workflow re-checks the component's
        health (a backoff that grows while a step waits), so the message can lag the rollout.
        """
        deadline = time.monotonic() + within
        while True:
            message = self.trait_message() or ""
            if message.startswith(prefix) and all(part in message for part in parts):
                return message
            if time.monotonic() > deadline:
                pytest.fail(
                    f"vela status did not show a trait message starting with {prefix!r} and "
                    f"saying {parts} within {within:.0f}s; last: {message!r}",
                    pytrace=False,
                )
            time.sleep(2)

    # ---------------------------------------------------------------- reading the cluster
    async def application(self) -> Obj:
        got = await self.kube.get(APP_API, "Application", self.app, self.ns)
        assert got is not None, f"Application {self.ns}/{self.app} does not exist"
        return got

    async def latest_revision(self) -> str:
        status = (await self.application()).get("status") or {}
        return str((status.get("latestRevision") or {}).get("name", ""))

    async def rollout(self) -> Obj | None:
        return await self.kube.get(CR_API, KIND, self.component, self.ns)

    async def status(self) -> Obj:
        cr = await self.rollout()
        return (cr or {}).get("status") or {}

    async def get(self, api_version: str, kind: str, name: str) -> Obj | None:
        return await self.kube.get(api_version, kind, name, self.ns)

    async def pods(self) -> Counter[str]:
        """Images of the component's pods that are Ready (terminating pods left out)."""
        pods = await self.kube.list(
            "v1", "Pod", self.ns, label_selector=f"app.oam.dev/component={self.component}"
        )
        images: Counter[str] = Counter()
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (pod.get("status") or {}).get("conditions", [])
            )
            images[pod["spec"]["containers"][0]["image"] if ready else "(not ready)"] += 1
        return images

    async def snapshot(self, *refs: tuple[str, str, str]) -> list[Obj]:
        """The normalized objects ``(apiVersion, kind, name)``, to compare before/after."""
        out = []
        for api_version, kind, name in refs:
            obj = await self.get(api_version, kind, name)
            assert obj is not None, f"{kind} {self.ns}/{name} does not exist"
            out.append(normalized(obj))
        return out

    # ---------------------------------------------------------------- waiting
    async def wait_app(self, phase: str = "running", within: float = 120) -> Obj:
        seen: list[str] = [""]

        async def probe() -> Obj | None:
            app = await self.application()
            status = app.get("status") or {}
            unhealthy = [
                f"{c.get('name')}: {c.get('message') or ''}"
                for c in status.get("services") or []
                if not c.get("healthy")
            ]
            seen[0] = f"status {status.get('status')!r}, unhealthy {unhealthy}"
            return app if status.get("status") == phase else None

        try:
            return await eventually(probe, within, f"Application {self.app} {phase}", interval=0.5)
        except pytest.fail.Exception as exc:
            raise pytest.fail.Exception(f"{exc.msg} ({seen[0]})", pytrace=False) from None

    async def wait_pods(self, expected: dict[str, int], within: float = 90) -> None:
        """Exactly these Ready pods per image, nothing else (no extra, none unready)."""

        async def probe() -> bool:
            return dict(await self.pods()) == expected

        await eventually(probe, within, f"pods {expected} (have {dict(await self.pods())})")

    async def wait_state(
        self, step: int, state: str, within: float = 90, phase: str = Phase.PROGRESSING
    ) -> Obj:
        """The rollout of the Application's latest revision at ``step`` in ``state``."""

        async def probe() -> Obj | None:
            cr = await self.rollout()
            status = (cr or {}).get("status") or {}
            revision = ((cr or {}).get("spec") or {}).get("revision", {}).get("name")
            if (
                revision
                and revision == await self.latest_revision()
                and status.get("observedRevision") == revision
                and status.get("phase") == phase
                and status.get("currentStep") == step
                and status.get("stepState") == state
            ):
                return status
            return None

        return await eventually(probe, within, f"{self.component}: step {step} {state}")

    async def wait_phase(self, phase: str, within: float = 90) -> Obj:
        """The rollout of the Application's latest revision in ``phase``."""

        async def probe() -> Obj | None:
            cr = await self.rollout()
            status = (cr or {}).get("status") or {}
            revision = ((cr or {}).get("spec") or {}).get("revision", {}).get("name")
            if (
                revision
                and revision == await self.latest_revision()
                and status.get("observedRevision") == revision
                and status.get("phase") == phase
            ):
                return status
            return None

        return await eventually(probe, within, f"{self.component}: phase {phase}")

    async def assert_workflow_waits(self) -> None:
        """KubeVela's workflow waits for the release: the Application is not done yet."""
        status = (await self.application()).get("status") or {}
        workflow = status.get("workflow") or {}
        assert status.get("status") == "runningWorkflow", (
            f"Application {self.app} is {status.get('status')!r} while its release waits "
            f"(workflow finished at {workflow.get('endTime')}): the trait reported healthy "
            "before the release of this revision ended"
        )
        assert not workflow.get("finished"), workflow

    async def deploy_v1(self, replicas: int) -> None:
        """``vela up`` version 1 and wait until it runs: not a release (nothing stable yet)."""
        self.vela_up(1)
        await self.wait_app("running")
        status = await self.wait_phase(Phase.HEALTHY)
        assert not status.get("timeline"), f"the first version ran steps: {timeline(status)}"
        await self.wait_pods({self.example.image(1): replicas})

    async def wait_released(self, version: int, replicas: int, within: float = 180) -> Obj:
        """The release of ``version`` finished: rollout Healthy, Application running, every pod
        Ready on the version's image. Returns the rollout status."""
        status = await self.wait_phase(Phase.HEALTHY, within)
        await self.wait_pods({self.example.image(version): replicas})
        await self.wait_app("running", within)
        return status

    async def assert_absent(self, *refs: tuple[str, str, str]) -> None:
        for api_version, kind, name in refs:
            assert await self.get(api_version, kind, name) is None, f"{kind} {name} was left behind"
