"""Pure parts of `make bench` (hack/bench/bench.py): percentiles, step latencies from the times
a release was seen at each step, ratios, load ranges, and the timeline checks of the restart.

No I/O: unit-tested in tests/unit/test_bench_stats.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Timeline messages of our controller (vela_progressive.core.decide) that begin a step.
STEP_STARTED = "step started"
#: ... and that begin an attempt at a revision (a release start, a newer revision).
ATTEMPT_STARTS = ("release started", "new revision")


EN_DASH = "\u2013"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default).

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def step_latencies(
    plan: Sequence[int], ready_at: Mapping[int, float], moved_at: Mapping[int, float]
) -> list[float]:
    """Seconds from "every pod of step k Ready" to "the workload patched for step k+1".

    ``ready_at[n]``: first time n new pods were Ready; ``moved_at[n]``: first time n new pods
    were allowed (the patch). One latency per step but the last; a transition not seen in
    both is left out, and a patch seen before the pods (a controller that did not wait)
    counts as 0.
    """
    out: list[float] = []
    for k in range(len(plan) - 1):
        ready, moved = ready_at.get(plan[k]), moved_at.get(plan[k + 1])
        if ready is not None and moved is not None:
            out.append(max(0.0, moved - ready))
    return out


def first_reached(events: Iterable[tuple[float, int]], targets: Iterable[int]) -> dict[int, float]:
    """For each target, the first time a (time, count) sample reached it (count >= target).

    >>> first_reached([(1.0, 1), (2.0, 3), (3.0, 5)], [2, 5, 8])
    {2: 2.0, 5: 3.0}
    """
    wanted = sorted(set(targets))
    found: dict[int, float] = {}
    for at, n in events:
        for target in wanted:
            if target not in found and n >= target:
                found[target] = at
    return found


def ratio_value(ours: float, theirs: float) -> float:
    """``ours / theirs``; NaN when either is missing or theirs is 0."""
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return math.nan
    return ours / theirs


def ratio(ours: float, theirs: float) -> str:
    """:func:`ratio_value` as text, ``n/a`` when it has none."""
    value = ratio_value(ours, theirs)
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def load_range(samples: Sequence[float]) -> str:
    """The 1-minute load averages seen during a part, as ``min`` EN DASH ``max``."""
    if not samples:
        return "?"
    low, high = min(samples), max(samples)
    return f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}{EN_DASH}{high:.1f}"


def started_twice(entries: Sequence[Mapping[str, Any]]) -> str:
    """A step started twice within one attempt at a revision (tests.chaos.runner.steps_problem
    checks the order; this checks the repeats it lets pass).

    An attempt begins with a step-1 entry saying so (a release start or a newer revision).

    >>> def e(step, message="step started"):
    ...     return {"step": step, "message": message}
    >>> started_twice([e(1, "release started"), e(1, "pods ready"), e(2), e(3)])
    ''
    >>> started_twice([e(1, "release started"), e(2), e(2)])
    'step 2 started twice'
    >>> started_twice([e(1, "release started"), e(2), e(1, "new revision: restarted"), e(2)])
    ''
    """
    seen: set[int] = set()
    for entry in entries:
        step = int(entry.get("step") or 0)
        message = str(entry.get("message", ""))
        if step == 1 and message.startswith(ATTEMPT_STARTS):
            seen = {1}
        elif step and message.startswith(STEP_STARTED):
            if step in seen:
                return f"step {step} started twice"
            seen.add(step)
    return ""


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def fmt_s(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds:.1f} s"
