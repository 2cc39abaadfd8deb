"""Generators of the files derived from the trait's JSON Schema and the capability table.

* :mod:`.cue`: JSON Schema -> the trait's CUE (``parameter``, definitions, limits, the copy into
  the CR's strategy), the routings resolved as :mod:`vela_progressive.core.capabilities` does,
  the capability table, and every rule's message as a CUE string;
* :mod:`.structural`: JSON Schema -> the CRD's structural OpenAPI schema;
* :mod:`.reference`: JSON Schema and capability table -> the tables of
  ``docs/trait-reference.md``.

Pure functions of their inputs (the schema, package data): ``hack/gen.py`` renders the files
with them and writes them; ``make verify`` fails when a committed file differs.
"""
