"""Benchmark of the pure release core: ``decide`` calls and plans per second, on one core.

A decision is one :func:`vela_progressive.core.decide.decide` call on a realistic status: a
10-step canary release with an NGINX routing, 20 replicas, half-way through (step 5 waiting for
approval, a full timeline and plan), the validated strategy built once (as the controller caches
it per generation). A plan is one :func:`vela_progressive.core.planner.plan` call. Prints, last,
``core: N decisions/s, M plans/s``.

    .venv/bin/python hack/bench/core_bench.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from vela_progressive.core import decide as d
from vela_progressive.core.model import Strategy
from vela_progressive.core.planner import plan
from vela_progressive.core.release import Operations
from vela_progressive.core.status import Phase, RolloutStatus, StepState
from vela_progressive.core.validation import validate_properties
from vela_progressive.core.workloads import WorkloadView

T0 = datetime(2026, 12, 1, 12, 0, 0)
PROPERTIES = {
    "canary": {
        "steps": [{"replicas": f"{10 * i}%", "weight": 10 * i} for i in range(1, 11)],
        "trafficRoutings": [{"type": "ingress", "ingressName": "web"}],
    }
}


def scenario() -> tuple[RolloutStatus, d.Rollout, d.Observation, Operations]:
    props = validate_properties(PROPERTIES, component="web", workload_kind="Deployment")
    strategy = Strategy.from_properties(props, "web")
    rollout = d.Rollout("web", "ns", "shop", "shop-v2", "Deployment", 3, strategy)
    view = WorkloadView(
        kind="Deployment",
        name="web",
        namespace="ns",
        replicas=20,
        update_revision="v2",
        stable_revision="v1",
        new_pods=0,
        new_ready=0,
        old_pods=20,
        held=True,
        settled=True,
        app_revision="shop-v2",
    )
    steps = plan(strategy, "Deployment", 20).steps
    status = RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1")
    # Walk the release to step 5 waiting for approval, so the status is realistic.
    now = T0
    obs = d.Observation(view)
    ops = Operations(approved_step=None, paused=False, aborted=False)
    while not (status.current_step == 5 and status.step_state is StepState.APPROVAL):
        # The pods of the current step are Ready, and every earlier step is approved.
        pods = steps[max(status.current_step, 1) - 1].new_pods
        obs = d.Observation(replace(view, new_pods=pods, new_ready=pods), canary_ready=pods)
        ops = Operations(approved_step=status.current_step % 5 or None, paused=False, aborted=False)
        status = d.decide(status, rollout, obs, ops, now).status
        now += timedelta(seconds=10)
    assert status.current_step == 5, status.current_step
    assert status.step_state is StepState.APPROVAL, status.step_state
    return status, rollout, obs, ops


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second: the median of five rounds of ``seconds / 5`` each."""
    rounds = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 5:
            for _ in range(100):
                fn()
            n += 100
        rounds.append(n / elapsed)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args(argv)
    status, rollout, obs, ops = scenario()
    now = T0 + timedelta(minutes=10)
    assert rollout.strategy is not None
    strategy = rollout.strategy
    decisions = rate(lambda: d.decide(status, rollout, obs, ops, now), args.seconds)
    plans = rate(lambda: plan(strategy, "Deployment", 20), args.seconds)
    print(
        f"status: step {status.current_step}/{status.total_steps} {status.step_state}, "
        f"{len(status.timeline)} timeline entries"
    )
    print(f"core: {decisions:,.0f} decisions/s, {plans:,.0f} plans/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
