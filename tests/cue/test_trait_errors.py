"""The trait refuses invalid properties itself, naming the field and the fix (issue 9, bugs 6
and 7): vela refuses the Application before anything is created, with the validator's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.cue.conftest import TRAIT
from tests.cue.vela import Vela, builtin_definitions

from vela_progressive.core import model

#: How vela wraps a message of the trait's ``errs``.
WRAPPING = (
    "Error: cannot generate manifests from components and traits: "
    "evaluate template trait=progressive-rollout app=web: "
)
NO_CANARY = (
    "canary: missing, or without steps — add canary: {steps: [{replicas: '20%', weight: 20}, "
    "{replicas: '100%'}]}"
)


@pytest.fixture(scope="module")
def trait_definitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("errs-definitions")
    builtin_definitions(["webservice"], target)
    (target / TRAIT.name).write_text(TRAIT.read_text())
    return target


def _dry_run(
    vela: Vela, definitions: Path, tmp_path: Path, trait: dict[str, Any]
) -> tuple[int, str, list[dict[str, Any]]]:
    app = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {
            "components": [
                {
                    "name": "web",
                    "type": "webservice",
                    "properties": {"image": "nginx:1.27"},
                    "traits": [{"type": model.TRAIT_TYPE, **trait}],
                }
            ]
        },
    }
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(app))
    result = vela.run("dry-run", "--offline", "-d", str(definitions), "-f", str(path))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    docs = [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]
    return result.returncode, errors[-1] if errors else "", docs


@pytest.mark.parametrize(
    "trait",
    [{}, {"properties": {}}, {"properties": {"auto": True}}, {"properties": {"canary": {}}}],
    ids=["no-properties", "empty-properties", "only-auto", "empty-canary"],
)
def test_a_trait_without_its_canary_block_is_refused_naming_canary_and_what_to_add(
    vela: Vela, trait_definitions: Path, tmp_path: Path, trait: dict[str, Any]
) -> None:
    """Bug 7: was `evaluate trait=rollout template ... failed to have the workload/trait
    unstructured: outputs.rollout.spec.strategy.canary.steps: invalid value []`."""
    code, error, _ = _dry_run(vela, trait_definitions, tmp_path, trait)
    assert code != 0
    assert error == WRAPPING + NO_CANARY
    assert "failed to have the workload/trait unstructured" not in error


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [{"replicas": 1, "weight": 20}, {"replicas": "100%"}],
            "canary.steps[0].weight: weight 20 sends traffic to the new version, but there is no "
            "traffic routing to move it — add canary.trafficRoutings, e.g. [{type: ingress}], or "
            "remove the weight (replicas set the pods)",
        ),
        (
            [{"replicas": 1, "matches": [{"headers": [{"name": "x-canary", "value": "1"}]}]}],
            "canary.steps[0].matches: A/B matches need a traffic routing to apply them — add "
            "canary.trafficRoutings, e.g. [{type: ingress}], or remove the matches",
        ),
    ],
    ids=["weight", "matches"],
)
def test_traffic_without_a_routing_is_refused_before_anything_is_rendered(
    vela: Vela, trait_definitions: Path, tmp_path: Path, steps: list[Any], message: str
) -> None:
    """Bug 6: CUE accepted these and the controller refused them after acting."""
    code, error, docs = _dry_run(
        vela, trait_definitions, tmp_path, {"properties": {"canary": {"steps": steps}}}
    )
    assert code != 0
    assert error == WRAPPING + message
    assert docs == []


def test_a_weight_alone_without_a_routing_is_the_share_of_pods_as_in_kruise(
    vela: Vela, trait_definitions: Path, tmp_path: Path
) -> None:
    code, error, docs = _dry_run(
        vela,
        trait_definitions,
        tmp_path,
        {"properties": {"canary": {"steps": [{"weight": 20}, {"weight": 100}]}}},
    )
    assert code == 0, error
    (rollout,) = [d for d in docs if d.get("kind") == model.KIND]
    assert rollout["spec"]["strategy"]["canary"]["steps"] == [{"weight": 20}, {"weight": 100}]


def test_on_failure_defaults_to_abort_and_accepts_pause(
    vela: Vela, trait_definitions: Path, tmp_path: Path
) -> None:
    steps = {"canary": {"steps": [{"replicas": 1}]}}
    for given, expected in ((None, "abort"), ("pause", "pause")):
        props = {**steps, **({"onFailure": given} if given else {})}
        code, error, docs = _dry_run(vela, trait_definitions, tmp_path, {"properties": props})
        assert code == 0, error
        (rollout,) = [d for d in docs if d.get("kind") == model.KIND]
        assert rollout["spec"]["strategy"]["onFailure"] == expected
    code, error, _ = _dry_run(
        vela, trait_definitions, tmp_path, {"properties": {**steps, "onFailure": "retry"}}
    )
    assert code != 0
    assert "parameter.onFailure" in error
