"""hack/bench/bench_stats.py: the pure parts of `make bench`."""

from __future__ import annotations

import math

from hack.bench import bench_stats


def test_percentile_interpolates_between_ranks() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 1.0]
    assert bench_stats.percentile(values, 50) == 0.3
    assert math.isclose(bench_stats.percentile(values, 99), 0.976)
    assert bench_stats.percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(bench_stats.percentile([], 50))


def test_step_latency_runs_from_pods_ready_to_the_next_patch() -> None:
    plan = [2, 5, 8, 10]
    ready = {2: 1.0, 5: 3.0, 8: 5.0, 10: 7.0}
    moved = {2: 0.5, 5: 1.25, 8: 3.5, 10: 5.75}
    assert bench_stats.step_latencies(plan, ready, moved) == [0.25, 0.5, 0.75]


def test_step_latency_leaves_out_transitions_not_seen() -> None:
    assert bench_stats.step_latencies([1, 2], {1: 1.0}, {}) == []


def test_a_patch_before_the_pods_counts_as_zero() -> None:
    assert bench_stats.step_latencies([1, 2], {1: 2.0}, {2: 1.0}) == [0.0]


def test_first_reached_takes_the_first_sample_at_or_above_each_target() -> None:
    samples = [(1.0, 0), (2.0, 2), (3.0, 1), (4.0, 5)]
    assert bench_stats.first_reached(samples, [1, 2, 5, 8]) == {1: 2.0, 2: 2.0, 5: 4.0}


def test_ratio_says_n_a_without_a_peer_figure() -> None:
    assert bench_stats.ratio(1.0, 4.0) == "0.25"
    assert bench_stats.ratio(1.0, 0.0) == "n/a"
    assert bench_stats.ratio(math.nan, 1.0) == "n/a"


def test_load_range_shows_min_and_max() -> None:
    assert bench_stats.load_range([1.24, 2.5, 1.9]) == "1.2\u20132.5"
    assert bench_stats.load_range([1.0, 1.04]) == "1.0"
    assert bench_stats.load_range([]) == "?"


def test_a_step_started_twice_in_one_attempt_is_found() -> None:
    timeline = [
        {"step": 1, "message": "release started"},
        {"step": 2, "message": "step started"},
        {"step": 2, "message": "pods ready"},
        {"step": 2, "message": "step started"},
    ]
    assert bench_stats.started_twice(timeline) == "step 2 started twice"


def test_a_new_attempt_may_start_its_steps_again() -> None:
    timeline = [
        {"step": 1, "message": "release started"},
        {"step": 2, "message": "step started"},
        {"step": 1, "message": "new revision: restarted at step 1"},
        {"step": 2, "message": "step started"},
        {"message": "release completed"},
    ]
    assert bench_stats.started_twice(timeline) == ""
