"""Plain-text tables and YAML/JSON documents for the CLI's output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

FORMATS = ("table", "yaml", "json")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces (kubectl style), no trailing blanks.

    >>> print(table(["STEP", "TRAFFIC"], [[1, "20%"], [10, "header x=1"]]))
    STEP  TRAFFIC
    1     20%
    10    header x=1
    """
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


class _Dumper(yaml.SafeDumper):
    """Block style, keys in insertion order, multi-line strings as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(doc: Any) -> str:
    """One YAML document (no ``---``)."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def yaml_stream(docs: Sequence[tuple[str, Any]]) -> str:
    """Documents separated by ``---``, each preceded by its comment lines (may be empty)."""
    parts = []
    for comment, doc in docs:
        head = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
        parts.append("---\n" + head + to_yaml(doc))
    return "".join(parts)


def to_json(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"
