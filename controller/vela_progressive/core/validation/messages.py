"""Problems: where, what and how to fix it, one line each.

Every rejection of the validator is a :class:`Problem` that names the field, says what is wrong
and how to fix it::

    canary.steps[1].weight: 30 is lower than the previous step's 50; weights never decrease
    — raise it to at least 50

:class:`InvalidSpec` carries all the problems of one input. A rule the trait's generated CUE
checks too is worded once, as a :class:`~vela_progressive.core.capabilities.Rule`;
:func:`problem` turns it into a :class:`Problem`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vela_progressive.core.capabilities import Rule


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where, what, and how to fix it."""

    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = self.path or "properties"
        return f"{where}: {self.message}" + (f" — {self.fix}" if self.fix else "")

    def under(self, prefix: str) -> Problem:
        """The same problem with its path below ``prefix``."""
        if not prefix:
            return self
        if not self.path:
            return Problem(prefix, self.message, self.fix)
        sep = "" if self.path.startswith("[") else "."
        return Problem(f"{prefix}{sep}{self.path}", self.message, self.fix)


class InvalidSpec(ValueError):
    """The input is invalid; ``problems`` lists every reason, ``str()`` one line per problem."""

    def __init__(self, problems: Sequence[Problem], component: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.component = component
        super().__init__("\n".join(str(p) for p in self.problems))

    def under(self, prefix: str) -> InvalidSpec:
        return InvalidSpec([p.under(prefix) for p in self.problems], self.component)


def problem(rule: Rule, path: str, **values: object) -> Problem:
    """The problem ``rule`` describes at ``path``, its placeholders filled with ``values``."""
    return Problem(path, *rule.text(**values))


def field_path(parts: Iterable[str | int]) -> str:
    """``("canary", "steps", 1, "weight")`` → ``canary.steps[1].weight``.

    >>> field_path(["canary", "trafficRoutings", 0, "type"])
    'canary.trafficRoutings[0].type'
    >>> field_path([])
    ''
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(value: object) -> str:
    """A value as a message shows it.

    >>> describe("20"), describe(True), describe([1]), describe(None)
    ("the string '20'", 'true', 'a list', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def is_integer(value: object) -> bool:
    """A whole number (YAML ``1.0`` is a float and ``true`` is no number, as in CUE's ``int``)."""
    return isinstance(value, int) and not isinstance(value, bool)
