"""The chaos tier: releases under faults at random moments, judged by an independent sampler.

``make test`` runs a small seeded schedule (every fault kind once); ``make test-chaos
SEED=<n> RELEASES=<n> CONCURRENCY=<n>`` any other. A failure prints the seed to replay it.
"""

from __future__ import annotations

import os

import pytest

from tests.chaos.observe import Observer
from tests.chaos.runner import Runner
from tests.e2e.addon import Addon
from tests.support.cluster import REPO, Cluster
from tests.support.controller import Controller

pytestmark = pytest.mark.chaos

REPORT = REPO / ".cluster" / "chaos-report.txt"


async def test_releases_hold_every_invariant_under_faults_at_random_moments(
    cluster: Cluster, controller: Controller, addon: Addon, observer: Observer
) -> None:
    runner = Runner(
        cluster,
        controller,
        observer,
        seed=int(os.environ.get("CHAOS_SEED", "20261201")),
        releases=int(os.environ.get("CHAOS_RELEASES", "12")),
        concurrency=int(os.environ.get("CHAOS_CONCURRENCY", "6")),
    )
    report = await runner.run()
    lines = report.lines()
    details = [
        f"{r.label}:\n    " + "\n    ".join(r.events)
        for r in report.ledger.releases
        if any(v.release == r.label for v in report.ledger.violations)
    ]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join([*lines, "", *details]) + "\n")
    print("\n".join(lines))
    assert not report.ledger.violations, (
        "\n".join(lines)
        + "\n\nreleases with violations:\n"
        + "\n".join(details)
        + f"\n\nreplay: make test-chaos SEED={report.seed} RELEASES={report.releases}"
    )
    assert report.releases >= runner.total
    kinds = {f.fault.kind for f in report.faults}
    assert len(kinds) >= min(len(report.faults), 9), kinds
