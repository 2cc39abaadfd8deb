"""The addon's CUE (template.cue, resources/*.cue, parameter.cue, NOTES.cue) evaluated by vela.

``vela addon enable`` compiles ``parameter.cue`` + ``context: metadata: <metadata.yaml>`` +
``parameter: <args>`` with ``template.cue`` and the ``package main`` files of ``resources/``, and
reads ``output`` (the addon Application) and ``outputs`` (objects applied directly). The same
files are put into a probe ComponentDefinition here, so vela's CUE evaluates them offline with
the enable arguments as the component's properties. The assembled addon directory (``make
addon``) is checked too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.cue.vela import REPO, Vela, VelaError
from tests.support.golden import assert_matches_golden

from vela_progressive.core import admission, identity, model
from vela_progressive.core.workloads import registry

ADDON = REPO / "addon"
GOLDEN = REPO / "tests/golden/cue/addon"
_IMPORT = re.compile(r'^import\s+(?:"([^"]+)"|\(\s*((?:"[^"]+"\s*)+)\))', re.M)


def _split_imports(text: str) -> tuple[list[str], str]:
    imports: list[str] = []
    for single, group in _IMPORT.findall(text):
        imports.extend([single] if single else re.findall(r'"([^"]+)"', group))
    body = _IMPORT.sub("", text)
    body = re.sub(r"^package main\s*$", "", body, flags=re.M)
    return imports, body


def _probe(name: str, files: list[Path], tail: str) -> str:
    meta = yaml.safe_load((REPO / "metadata.yaml").read_text())
    imports: list[str] = []
    bodies = []
    for path in files:
        found, body = _split_imports(path.read_text())
        imports.extend(found)
        bodies.append(f"// --- {path.relative_to(REPO)}\n{body}")
    head = "".join(f'import "{i}"\n' for i in sorted(set(imports)))
    template = f"{head}\ncontext: metadata: {json.dumps(meta)}\n" + "\n".join(bodies) + tail
    return yaml.safe_dump(
        {
            "apiVersion": "core.oam.dev/v1beta1",
            "kind": "ComponentDefinition",
            "metadata": {"name": name, "namespace": "vela-system"},
            "spec": {
                "workload": {"type": "autodetects.core.oam.dev"},
                "schematic": {"cue": {"template": template}},
            },
        }
    )


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    defs = tmp_path_factory.mktemp("addon-probes")
    resources = sorted((ADDON / "resources").glob("*.cue"))
    (defs / "addon-template.yaml").write_text(
        _probe("addon-template", [ADDON / "parameter.cue", *resources, ADDON / "template.cue"], "")
    )
    notes_output = (
        "\n_notesText: notes\n"
        'output: {apiVersion: "v1", kind: "ConfigMap", metadata: name: "notes", '
        "data: notes: _notesText}\n"
    )
    (defs / "addon-notes.yaml").write_text(
        _probe("addon-notes", [ADDON / "parameter.cue", ADDON / "NOTES.cue"], notes_output)
    )
    return defs


def _render(vela: Vela, probes: Path, tmp: Path, probe: str, args: dict[str, Any]) -> str:
    app = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "addon-probe", "namespace": "vela-system"},
        "spec": {"components": [{"name": "addon", "type": probe, "properties": args}]},
    }
    (tmp / "app.yaml").write_text(yaml.safe_dump(app))
    return vela.check("dry-run", "--offline", "-d", str(probes), "-f", str(tmp / "app.yaml"))


def _objects(out: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(out) if isinstance(d, dict)]


def _addon(
    vela: Vela, probes: Path, tmp: Path, args: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(dry-run text, the addon Application, the resource-tree ConfigMap)."""
    out = _render(vela, probes, tmp, "addon-template", args)
    docs = _objects(out)
    (app,) = [d for d in docs if d["kind"] == "Application"]
    (tree,) = [d for d in docs if d["kind"] == "ConfigMap"]
    return out, app, tree


def _component_objects(app: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {c["name"]: c["properties"]["objects"] for c in app["spec"]["components"]}


def _object(app: dict[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o
        for objs in _component_objects(app).values()
        for o in objs
        if o["kind"] == kind and name in (None, o["metadata"]["name"])
    ]
    assert len(found) == 1, (kind, name)
    return found[0]


def _hold_webhooks(app: dict[str, Any]) -> list[dict[str, Any]]:
    webhooks = _object(app, "MutatingWebhookConfiguration")["webhooks"]
    return [w for w in webhooks if w["name"] != STAMP_WEBHOOK]


def _stamp_webhook(app: dict[str, Any]) -> dict[str, Any]:
    webhooks = _object(app, "MutatingWebhookConfiguration")["webhooks"]
    (found,) = [w for w in webhooks if w["name"] == STAMP_WEBHOOK]
    return found


STAMP_WEBHOOK = f"{identity.WEBHOOK_ID}.{model.API_GROUP}"
CONTROLLER_ROLE = "vela-progressive-controller"


LOCAL = {
    "inCluster": False,
    "webhookURL": "https://127.0.0.1:9443/",
    "webhookCABundle": "Q0EK",
    "webhookFailurePolicy": "Fail",
}


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("default", {}),
        ("local-controller", LOCAL),
        ("namespace", {"namespace": "progressive"}),
        (
            "standby-and-shards",
            {"replicas": 2, "shards": 2, "takeoverSeconds": 20, "memoryLimit": "1Gi"},
        ),
    ],
)
def test_the_addon_application_renders_like_the_golden(
    vela: Vela, probes: Path, tmp_path: Path, name: str, args: dict[str, Any]
) -> None:
    out, _, _ = _addon(vela, probes, tmp_path, args)
    assert_matches_golden(out, GOLDEN / f"{name}.yaml")


def test_by_default_everything_runs_in_vela_system(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {})
    names = [c["name"] for c in app["spec"]["components"]]
    assert names == [
        "vela-progressive-rbac",
        "vela-progressive-controller",
        "vela-progressive-webhook",
    ]
    deploy = _object(app, "Deployment")
    assert deploy["metadata"]["namespace"] == "vela-system"
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/vela-progressive/controller:v0.1.0"
    assert container["ports"] == [
        {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
        {"name": "health", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8081, "protocol": "TCP"},
    ]
    service = _object(app, "Service")
    assert service["spec"]["ports"][0]["port"] == 443
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VP_WEBHOOK_MODE"] == "incluster"
    assert env["VP_WEBHOOK_FAILURE_POLICY"] == "Ignore"
    # the in-cluster controller's certificate is for vela-progressive.<namespace>.svc
    assert service["metadata"]["name"] == "vela-progressive"
    webhooks = _object(app, "MutatingWebhookConfiguration")["webhooks"]
    assert [w["clientConfig"] for w in webhooks] == [
        {
            "service": {
                "name": "vela-progressive",
                "namespace": "vela-system",
                "path": f"/{path}",
                "port": 443,
            }
        }
        for path in [*(kind.handler_id for kind in registry.REGISTRY), identity.WEBHOOK_ID]
    ]
    (webhook, *_) = webhooks
    assert webhook["failurePolicy"] == "Ignore"


def test_the_controller_pod_is_scraped_through_its_prometheus_annotations(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {})
    template = _object(app, "Deployment")["spec"]["template"]
    container = template["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(ports["metrics"]),
        "prometheus.io/path": "/metrics",
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VP_METRICS_PORT"] == str(ports["metrics"])


def test_the_dashboard_configmap_comes_only_when_asked_and_holds_the_shipped_json(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {})
    assert "vela-progressive-dashboard" not in _component_objects(app)
    _, app, _ = _addon(vela, probes, tmp_path, {"dashboard": True, "namespace": "observe"})
    config = _object(app, "ConfigMap", "vela-progressive-dashboard")
    assert config["metadata"]["namespace"] == "observe"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((ADDON / "dashboards" / "vela-progressive.json").read_text())
    assert json.loads(config["data"]["vela-progressive.json"]) == shipped


def test_the_webhook_holds_only_labelled_workload_updates(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {})
    config = _object(app, "MutatingWebhookConfiguration")
    assert config["metadata"]["name"] == "vela-progressive-hold"
    routes = {}
    for webhook in _hold_webhooks(app):
        assert webhook["objectSelector"] == {"matchLabels": {model.HOLD_LABEL: "true"}}
        assert webhook["sideEffects"] == "None"
        assert webhook["timeoutSeconds"] == 5
        (rule,) = webhook["rules"]
        assert rule["operations"] == ["UPDATE"]
        routes[(rule["apiGroups"][0], rule["resources"][0])] = webhook["clientConfig"]["service"][
            "path"
        ]
    # each path is the id of the controller's Kopf mutate handler for that kind
    assert routes == {
        ("apps", "deployments"): "/hold-deployments",
        ("apps", "statefulsets"): "/hold-statefulsets",
        ("apps", "daemonsets"): "/hold-daemonsets",
        ("apps.kruise.io", "clonesets"): "/hold-clonesets-apps-kruise-io",
        ("apps.kruise.io", "statefulsets"): "/hold-statefulsets-apps-kruise-io",
        ("apps.kruise.io", "daemonsets"): "/hold-daemonsets-apps-kruise-io",
    }


def test_the_webhook_paths_are_the_controllers_handler_ids() -> None:
    import kopf  # noqa: PLC0415

    from vela_progressive import handlers  # noqa: PLC0415 (registers one per registered kind)

    registered = kopf.get_default_registry()._webhooks.get_all_handlers()
    ids = set(admission.HOLDS)  # answered by handlers.HoldingServer, before Kopf's handlers
    assert ids == {k.handler_id for k in registry.REGISTRY}
    assert len(ids) == len(registry.REGISTRY) == 6
    (stamp,) = [h for h in registered if h.fn is handlers.stamp_operations]
    assert stamp.id == identity.WEBHOOK_ID
    assert stamp.operations == list(identity.WEBHOOK_OPERATIONS)
    assert stamp.ignore_failures


def test_every_rollout_create_and_update_passes_the_stamp_webhook_which_fails_open(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {"webhookFailurePolicy": "Fail"})
    webhook = _stamp_webhook(app)
    assert webhook["rules"] == [
        {
            "apiGroups": [model.API_GROUP],
            "apiVersions": [model.API_VERSION],
            "operations": ["CREATE", "UPDATE"],
            "resources": [model.PLURAL],
            "scope": "Namespaced",
        }
    ]
    assert "objectSelector" not in webhook  # every rollout, whoever made it
    # never blocks KubeVela applying a rollout, whatever the hold webhook's policy
    assert webhook["failurePolicy"] == "Ignore"
    assert {w["failurePolicy"] for w in _hold_webhooks(app)} == {"Fail"}
    assert webhook["clientConfig"]["service"]["path"] == f"/{identity.WEBHOOK_ID}"


def test_people_get_an_operator_and_a_viewer_role_aggregated_into_the_standard_roles(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {"inCluster": False})
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    operator = _object(app, "ClusterRole", "vela-progressive:operator")
    viewer = _object(app, "ClusterRole", "vela-progressive:viewer")
    target = {"apiGroups": [model.API_GROUP], "resources": [model.PLURAL]}
    assert operator["rules"] == [{**target, "verbs": ["get", "list", "watch", "patch"]}]
    assert viewer["rules"] == [{**target, "verbs": ["get", "list", "watch"]}]
    assert {k for k in operator["metadata"]["labels"] if k.startswith(aggregate)} == {
        f"{aggregate}admin",
        f"{aggregate}edit",
    }
    assert {k for k in viewer["metadata"]["labels"] if k.startswith(aggregate)} == {
        f"{aggregate}view"
    }


def test_a_local_controller_gets_a_url_webhook_and_no_deployment(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, LOCAL)
    kinds = {o["kind"] for objs in _component_objects(app).values() for o in objs}
    assert "Deployment" not in kinds
    assert "Service" not in kinds
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    webhooks = _object(app, "MutatingWebhookConfiguration")["webhooks"]
    assert [w["clientConfig"] for w in webhooks] == [
        {"url": f"https://127.0.0.1:9443/{path}", "caBundle": "Q0EK"}
        for path in [*(k.handler_id for k in registry.REGISTRY), identity.WEBHOOK_ID]
    ]
    assert {w["failurePolicy"] for w in _hold_webhooks(app)} == {"Fail"}


def test_the_addon_webhooks_are_those_a_local_controller_registers_match_conditions_and_all(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    """The API server calls a webhook only for a request it could change (core.admission): the
    addon's configuration and the one a VP_WEBHOOK_MODE=local controller registers agree."""
    _, app, _ = _addon(vela, probes, tmp_path, LOCAL)
    rendered = _object(app, "MutatingWebhookConfiguration")["webhooks"]
    registered = admission.configuration("x", "https://127.0.0.1:9443", "Q0EK", "Fail")["webhooks"]
    assert rendered == registered
    for hook, kind in zip(_hold_webhooks(app), registry.REGISTRY, strict=True):
        assert hook["matchConditions"] == kind.match_conditions
    assert _stamp_webhook(app)["matchConditions"] == list(admission.STAMP_CONDITIONS)


def test_a_self_registering_local_controller_gets_no_addon_webhook(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {"inCluster": False})
    assert [c["name"] for c in app["spec"]["components"]] == ["vela-progressive-rbac"]


def test_another_namespace_is_created_first(vela: Vela, probes: Path, tmp_path: Path) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {"namespace": "progressive"})
    comps = {c["name"]: c for c in app["spec"]["components"]}
    assert comps["vela-progressive-namespace"]["properties"]["objects"][0]["kind"] == "Namespace"
    assert comps["vela-progressive-rbac"]["dependsOn"] == ["vela-progressive-namespace"]
    assert _object(app, "Deployment")["metadata"]["namespace"] == "progressive"
    binding = _object(app, "ClusterRoleBinding", CONTROLLER_ROLE)
    assert binding["subjects"][0]["namespace"] == "progressive"


def test_rbac_grants_only_what_the_controller_uses(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {})
    rules = _object(app, "ClusterRole", CONTROLLER_ROLE)["rules"]
    granted = {
        (g, r): set(rule["verbs"])
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert all("*" not in verbs for verbs in granted.values())
    assert all("*" not in r for _, r in granted)
    assert granted[(model.API_GROUP, model.PLURAL)] == {"get", "list", "watch", "patch"}
    assert granted[(model.API_GROUP, f"{model.PLURAL}/status")] == {"patch"}
    # pods and ReplicaSets are read from the controller's watch-backed copies
    assert granted[("", "pods")] == {"get", "list", "watch", "delete"}
    assert granted[("apps", "replicasets")] == {"get", "list", "watch", "create", "patch"}
    # the user's routing objects are patched (and restored), never created or deleted
    assert granted[("gateway.networking.k8s.io", "httproutes")] == {"get", "patch"}
    assert granted[("networking.istio.io", "virtualservices")] == {"get", "patch"}
    assert {r for _, r in granted}.isdisjoint({"secrets", "configmaps", "nodes"})
    # a namespace is read by name, to let a rollout deleted with it go at once
    assert granted[("", "namespaces")] == {"get"}
    (webhook_rule,) = [r for r in rules if "mutatingwebhookconfigurations" in r["resources"]]
    assert webhook_rule["resourceNames"] == ["vela-progressive-hold"]
    # one Secret, by name, in the addon's namespace: the state every pod shares
    role = _object(app, "Role", "vela-progressive-controller-state")
    assert role["metadata"]["namespace"] == "vela-system"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["vela-progressive-controller-state"],
            "verbs": ["get", "update"],
        },
    ]


def _env(deployment: dict[str, Any]) -> dict[str, str | None]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_standbys_join_one_peering_per_shard_and_every_pod_serves_the_webhook(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {"replicas": 2, "shards": 3})
    objects = _component_objects(app)
    deployments = [o for o in objects["vela-progressive-controller"] if o["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == [
        f"vela-progressive-controller-{i}" for i in range(3)
    ]
    for i, deployment in enumerate(deployments):
        env = _env(deployment)
        assert env["VP_SHARD"] == f"{i}/3"
        assert env["VP_PEERING"] == "vela-progressive"  # the controller adds -shard-<i>
        assert env["VP_PEERING_LIFETIME"] == "15"
        assert env["VP_STATE_SECRET"] == "vela-progressive-controller-state"
        assert deployment["spec"]["replicas"] == 2
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector["rollout.vela-progressive.io/shard"] == str(i)
        assert deployment["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
    # the webhook Service selects every pod of every shard
    service = _object(app, "Service")
    assert "rollout.vela-progressive.io/shard" not in service["spec"]["selector"]
    crd = _object(app, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    assert crd["spec"]["scope"] == "Cluster"
    assert "subresources" not in crd["spec"]["versions"][0]  # Kopf patches .status directly
    rules = _object(app, "ClusterRole", "vela-progressive-controller-peering")["rules"]
    assert rules == [
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "verbs": ["get", "list", "watch", "create", "patch"],
        }
    ]


def test_one_replica_has_no_peering_and_one_shard_keeps_its_deployment_name(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, app, _ = _addon(vela, probes, tmp_path, {})
    assert "vela-progressive-peering" not in _component_objects(app)
    deployment = _object(app, "Deployment")
    assert deployment["metadata"]["name"] == "vela-progressive-controller"
    assert not {"VP_SHARD", "VP_PEERING"} & set(_env(deployment))
    assert "rollout.vela-progressive.io/shard" not in deployment["spec"]["selector"]["matchLabels"]


def test_the_resource_tree_puts_canary_objects_under_the_rollout(
    vela: Vela, probes: Path, tmp_path: Path
) -> None:
    _, _, tree = _addon(vela, probes, tmp_path, {})
    assert tree["metadata"]["namespace"] == "vela-system"
    assert tree["metadata"]["labels"]["rules.oam.dev/resources"] == "true"
    assert tree["metadata"]["labels"]["rules.oam.dev/resource-format"] == "json"
    rules = json.loads(tree["data"]["rules"])
    assert rules[0]["parentResourceType"] == {"group": model.API_GROUP, "kind": model.KIND}
    kinds = {c["kind"] for c in rules[0]["childrenResourceType"]}
    assert kinds == {"Deployment", "Service", "Ingress"}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"replicas": 4}, "parameter.replicas"),
        ({"shards": 0}, "parameter.shards"),
        ({"takeoverSeconds": 5}, "parameter.takeoverSeconds"),
        ({"memoryLimit": "300Mi"}, "parameter.memoryLimit"),
        ({"webhookFailurePolicy": "Sometimes"}, "parameter.webhookFailurePolicy"),
        ({"webhookURL": "http://127.0.0.1:9443"}, "parameter.webhookURL"),
        ({"imagePullPolicy": "always"}, "parameter.imagePullPolicy"),
    ],
)
def test_bad_enable_arguments_fail_naming_the_parameter(
    vela: Vela, probes: Path, tmp_path: Path, args: dict[str, Any], error: str
) -> None:
    with pytest.raises(VelaError) as failure:
        _render(vela, probes, tmp_path, "addon-template", args)
    assert error in failure.value.stderr


@pytest.mark.parametrize(
    ("name", "args"),
    [("default", {}), ("local-controller", LOCAL), ("self-registering", {"inCluster": False})],
)
def test_notes_say_what_to_do_next(
    vela: Vela, probes: Path, tmp_path: Path, name: str, args: dict[str, Any]
) -> None:
    (notes,) = _objects(_render(vela, probes, tmp_path, "addon-notes", args))
    text = notes["data"]["notes"]
    assert "vela-progressive 0.1.0 is enabled" in text
    assert_matches_golden(text, GOLDEN / f"notes-{name}.txt")


def test_make_addon_assembles_the_directory_vela_reads(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack/build_addon.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    root = tmp_path / model.ADDON_NAME
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "NOTES.cue",
        "README.md",
        "definitions/progressive-rollout.cue",
        "metadata.yaml",
        "parameter.cue",
        "resources/controller.cue",
        "resources/crd.yaml",
        "resources/dashboard.cue",
        "resources/names.cue",
        "resources/peering.cue",
        "resources/rbac.cue",
        "resources/webhook.cue",
        "template.cue",
    ]
    assert yaml.safe_load((root / "metadata.yaml").read_text())["name"] == root.name
