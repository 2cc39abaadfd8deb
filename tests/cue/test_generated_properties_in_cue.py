"""Generated trait properties (tests/unit/test_validation_generated.py's strategies: from the
JSON Schema and just outside it) rendered by vela (CUE), compared with the Python validator.

A fixed sample (hypothesis, derandomized) goes through ``vela dry-run``; the two must agree on
accept or reject, except where a rule is the controller's alone (CONTROLLER_ONLY below, the
same list the invalid corpus documents). The agreement rate is printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.cue.test_invalid_corpus_in_cue import _application, first_error, python_problems
from tests.cue.vela import Vela
from tests.unit.test_validation_generated import SCHEMA, from_schema, just_outside, plausible

pytestmark = [pytest.mark.cue]

#: Python-only rules (the workload's size is needed): replicas never decrease.
CONTROLLER_ONLY = ("replicas never decrease",)
SAMPLE = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
OUTCOMES: list[tuple[str, bool, bool, str]] = []


def _cue_rejects(vela: Vela, definitions: Path, tmp: Path, properties: Any) -> tuple[bool, str]:
    app = tmp / f"case-{len(OUTCOMES)}.yaml"
    app.write_text(yaml.safe_dump(_application(properties), allow_unicode=True))
    result = vela.run("dry-run", "--offline", "-d", str(definitions), "-f", str(app))
    return result.returncode != 0, first_error(result.stderr) if result.returncode else ""


def _record(vela: Vela, definitions: Path, tmp: Path, properties: Any) -> None:
    python = python_problems(properties)
    cue, error = _cue_rejects(vela, definitions, tmp, properties)
    OUTCOMES.append((yaml.safe_dump(properties, width=200).strip(), bool(python), cue, error))
    if bool(python) == cue:
        return
    justified = python and not cue and all(any(r in p for r in CONTROLLER_ONLY) for p in python)
    assert justified, (
        f"Python {'rejects' if python else 'accepts'}, CUE {'rejects' if cue else 'accepts'}:\n"
        f"{yaml.safe_dump(properties)}\nPython: {python}\nCUE: {error}"
    )


@SAMPLE
@given(properties=st.one_of(plausible(), from_schema(SCHEMA), just_outside()))
def test_cue_and_python_agree_on_generated_properties(
    vela: Vela, corpus_definitions: Path, tmp_path: Path, properties: Any
) -> None:
    _record(vela, corpus_definitions, tmp_path, properties)


def test_the_agreement_rate_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(OUTCOMES) >= 100, "the sample did not run"
    same = sum(1 for _, python, cue, _ in OUTCOMES if python == cue)
    rejected = sum(1 for _, python, _, _ in OUTCOMES if python)
    with capsys.disabled():
        print(
            f"\nCUE and Python agree on {same} of {len(OUTCOMES)} generated cases "
            f"({rejected} rejected by Python); the rest are controller-only rules"
        )
