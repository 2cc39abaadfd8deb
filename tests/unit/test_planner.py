"""The release planner: pods per step, modes, waits, failure threshold and messages."""

from __future__ import annotations

import pytest

from vela_progressive.core.model import (
    CookieMatch,
    HeaderMatch,
    Match,
    PathMatch,
    ReleaseMode,
    Step,
    Strategy,
    Wait,
    WaitKind,
)
from vela_progressive.core.planner import (
    describe_match,
    describe_step,
    describe_traffic,
    failure_threshold_pods,
    plan,
    plan_to_status,
    scaled,
)
from vela_progressive.core.validation import InvalidSpec, validate_properties


def _strategy(*steps: Step, **kwargs: object) -> Strategy:
    return Strategy(steps=steps, **kwargs)  # type: ignore[arg-type]


def _pods(strategy: Strategy, replicas: int, kind: str = "StatefulSet") -> list[int]:
    return [s.new_pods for s in plan(strategy, kind, replicas).steps]


def _waits(strategy: Strategy, kind: str = "StatefulSet") -> list[str]:
    return [s.wait.describe() for s in plan(strategy, kind, 10).steps]


# --------------------------------------------------------------------------------------------
# Pods per step


@pytest.mark.parametrize(
    ("value", "total", "pods"),
    [
        ("20%", 10, 2),
        ("25%", 10, 3),  # 2.5 rounds up
        ("1%", 10, 1),  # at least one pod when N > 0
        ("1%", 1, 1),
        ("99%", 10, 10),
        ("100%", 7, 7),
        ("0%", 10, 0),
        ("50%", 0, 0),
        (3, 10, 3),
        (15, 10, 10),  # never more than the workload has
        (0, 10, 0),
    ],
)
def test_scaled_rounds_percentages_up_and_clamps_to_the_workload(
    value: int | str, total: int, pods: int
) -> None:
    assert scaled(value, total) == pods


def test_a_single_replica_workload_moves_its_pod_at_the_first_step() -> None:
    strategy = _strategy(Step(replicas="20%"), Step(replicas="50%"), Step(replicas="100%"))
    assert _pods(strategy, 1) == [1, 1, 1]


def test_a_workload_scaled_to_zero_plans_zero_pods_everywhere() -> None:
    result = plan(_strategy(Step(replicas=2), Step(replicas="100%")), "StatefulSet", 0)
    assert [(s.new_pods, s.old_pods, s.partition) for s in result.steps] == [(0, 0, 0), (0, 0, 0)]


def test_int_replicas_above_the_workload_size_are_clamped() -> None:
    assert _pods(_strategy(Step(replicas=2), Step(replicas=8)), 5) == [2, 5]


def test_percentages_that_round_to_the_same_pod_count_are_accepted() -> None:
    strategy = _strategy(Step(replicas="10%"), Step(replicas="15%"), Step(replicas="20%"))
    assert _pods(strategy, 4) == [1, 1, 1]


def test_a_step_without_replicas_uses_its_weight_as_the_percentage() -> None:
    assert _pods(_strategy(Step(weight=30), Step(weight=100)), 10) == [3, 10]


def test_mixed_units_that_decrease_against_the_real_size_are_rejected() -> None:
    strategy = _strategy(Step(replicas=3), Step(replicas="20%"))
    assert _pods(strategy, 20) == [3, 4]
    with pytest.raises(InvalidSpec) as caught:
        plan(strategy, "StatefulSet", 10)
    assert str(caught.value).startswith(
        "canary.steps[1].replicas: '20%' is 2 of 10 pods, fewer than the 3 of canary.steps[0]"
    )


def test_a_daemonset_is_planned_over_the_node_count_the_caller_passes() -> None:
    result = plan(_strategy(Step(replicas=1), Step(replicas="50%")), "DaemonSet", 5)
    assert result.mode is ReleaseMode.BATCH
    assert [(s.new_pods, s.old_pods, s.partition) for s in result.steps] == [(1, 4, 4), (3, 2, 2)]


def test_negative_replicas_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="replicas must be >= 0"):
        plan(_strategy(Step(replicas=1)), "StatefulSet", -1)


# --------------------------------------------------------------------------------------------
# Modes


def test_a_deployment_defaults_to_canary_mode_with_an_extra_deployment() -> None:
    result = plan(_strategy(Step(replicas="20%"), Step(replicas="100%")), "Deployment", 10)
    assert result.mode is ReleaseMode.CANARY
    assert [(s.canary_replicas, s.old_pods, s.partition) for s in result.steps] == [
        (2, 10, None),
        (10, 10, None),
    ]


def test_batch_mode_partitions_a_deployment_in_place() -> None:
    strategy = _strategy(Step(replicas="20%"), release_mode=ReleaseMode.BATCH)
    step = plan(strategy, "Deployment", 10).steps[0]
    assert (step.new_pods, step.old_pods, step.partition, step.canary_replicas) == (2, 8, 8, None)


def test_every_other_kind_defaults_to_batch_mode() -> None:
    assert plan(_strategy(Step(replicas=1)), "StatefulSet", 3).mode is ReleaseMode.BATCH


def test_steps_keep_their_weight_and_matches() -> None:
    match = Match(headers=(HeaderMatch("x-canary", "true"),))
    step = plan(_strategy(Step(replicas=1, weight=5, matches=(match,))), "Deployment", 4).steps[0]
    assert (step.index, step.weight, step.matches) == (1, 5, (match,))


# --------------------------------------------------------------------------------------------
# Waits


def test_a_step_without_duration_waits_for_approval_and_with_duration_waits_that_long() -> None:
    strategy = _strategy(
        Step(replicas=1), Step(replicas=2, duration=30), Step(replicas=3, duration=0)
    )
    assert [s.wait for s in plan(strategy, "StatefulSet", 10).steps] == [
        Wait(WaitKind.APPROVAL),
        Wait(WaitKind.DURATION, 30),
        Wait(WaitKind.NONE),
    ]


def test_auto_runs_every_step_without_waiting() -> None:
    strategy = _strategy(Step(replicas=1), Step(replicas=2, duration=30), auto=True)
    assert _waits(strategy) == ["-", "-"]


def test_steps_up_to_step_partition_run_on_and_later_steps_wait_for_approval() -> None:
    strategy = _strategy(
        Step(replicas=1, duration=10),
        Step(replicas=2),
        Step(replicas=3, duration=60),
        Step(replicas=4, duration=60),
        step_partition=2,
    )
    # per-step durations are ignored once stepPartition is set (kruise-rollout trait)
    assert _waits(strategy) == ["-", "-", "approval", "approval"]


def test_the_last_step_at_100_percent_finalises_without_waiting() -> None:
    assert _waits(_strategy(Step(replicas=1), Step(replicas="100%"))) == ["approval", "-"]
    assert _waits(_strategy(Step(replicas=1), Step(weight=100))) == ["approval", "-"]


def test_the_last_step_below_100_percent_keeps_its_wait_before_finalising() -> None:
    assert _waits(_strategy(Step(replicas=1), Step(replicas="50%"))) == ["approval", "approval"]
    assert _waits(_strategy(Step(replicas="50%", duration=20))) == ["20s"]


def test_a_100_percent_step_that_is_not_the_last_keeps_its_wait() -> None:
    assert _waits(_strategy(Step(replicas="100%"), Step(replicas="100%"))) == ["approval", "-"]


# --------------------------------------------------------------------------------------------
# Helpers for the controller


@pytest.mark.parametrize(
    ("threshold", "new_pods", "tolerated"),
    [
        (None, 10, 0),
        ("20%", 10, 2),
        ("25%", 10, 3),  # rounded up like Kruise
        ("20%", 1, 0),  # at least one new pod must be ready
        (2, 10, 2),
        (5, 3, 2),
        ("100%", 4, 3),
        ("50%", 0, 0),
    ],
)
def test_failure_threshold_in_pods(
    threshold: int | str | None, new_pods: int, tolerated: int
) -> None:
    strategy = _strategy(Step(replicas=1), failure_threshold=threshold)
    assert failure_threshold_pods(strategy, new_pods) == tolerated


def test_plan_to_status_uses_the_contract_field_names() -> None:
    match = Match(cookies=(CookieMatch("beta"),), path=PathMatch("/v2", "Exact"))
    strategy = _strategy(Step(replicas="50%", weight=50, matches=(match,)))
    assert plan_to_status(plan(strategy, "Deployment", 4)) == [
        {
            "step": 1,
            "newPods": 2,
            "oldPods": 4,
            "canaryReplicas": 2,
            "weight": 50,
            "matches": [
                {
                    "cookies": [{"name": "beta", "value": "always"}],
                    "path": {"type": "Exact", "value": "/v2"},
                }
            ],
            "wait": {"kind": "approval", "seconds": 0},
        }
    ]


def test_plan_to_status_leaves_out_what_a_step_does_not_have() -> None:
    # The API server drops a null inside a list: a plan carrying one would never equal what the
    # server keeps, and every pass would write the status again (found at 100 releases in
    # flight: 10 of a release's 15 status writes changed nothing).
    strategy = _strategy(Step(replicas="50%"), Step(replicas="100%"))
    for step in plan_to_status(plan(strategy, "StatefulSet", 4)):
        assert None not in step.values()
        assert "weight" not in step
        assert "canaryReplicas" not in step


# --------------------------------------------------------------------------------------------
# Messages


def test_describe_step_for_a_batch_step_waiting_for_approval() -> None:
    strategy = _strategy(
        Step(replicas="20%", weight=20), Step(replicas="50%", weight=50), Step(replicas="100%")
    )
    step = plan(strategy, "StatefulSet", 10).steps[1]
    assert describe_step(step, 3, "WaitingApproval") == (
        "step 2/3: 5/10 pods, 50% traffic, waiting for approval"
    )


@pytest.mark.parametrize(
    ("state", "tail"),
    [
        ("Upgrading", "moving pods"),
        ("TrafficRouting", "routing traffic"),
        ("Waiting", "waiting 45s"),
        ("Completed", "done"),
        ("waiting for canary endpoints", "waiting for canary endpoints"),
    ],
)
def test_describe_step_states(state: str, tail: str) -> None:
    match = Match(headers=(HeaderMatch("x-canary", "true"),))
    step = plan(_strategy(Step(replicas=2, duration=45, matches=(match,))), "Deployment", 3).steps[
        0
    ]
    assert describe_step(step, 1, state) == (
        f"step 1/1: 2 canary pods beside 3 stable, traffic matching header x-canary=true, {tail}"
    )


def test_describe_match_forms() -> None:
    match = Match(
        headers=(HeaderMatch("ua", ".*Mobile.*", "RegularExpression"),),
        cookies=(CookieMatch("beta", "always"),),
        query_params=(HeaderMatch("v", "2"),),
        path=PathMatch(".*/beta$", "RegularExpression"),
    )
    assert (
        describe_match(match)
        == "header ua~.*Mobile.* & cookie beta=always & query v=2 & path ~.*/beta$"
    )
    assert describe_match(Match(path=PathMatch("/api", "Exact"))) == "path /api"


def test_describe_traffic_combines_weight_and_matches() -> None:
    a, b = Match(headers=(HeaderMatch("a", "1"),)), Match(cookies=(CookieMatch("c"),))
    steps = plan(
        _strategy(Step(replicas=1), Step(replicas=1, weight=10, matches=(a, b))), "Deployment", 2
    ).steps
    assert [describe_traffic(s) for s in steps] == ["-", "10% + header a=1 | cookie c=always"]


def test_planning_validated_properties_end_to_end() -> None:
    props = validate_properties(
        {
            "canary": {
                "steps": [
                    {"replicas": 1, "matches": [{"headers": [{"name": "x", "value": "1"}]}]},
                    {"replicas": "20%", "weight": 20, "duration": 60},
                    {"weight": 100},
                ],
                "trafficRoutings": [{"type": "ingress"}],
            }
        },
        component="web",
    )
    result = plan(Strategy.from_properties(props, "web"), "Deployment", 10)
    assert [(s.canary_replicas, s.weight, s.wait.describe()) for s in result.steps] == [
        (1, None, "approval"),
        (2, 20, "60s"),
        (10, 100, "-"),
    ]
