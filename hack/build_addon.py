#!/usr/bin/env python3
"""Assemble the KubeVela addon directory ``dist/addon/vela-progressive/``.

    .venv/bin/python hack/build_addon.py [--out DIR]

KubeVela's addon reader only knows ``metadata.yaml``, ``README.md``, ``template.cue``,
``parameter.cue``, ``NOTES.cue``, ``resources/``, ``definitions/``, ``schemas/`` and ``views/``,
and the directory name must equal ``metadata.yaml: name`` (``vela addon enable`` waits for the
Application ``addon-<directory name>``). The sources live in ``addon/`` (and the trait in
``definitions/``); this script copies exactly those files, after checking that every generated
file is up to date (``hack/gen.py --check``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

import gen  # hack/gen.py: Python puts this script's directory first on sys.path

ROOT = gen.ROOT
ADDON_SRC = ROOT / "addon"

#: (source, destination in the addon directory, file suffixes kept from a directory, required)
LAYOUT: tuple[tuple[Path, str, tuple[str, ...], bool], ...] = (
    (ROOT / "metadata.yaml", "metadata.yaml", (), True),
    (ADDON_SRC / "README.md", "README.md", (), True),
    (ADDON_SRC / "template.cue", "template.cue", (), True),
    (ADDON_SRC / "parameter.cue", "parameter.cue", (), True),
    (ADDON_SRC / "NOTES.cue", "NOTES.cue", (), True),
    (ADDON_SRC / "resources", "resources", (".cue", ".yaml", ".yml"), True),
    (ROOT / "definitions", "definitions", (".cue", ".yaml", ".yml"), True),
    (ADDON_SRC / "schemas", "schemas", (".yaml", ".yml"), False),
    (ADDON_SRC / "views", "views", (".cue", ".yaml", ".yml"), False),
)


class BuildError(RuntimeError):
    """The addon cannot be assembled; the message says why and what to do."""


def addon_name() -> str:
    meta = yaml.safe_load((ROOT / "metadata.yaml").read_text())
    if not isinstance(meta, dict) or not meta.get("name") or not meta.get("version"):
        raise BuildError("metadata.yaml needs a name and a version (vela rejects it otherwise)")
    return str(meta["name"])


def build(out_root: Path) -> Path:
    """Write the addon into ``out_root/<name>`` (replacing it) and return that directory."""
    stale = gen.stale_files(gen.generated_files())
    if stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        raise BuildError(f"generated files are stale ({names}): run .venv/bin/python hack/gen.py")
    name = addon_name()
    target = out_root / name
    tmp = out_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for source, dest, suffixes, required in LAYOUT:
        if not source.exists():
            if required:
                raise BuildError(f"{source.relative_to(ROOT)} is missing")
            continue
        if source.is_file():
            shutil.copy2(source, tmp / dest)
            continue
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.suffix in suffixes:
                copy = tmp / dest / path.relative_to(source)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Assemble dist/addon/<name>/ from addon/.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "addon", help="parent dir")
    args = parser.parse_args(argv)
    try:
        target = build(args.out.resolve())
    except (BuildError, gen.SchemaError, OSError) as exc:
        print(f"hack/build_addon.py: error: {exc}", file=sys.stderr)
        return 1
    files = sorted(p for p in target.rglob("*") if p.is_file())
    print(f"built {target} ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
