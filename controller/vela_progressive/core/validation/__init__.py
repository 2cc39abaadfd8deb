"""Validate ``progressive-rollout`` trait properties and explain every problem.

:func:`validate_properties` checks the properties against the trait's JSON Schema (the single
source, ``schemas/progressive-rollout.schema.json``), applies the schema's defaults (jsonschema
does not), then checks the rules a schema cannot express. Every problem names the field, says
what is wrong and how to fix it::

    canary.steps[1].weight: 30 is lower than the previous step's 50; weights never decrease
    — raise it to at least 50

One module per job:

* :mod:`.messages`: :class:`Problem`, :class:`InvalidSpec`, the wording of shared rules;
* :mod:`.schema`: the JSON Schema check, each jsonschema error turned into a problem with a fix;
* :mod:`.rules`: cross-field rules on steps and release modes;
* :mod:`.providers`: routings and what their providers can serve (the capability table and the
  provider rules themselves are :mod:`vela_progressive.core.capabilities`);
* :mod:`.properties`: :func:`validate_properties`, :func:`resolve_strategy`;
* :mod:`.application`: Applications for the CLI (:func:`validate_application`).

The trait's generated CUE checks the same rules where CUE can (with the same words, from
:data:`.rules.RULES`, :data:`.providers.RULES` and
:data:`vela_progressive.core.capabilities.RULES`), so most mistakes are refused by
``vela up`` before anything is created.
"""

from __future__ import annotations

from vela_progressive.core.capabilities import Rule
from vela_progressive.core.trait_schema import SCHEMA_PATH, apply_defaults
from vela_progressive.core.validation.application import (
    COMPONENT_KINDS,
    ComponentTraits,
    validate_application,
)
from vela_progressive.core.validation.messages import (
    InvalidSpec,
    Problem,
    field_path,
    problem,
)
from vela_progressive.core.validation.properties import resolve_strategy, validate_properties

__all__ = [
    "COMPONENT_KINDS",
    "SCHEMA_PATH",
    "ComponentTraits",
    "InvalidSpec",
    "Problem",
    "Rule",
    "apply_defaults",
    "field_path",
    "problem",
    "resolve_strategy",
    "validate_application",
    "validate_properties",
]

# Public names show (and pickle) under this package, where callers import them from.
for _public in (ComponentTraits, InvalidSpec, Problem):
    _public.__module__ = __name__
del _public
