"""Which invalid trait properties (tests/fixtures/invalid) CUE already rejects when vela renders
the Application, documented in a golden report. Everything the JSON Schema rejects, CUE must
reject too (the CUE is generated from it); the rest are cross-field rules the Python validator
checks in the controller."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tests.cue.conftest import TRAIT
from tests.cue.vela import REPO, Vela, builtin_definitions
from tests.support.golden import assert_matches_golden

CORPUS = sorted((REPO / "tests/fixtures/invalid").glob("*.yaml"))
REPORT = REPO / "tests/golden/cue/invalid-corpus-report.txt"
SCHEMA = REPO / "controller/vela_progressive/core/schemas/progressive-rollout.schema.json"

#: vela's wrapping around the CUE error, and the count of follow-on errors.
_PREFIXES = (
    re.compile(r"^Error: cannot generate manifests from components and traits: "),
    re.compile(
        r"^evaluate template trait=\S+ app=\S+: invalid template of trait \S+ after merge "
        r"with parameter and context: "
    ),
    re.compile(
        r"^evaluate trait=\S+ template for component=\S+ app=\S+: failed to have the "
        r"workload/trait unstructured: "
    ),
)
_MORE = re.compile(r" \(and \d+ more errors?\)$")
#: CUE prints the whole offending value before the constraint it breaks; keep the constraint.
_DUMP = re.compile(r"invalid value .*? \(does not satisfy")
_MAX = 160


@cache
def _schema() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SCHEMA.read_text())
    return data


def _case(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _application(properties: Any) -> dict[str, Any]:
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "corpus", "namespace": "default"},
        "spec": {
            "components": [
                {
                    "name": "web",
                    "type": "webservice",
                    "properties": {"image": "nginx:1.27"},
                    "traits": [{"type": "progressive-rollout", "properties": properties}],
                }
            ]
        },
    }


def first_error(stderr: str, shorten: bool = True) -> str:
    """vela's last ``Error:`` line without its wrapping (shortened for the report)."""
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    if not lines:
        return "(no Error line)"
    text = lines[-1]
    for prefix in _PREFIXES:
        text = prefix.sub("", text)
    text = _DUMP.sub("invalid value (does not satisfy", _MORE.sub("", text))
    return text if len(text) <= _MAX or not shorten else text[: _MAX - 3] + "..."


@pytest.fixture(scope="module")
def corpus_definitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("corpus-definitions")
    builtin_definitions(["webservice"], target)
    (target / TRAIT.name).write_text(TRAIT.read_text())
    return target


@pytest.fixture(scope="module")
def verdicts(
    vela: Vela, corpus_definitions: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str | None]:
    """Corpus file name -> the CUE error, or None when vela rendered it."""
    tmp = tmp_path_factory.mktemp("corpus-apps")
    found: dict[str, str | None] = {}
    for case in CORPUS:
        app = tmp / case.name
        app.write_text(yaml.safe_dump(_application(_case(case)["properties"])))
        result = vela.run("dry-run", "--offline", "-d", str(corpus_definitions), "-f", str(app))
        found[case.name] = None if result.returncode == 0 else first_error(result.stderr, False)
    return found


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 40


def test_the_report_of_what_cue_rejects_matches_the_golden(verdicts: dict[str, str | None]) -> None:
    rejected = sum(1 for v in verdicts.values() if v is not None)
    lines = [
        "# Invalid progressive-rollout properties (tests/fixtures/invalid): does CUE reject them",
        "# when vela renders the Application? 'accepted' cases break cross-field rules that the",
        "# Python validator (vela_progressive.core.validation) checks in the controller.",
        "# Written by tests/cue/test_invalid_corpus_in_cue.py (UPDATE_GOLDENS=1).",
        f"# CUE rejects {rejected} of {len(verdicts)}.",
        "",
    ]
    for name, error in verdicts.items():
        short = error if error is None or len(error) <= _MAX else error[: _MAX - 3] + "..."
        lines.append(f"{name}: {'rejected: ' + short if short is not None else 'accepted'}")
    assert_matches_golden("\n".join(lines) + "\n", REPORT)


def test_cue_rejects_everything_the_json_schema_rejects(verdicts: dict[str, str | None]) -> None:
    validator = jsonschema.Draft7Validator(_schema())
    expected = [
        case.name for case in CORPUS if any(validator.iter_errors(_case(case)["properties"]))
    ]
    assert len(expected) >= 20
    missed = [name for name in expected if verdicts[name] is None]
    assert missed == []


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("01-unknown-top-level-key.yaml", "field not allowed"),
        ("02-capitalised-header-keys.yaml", "field not allowed"),
        ("11-weight-101.yaml", "out of bound <=100"),
        ("14-weight-float.yaml", "parameter.canary.steps.0.weight: conflicting values"),
        ("16-duration-string.yaml", "parameter.canary.steps.0.duration: conflicting values"),
        ("09-fifty-one-steps.yaml", "canary.steps: invalid value"),
        ("33-empty-match.yaml", "does not satisfy struct.MinFields(1)"),
        ("06-missing-canary.yaml", "does not satisfy list.MinItems(1)"),
        ("26-routing-type-nginx.yaml", "parameter.canary.trafficRoutings.0.type"),
    ],
)
def test_structural_mistakes_are_rejected_naming_the_field(
    verdicts: dict[str, str | None], case: str, error: str
) -> None:
    verdict = verdicts[case]
    assert verdict is not None, f"CUE accepted {case}"
    assert error in verdict


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("46-matches-without-routing.yaml", "matches need a traffic routing"),
        ("47-nginx-query-params.yaml", "(ingress/nginx) cannot route by query"),
        ("48-nginx-path.yaml", "(ingress/nginx) cannot route by path"),
        ("49-alb-query-params.yaml", "(ingress/aliyun-alb) cannot route by query"),
        ("50-gateway-cookie.yaml", "(gateway) cannot route by cookie"),
    ],
)
def test_a_feature_the_provider_lacks_is_refused_naming_the_provider_and_the_feature(
    verdicts: dict[str, str | None], case: str, error: str
) -> None:
    verdict = verdicts[case]
    assert verdict is not None, f"CUE accepted {case}"
    assert error in verdict
