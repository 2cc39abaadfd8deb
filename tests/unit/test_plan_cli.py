"""``kubectl progressive plan``: goldens for every example Application, formats and errors."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.support.golden import assert_matches_golden

from vela_progressive.cli import main as cli_main
from vela_progressive.cli.main import build_parser, main
from vela_progressive.cli.output import table
from vela_progressive.cli.verb import Verb
from vela_progressive.core.model import API_GROUP, KIND

ROOT = Path(__file__).resolve().parents[2]
APPS_DIR = Path("tests/fixtures/apps")
APPS = sorted((ROOT / APPS_DIR).glob("*.yaml"))
GOLDEN = ROOT / "tests" / "golden" / "plan"

CANARY_APP = APPS_DIR / "plan-canary-nginx.yaml"
BATCH_APP = APPS_DIR / "plan-statefulset-batch.yaml"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _transcript(code: int, out: str, err: str) -> str:
    """stdout, plus stderr and the exit code when the command failed (goldens of any app)."""
    if code == 0 and not err:
        return out
    return f"{out}--- stderr ---\n{err}--- exit code {code} ---\n"


@pytest.fixture(autouse=True)
def _at_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


# --------------------------------------------------------------------------------------------
# Goldens: every example Application (new apps get goldens with UPDATE_GOLDENS=1)


def test_there_are_example_applications() -> None:
    assert len(APPS) >= 3


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_plan_table_matches_golden(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transcript = _transcript(*_run(capsys, "plan", str(APPS_DIR / app.name)))
    assert_matches_golden(transcript, GOLDEN / f"{app.stem}.txt")


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_plan_yaml_matches_golden(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transcript = _transcript(*_run(capsys, "plan", str(APPS_DIR / app.name), "-o", "yaml"))
    assert_matches_golden(transcript, GOLDEN / f"{app.stem}.yaml")


def test_every_plan_golden_belongs_to_an_example_application() -> None:
    stems = {p.stem for p in APPS}
    orphans = sorted(g.name for g in GOLDEN.glob("*") if g.stem not in stems)
    assert not orphans, f"goldens without an app in {APPS_DIR}: {orphans}"


# --------------------------------------------------------------------------------------------
# Output formats


def test_the_table_names_app_component_kind_replicas_and_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "plan", str(CANARY_APP))
    assert code == 0
    header, columns, *rows = out.splitlines()
    assert header == (
        "Application shop (namespace default), component frontend: Deployment, "
        "10 pods (from the scaler trait), mode canary"
    )
    assert columns.split() == ["STEP", "OLD", "NEW", "CANARY", "TRAFFIC", "WAIT"]
    assert rows[0].split() == ["1/4", "10", "1", "1", "header", "x-canary=true", "approval"]
    assert rows[1].split() == ["2/4", "10", "2", "2", "20%", "60s"]
    # aligned: the WAIT column starts at the same offset in every row
    assert [row[columns.index("WAIT") :] for row in rows[:4]] == [
        "approval",
        "60s",
        "approval",
        "-",
    ]


def test_batch_mode_shows_the_partition(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "plan", str(BATCH_APP))
    lines = out.splitlines()
    assert lines[1].split() == ["STEP", "OLD", "NEW", "PARTITION", "TRAFFIC", "WAIT"]
    assert [line.split()[3] for line in lines[2:6]] == ["4", "3", "1", "0"]


def test_replicas_flag_overrides_the_component(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "plan", str(CANARY_APP), "--replicas", "3")
    assert "3 pods (from --replicas)" in out
    assert [line.split()[2] for line in out.splitlines()[2:6]] == ["1", "1", "2", "3"]


def test_json_carries_the_status_plan_and_the_objects(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "plan", str(BATCH_APP), "-o", "json")
    assert code == 0
    (doc,) = json.loads(out)["plans"]
    assert (doc["application"], doc["namespace"], doc["component"]) == ("ledger", "payments", "db")
    assert doc["workload"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}
    assert [s["partition"] for s in doc["steps"]] == [4, 3, 1, 0]
    assert [s["wait"]["kind"] for s in doc["steps"]] == ["none", "none", "approval", "none"]
    assert doc["objects"][0]["object"]["kind"] == KIND


def test_yaml_starts_with_the_rollout_resource_of_the_contract(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = _run(capsys, "plan", str(CANARY_APP), "-o", "yaml")
    docs = list(yaml.safe_load_all(out))
    rollout = docs[0]
    assert rollout["apiVersion"] == f"{API_GROUP}/v1alpha1"
    assert rollout["metadata"] == {"name": "frontend", "namespace": "default"}
    spec = rollout["spec"]
    assert spec["workloadRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "frontend",
    }
    assert spec["application"] == {"name": "shop", "component": "frontend"}
    routing = spec["strategy"]["canary"]["trafficRoutings"][0]
    assert (routing["ingressName"], routing["service"]) == ("frontend", "frontend")
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs[1:]]
    assert ("Deployment", "frontend-canary") in kinds
    assert ("Ingress", "frontend-canary") in kinds


def test_a_daemonset_plan_asks_for_the_node_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "agents"},
        "spec": {
            "components": [
                {
                    "name": "agent",
                    "type": "daemon",
                    "properties": {"image": "x"},
                    "traits": [
                        {
                            "type": "progressive-rollout",
                            "properties": {"canary": {"steps": [{"replicas": "50%"}]}},
                        }
                    ],
                }
            ]
        },
    }
    path = tmp_path / "agents.yaml"
    path.write_text(yaml.safe_dump(app))
    _, out, _ = _run(capsys, "plan", str(path))
    assert "DaemonSet, 1 pod (DaemonSet: pass --replicas <nodes>), mode batch" in out
    assert "does not release" not in out, "a DaemonSet is released (docs/workloads/daemonset.md)"
    _, out, _ = _run(capsys, "plan", str(path), "--replicas", "6")
    assert out.splitlines()[2].split()[:4] == ["1/1", "3", "3", "3"]


def test_stdin_is_read_with_a_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((ROOT / BATCH_APP).read_text()))
    code, out, _ = _run(capsys, "plan", "-")
    assert code == 0
    assert out.startswith("Application ledger")


def test_component_flag_selects_one_component(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = yaml.safe_load((ROOT / CANARY_APP).read_text())
    second = yaml.safe_load((ROOT / BATCH_APP).read_text())["spec"]["components"][0]
    app["spec"]["components"].append(second)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(app))
    _, both, _ = _run(capsys, "plan", str(path))
    assert both.count("Application shop") == 2
    _, one, _ = _run(capsys, "plan", str(path), "-c", "db")
    assert one.count("Application shop") == 1
    assert "component db: StatefulSet" in one


# --------------------------------------------------------------------------------------------
# Errors: message naming the field and the fix on stderr, exit code 2, no traceback


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [\n", "app.yaml:2:1: invalid YAML"),
        ("", "app.yaml: no document found"),
        ("- 1\n- 2\n", "error: properties: expected an Application (a mapping), got a list"),
        ("kind: Application\nmetadata: {name: a}\n", "error: spec.components: missing or empty"),
        (
            "kind: Application\nmetadata: {name: a}\nspec:\n  components:\n  - name: web\n"
            "    type: webservice\n    traits:\n    - type: progressive-rollout\n"
            "      properties:\n        canary:\n          steps:\n          - {weight: 50}\n"
            "          - {weight: 30}\n",
            "error: spec.components[0].traits[0].properties.canary.steps[1].weight: 30 is lower "
            "than the previous step's 50; weights never decrease — raise it to at least 50",
        ),
    ],
    ids=["bad-yaml", "empty", "list", "no-components", "weights-decrease"],
)
def test_bad_input_is_explained_with_exit_code_2(
    text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(text)
    code, out, err = _run(capsys, "plan", str(path))
    assert (code, out) == (2, "")
    assert expected.replace("app.yaml", str(path)) in err
    assert "Traceback" not in err


def test_mixed_units_are_checked_against_the_real_replicas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = yaml.safe_load((ROOT / BATCH_APP).read_text())
    trait = app["spec"]["components"][0]["traits"][0]["properties"]
    trait["canary"]["steps"] = [{"replicas": 3}, {"replicas": "20%"}, {"replicas": "100%"}]
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(app))
    code, _, err = _run(capsys, "plan", str(path))
    assert code == 2
    assert err == (
        "error: canary.steps[1].replicas: '20%' is 1 of 5 pods, fewer than the 3 of "
        "canary.steps[0]; replicas never decrease — use at least 3 pods here, or the same unit "
        "(int or %) in both steps\n"
    )
    code, _, _ = _run(capsys, "plan", str(path), "--replicas", "20")
    assert code == 0


def test_a_missing_file_is_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "plan", "does-not-exist.yaml") == (
        2,
        "",
        "error: does-not-exist.yaml: no such file\n",
    )


def test_an_unknown_component_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "plan", str(CANARY_APP), "-c", "nope")
    assert code == 2
    assert err == (
        "error: no component 'nope' with a progressive-rollout trait; "
        "components with the trait: frontend\n"
    )


def test_a_namespace_flag_that_contradicts_the_application_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(capsys, "plan", str(BATCH_APP), "-n", "prod")
    assert code == 2
    assert "is in namespace 'payments' but --namespace is 'prod'" in err
    code, _, _ = _run(capsys, "plan", str(CANARY_APP), "-n", "default")
    assert code == 0


def test_a_namespace_flag_fills_in_a_missing_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "-n", "shop", "plan", str(APPS_DIR / "plan-gateway-ab.yaml"))
    assert "(namespace shop)" in out


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_replicas_flag_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["plan", str(CANARY_APP), f"--replicas={value}"])
    assert caught.value.code == 2
    assert "argument --replicas" in capsys.readouterr().err


def test_the_console_script_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Application\nmetadata: {name: a}\nspec: {components: []}\n")
    result = subprocess.run(
        [sys.executable, "-m", "vela_progressive.cli.main", "plan", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: spec.components: missing or empty — an Application lists its components under "
        "spec.components\n"
    )


# --------------------------------------------------------------------------------------------
# The verb registry and output helpers


def test_a_verb_is_one_registration(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[argparse.Namespace] = []

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name")

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    hello = Verb(name="hello", help="say hello", configure=configure, run=run)
    args = build_parser([hello]).parse_args(["hello", "web", "-n", "prod", "--kubeconfig", "k"])
    assert args.run(args) == 7
    assert (seen[0].name, seen[0].namespace, seen[0].kubeconfig) == ("web", "prod", "k")


def test_global_flags_work_before_and_after_the_verb() -> None:
    parser = build_parser()
    before = parser.parse_args(["-n", "a", "plan", "x.yaml"])
    after = parser.parse_args(["plan", "x.yaml", "-n", "b"])
    neither = parser.parse_args(["plan", "x.yaml"])
    assert (before.namespace, after.namespace, neither.namespace) == ("a", "b", None)


def test_every_registered_verb_has_a_unique_name() -> None:
    names = [v.name for v in cli_main.VERBS]
    assert "plan" in names
    assert len(names) == len(set(names))


@pytest.mark.parametrize("ref", cli_main.VERBS, ids=lambda r: r.name)
def test_each_registered_verb_loads_with_the_help_line_it_is_listed_with(
    ref: cli_main.VerbRef,
) -> None:
    assert ref.load().help == ref.help


def test_a_registry_entry_must_point_at_its_verb() -> None:
    with pytest.raises(TypeError, match="is not the Verb 'status'"):
        cli_main.VerbRef("status", "x", "vela_progressive.cli.plan:VERB").load()


def test_plan_runs_without_importing_the_kubernetes_client() -> None:
    script = (
        "import sys\n"
        "from vela_progressive.cli.main import main\n"
        f"code = main(['plan', {str(CANARY_APP)!r}])\n"
        "print(code, 'kubernetes_asyncio' in sys.modules, 'vela_progressive.shell' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.splitlines()[-1] == "0 False False"


def test_help_lists_every_verb_without_loading_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for ref in cli_main.VERBS:
        assert ref.name in out


def test_table_aligns_columns_without_trailing_blanks() -> None:
    assert table(["A", "LONGER", "C"], [["xyz", 1, ""], ["", 22, "z"]]) == (
        "A    LONGER  C\nxyz  1\n     22      z"
    )


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["plan", "a.yaml"], "plan"),
        (["-n", "plan", "status", "web"], "status"),
        (["--kubeconfig", "k", "--namespace=x", "approve"], "approve"),
        (["-h"], None),
        (["nope"], None),
    ],
)
def test_the_chosen_verb_is_the_first_argument_that_is_not_a_global_flag(
    argv: list[str], verb: str | None
) -> None:
    assert cli_main.chosen_verb(argv, [v.name for v in cli_main.VERBS]) == verb
