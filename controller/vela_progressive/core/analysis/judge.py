"""How one measurement of a metric is judged: Passed, Failed, NoData or Error.

Pure: the shell ran the queries (:mod:`vela_progressive.core.analysis.queries`) and hands the
results in. NaN (0/0: nothing was served in the window) counts as no data; +Inf/-Inf, several
series and Prometheus errors are errors (measurements that could not be taken).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from vela_progressive.core.analysis.spec import Metric


class Verdict(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    NO_DATA = "NoData"
    ERROR = "Error"


@dataclass(frozen=True)
class Result:
    """What Prometheus answered for one query: a value, no data (``None``) or an error."""

    value: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    value: float | None
    stable: float | None
    message: str


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _usable(result: Result | None, what: str) -> tuple[float | None, str | None]:
    """(value, None), (None, None) for no data, or (None, error message)."""
    if result is None:
        return None, None
    if result.error:
        return None, f"{what}: {result.error}"
    if result.value is None or math.isnan(result.value):
        return None, None
    if math.isinf(result.value):
        return None, f"{what}: the query returned {result.value} (a division by zero?)"
    return result.value, None


def judge(metric: Metric, results: dict[str, Result]) -> Judgement:
    """Judge one measurement from the results of its queries (keyed by role).

    >>> m = Metric("errors", template="request-error-rate", max=5.0, max_increase=1.0)
    >>> judge(m, {"canary": Result(3.0), "stable": Result(1.0)}).message
    'canary 3 is worse than stable 1 by 2 (allowed: 1)'
    >>> judge(Metric("errors", template="request-error-rate", max=5.0),
    ...       {"canary": Result(3.0)}).verdict.value
    'Passed'
    """
    value, error = _usable(results.get("canary"), "canary")
    stable: float | None = None
    if error is None and metric.compares:
        stable, error = _usable(results.get("stable"), "stable")
    if error is None:
        for role in ("canary-samples", "stable-samples"):
            if metric.min_samples and role in results:
                _, error = _usable(results[role], role)
    if error is not None:
        return Judgement(Verdict.ERROR, value, stable, error)
    missing = _no_data(metric, results, value, stable)
    if missing:
        return _no_data_judgement(metric, value, stable, missing)
    assert value is not None
    if metric.min is not None and value < metric.min:
        return Judgement(
            Verdict.FAILED, value, stable, f"{_fmt(value)} is below the minimum {metric.min:g}"
        )
    if metric.max is not None and value > metric.max:
        return Judgement(
            Verdict.FAILED, value, stable, f"{_fmt(value)} is above the maximum {metric.max:g}"
        )
    if metric.compares:
        assert stable is not None
        failed = _compare(metric, value, stable)
        if failed:
            return Judgement(Verdict.FAILED, value, stable, failed)
        return Judgement(
            Verdict.PASSED, value, stable, f"canary {_fmt(value)}, stable {_fmt(stable)}"
        )
    return Judgement(
        Verdict.PASSED, value, stable, f"{_fmt(value)} within {metric.threshold_text()}"
    )


def _no_data(
    metric: Metric, results: dict[str, Result], value: float | None, stable: float | None
) -> str:
    """Why the measurement has no data ("" when it has)."""
    if value is None:
        return "the query returned no data for the canary"
    if metric.compares and stable is None:
        return "the query returned no data for the stable version"
    for target in ("canary", "stable"):
        samples = results.get(f"{target}-samples")
        if metric.min_samples and samples is not None:
            served = samples.value if samples.value is not None else 0.0
            if math.isnan(served) or served < metric.min_samples:
                return (
                    f"the {target} served {0 if math.isnan(served) else served:.0f} requests in "
                    f"{metric.interval}s, fewer than minSamples {metric.min_samples}"
                )
    return ""


def _no_data_judgement(
    metric: Metric, value: float | None, stable: float | None, why: str
) -> Judgement:
    if metric.no_data == "pass":
        return Judgement(Verdict.PASSED, value, stable, f"{why}: passed (noData: pass)")
    if metric.no_data == "fail":
        return Judgement(Verdict.FAILED, value, stable, f"{why}: failed (noData: fail)")
    return Judgement(Verdict.NO_DATA, value, stable, f"{why}: waiting for data (noData: wait)")


def _compare(metric: Metric, value: float, stable: float) -> str:
    """Why the canary is worse than stable beyond the allowance ("" when it is not)."""
    higher = metric.higher_is_better
    worse_by = stable - value if higher else value - stable
    if metric.max_increase is not None and worse_by > metric.max_increase:
        return (
            f"canary {_fmt(value)} is worse than stable {_fmt(stable)} by {_fmt(worse_by)} "
            f"(allowed: {metric.max_increase:g})"
        )
    if metric.max_ratio is not None:
        bad, good = (stable, value) if higher else (value, stable)
        if good > 0 and bad / good > metric.max_ratio:
            return (
                f"canary {_fmt(value)} is {bad / good:.3g}x worse than stable {_fmt(stable)} "
                f"(allowed: {metric.max_ratio:g}x)"
            )
    return ""
