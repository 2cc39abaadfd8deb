"""Turn a validated strategy into a release plan for a workload of a given size.

Pods per step
    ``replicas: N`` (an int) is ``min(N, replicas)``. ``replicas: "P%"`` is
    ``ceil(replicas * P / 100)``, as Kruise computes it
    (``intstr.GetScaledValueFromIntOrPercent(..., roundUp=true)`` in ``CalculateBatchReplicas``):
    rounding up means a step with P > 0 always moves at least one pod of a workload that has
    any, and never more than the workload has. A step without ``replicas`` uses its ``weight``
    as the percentage (Kruise's v1alpha1 semantics). The validator rejects a step with neither.

    >>> from vela_progressive.core.model import Step, Strategy
    >>> p = plan(Strategy(steps=(Step(replicas="20%"), Step(replicas="50%"),
    ...                          Step(replicas="100%"))), "StatefulSet", 10)
    >>> [(s.new_pods, s.old_pods, s.partition) for s in p.steps]
    [(2, 8, 8), (5, 5, 5), (10, 0, 0)]
    >>> [s.new_pods for s in plan(Strategy(steps=(Step(replicas="1%"), Step(replicas="34%"))),
    ...                           "StatefulSet", 3).steps]     # ceil(0.03) = 1, ceil(1.02) = 2
    [1, 2]
    >>> [s.new_pods for s in plan(Strategy(steps=(Step(replicas=5), Step(weight=60))),
    ...                           "StatefulSet", 8).steps]     # 5 pods, 60% of 8 = 4.8 -> 5
    [5, 5]

    Mixed units (an int, then a percentage) are compared here, against the real size: fewer
    pods than the step before is an :class:`~vela_progressive.core.validation.InvalidSpec`.

    >>> plan(Strategy(steps=(Step(replicas=5), Step(replicas="50%"))), "StatefulSet", 8)
    Traceback (most recent call last):
    ...
    vela_progressive.core.validation.InvalidSpec: canary.steps[1].replicas: '50%' is 4 of 8 \
pods, fewer than the 5 of canary.steps[0]; replicas never decrease — use at least 5 pods here, \
or the same unit (int or %) in both steps

Release modes
    *canary* (Deployments): an extra ``<name>-canary`` Deployment runs ``new_pods`` pods; the
    stable Deployment keeps all its pods until the release finalises (``old_pods == replicas``).
    *batch*: the workload itself moves ``new_pods`` pods; the StatefulSet-like partition is
    ``replicas - new_pods`` (pods with an ordinal >= partition run the new revision).

    >>> c = plan(Strategy(steps=(Step(replicas="30%", weight=30),)), "Deployment", 10)
    >>> c.mode.value, c.steps[0].canary_replicas, c.steps[0].old_pods, c.steps[0].partition
    ('canary', 3, 10, None)

Waits, in this order (the first rule that applies wins)
    1. ``auto: true``: no step waits.
    2. The last step with ``replicas: "100%"`` (or no replicas and ``weight: 100``) does not
       wait: the release finalises right away. Kruise does the same (``doCanaryPaused``:
       "if it is the last step, and 100% of pods, then return true"). A last step below 100%
       keeps its wait, so the release pauses (for approval or the duration) before finalising.
    3. ``stepPartition: K``: steps 1..K run without waiting and every later step waits for
       approval; per-step durations are then ignored. This is the KubeVela ``kruise-rollout``
       trait's rendering (``k <= stepPartition - 1`` with a 0-based ``k`` gets ``duration: 0``).
    4. No ``duration``: wait for approval. ``duration: 0``: no wait. Else wait that many seconds.

    >>> steps = (Step(replicas=1), Step(replicas=2, duration=60), Step(replicas="100%"))
    >>> [s.wait.describe() for s in plan(Strategy(steps=steps), "StatefulSet", 4).steps]
    ['approval', '60s', '-']
    >>> [s.wait.describe() for s in plan(Strategy(steps=steps, step_partition=1),
    ...                                  "StatefulSet", 4).steps]
    ['-', 'approval', '-']
"""

from __future__ import annotations

import math
from typing import Any

from vela_progressive.core.model import (
    Match,
    Plan,
    PlannedStep,
    ReleaseMode,
    Step,
    Strategy,
    Wait,
    WaitKind,
)
from vela_progressive.core.validation import InvalidSpec, Problem

__all__ = [
    "describe_match",
    "describe_matches",
    "describe_step",
    "describe_traffic",
    "failure_threshold_pods",
    "match_to_dict",
    "plan",
    "plan_to_status",
    "scaled",
]


def scaled(value: int | str, total: int) -> int:
    """``value`` (an int or ``"N%"``) in pods of ``total``, rounded up, within ``[0, total]``.

    >>> scaled("20%", 10), scaled("25%", 10), scaled("1%", 1), scaled("0%", 10)
    (2, 3, 1, 0)
    >>> scaled(15, 10), scaled("50%", 0)
    (10, 0)
    """
    if isinstance(value, str):
        percent = int(value.strip().removesuffix("%"))
        pods = math.ceil(total * percent / 100)
    else:
        pods = value
    return max(0, min(pods, total))


def _step_replicas(step: Step, index: int) -> int | str:
    """The step's pods as written: ``replicas``, else the weight as a percentage."""
    if step.replicas is not None:
        return step.replicas
    if step.weight is not None:
        return f"{step.weight}%"
    raise InvalidSpec(
        [
            Problem(
                f"canary.steps[{index}]",
                "sets neither replicas nor weight",
                "set replicas (pods on the new version, e.g. '20%') and/or weight (traffic %)",
            )
        ]
    )


def _is_full(step: Step, index: int) -> bool:
    return _step_replicas(step, index) == "100%"


def _wait(strategy: Strategy, index: int, step: Step) -> Wait:
    """The wait after step ``index`` (1-based); see the module docstring for the rules."""
    last = index == len(strategy.steps)
    if last and strategy.scale_down_delay_seconds is not None:
        # Blue-green's switch: the old set stays this long for an instant rollback.
        delay = strategy.scale_down_delay_seconds
        return Wait(WaitKind.DURATION, delay) if delay else Wait(WaitKind.NONE)
    if strategy.auto or (last and _is_full(step, index - 1)):
        return Wait(WaitKind.NONE)
    if strategy.step_partition is not None:
        return Wait(WaitKind.NONE) if index <= strategy.step_partition else Wait(WaitKind.APPROVAL)
    if step.duration is None:
        return Wait(WaitKind.APPROVAL)
    if step.duration == 0:
        return Wait(WaitKind.NONE)
    return Wait(WaitKind.DURATION, step.duration)


def plan(strategy: Strategy, kind: str, replicas: int) -> Plan:
    """The release plan of ``strategy`` for a ``kind`` workload of ``replicas`` pods.

    ``replicas`` is the workload's size now (for a DaemonSet: the number of nodes it runs on,
    which the caller counts).

    >>> from vela_progressive.core.model import Step, Strategy
    >>> p = plan(Strategy(steps=(Step(replicas="50%"),)), "StatefulSet", 0)
    >>> p.steps[0].new_pods, p.steps[0].partition
    (0, 0)
    """
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, got {replicas}")
    mode = strategy.mode_for(kind)
    planned: list[PlannedStep] = []
    previous: tuple[int, int] | None = None  # (0-based step, pods)
    for i, step in enumerate(strategy.steps):
        wanted = _step_replicas(step, i)
        new = scaled(wanted, replicas)
        if previous is not None and new < previous[1]:
            j, before = previous
            raise InvalidSpec(
                [
                    Problem(
                        f"canary.steps[{i}].replicas",
                        f"{wanted!r} is {new} of {replicas} pods, fewer than the {before} of "
                        f"canary.steps[{j}]; replicas never decrease",
                        f"use at least {before} pods here, or the same unit (int or %) "
                        "in both steps",
                    )
                ]
            )
        previous = (i, new)
        canary = mode is ReleaseMode.CANARY
        beside = mode.keeps_old_set  # canary and blue-green: every old pod keeps running
        planned.append(
            PlannedStep(
                index=i + 1,
                new_pods=new,
                old_pods=replicas if beside else replicas - new,
                weight=step.weight,
                matches=step.matches,
                wait=_wait(strategy, i + 1, step),
                partition=None if beside else replicas - new,
                canary_replicas=new if canary else None,
            )
        )
    return Plan(kind=kind, replicas=replicas, mode=mode, steps=tuple(planned))


def failure_threshold_pods(strategy: Strategy, new_pods: int) -> int:
    """New-revision pods that may stay unready while a step still counts as done.

    ``failureThreshold`` is an int or a percentage of the step's new pods, rounded up (Kruise's
    ``allowedUnavailable``). Like Kruise, a step with new pods needs at least one of them Ready,
    so the result is at most ``new_pods - 1``. Unset means 0.

    >>> from vela_progressive.core.model import Step, Strategy
    >>> s = Strategy(steps=(Step(replicas=1),), failure_threshold="20%")
    >>> failure_threshold_pods(s, 10), failure_threshold_pods(s, 3), failure_threshold_pods(s, 1)
    (2, 1, 0)
    >>> failure_threshold_pods(Strategy(steps=(), failure_threshold=5), 4)
    3
    """
    if strategy.failure_threshold is None or new_pods <= 0:
        return 0
    return min(scaled(strategy.failure_threshold, new_pods), new_pods - 1)


# --------------------------------------------------------------------------------------------
# Human and machine forms


def describe_match(match: Match) -> str:
    """One A/B rule in a short human form (conditions ANDed with ``&``).

    >>> from vela_progressive.core.model import CookieMatch, HeaderMatch, PathMatch
    >>> describe_match(Match(headers=(HeaderMatch("x-canary", "true"),),
    ...                      path=PathMatch("/api")))
    'header x-canary=true & path /api*'
    >>> describe_match(Match(headers=(HeaderMatch("user-agent", ".*Android.*",
    ...                                           "RegularExpression"),),
    ...                      cookies=(CookieMatch("beta"),)))
    'header user-agent~.*Android.* & cookie beta=always'
    """
    parts = [f"header {h.name}{_op(h.type)}{h.value}" for h in match.headers]
    parts += [f"cookie {c.name}={c.value}" for c in match.cookies]
    parts += [f"query {q.name}{_op(q.type)}{q.value}" for q in match.query_params]
    if match.path is not None:
        if match.path.type == "PathPrefix":
            parts.append(f"path {match.path.value}*")
        elif match.path.type == "RegularExpression":
            parts.append(f"path ~{match.path.value}")
        else:
            parts.append(f"path {match.path.value}")
    return " & ".join(parts)


def _op(kind: str) -> str:
    return "~" if kind == "RegularExpression" else "="


def describe_matches(matches: tuple[Match, ...]) -> str:
    """Several rules: a request matching any of them goes to the new version (``|``)."""
    return " | ".join(describe_match(m) for m in matches)


def describe_traffic(step: PlannedStep) -> str:
    """``20%``, ``header x=1``, ``20% + header x=1`` or ``-`` (no traffic change)."""
    parts = []
    if step.weight is not None:
        parts.append(f"{step.weight}%")
    if step.matches:
        parts.append(describe_matches(step.matches))
    return " + ".join(parts) or "-"


_STATE_WORDS = {
    "Upgrading": "moving pods",
    "TrafficRouting": "routing traffic",
    "WaitingApproval": "waiting for approval",
    "Completed": "done",
}


def describe_step(planned: PlannedStep, total: int, state: str) -> str:
    """The one-line status message of a step (``status.message``, ``vela status``).

    ``total`` is the number of steps; ``state`` the CR's ``status.stepState``.

    >>> from vela_progressive.core.model import Step, Strategy
    >>> p = plan(Strategy(steps=(Step(replicas="20%", weight=20), Step(replicas="50%", weight=50),
    ...                          Step(replicas="100%", weight=100))), "StatefulSet", 10)
    >>> describe_step(p.steps[1], 3, "WaitingApproval")
    'step 2/3: 5/10 pods, 50% traffic, waiting for approval'
    >>> c = plan(Strategy(steps=(Step(replicas=1, duration=30),)), "Deployment", 4)
    >>> describe_step(c.steps[0], 1, "Waiting")
    'step 1/1: 1 canary pod beside 4 stable, waiting 30s'
    """
    if planned.canary_replicas is not None:
        noun = "pod" if planned.new_pods == 1 else "pods"
        pods = f"{planned.new_pods} canary {noun} beside {planned.old_pods} stable"
    else:
        pods = f"{planned.new_pods}/{planned.new_pods + planned.old_pods} pods"
    parts = [pods]
    if planned.weight is not None:
        parts.append(f"{planned.weight}% traffic")
    if planned.matches:
        parts.append(f"traffic matching {describe_matches(planned.matches)}")
    if state == "Waiting":
        parts.append(f"waiting {planned.wait.seconds}s" if planned.wait.seconds else "waiting")
    else:
        parts.append(_STATE_WORDS.get(state, state[:1].lower() + state[1:]))
    return f"step {planned.index}/{total}: " + ", ".join(parts)


def match_to_dict(match: Match) -> dict[str, Any]:
    """A match in the trait's (and the CR's) field names."""
    out: dict[str, Any] = {}
    if match.headers:
        out["headers"] = [{"type": h.type, "name": h.name, "value": h.value} for h in match.headers]
    if match.cookies:
        out["cookies"] = [{"name": c.name, "value": c.value} for c in match.cookies]
    if match.query_params:
        out["queryParams"] = [
            {"type": q.type, "name": q.name, "value": q.value} for q in match.query_params
        ]
    if match.path is not None:
        out["path"] = {"type": match.path.type, "value": match.path.value}
    return out


def plan_to_status(plan: Plan) -> list[dict[str, Any]]:
    """The plan as the CR's ``status.plan`` list.

    >>> from vela_progressive.core.model import Step, Strategy
    >>> plan_to_status(plan(Strategy(steps=(Step(replicas=2, duration=5),)), "StatefulSet", 4))
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'step': 1, 'newPods': 2, 'oldPods': 2, 'partition': 2, 'matches': [],
      'wait': {'kind': 'duration', 'seconds': 5}}]

    A field a step does not have is left out, not written as ``null``: the API server drops
    a null inside a list, and a plan that differs from what the server keeps would be
    written again on every pass.
    """
    out: list[dict[str, Any]] = []
    for s in plan.steps:
        step: dict[str, Any] = {"step": s.index, "newPods": s.new_pods, "oldPods": s.old_pods}
        for key, value in (
            ("partition", s.partition),
            ("canaryReplicas", s.canary_replicas),
            ("weight", s.weight),
        ):
            if value is not None:
                step[key] = value
        step["matches"] = [match_to_dict(m) for m in s.matches]
        step["wait"] = {"kind": s.wait.kind.value, "seconds": s.wait.seconds}
        out.append(step)
    return out
