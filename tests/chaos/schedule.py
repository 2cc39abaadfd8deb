"""The seeded fault schedule: which fault, when, for how long. Pure: same seed, same schedule.

>>> a, b = Schedule(7), Schedule(7)
>>> [next(a) for _ in range(12)] == [next(b) for _ in range(12)]
True
>>> first = Schedule(7)
>>> sorted(next(first).kind for _ in KINDS) == sorted(KINDS)
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Every fault kind; the first len(KINDS) faults of a schedule are each kind once, shuffled.
KINDS = (
    "controller-kill",  # kill -9; started again after `duration` s
    "controller-freeze",  # SIGSTOP for `duration` s (longer than the 5 s webhook timeout);
    # a newer revision is applied while it is stopped; then SIGCONT
    "apiserver-restart",  # kill -9 kube-apiserver; started again after `duration` s
    "etcd-restart",  # kill -9 etcd (its data kept); started again after `duration` s
    "vela-core-restart",  # kill -9 vela-core; started again after `duration` s
    "reapply-storm",  # every Application poked every 2 s for `duration` s: KubeVela re-applies
    "user-scale",  # a user scales a workload in flight (the Application's scaler trait)
    "newer-revision",  # a newer revision arrives while a release is in flight
    "abort",  # a user aborts a release in flight, then rolls back to the stable revision
)

#: Seconds a fault lasts (restart delay, freeze, storm), by kind; 0: instantaneous.
DURATIONS: dict[str, tuple[float, float]] = {
    "controller-kill": (1.0, 5.0),
    "controller-freeze": (32.0, 38.0),
    "apiserver-restart": (1.0, 4.0),
    "etcd-restart": (1.0, 4.0),
    "vela-core-restart": (1.0, 5.0),
    "reapply-storm": (8.0, 16.0),
}

#: Seconds between the end of one fault and the start of the next.
GAP = (3.0, 10.0)


@dataclass(frozen=True)
class Fault:
    kind: str
    #: Seconds to wait before injecting it (after the previous fault ended).
    gap: float
    duration: float
    #: Picks the release it targets, for the kinds that target one.
    pick: float


class Schedule:
    """An endless seeded stream of faults."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pending = list(KINDS)
        self.rng.shuffle(self.pending)

    def __iter__(self) -> Schedule:
        return self

    def __next__(self) -> Fault:
        kind = self.pending.pop(0) if self.pending else self.rng.choice(KINDS)
        low, high = DURATIONS.get(kind, (0.0, 0.0))
        return Fault(
            kind=kind,
            gap=round(self.rng.uniform(*GAP), 2),
            duration=round(self.rng.uniform(low, high), 2),
            pick=self.rng.random(),
        )
