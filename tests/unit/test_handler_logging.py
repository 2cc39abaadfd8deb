"""What the controller logs: Kopf's once-per-event success lines are dropped, the rest kept."""

from __future__ import annotations

import logging

from vela_progressive import handlers


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_routine_success_lines_are_dropped_and_failures_and_other_lines_kept() -> None:
    dropped = [
        "Handler 'rollout_changed' succeeded.",
        "Webhook 'stamp-operations' succeeded.",
        "Webhook 'hold-deployments' succeeded.",
    ]
    kept = [
        (logging.INFO, "Handler 'released' succeeded."),
        (logging.INFO, "Deletion is processed: 1 succeeded; 0 failed."),
        (logging.ERROR, "Webhook 'hold-deployments' failed with an exception."),
        (logging.WARNING, "Handler 'rollout_changed' succeeded."),
    ]
    assert not any(handlers._not_routine(_record(logging.INFO, m)) for m in dropped)
    assert all(handlers._not_routine(_record(level, m)) for level, m in kept)
