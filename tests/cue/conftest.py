"""CUE tier: the trait and the addon CUE evaluated by the real ``vela`` CLI, offline.

The ``vela`` binary comes from ``hack/cluster/build.sh --bindir`` (built from Go modules and
cached), or from ``$VP_VELA_BIN``. When neither yields a working binary every test here FAILS
with the reason: a tier that cannot run never passes by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from tests.cue.vela import REPO, Vela, builtin_definitions, make_home, types_used
from tests.support.cluster import _bindir

FIXTURE_APPS = REPO / "tests/fixtures/apps"
TRAIT = REPO / "definitions/progressive-rollout.cue"
#: Built-in definitions every CUE test gets (the fixtures may need more; they are added).
BASE_DEFINITIONS = ("webservice", "statefulset", "scaler", "k8s-objects")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests here are the ``cue`` tier, except those on the real cluster (``cluster`` tier)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and "cluster" not in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.cue)


def _locate_vela(config: pytest.Config) -> Path:
    override = os.environ.get("VP_VELA_BIN")
    binary = Path(override) if override else _bindir(config) / "vela"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        source = "$VP_VELA_BIN" if override else "hack/cluster/build.sh --bindir"
        pytest.fail(f"no vela binary at {binary} (from {source})", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def vela(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Vela:
    tool = Vela(_locate_vela(pytestconfig), make_home(tmp_path_factory.mktemp("vela-home")))
    result = tool.run("version")
    if result.returncode != 0:
        pytest.fail(f"`vela version` failed:\n{result.stdout}{result.stderr}", pytrace=False)
    return tool


def fixture_apps() -> list[Path]:
    return sorted(FIXTURE_APPS.glob("*.yaml"))


@pytest.fixture(scope="session")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with our trait and the built-in definitions the fixtures use."""
    target = tmp_path_factory.mktemp("definitions")
    needed = set(BASE_DEFINITIONS)
    for app in fixture_apps():
        needed |= types_used(yaml.safe_load(app.read_text()))
    needed.discard("progressive-rollout")
    builtin_definitions(needed, target)
    (target / TRAIT.name).write_text(TRAIT.read_text())
    return target


@pytest.fixture(scope="session")
def corpus_definitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our trait and the ``webservice`` component: enough to render one-component Applications
    (the invalid corpus, generated properties)."""
    target = tmp_path_factory.mktemp("corpus-definitions")
    builtin_definitions(["webservice"], target)
    (target / TRAIT.name).write_text(TRAIT.read_text())
    return target
