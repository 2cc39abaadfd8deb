"""What the runner has done, as the sampler needs to know it: each release's target revision,
the approvals given, aborts asked for, and the violations found."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tests.chaos.apps import Shape


@dataclass
class Release:
    namespace: str
    app: str
    shape: Shape
    number: int
    #: The image of the revision being released (the newest applied).
    target: str
    #: The image every pod ran before the release.
    stable: str
    replicas: int
    #: The largest replica count of the release so far (a user may scale it down mid-step).
    replicas_max: int
    #: Approvals given for ``target``. Raised *before* the approval is written, so the sampler
    #: never reads fewer approvals than the controller may act on.
    approvals: int = 0
    aborted: bool = False
    #: ``target`` reached the workload while the controller was down (killed, or stopped by
    #: SIGSTOP; the sampler sees when): the fail-open hold webhook let it through unheld, so
    #: its pods are not bound by the step allowance (docs/reliability.md: fail-open's cost).
    unheld: bool = False
    #: The sampler has seen ``target`` in the workload's template.
    template_seen: bool = False
    #: The rollout's revision name once it reports releasing ``target`` (what an abort names).
    revision: str | None = None
    #: What the pods must run at the end: ``target``, or ``stable`` after an abort.
    intended: str = ""
    started: float = field(default_factory=time.monotonic)
    #: Wall clock (UTC seconds) when it started: to find its timeline entries and Events.
    started_wall: float = field(default_factory=time.time)
    finished: float | None = None
    events: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.app} #{self.number} ({self.shape.name})"

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.1f}s {what}")


@dataclass(frozen=True)
class Violation:
    invariant: str
    release: str
    detail: str
    at: float


@dataclass
class Ledger:
    releases: list[Release] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    #: (invariant, release label) already reported: one violation per invariant and release;
    #: how many samples saw it is counted in ``samples_violating``.
    _seen: set[tuple[str, str]] = field(default_factory=set)
    samples_violating: int = 0
    #: When the controller was down: [start, end) in monotonic time; end is inf while down.
    down: list[list[float]] = field(default_factory=list)

    def went_down(self) -> None:
        self.down.append([time.monotonic(), float("inf")])

    def came_up(self) -> None:
        self.down[-1][1] = time.monotonic()

    def was_down(self, since: float, until: float) -> bool:
        return any(start < until and end > since for start, end in self.down)

    def violate(self, invariant: str, release: Release, detail: str) -> None:
        self.samples_violating += 1
        key = (invariant, release.label)
        if key in self._seen:
            return
        self._seen.add(key)
        self.violations.append(Violation(invariant, release.label, detail, time.monotonic()))
        release.note(f"VIOLATION {invariant}: {detail}")

    def in_flight(self) -> list[Release]:
        return [r for r in self.releases if r.finished is None]
