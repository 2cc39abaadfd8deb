"""Sandboxed, strict Jinja2 rendering of the project's templates (``templates/``).

Every template is rendered in a :class:`~jinja2.sandbox.SandboxedEnvironment` with
``StrictUndefined`` (a missing value is an error, never an empty string). YAML templates must put
every value through ``tojson`` (JSON is valid YAML, so quoting is always right) and their output
is parsed back and checked to be a mapping with ``apiVersion``, ``kind`` and ``metadata.name``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

#: ``templates/`` at the repository root; the addon image ships a copy next to the package.
_CANDIDATES = (
    Path(__file__).resolve().parents[3] / "templates",
    Path(__file__).resolve().parent.parent / "templates",
)


class RenderError(ValueError):
    """A template could not be rendered, or rendered something that is not a valid object."""


def templates_dir() -> Path:
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(map(str, _CANDIDATES))
    raise RenderError(f"no templates directory found (looked in {looked})")


def _tojson(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@cache
def environment(root: str | None = None) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(root or str(templates_dir())),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson"] = _tojson
    return env


def render_text(name: str, root: str | None = None, **values: Any) -> str:
    """Render template ``name`` (relative to ``templates/``) to text."""
    try:
        return environment(root).get_template(name).render(**values)
    except TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from exc


def render_object(name: str, root: str | None = None, **values: Any) -> dict[str, Any]:
    """Render a YAML template into one Kubernetes object and check its shape."""
    text = render_text(name, root, **values)
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RenderError(f"template {name} rendered invalid YAML: {exc}") from exc
    if not isinstance(obj, dict):
        raise RenderError(f"template {name} must render one mapping, got {type(obj).__name__}")
    missing = [k for k in ("apiVersion", "kind") if not isinstance(obj.get(k), str)]
    if not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
        missing.append("metadata.name")
    if missing:
        raise RenderError(f"template {name} rendered an object without {', '.join(missing)}")
    return obj
