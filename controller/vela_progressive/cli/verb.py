"""What a ``kubectl progressive`` verb is: a name, a help line, its arguments and a runner.

Each verb lives in its own module under ``vela_progressive.cli`` and exposes ``VERB``;
``cli/main.py`` lists them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

#: Exit code for bad input (files, Applications, properties, flags), as argparse uses.
EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user: printed as ``error: <message>`` with exit code 2, no traceback."""


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    #: Adds the verb's own arguments (global flags are added by ``main``).
    configure: Callable[[argparse.ArgumentParser], None]
    #: Runs the verb; returns the exit code. Raise :class:`UserError` for bad input.
    run: Callable[[argparse.Namespace], int]
    description: str = ""
