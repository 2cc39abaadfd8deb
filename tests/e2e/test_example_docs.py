"""The examples and their READMEs stay true without a cluster (this module runs in the unit tier).

Every ``<!-- plan FILE [ARGS] -->`` block in an example's README is the output of ``kubectl
progressive plan FILE [ARGS]``; ``UPDATE_GOLDENS=1`` rewrites the blocks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from tests.e2e.kit import EXAMPLES, component_image, rolled_component, trait_properties
from vela_progressive.cli.main import main as cli

DIRECTORIES = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())
PLAN_BLOCK = re.compile(
    r"<!-- plan (?P<file>\S+)(?P<args>(?: [^ >]+)*) -->\n```text\n(?P<text>.*?)```\n", re.DOTALL
)


def plan_of(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = cli(["plan", str(path), *args])
    out, err = capsys.readouterr()
    assert code == 0, f"kubectl progressive plan {path}: exit {code}\n{err}"
    return out


def test_the_examples_are_numbered_in_order_each_listed_in_the_index() -> None:
    names = [p.name for p in DIRECTORIES]
    assert [n[:3] for n in names] == [f"{i:02d}-" for i in range(1, len(names) + 1)], names
    index = (EXAMPLES / "README.md").read_text()
    for name in names:
        assert f"]({name}/)" in index, f"examples/README.md does not link {name}"


@pytest.mark.parametrize("directory", DIRECTORIES, ids=lambda p: p.name)
def test_each_version_is_one_application_with_the_trait_and_a_new_image(
    directory: Path,
) -> None:
    versions = sorted(directory.glob("app-v*.yaml"))
    assert [p.name for p in versions][:2] == ["app-v1.yaml", "app-v2.yaml"]
    images = []
    for path in versions:
        app = yaml.safe_load(path.read_text())
        assert app["kind"] == "Application"
        assert "namespace" not in app["metadata"], f"{path}: the README's -n must decide"
        assert trait_properties(app)["canary"]["steps"], path
        images.append(component_image(rolled_component(app)))
    assert len(set(images)) == len(images), f"{directory.name}: two versions share an image"


@pytest.mark.parametrize("directory", DIRECTORIES, ids=lambda p: p.name)
def test_the_readme_shows_what_plan_prints_and_names_every_file(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = directory / "README.md"
    text = readme.read_text()
    blocks = list(PLAN_BLOCK.finditer(text))
    assert blocks, f"{readme} has no <!-- plan app-vN.yaml --> block"
    updated = text
    for block in blocks:
        actual = plan_of(directory / block["file"], capsys, *block["args"].split())
        if os.environ.get("UPDATE_GOLDENS") == "1":
            updated = updated.replace(
                block.group(0),
                f"<!-- plan {block['file']}{block['args']} -->\n```text\n{actual}```\n",
            )
            continue
        assert block["text"] == actual, (
            f"{readme}: the plan of {block['file']} changed (UPDATE_GOLDENS=1 rewrites it):\n"
            f"{actual}"
        )
    if updated != text:
        readme.write_text(updated)
    for path in directory.glob("app-v*.yaml"):
        assert path.name in text, f"{readme} never mentions {path.name}"
