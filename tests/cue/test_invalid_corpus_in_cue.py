"""Which invalid trait properties (tests/fixtures/invalid) CUE rejects when vela renders the
Application, documented in a golden report. Everything the JSON Schema rejects, CUE must reject
too (the CUE is generated from it); so must every cross-field rule CUE can say, with the Python
validator's own words (the trait's ``errs`` are generated from the validator's rules). What is
left to the controller is listed here (CONTROLLER_ONLY) and nowhere else."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tests.cue.vela import REPO, Vela
from tests.support.golden import assert_matches_golden

from vela_progressive.core.validation import InvalidSpec, validate_properties

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
    # a message of the trait's own ``errs`` (a rule of the validator)
    re.compile(r"^evaluate template trait=\S+ app=\S+: "),
)
#: The wrapping vela puts around a message of the trait's ``errs`` (nothing else).
_ERRS = re.compile(
    r"^Error: cannot generate manifests from components and traits: "
    r"evaluate template trait=progressive-rollout app=\S+: (?!invalid template of trait)"
)
#: Rules only the controller checks: replicas never decrease, compared like with like (with the
#: workload's size, percentages become pods; the e2e tier shows the controller's refusal).
CONTROLLER_ONLY = (
    "42-replicas-decrease.yaml",
    "43-replicas-percent-decrease.yaml",
    "44-weight-only-step-below-replicas.yaml",
)
#: A missing canary block, a canary without steps and empty steps look the same to CUE (an
#: empty list of steps): one message names canary and what to add.
NO_STEPS = ("06-missing-canary.yaml", "07-missing-steps.yaml", "08-empty-steps.yaml")
NO_STEPS_MESSAGE = (
    "canary: missing, or without steps — add canary: {steps: [{replicas: '20%', weight: 20}, "
    "{replicas: '100%'}]}"
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


def python_problems(properties: Any) -> list[str]:
    """Every problem line of the Python validator (the component renders a Deployment)."""
    try:
        validate_properties(properties, component="web", workload_kind="Deployment")
    except InvalidSpec as exc:
        return [str(p) for p in exc.problems]
    return []


def errs_message(stderr: str) -> str | None:
    """The message of the trait's ``errs`` vela refused the Application with, if that is why."""
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    found = _ERRS.match(lines[-1]) if lines else None
    return lines[-1][found.end() :] if found else None


@pytest.fixture(scope="module")
def stderrs(
    vela: Vela, corpus_definitions: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str | None]:
    """Corpus file name -> vela's stderr, or None when vela rendered it."""
    tmp = tmp_path_factory.mktemp("corpus-apps")
    found: dict[str, str | None] = {}
    for case in CORPUS:
        app = tmp / case.name
        app.write_text(yaml.safe_dump(_application(_case(case)["properties"])))
        result = vela.run("dry-run", "--offline", "-d", str(corpus_definitions), "-f", str(app))
        found[case.name] = None if result.returncode == 0 else result.stderr
    return found


@pytest.fixture(scope="module")
def verdicts(stderrs: dict[str, str | None]) -> dict[str, str | None]:
    """Corpus file name -> the CUE error, or None when vela rendered it."""
    return {name: None if err is None else first_error(err, False) for name, err in stderrs.items()}


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
        ("09-fifty-one-steps.yaml", "canary.steps: 51 items, at most 50 are allowed"),
        ("33-empty-match.yaml", "canary.steps[0].matches[0]: a match needs at least one condition"),
        ("06-missing-canary.yaml", NO_STEPS_MESSAGE),
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
        ("47-nginx-query-params.yaml", "[0] (ingress/nginx) cannot route by query — use type"),
        ("48-nginx-path.yaml", "[0] (ingress/nginx) cannot route by path — use type"),
        ("49-alb-query-params.yaml", "[0] (ingress/aliyun-alb) cannot route by query — use type"),
        ("50-gateway-cookie.yaml", "[0] (gateway) cannot route by cookie — use type"),
    ],
)
def test_a_feature_the_provider_lacks_is_refused_naming_the_provider_and_the_feature(
    verdicts: dict[str, str | None], case: str, error: str
) -> None:
    verdict = verdicts[case]
    assert verdict is not None, f"CUE accepted {case}"
    assert error in verdict


def test_cue_rejects_everything_the_python_validator_rejects_but_the_controller_only_rules(
    verdicts: dict[str, str | None],
) -> None:
    accepted = [name for name, verdict in verdicts.items() if verdict is None]
    assert accepted == list(CONTROLLER_ONLY)
    for name in CONTROLLER_ONLY:
        assert python_problems(_case(REPO / "tests/fixtures/invalid" / name)["properties"])


def test_a_rule_cue_checks_is_said_in_the_validators_words(
    stderrs: dict[str, str | None],
) -> None:
    """Every refusal from the trait's ``errs`` is, word for word, a problem line of the Python
    validator for the same properties (both come from one wording of the rule)."""
    said = {name: errs_message(err) for name, err in stderrs.items() if err is not None}
    from_errs = {name: message for name, message in said.items() if message is not None}
    assert len(from_errs) >= 30
    for name, message in from_errs.items():
        if name in NO_STEPS:
            assert message == NO_STEPS_MESSAGE
            continue
        problems = python_problems(_case(REPO / "tests/fixtures/invalid" / name)["properties"])
        assert message in problems, f"{name}: CUE said\n  {message}\nPython said\n  " + (
            "\n  ".join(problems)
        )


def test_every_cue_refusal_names_the_field(verdicts: dict[str, str | None]) -> None:
    """No refusal is vela's 'failed to have the workload/trait unstructured' about our output."""
    for name, verdict in verdicts.items():
        if verdict is None:
            continue
        assert not verdict.startswith("outputs."), f"{name}: {verdict}"
        assert verdict.startswith(
            (
                "parameter.",
                "canary",
                "workloadType",
                "progressDeadline",
                "stepPartition",
                "releaseMode",
            )
        ), f"{name}: {verdict}"
