"""The trait's healthPolicy and customStatus (what `vela status` shows), evaluated by vela's CUE.

vela evaluates a status script as ``<script>`` + ``context: {...}`` with the live objects under
``context.outputs``. The same scripts, taken from ``vela def render``, are embedded here in a
probe ComponentDefinition (each in a struct that has its own ``context``) and dry-run with a
ProgressiveRollout as the probe's parameter.
"""

from __future__ import annotations

import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.cue.conftest import TRAIT
from tests.cue.vela import Vela

from vela_progressive.core import model

WAITING = "waiting for the vela-progressive controller"


@cache
def _status_scripts(vela: Vela) -> dict[str, str]:
    _, body = vela.check("def", "render", str(TRAIT)).split("\n", 1)
    scripts: dict[str, str] = yaml.safe_load(body)["spec"]["status"]
    return scripts


def _probe_definition(vela: Vela) -> str:
    scripts = _status_scripts(vela)

    def block(name: str, script: str) -> str:
        # vela's context: the Application revision being rendered, and the live rollout.
        return (
            f"{name}: {{\n\tcontext: {{\n\t\tif parameter.appRevision != _|_ "
            f"{{appRevision: parameter.appRevision}}\n"
            f"\t\toutputs: {{if parameter.rollout != _|_ {{rollout: parameter.rollout}}}}\n\t}}\n"
            f"{textwrap.indent(script, chr(9))}\n}}\n"
        )

    template = (
        "parameter: {rollout?: {...}, appRevision?: string}\n"
        + block("_health", scripts["healthPolicy"])
        + block("_custom", scripts["customStatus"])
        + 'output: {apiVersion: "v1", kind: "ConfigMap", metadata: name: "probe"\n'
        + '\tdata: {isHealth: "\\(_health.isHealth)", message: _custom.message}}\n'
    )
    definition = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "ComponentDefinition",
        "metadata": {"name": "status-probe", "namespace": "vela-system"},
        "spec": {
            "workload": {"type": "autodetects.core.oam.dev"},
            "schematic": {"cue": {"template": template}},
        },
    }
    return yaml.safe_dump(definition)


def _status(
    vela: Vela, tmp: Path, rollout: dict[str, Any] | None, app_revision: str | None = None
) -> tuple[bool, str]:
    defs = tmp / "defs"
    defs.mkdir(exist_ok=True)
    (defs / "status-probe.yaml").write_text(_probe_definition(vela))
    props: dict[str, Any] = {} if rollout is None else {"rollout": rollout}
    if rollout is not None:
        props["appRevision"] = app_revision or rollout["spec"]["revision"]["name"]
    app = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"components": [{"name": "probe", "type": "status-probe", "properties": props}]},
    }
    (tmp / "app.yaml").write_text(yaml.safe_dump(app))
    docs = vela.dry_run(tmp / "app.yaml", defs)
    data = docs[0]["data"]
    assert data["isHealth"] in {"true", "false"}
    return data["isHealth"] == "true", data["message"]


def _rollout(status: dict[str, Any] | None, revision: str = "shop-v2") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": f"{model.API_GROUP}/{model.API_VERSION}",
        "kind": model.KIND,
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"revision": {"name": revision, "number": 2, "publishVersion": ""}},
    }
    if status is not None:
        obj["status"] = status
    return obj


STEP_MESSAGE = "step 2/4: 5/10 pods, 50% traffic, waiting for approval"


@pytest.mark.parametrize(
    ("rollout", "healthy", "message"),
    [
        pytest.param(None, False, WAITING, id="no-rollout-yet"),
        pytest.param(
            _rollout(None), False, f"{WAITING} to pick up revision shop-v2", id="no-status"
        ),
        pytest.param(
            _rollout(
                {"phase": "Progressing", "observedRevision": "shop-v2", "message": STEP_MESSAGE}
            ),
            False,
            STEP_MESSAGE,
            id="progressing",
        ),
        pytest.param(
            _rollout(
                {"phase": "Healthy", "observedRevision": "shop-v2", "message": "released shop-v2"}
            ),
            True,
            "released shop-v2",
            id="released",
        ),
        pytest.param(
            _rollout(
                {"phase": "Healthy", "observedRevision": "shop-v1", "message": "released shop-v1"}
            ),
            False,
            f"{WAITING} to pick up revision shop-v2",
            id="status-of-the-previous-revision",
        ),
        pytest.param(
            _rollout(
                {"phase": "Failed", "observedRevision": "shop-v2", "message": "step 1/3 failed"}
            ),
            False,
            "step 1/3 failed",
            id="failed",
        ),
        pytest.param(
            _rollout({"phase": "Healthy", "observedRevision": "shop-v2"}),
            True,
            "Healthy",
            id="healthy-without-message",
        ),
    ],
)
def test_status_shows_the_controller_message_and_health_of_the_current_revision(
    vela: Vela, tmp_path: Path, rollout: dict[str, Any] | None, healthy: bool, message: str
) -> None:
    assert _status(vela, tmp_path, rollout) == (healthy, message)


def test_a_live_rollout_that_still_names_the_previous_revision_is_not_healthy(
    vela: Vela, tmp_path: Path
) -> None:
    # KubeVela renders shop-v3 while the live rollout (and its status) still say shop-v2: the
    # Application must wait instead of taking the old revision's health for the new one.
    stale = _rollout({"phase": "Healthy", "observedRevision": "shop-v2", "message": "done"})
    assert _status(vela, tmp_path, stale, app_revision="shop-v3") == (
        False,
        f"{WAITING} to pick up revision shop-v3",
    )
